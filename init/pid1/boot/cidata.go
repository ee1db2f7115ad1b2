package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rke2os/rke2os/init/shared/blockdev"
	"golang.org/x/sys/unix"
)

// CIDataDir is where a NoCloud cidata volume is mounted, read-only.
const CIDataDir = "/run/rke2/cidata"

// MountCIData looks for a NoCloud volume (an ISO9660 or FAT filesystem
// labelled cidata or CIDATA, as cloud-localds and virt-install make it) and
// mounts it read-only. It returns "" when there is none: a cidata volume is
// optional.
func MountCIData() (string, error) {
	for _, name := range blockdev.Names() {
		dev := "/dev/" + name
		fstype, label := probeFS(dev)
		if fstype == "" || !strings.EqualFold(label, "cidata") {
			continue
		}
		if err := os.MkdirAll(CIDataDir, 0o755); err != nil {
			return "", err
		}
		if err := unix.Mount(dev, CIDataDir, fstype, unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
			return "", fmt.Errorf("mount cidata volume %s (%s): %w", dev, fstype, err)
		}
		return CIDataDir, nil
	}
	return "", nil
}

// ReadCIData returns user-data and meta-data of a mounted cidata volume;
// either may be missing (nil).
func ReadCIData(dir string) (userData, metaData []byte, err error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("cidata %s: %w", name, err)
		}
		return b, nil
	}
	if userData, err = read("user-data"); err != nil {
		return nil, nil, err
	}
	if metaData, err = read("meta-data"); err != nil {
		return nil, nil, err
	}
	return userData, metaData, nil
}
