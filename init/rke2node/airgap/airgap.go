package airgap

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/rke2os/rke2os/init/shared/content"
	"github.com/rke2os/rke2os/internal/backoff"
)

// K8sNamespace is containerd's namespace for the kubelet's images.
const K8sNamespace = "k8s.io"

// WaitContainerd connects to containerd and waits until it serves its API.
func WaitContainerd(ctx context.Context, socket string) (*containerd.Client, error) {
	for {
		if _, err := os.Stat(socket); err == nil {
			c, err := containerd.New(socket, containerd.WithTimeout(2*time.Second))
			if err == nil {
				if ok, err := c.IsServing(ctx); err == nil && ok {
					return c, nil
				}
				c.Close()
			}
		}
		if !backoff.Sleep(ctx, 100*time.Millisecond) {
			return nil, fmt.Errorf("containerd on %s: not serving: %w", socket, ctx.Err())
		}
	}
}

// ImportResult counts what ImportArchives did.
type ImportResult struct {
	Imported, Skipped, Images int
}

// ImportArchives imports every archive into containerd's k8s.io namespace,
// as RKE2 does at start. What was imported is remembered by archive digest
// in record, so that the next boot skips it. known gives the digests of
// archives whose content is fixed (the boot medium's, from the image's
// release file) by real path; any other archive is hashed.
func ImportArchives(ctx context.Context, c *containerd.Client, archives []string, known map[string]string, record string) (ImportResult, error) {
	var res ImportResult
	done := readRecord(record)
	ctx = namespaces.WithNamespace(ctx, K8sNamespace)
	for _, a := range archives {
		d, err := archiveDigest(a, known)
		if err != nil {
			return res, err
		}
		if done[d] {
			res.Skipped++
			continue
		}
		n, err := importArchive(ctx, c, a)
		if err != nil {
			return res, err
		}
		res.Imported++
		res.Images += n
		if err := appendRecord(record, d, a); err != nil {
			return res, err
		}
		slog.Info("images imported", "archive", a, "images", n)
	}
	return res, nil
}

// Snapshotter is the snapshotter the CRI plugin unpacks images into
// (containerd's config, init/pid1/launch).
const Snapshotter = "overlayfs"

// UnpackImages unpacks the named images into the snapshotter, those not
// unpacked yet, and returns how many it unpacked. An import only stores
// an image's layers; the kubelet's CRI call that creates a container
// unpacks them, under the kubelet's 2-minute runtime request timeout. On
// a slow machine (one vCPU under TCG) kube-proxy's image takes longer
// than that, and each timeout cancels the unpack and starts it again
// from nothing, for ever: so the images of the node's own static pods
// are unpacked here, before the kubelet starts, with no such deadline.
func UnpackImages(ctx context.Context, c *containerd.Client, names []string) (int, error) {
	ctx = namespaces.WithNamespace(ctx, K8sNamespace)
	n := 0
	for _, name := range names {
		img, err := c.GetImage(ctx, name)
		if err != nil {
			return n, fmt.Errorf("unpack %s: %w (the airgap archives should hold it: is the image built from this release?)", name, err)
		}
		ok, err := img.IsUnpacked(ctx, Snapshotter)
		if err != nil {
			return n, fmt.Errorf("unpack %s: %w", name, err)
		}
		if ok {
			continue
		}
		start := time.Now()
		if err := img.Unpack(ctx, Snapshotter); err != nil {
			return n, fmt.Errorf("unpack %s: %w", name, err)
		}
		n++
		slog.Info("image unpacked", "image", name, "snapshotter", Snapshotter, "took", time.Since(start).Round(time.Millisecond))
	}
	return n, nil
}

// ImageNames are the names of every image in containerd's k8s.io
// namespace, sorted (several may name one image).
func ImageNames(ctx context.Context, c *containerd.Client) ([]string, error) {
	ctx = namespaces.WithNamespace(ctx, K8sNamespace)
	imgs, err := c.ImageService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	names := make([]string, 0, len(imgs))
	for _, img := range imgs {
		names = append(names, img.Name)
	}
	slices.Sort(names)
	return names, nil
}

// archiveDigest is an archive's digest from known when the archive (or
// the file its symlink points at) is listed there, or else its hash.
func archiveDigest(p string, known map[string]string) (string, error) {
	if real, err := filepath.EvalSymlinks(p); err == nil {
		if d, ok := known[real]; ok {
			return d, nil
		}
	}
	return content.ArchiveDigest(p)
}

func importArchive(ctx context.Context, c *containerd.Client, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("import %s: %w", path, err)
	}
	defer f.Close()
	r, err := decompress(path, bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("import %s: %w", path, err)
	}
	// Pinned, as containerd pins the sandbox image: the kubelet's image
	// garbage collection never removes a pinned image, and an airgapped
	// node cannot pull back an image it removed (a live node's tmpfs fills
	// past the kubelet's threshold as soon as the images are in).
	imgs, err := c.Import(ctx, r, containerd.WithAllPlatforms(false), containerd.WithSkipMissing(),
		containerd.WithImageLabels(map[string]string{"io.cri-containerd.image": "managed", "io.cri-containerd.pinned": "pinned"}))
	if err != nil {
		return 0, fmt.Errorf("import %s: %w", path, err)
	}
	return len(imgs), nil
}

// decompress opens an archive by its name, as RKE2 recognises them.
func decompress(path string, r io.Reader) (io.Reader, error) {
	switch {
	case strings.HasSuffix(path, ".tar.zst"), strings.HasSuffix(path, ".tzst"):
		d, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(1<<25))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case strings.HasSuffix(path, ".tar.gz"), strings.HasSuffix(path, ".tgz"):
		return gzip.NewReader(r)
	case strings.HasSuffix(path, ".tar"):
		return r, nil
	}
	return nil, fmt.Errorf("%s: not an image archive (.tar, .tar.gz, .tar.zst)", filepath.Base(path))
}

// The record is one "digest path" line per imported archive.
func readRecord(p string) map[string]bool {
	out := map[string]bool{}
	b, err := os.ReadFile(p)
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n") {
		if d, _, ok := strings.Cut(l, " "); ok {
			out[d] = true
		}
	}
	return out
}

func appendRecord(p, digest, archive string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%s %s\n", digest, archive); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
