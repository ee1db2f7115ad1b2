package content

import (
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Image is one image read from an archive, a layout or a registry: its
// config and where its layers are, each to be checked against its digests
// as it is read.
type Image struct {
	// Name is the normalised reference, "docker.io/rancher/rke2-runtime:v1.34.4-rke2r1".
	// An image stored without a tag has an empty Name.
	Name string
	// ID is the sha256 digest of the image's config ("sha256:..."): the
	// same wherever the image is stored, and what `docker images` shows.
	ID string
	// Digest is the manifest's digest when the source stores a manifest
	// (OCI layouts, registries); docker-save archives store none, so it is
	// empty for them.
	Digest string
	// Source is the archive file, OCI layout directory or registry
	// endpoint the image was read from.
	Source string

	config *v1.ConfigFile
	layers []Layer
}

// Layer is where one layer of an image is, and what its digests must be.
type Layer struct {
	// DiffID is the sha256 of the uncompressed tar, from the image config.
	DiffID v1.Hash
	// Digest is the sha256 of the blob as stored (compressed or not); zero
	// when the source does not say (a docker-save layer named by its old
	// layer ID).
	Digest v1.Hash
	// Open opens the blob as stored.
	Open func() (io.ReadCloser, error)
	// Where names the blob in errors: "a.tar:blobs/sha256/ab12...".
	Where string
}

// NewImage makes an image of a config and its layers, for readers of other
// formats (the builder's OCI layouts). The layers are checked against
// their digests when extracted, whatever the reader checked before.
func NewImage(name, id, digest, source string, cfg *v1.ConfigFile, layers []Layer) Image {
	return Image{Name: name, ID: id, Digest: digest, Source: source, config: cfg, layers: layers}
}

// Config returns the image's parsed config.
func (i Image) Config() *v1.ConfigFile { return i.config }

// String names the image and where it comes from, for messages.
func (i Image) String() string {
	n := i.Name
	if n == "" {
		n = "untagged " + i.ID
	}
	return n + " (" + i.Source + ")"
}
