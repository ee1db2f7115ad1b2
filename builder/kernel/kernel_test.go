package kernel

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeKernel lays out a kernel directory with a modules.dep and empty module files.
func fakeKernel(t *testing.T, dep string) string {
	t.Helper()
	dir := t.TempDir()
	mods := filepath.Join(dir, "lib", "modules", "6.1.0-test")
	for _, l := range strings.Split(strings.TrimSpace(dep), "\n") {
		p, _, _ := strings.Cut(l, ":")
		if err := os.MkdirAll(filepath.Join(mods, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		info := "license=GPL\x00"
		if strings.HasSuffix(p, "ext4.ko") {
			info += "softdep=pre: crypto-crc32c\x00"
		}
		if err := os.WriteFile(filepath.Join(mods, p), fakeModule(info), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(mods, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	alias := "alias crypto-crc32c crc32c_generic\nalias pci:v00001AF4d* virtio_pci\n"
	if err := os.WriteFile(filepath.Join(mods, "modules.alias"), []byte(alias), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mods, "modules.builtin"), []byte("kernel/drivers/block/loop.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 0x300)
	copy(img[0x202:], "HdrS")
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const dep = `kernel/crypto/crc32c_generic.ko:
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/usb/core/usbcore.ko kernel/drivers/scsi/scsi_mod.ko
kernel/drivers/usb/core/usbcore.ko: kernel/drivers/usb/common/usb-common.ko
kernel/drivers/usb/common/usb-common.ko:
kernel/drivers/scsi/scsi_mod.ko:
`

func TestResolve(t *testing.T) {
	k, err := Open(fakeKernel(t, dep), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "6.1.0-test" {
		t.Fatalf("version %q", k.Version)
	}
	set, err := k.Modules()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names, files, missing []string
	}{
		// ext4's soft dependency (an alias) loads before it.
		{[]string{"ext4"}, []string{"kernel/crypto/crc32c_generic.ko", "kernel/lib/crc16.ko", "kernel/fs/mbcache.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/ext4/ext4.ko"}, nil},
		// '-' and '_' are one; shared dependencies come once.
		{[]string{"usb_storage", "usb-common", "ext4"}, []string{"kernel/drivers/usb/common/usb-common.ko", "kernel/drivers/usb/core/usbcore.ko",
			"kernel/drivers/scsi/scsi_mod.ko", "kernel/drivers/usb/storage/usb-storage.ko",
			"kernel/crypto/crc32c_generic.ko", "kernel/lib/crc16.ko", "kernel/fs/mbcache.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/ext4/ext4.ko"}, nil},
		{[]string{"loop", "nosuch"}, nil, []string{"nosuch"}},
	}
	for _, tc := range tests {
		files, missing, err := set.Resolve(tc.names)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(files, tc.files) || !reflect.DeepEqual(missing, tc.missing) {
			t.Errorf("Resolve(%v) = %v, %v; want %v, %v", tc.names, files, missing, tc.files, tc.missing)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	noMods := t.TempDir()
	os.WriteFile(filepath.Join(noMods, "vmlinuz"), []byte("x"), 0o644)
	notKernel := fakeKernel(t, "kernel/a.ko:\n")
	os.WriteFile(filepath.Join(notKernel, "vmlinuz"), []byte("not a kernel"), 0o644)
	for name, tc := range map[string]struct{ path, want string }{
		"missing":     {"/nonexistent/kernel", "no such file"},
		"no modules":  {noMods, "no modules"},
		"not bzImage": {notKernel, "not an x86 bzImage"},
		"not a deb":   {filepath.Join(noMods, "vmlinuz"), "not a directory nor a .deb"},
	} {
		_, err := Open(tc.path, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}
