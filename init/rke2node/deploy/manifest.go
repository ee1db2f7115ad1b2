package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// manifestFiles lists the manifests under dir, recursively and in lexical
// order (so that name clashes always resolve the same way). It leaves out
// dot-files and dot-directories (editor and VCS litter), files that are not
// .yaml/.yml/.json (any case, as k3s), and a file NAME whenever NAME.skip
// sits beside it. Symlinks to files are followed, symlinks to directories
// are not (no loops). A directory that cannot be read is an error, but the
// files found elsewhere are still returned; a missing dir is no error, as
// the server may simply have no manifests yet.
func manifestFiles(dir string) ([]string, error) {
	var paths []string
	var errs []error
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			errs = append(errs, fmt.Errorf("list manifests: %w", err))
			if d != nil && d.IsDir() && p != dir {
				return fs.SkipDir
			}
			return nil
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isManifestName(d.Name()) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		if _, err := os.Lstat(p + ".skip"); err == nil {
			slog.Debug("manifest skipped: .skip file", "file", p)
			return nil
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("list manifests in %s: %w", dir, err))
	}
	return paths, errors.Join(errs...)
}

func isManifestName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// addonName names the Addon of a manifest: its base name without the
// extension, whatever directory it is in. (k3s cuts at the first dot
// instead; for the usual names, such as rke2-coredns-config.yaml, the two
// agree.)
func addonName(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// parseManifest turns the bytes of a manifest file into the objects it
// holds: a stream of YAML documents or of JSON objects. Documents that
// are empty (or only comments) are skipped, and a List kind (kind: List,
// ConfigMapList, ...) gives its items instead of itself. Every object
// must have an apiVersion, a kind and a metadata.name, as server-side
// apply needs all three. Errors say which document (counting non-empty
// ones from 1) and, for YAML, the line it starts on.
func parseManifest(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w", docName(data, doc), err)
		}
		if len(raw) > 0 {
			var derr error
			if objs, derr = appendDocument(objs, raw); derr != nil {
				return nil, fmt.Errorf("%s: %w", docName(data, doc), derr)
			}
		}
		if err != nil { // io.EOF
			return objs, nil
		}
	}
}

// docName names the doc-th document of data for an error. YAML errors
// count lines from the start of their document, so for YAML it also says
// on which line of the file that document starts; it splits documents as
// utilyaml's YAMLReader does (a line starting with "---" separates them,
// and a document of no lines is not counted).
func docName(data []byte, doc int) string {
	if utilyaml.IsJSONBuffer(data) {
		return fmt.Sprintf("document %d", doc)
	}
	n, inDoc := 0, false
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "---"):
			inDoc = false
		case !inDoc:
			inDoc = true
			if n++; n == doc {
				return fmt.Sprintf("document %d (from line %d)", doc, i+1)
			}
		}
	}
	return fmt.Sprintf("document %d", doc)
}

// appendDocument decodes one document, already JSON, and appends what it
// holds; null and {} (an empty or comment-only YAML document) hold nothing.
func appendDocument(objs []*unstructured.Unstructured, raw []byte) ([]*unstructured.Unstructured, error) {
	var m map[string]any
	// utiljson keeps integers int64, as unstructured objects want them.
	if err := utiljson.Unmarshal(raw, &m); err != nil {
		return objs, err
	}
	if len(m) == 0 {
		return objs, nil
	}
	return appendObject(objs, m, 0)
}

// maxListDepth bounds Lists of Lists; kubectl does not nest them at all,
// the bound only keeps hostile input from recursing deeply.
const maxListDepth = 8

// appendObject checks one decoded document (or List item) and appends it,
// or its items if it is a List, to objs.
func appendObject(objs []*unstructured.Unstructured, m map[string]any, depth int) ([]*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{Object: m}
	kind, apiVersion := u.GetKind(), u.GetAPIVersion()
	if kind == "" || apiVersion == "" {
		return objs, errors.New("object has no kind or apiVersion")
	}
	if _, err := schema.ParseGroupVersion(apiVersion); err != nil {
		return objs, fmt.Errorf("%s: %w", kind, err)
	}
	if items, ok := m["items"]; ok && strings.HasSuffix(kind, "List") {
		list, ok := items.([]any)
		if !ok && items != nil {
			return objs, fmt.Errorf("%s: items is not a list", kind)
		}
		if depth >= maxListDepth {
			return objs, fmt.Errorf("%s: Lists nested too deeply", kind)
		}
		for i, it := range list {
			im, ok := it.(map[string]any)
			if !ok {
				return objs, fmt.Errorf("%s item %d: not an object", kind, i+1)
			}
			// As apimachinery does: an item with neither kind nor
			// apiVersion is of the kind the List is a List of.
			if im["kind"] == nil && im["apiVersion"] == nil && kind != "List" {
				im["kind"], im["apiVersion"] = strings.TrimSuffix(kind, "List"), apiVersion
			}
			var err error
			if objs, err = appendObject(objs, im, depth+1); err != nil {
				return objs, fmt.Errorf("%s item %d: %w", kind, i+1, err)
			}
		}
		return objs, nil
	}
	if md, ok := m["metadata"]; ok {
		if _, ok := md.(map[string]any); !ok {
			return objs, fmt.Errorf("%s: metadata is not an object", kind)
		}
	}
	// Fields read with Get* are "" when of the wrong type; check them
	// here so that a typo is an error and not a silently different object.
	for _, f := range []string{"name", "namespace"} {
		if _, _, err := unstructured.NestedString(m, "metadata", f); err != nil {
			return objs, fmt.Errorf("%s: %w", kind, err)
		}
	}
	for _, f := range []string{"labels", "annotations"} {
		if _, _, err := unstructured.NestedStringMap(m, "metadata", f); err != nil {
			return objs, fmt.Errorf("%s: %w", kind, err)
		}
	}
	if u.GetName() == "" {
		return objs, fmt.Errorf("%s: no metadata.name (generateName cannot be applied)", kind)
	}
	return append(objs, u), nil
}
