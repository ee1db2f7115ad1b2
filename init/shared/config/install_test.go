package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/internal/golden"
)

func TestParseInstall(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want *Install
	}{
		{"hostname: a\n", nil},
		{"install: {device: /dev/vda}\n", &Install{Device: "/dev/vda"}},
		{"install:\n  device: /dev/disk/by-id/virtio-os\n  wipe: yes\n  after: poweroff\n",
			&Install{Device: "/dev/disk/by-id/virtio-os", Wipe: true, After: InstallPowerOff}},
		{"install: {disk: {min_size: 8GiB}, after: reboot}\n", &Install{Disk: &DiskSelector{MinSize: 8 << 30}, After: InstallReboot}},
		{"install: {disk: {min_size: 8G, model: 'QEMU*', serial: 'os-?'}, wipe: false}\n",
			&Install{Disk: &DiskSelector{MinSize: 8 << 30, Model: "QEMU*", Serial: "os-?"}}},
		{"install: {disk: {min_size: 500GB}}\n", &Install{Disk: &DiskSelector{MinSize: 500e9}}},
		{"install: {disk: {min_size: 1073741824}}\n", &Install{Disk: &DiskSelector{MinSize: 1 << 30}}},
	} {
		c := mustParse(t, "t", tc.doc)
		if !reflect.DeepEqual(c.Install, tc.want) {
			t.Errorf("%q: install = %+v, want %+v", tc.doc, c.Install, tc.want)
		}
		if c.Install != nil && c.Install.AfterAction() != map[bool]string{true: InstallPowerOff, false: InstallReboot}[tc.want.After == InstallPowerOff] {
			t.Errorf("%q: AfterAction = %s", tc.doc, c.Install.AfterAction())
		}
	}
	var none *Install
	if none.AfterAction() != InstallReboot {
		t.Error("no install section: AfterAction is not reboot")
	}

	runBad(t, []badCase{
		{"empty", "install:\n", 1, 9, "install", "is empty; name the disk"},
		{"no disk", "install: {wipe: true}\n", 1, 10, "install", "names no disk: set device"},
		{"both", "install:\n  device: /dev/vda\n  disk: {min_size: 8G}\n", 3, 3, "install", "sets both device and disk; keep one"},
		{"not dev", "install: {device: vda}\n", 1, 19, "install.device", `"vda" is not a device: name a disk under /dev`},
		{"unclean", "install: {device: /dev/../etc/passwd}\n", 1, 19, "install.device", "is not a clean path"},
		{"empty device", "install: {device: ''}\n", 1, 19, "install.device", "is not a device"},
		{"null device", "install: {device: ~}\n", 1, 19, "install.device", "is empty; name the disk"},
		{"list device", "install: {device: [/dev/vda]}\n", 1, 19, "install.device", "must be a single value"},
		{"size", "install: {disk: {min_size: 8 gigs}}\n", 1, 28, "install.disk.min_size", `"8 gigs" is not a size: use a whole number with a unit, like 8GiB`},
		{"size fraction", "install: {disk: {min_size: 1.5T}}\n", 1, 28, "install.disk.min_size", "is not a size"},
		{"size zero", "install: {disk: {min_size: 0G}}\n", 1, 28, "install.disk.min_size", "is no size at all"},
		{"size huge", "install: {disk: {min_size: 9999999PiB}}\n", 1, 28, "install.disk.min_size", "is larger than any disk"},
		{"glob", "install: {disk: {model: 'QEMU[*'}}\n", 1, 25, "install.disk.model", "is not a pattern"},
		{"empty glob", "install: {disk: {serial: ''}}\n", 1, 26, "install.disk.serial", "is empty; give a pattern"},
		{"empty disk", "install: {disk: {}}\n", 1, 17, "install.disk", "selects every disk"},
		{"disk key", "install: {disk: {min-size: 8G}}\n", 1, 18, "install.disk.min-size", `did you mean "min_size"?`},
		{"wipe", "install: {device: /dev/vda, wipe: please}\n", 1, 35, "install.wipe", `"please" is not true or false`},
		{"after", "install: {device: /dev/vda, after: halt}\n", 1, 36, "install.after", `"halt" is not what the node does after the install: use reboot or poweroff`},
		{"key", "install: {devices: /dev/vda}\n", 1, 11, "install.devices", `did you mean "device"?`},
		{"top key", "instal: {device: /dev/vda}\n", 1, 1, "instal", `did you mean "install"?`},
	})

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("role: server\ninstall:\n  device: /dev/vda\n  after: halt\n"), 0o644)
	if err := ValidateFile(bad); err == nil || !strings.Contains(err.Error(), "config "+bad+" line 4 column 10: install.after") {
		t.Errorf("ValidateFile: %v", err)
	}
}

// A later source's install section replaces the earlier one whole: its
// device and disk never mix.
func TestMergeInstall(t *testing.T) {
	baked := mustParse(t, "baked", "install: {disk: {min_size: 8G}, wipe: true}\n")
	cidata := mustParse(t, "cidata", "install: {device: /dev/vdb}\n")
	none := mustParse(t, "cmdline", "hostname: a\n")
	got := Merge(baked, cidata, none)
	if !reflect.DeepEqual(got.Install, &Install{Device: "/dev/vdb"}) {
		t.Errorf("merged install = %+v", got.Install)
	}
	got = Merge(baked, none)
	if !reflect.DeepEqual(got.Install, baked.Install) || got.Install == baked.Install || got.Install.Disk == baked.Install.Disk {
		t.Errorf("merged install = %+v, want a copy of the baked one", got.Install)
	}
}

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int64{
		"1": 1, "512B": 512, "8K": 8 << 10, "8KiB": 8 << 10, "8kb": 8000, "8M": 8 << 20, "8Mi": 8 << 20,
		"8G": 8 << 30, "8GiB": 8 << 30, "8gib": 8 << 30, "8 GiB": 8 << 30, "8GB": 8e9, "2T": 2 << 40, "2TB": 2e12, "1P": 1 << 50,
	} {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "G", "8X", "-8G", "8.5G", "8GiBB", "0", "99999999999P"} {
		if got, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", s, got)
		}
	}
	for _, n := range []int64{1, 1000, 1 << 10, 3 << 20, 8 << 30, 8e9, 1<<40 + 1<<30} {
		if got, err := ParseSize(FormatSize(n)); err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, FormatSize(n), got, err)
		}
	}
	if FormatSize(8<<30) != "8GiB" || FormatSize(8e9) != "8GB" {
		t.Errorf("FormatSize: %s %s", FormatSize(8<<30), FormatSize(8e9))
	}
}

func TestMatchGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, value string
		want           bool
	}{
		{"QEMU*", "QEMU HARDDISK   \n", true},
		{"QEMU*", "Samsung SSD 870", false},
		{"os-?", "os-1", true},
		{"os-?", "os-12", false},
		{"[ab]*", "b-disk", true},
	} {
		if got := MatchGlob(tc.pattern, tc.value); got != tc.want {
			t.Errorf("MatchGlob(%q, %q) = %v", tc.pattern, tc.value, got)
		}
	}
}

// The whole config renders as a document that parses back to the same
// config, every section of it: what an install carries to the disk.
func TestRenderConfigGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("testdata/config.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.YAML("# rendered\n")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "config.golden.yaml", out)
	again, err := Parse("rendered", out)
	if err != nil {
		t.Fatalf("the rendered config does not parse: %v\n%s", err, out)
	}
	out2, err := again.YAML("# rendered\n")
	if err != nil || !bytes.Equal(out, out2) {
		t.Fatalf("the rendered config renders differently once read back: %v\n%s", err, out2)
	}
	// Every section but rke2 (YAML nodes, with positions) reads back equal.
	c.RKE2, again.RKE2 = nil, nil
	if !reflect.DeepEqual(c, again) {
		t.Errorf("read back as\n%+v\nwant\n%+v", again, c)
	}
	empty, err := (&Config{}).YAML("")
	if err != nil || string(empty) != "{}\n" {
		t.Errorf("an empty config renders %q, %v", empty, err)
	}
}
