package bootloader

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeGrub(t *testing.T) *Files {
	t.Helper()
	dir := t.TempDir()
	boot := make([]byte, 512)
	boot[510], boot[511] = 0x55, 0xAA
	boot[0x66], boot[0x67] = 0xEB, 0x05
	core := bytes.Repeat([]byte{0xCC}, 3*512+100)
	for name, data := range map[string][]byte{"boot.img": boot, "core.img": core, "eltorito.img": {1}, "bootx64.efi": {2}} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "make grub") {
		t.Fatalf("err = %v, want a hint to run make grub", err)
	}
}

func TestMBR(t *testing.T) {
	code, err := fakeGrub(t).MBR(2048)
	if err != nil {
		t.Fatal(err)
	}
	if len(code) != 440 {
		t.Fatalf("len = %d, want 440 (the partition table must stay)", len(code))
	}
	if got := binary.LittleEndian.Uint64(code[0x5c:]); got != 2048 {
		t.Errorf("kernel sector = %d, want 2048", got)
	}
	if code[0x64] != 0xff || code[0x66] != 0x90 || code[0x67] != 0x90 {
		t.Errorf("boot drive %#x, drive check %#x %#x", code[0x64], code[0x66], code[0x67])
	}
}

func TestCoreImageBlocklist(t *testing.T) {
	core, err := fakeGrub(t).CoreImage(2048)
	if err != nil {
		t.Fatal(err)
	}
	if len(core) != 4*512 {
		t.Fatalf("len = %d, want whole sectors (2048)", len(core))
	}
	bl := core[512-12:]
	if start, n := binary.LittleEndian.Uint64(bl), binary.LittleEndian.Uint16(bl[8:]); start != 2049 || n != 3 {
		t.Errorf("blocklist start %d len %d, want 2049 and 3", start, n)
	}
}

func TestConfig(t *testing.T) {
	cfg := string(Config(Entry{Title: "RKE2 server", SystemLabel: "RKE2_A", Cmdline: "console=ttyS0 rke2.medium=RKE2_A"}))
	for _, want := range []string{"search --no-floppy --label RKE2_A --set=sys", "linux ($sys)/boot/vmlinuz console=ttyS0 rke2.medium=RKE2_A", "initrd ($sys)/boot/initrd", "serial --unit=0"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
}
