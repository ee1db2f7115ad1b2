package boot

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/rke2os/rke2os/init/shared/layout"
	"golang.org/x/sys/unix"
)

// LoadModules loads the modules the image lists, in order. A module that
// fails to load is reported and the rest still load: a missing NIC driver
// must not stop the boot medium from being found.
func LoadModules() (loaded int, err error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return 0, err
	}
	dir := filepath.Join("/lib/modules", unix.ByteSliceToString(uts.Release[:]))
	f, err := os.Open(filepath.Join(dir, layout.ModuleList))
	if err != nil {
		return 0, fmt.Errorf("module list: %w", err)
	}
	defer f.Close()
	var errs []error
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rel := strings.TrimSpace(sc.Text())
		if rel == "" || strings.HasPrefix(rel, "#") {
			continue
		}
		if err := loadModule(filepath.Join(dir, rel)); err != nil {
			errs = append(errs, err)
			continue
		}
		loaded++
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return loaded, errors.Join(errs...)
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("module %s: %w", path, err)
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.ENODEV) {
		// A driver for hardware or CPU features this machine lacks
		// (crc32c-intel without SSE4.2): nothing to load, nothing wrong.
		slog.Debug("module has no device here", "module", filepath.Base(path))
		return nil
	}
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", filepath.Base(path), err)
	}
	slog.Debug("module loaded", "module", filepath.Base(path))
	return nil
}
