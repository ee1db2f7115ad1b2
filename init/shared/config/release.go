package config

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Release describes what an image was built with.
type Release struct {
	RKE2Version string         `json:"rke2_version"`
	Images      []ReleaseImage `json:"images"`
	// Archives gives each baked archive's sha256 ("sha256:<hex>") by its
	// path on the medium, so that the node need not hash it at every boot
	// to know whether it was imported.
	Archives map[string]string `json:"archives,omitempty"`
}

// ReleaseImage is one baked image: normalised name, config digest, archive.
type ReleaseImage struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Digest  string `json:"digest,omitempty"`
	Archive string `json:"archive"`
}

// ReadRelease reads an image's release file.
func ReadRelease(path string) (*Release, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", path, err)
	}
	var r Release
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("release %s: %w", path, err)
	}
	if r.RKE2Version == "" {
		return nil, fmt.Errorf("release %s: no rke2_version", path)
	}
	return &r, nil
}

// Image returns the first baked image whose repository (the name without
// registry and tag) ends with repo, like "rancher/mirrored-pause"; "" if none.
func (r *Release) Image(repo string) string {
	for _, img := range r.Images {
		name, _, _ := strings.Cut(img.Name, "@")
		if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
			name = name[:i]
		}
		if strings.HasSuffix(name, "/"+repo) || name == repo {
			return img.Name
		}
	}
	return ""
}
