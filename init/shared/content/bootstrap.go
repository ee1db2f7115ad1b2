package content

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rke2os/rke2os/internal/durable"

	"github.com/google/go-containerregistry/pkg/name"
)

// Options says where RKE2's content is and which runtime to bootstrap.
type Options struct {
	// DataDir is RKE2's data directory, /var/lib/rancher/rke2.
	DataDir string
	// ImagesDir holds the airgap archives; DataDir/agent/images if empty.
	// The archives may be links to a read-only medium: they are only read.
	ImagesDir string
	// Version is the RKE2 version, "v1.34.4+rke2r1": the runtime image is
	// rancher/rke2-runtime:v1.34.4-rke2r1.
	Version string
	// Server copies the runtime's charts into DataDir/server/manifests, as
	// RKE2 does on servers.
	Server bool
	// Remote is where to pull the runtime from when no archive holds it:
	// the mirrors and credentials of registries.yaml. Nil pulls from the
	// image's own registry (Docker Hub), as RKE2 without a
	// registries.yaml does.
	Remote *Remote
	// TempDir holds the layers read ahead of their turn (rare: only
	// archives that store layers out of order); $TMPDIR if empty. Nothing
	// is ever written beside the archives.
	TempDir string
	// Log receives what Bootstrap does; slog.Default() if nil.
	Log *slog.Logger
}

// Result says what Bootstrap did.
type Result struct {
	// DataKey names the runtime's directory under DataDir/data:
	// "v1.34.4-rke2r1-<12 hex digits>", as RKE2 names it.
	DataKey string
	// BinDir and ChartsDir are DataDir/data/<key>/bin and .../charts.
	BinDir, ChartsDir string
	// Skipped is true when the runtime was already extracted (the
	// .extracted marker was there): nothing was read or written but the
	// bin link and the charts.
	Skipped bool
	// Source is the archive the runtime came from, or the registry
	// endpoint it was pulled from; empty when Skipped.
	Source string
	// ChartsWritten counts the files written into server/manifests.
	ChartsWritten int
	// Duration is how long Bootstrap took.
	Duration time.Duration
}

// markerName is RKE2's completion marker in data/<key>/: it holds the
// runtime image's name, and its absence means "extract again".
const markerName = ".extracted"

// Bootstrap stages the runtime content of RKE2 Version under DataDir
// exactly as RKE2's Stage and UpdateManifests do:
//
//  1. the data key is computed from the runtime image's reference as RKE2
//     computes it (DataKey);
//  2. if DataDir/data/<key>/ has bin/, charts/ and .extracted, nothing is
//     extracted (Skipped);
//  3. otherwise the image is looked for in the archives under ImagesDir
//     (or, when none has it, pulled through Remote), and its /bin and
//     /charts extracted into a temporary directory beside data/<key>/,
//     every layer checked against its digests, nothing written outside
//     it, and .extracted written, before it is renamed into place: the
//     directory is whole or absent, never half there;
//  4. DataDir/bin is pointed at data/<key>/bin (by rename, never missing);
//  5. on servers, the charts are copied into DataDir/server/manifests.
//
// Its errors name the file and the fix.
func Bootstrap(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	if o.DataDir == "" || o.Version == "" {
		return nil, errors.New("content bootstrap: DataDir and Version are required")
	}
	if o.ImagesDir == "" {
		o.ImagesDir = filepath.Join(o.DataDir, "agent", "images")
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	ref := RuntimeRef(o.Version)
	key, err := DataKey(ref)
	if err != nil {
		return nil, fmt.Errorf("content bootstrap: RKE2 version %q: %w", o.Version, err)
	}
	dir := filepath.Join(o.DataDir, "data", key)
	res := &Result{DataKey: key, BinDir: filepath.Join(dir, "bin"), ChartsDir: filepath.Join(dir, "charts")}

	if isDir(res.BinDir) && isDir(res.ChartsDir) && isRegular(filepath.Join(dir, markerName)) {
		res.Skipped = true
		log.Info("runtime already extracted", "image", ref, "dir", dir)
	} else {
		if res.Source, err = extractRuntime(ctx, o, log, ref, dir); err != nil {
			return nil, err
		}
	}
	if err := linkBin(o.DataDir, res.BinDir); err != nil {
		return nil, err
	}
	if o.Server {
		if res.ChartsWritten, err = copyCharts(res.ChartsDir, filepath.Join(o.DataDir, "server", "manifests")); err != nil {
			return nil, err
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// extractRuntime extracts the runtime image ref into dir, from an archive
// or a registry, and returns where it came from.
func extractRuntime(ctx context.Context, o Options, log *slog.Logger, ref, dir string) (string, error) {
	want, err := NormalizeName(ref)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(dir); err == nil {
		// An extraction that never finished (RKE2 writes in place): redo it.
		log.Warn("runtime directory without its .extracted marker: extracting again", "dir", dir)
		if err := os.RemoveAll(dir); err != nil {
			return "", fmt.Errorf("content bootstrap: remove the unfinished %s: %w", dir, err)
		}
	}
	x, err := startExtraction(dir, []string{"/bin", "/charts"})
	if err != nil {
		return "", fmt.Errorf("content bootstrap: %w", err)
	}
	x.durable = true
	source, err := fillRuntime(ctx, o, log, ref, want, x)
	if err == nil {
		err = finishRuntime(x, ref)
	}
	if err != nil {
		x.abort()
		return "", err
	}
	if err := x.commit(); err != nil {
		x.abort()
		return "", fmt.Errorf("content bootstrap: %w", err)
	}
	log.Info("runtime extracted", "image", ref, "from", source, "dir", dir)
	return source, nil
}

// fillRuntime applies the runtime image's layers into x: from the first
// archive that holds it or, when none does, from a registry.
func fillRuntime(ctx context.Context, o Options, log *slog.Logger, ref, want string, x *extraction) (string, error) {
	archives, err := runtimeArchives(o.ImagesDir)
	if err != nil {
		return "", fmt.Errorf("content bootstrap: %w", err)
	}
	var seen searchReport
	for _, p := range archives {
		s, found, err := extractImage(ctx, p, want, o.TempDir, x)
		switch {
		case err == nil:
			return p, nil
		case found:
			return "", fmt.Errorf("content bootstrap: %s in %s: %w; replace the archive with a good copy", ref, p, err)
		case ctx.Err() != nil:
			return "", fmt.Errorf("content bootstrap: %w", ctx.Err())
		case errors.Is(err, errNotHere):
			seen.add(p, s.tags)
		default:
			// RKE2 goes on to the next archive, and so does this.
			log.Warn("image archive unreadable, skipped", "archive", p, "err", err)
			seen.broken = append(seen.broken, fmt.Sprintf("%s (%v)", filepath.Base(p), err))
		}
	}
	log.Info("runtime image in no archive: pulling it", "image", ref, "dir", o.ImagesDir)
	img, perr := Pull(ctx, o.Remote, want)
	if perr == nil {
		for i := range img.layers {
			if _, perr = x.applyLayer(&img.layers[i]); perr != nil {
				break
			}
		}
	}
	if perr != nil {
		fix := "bake the matching archive with rke2-build image --images, or configure a registry that serves it"
		return "", fmt.Errorf("content bootstrap: no %s in %s (%s), and the pull failed: %w; %s", ref, o.ImagesDir, seen.String(), perr, fix)
	}
	writePullList(o.ImagesDir, rke2Name(ref), log)
	return img.Source, nil
}

// finishRuntime checks the extracted runtime and marks it complete, as
// RKE2 does: bin/ mode 0755, .extracted holding the image's name.
func finishRuntime(x *extraction, ref string) error {
	if fi, err := x.root.Stat("bin"); err != nil || !fi.IsDir() {
		return fmt.Errorf("content bootstrap: %s has no /bin directory: not an rke2-runtime image", ref)
	}
	// RKE2 looks for both directories; an image without charts would be
	// extracted again at every start.
	if err := x.mkdirs("charts"); err != nil {
		return fmt.Errorf("content bootstrap: %w", err)
	}
	if err := x.root.Chmod("bin", 0o755); err != nil {
		return fmt.Errorf("content bootstrap: %w", err)
	}
	return x.writeFile(markerName, []byte(rke2Name(ref)), 0o644)
}

// rke2Name is ref as RKE2 writes it into .extracted and runtime-image.txt
// (go-containerregistry's Name): "index.docker.io/rancher/rke2-runtime:...".
func rke2Name(ref string) string {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return ref
	}
	return r.Name()
}

// searchReport is what the archives held, for the error when none held
// the runtime.
type searchReport struct {
	runtimes []string // "rancher/rke2-runtime:v1.33.1-rke2r1 in a.tar.zst"
	others   []string // archives without any runtime
	broken   []string
}

func (r *searchReport) add(p string, tags []string) {
	n := 0
	for _, t := range tags {
		if norm, err := NormalizeName(t); err == nil {
			if repo, _ := splitTag(norm); repo == dockerHub+"/"+RuntimeRepo {
				r.runtimes = append(r.runtimes, t+" in "+filepath.Base(p))
				n++
			}
		}
	}
	if n == 0 {
		r.others = append(r.others, filepath.Base(p))
	}
}

func (r *searchReport) String() string {
	var parts []string
	switch {
	case len(r.runtimes) > 0:
		parts = append(parts, "found: "+strings.Join(r.runtimes, ", "))
	case len(r.others) > 0:
		parts = append(parts, "found no rke2-runtime image in "+strings.Join(r.others, ", "))
	case len(r.broken) == 0:
		parts = append(parts, "found no image archives")
	}
	if len(r.broken) > 0 {
		parts = append(parts, "unreadable: "+strings.Join(r.broken, ", "))
	}
	return strings.Join(parts, "; ")
}

// linkBin points dataDir/bin at binDir, as RKE2 does (an absolute link),
// by renaming a new link over the old one: there is always a bin.
func linkBin(dataDir, binDir string) error {
	link := filepath.Join(dataDir, "bin")
	if t, err := os.Readlink(link); err == nil && t == binDir {
		return nil
	}
	if fi, err := os.Lstat(link); err == nil && fi.IsDir() {
		// Not a link: RKE2 removes whatever is there.
		if err := os.RemoveAll(link); err != nil {
			return fmt.Errorf("content bootstrap: replace %s with a link: %w", link, err)
		}
	}
	if err := durable.Symlink(binDir, link); err != nil {
		return fmt.Errorf("content bootstrap: %w", err)
	}
	return nil
}

// writePullList asks for the pulled runtime to be pulled into containerd
// too, as RKE2 does (images.Pull): imagesDir/runtime-image.txt names it,
// unless the directory already holds archives. Failing to write it (a
// read-only images directory) only costs that.
func writePullList(imagesDir, ref string, log *slog.Logger) {
	ents, _ := os.ReadDir(imagesDir)
	for _, e := range ents {
		if !e.IsDir() && !strings.HasSuffix(e.Name(), ".txt") {
			return
		}
	}
	p := filepath.Join(imagesDir, "runtime-image.txt")
	err := os.MkdirAll(imagesDir, 0o755)
	if err == nil {
		err = os.WriteFile(p, []byte(ref+"\n"), 0o644)
	}
	if err != nil {
		log.Warn("runtime image not listed for containerd to pull", "file", p, "err", err)
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func isRegular(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
