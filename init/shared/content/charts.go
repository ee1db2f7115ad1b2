package content

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rke2os/rke2os/internal/durable"
)

// copyCharts copies the runtime's charts into server/manifests on every
// start, as RKE2's UpdateManifests does: every file, subdirectories too,
// over whatever is there (the deploy controller deletes a disabled chart's
// file, and a user's edit would not survive an upgrade anyway: RKE2 says to
// change charts with HelmChartConfig, or to stop one with a .skip file).
// Files other than regular ones are skipped, as RKE2 skips them. Unlike
// RKE2, a file whose content is already the same is not rewritten, so that
// its mtime (which the deploy controller watches) stays, and a changed one
// is replaced by rename, so that nothing ever reads half of it; a replaced
// file keeps its mode. It returns how many files it wrote.
func copyCharts(charts, manifests string) (int, error) {
	written := 0
	err := filepath.WalkDir(charts, func(src string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(charts, src)
		if err != nil {
			return err
		}
		dst := filepath.Join(manifests, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		n, err := copyIfChanged(src, dst)
		written += n
		return err
	})
	if err != nil {
		return written, fmt.Errorf("copy charts into %s: %w", manifests, err)
	}
	return written, nil
}

// copyIfChanged makes dst a copy of src unless it already is one.
func copyIfChanged(src, dst string) (int, error) {
	want, err := os.ReadFile(src)
	if err != nil {
		return 0, err
	}
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(dst); err == nil {
		if fi.Mode().IsRegular() {
			if have, err := os.ReadFile(dst); err == nil && bytes.Equal(have, want) {
				return 0, nil
			}
		}
		mode = fi.Mode().Perm()
	}
	return 1, durable.WriteFile(dst, want, mode)
}
