package bootloader

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
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
	for name, data := range map[string][]byte{"boot.img": boot, "core.img": core, "eltorito.img": {1}, "bootx64.efi": {2}, "bootx64-iso.efi": {3}} {
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

func TestDiskConfig(t *testing.T) {
	cfg := string(DiskConfig("RKE2 server"))
	for _, want := range []string{
		`load_env --file "$env" good try tries`,
		`save_env --file "$env" tries`, `if [ "$?" != 0 ]; then`,
		`menuentry "RKE2 server, slot $slot"`,
		`source "($disk,$part)/boot/grub/slot.cfg"`,
		`linux "($disk,$part)/boot/vmlinuz" $slot_cmdline rke2.medium=RKE2_$slot rke2.slot=$slot rke2.trial=$trial`,
		`rke2.reset=1`, "set fallback=1", "export disk slot part trial good goodpart",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	// No label search: the disk's GRUB boots the disk it was loaded from.
	if strings.Contains(cfg, "search") {
		t.Errorf("the disk's grub.cfg searches:\n%s", cfg)
	}
}

func TestSlotConfig(t *testing.T) {
	got := string(SlotConfig("console=ttyS0 a='b c'"))
	if want := `set slot_cmdline='console=ttyS0 a='\''b c'\'''` + "\n"; !strings.HasSuffix(got, want) {
		t.Errorf("slot.cfg = %q, want it to end %q", got, want)
	}
}

// GRUB's own parser accepts both configs.
func TestConfigsParse(t *testing.T) {
	tool, err := exec.LookPath("grub-script-check")
	if err != nil {
		t.Fatalf("grub-script-check (Debian's grub-common, which `make deps` installs): %v", err)
	}
	dir := t.TempDir()
	for name, cfg := range map[string][]byte{
		"disk": DiskConfig("RKE2 server"),
		"iso":  Config(Entry{Title: "RKE2 server", SystemLabel: "RKE2_BOOT", Cmdline: "console=ttyS0"}),
		"slot": SlotConfig("console=ttyS0 a='b c'"),
	} {
		p := filepath.Join(dir, name+".cfg")
		if err := os.WriteFile(p, cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(tool, p).CombinedOutput(); err != nil {
			t.Errorf("grub-script-check %s: %v: %s\n%s", name, err, out, cfg)
		}
	}
}
