package content

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ArchiveSuffixes are the names of the airgap archives read from
// agent/images/, compared without case as RKE2 compares them. RKE2 also
// takes .tar.lz4 and .tar.bz2, which nothing here makes.
var ArchiveSuffixes = []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"}

// unsupportedSuffixes are archives RKE2 would read that are not read here:
// said once in the log rather than silently ignored.
var unsupportedSuffixes = []string{".tar.lz4", ".tar.bz2", ".tbz"}

func hasSuffixFold(name string, suffixes []string) bool {
	lower := strings.ToLower(name)
	for _, s := range suffixes {
		if strings.HasSuffix(lower, s) {
			return true
		}
	}
	return false
}

// Archives lists the airgap archives in imagesDir that RKE2 imports into
// containerd at start, in name order: the files (or links to files, as on
// a live medium) directly in it whose names end in one of
// ArchiveSuffixes. A missing directory holds none.
func Archives(imagesDir string) ([]string, error) {
	ents, err := os.ReadDir(imagesDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list image archives: %w", err)
	}
	var out []string
	for _, e := range ents { // ReadDir sorts by name
		p := filepath.Join(imagesDir, e.Name())
		if ok, err := isArchive(p, e); err != nil {
			return nil, err
		} else if ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// runtimeArchives lists the archives RKE2 looks for the runtime image in
// (wharfie's tarfile.FindImage): every archive below imagesDir, in
// subdirectories too (not through links to directories), dotfiles left
// out. RKE2 tries them in no particular order; here they go by path.
func runtimeArchives(imagesDir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(imagesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == imagesDir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		if ok, err := isArchive(p, d); err != nil {
			return err
		} else if ok {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list image archives: %w", err)
	}
	sort.Strings(out)
	return out, nil
}

// isArchive tells an archive by its name, and that it is (or links to) a
// regular file.
func isArchive(p string, d fs.DirEntry) (bool, error) {
	if !hasSuffixFold(d.Name(), ArchiveSuffixes) {
		if hasSuffixFold(d.Name(), unsupportedSuffixes) {
			slog.Warn("image archive not read: only .tar, .tar.gz and .tar.zst are", "archive", p)
		}
		return false, nil
	}
	if d.Type().IsRegular() {
		return true, nil
	}
	fi, err := os.Stat(p) // a link: to what?
	if err != nil {
		return false, fmt.Errorf("image archive %s: %w", p, err)
	}
	return fi.Mode().IsRegular(), nil
}

// ArchiveDigest is the sha256 of an archive file as stored ("sha256:<hex>"),
// compressed or not: it changes whenever the file does, so that an import
// recorded by digest is done again for a changed file and never for the
// same file on the next boot. Hashing a 230 MB .tar.zst takes about a tenth
// of a second with SHA extensions, far less than decompressing it.
func ArchiveDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("digest of %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	// A large buffer: fewer reads from a slow medium.
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("digest of %s: %w", p, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
