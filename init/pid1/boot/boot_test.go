package boot

import (
	"reflect"
	"testing"
)

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want Cmdline
	}{
		{"console=ttyS0,115200 rke2.medium=RKE2_BOOT quiet\n", Cmdline{"console": "ttyS0,115200", "rke2.medium": "RKE2_BOOT", "quiet": ""}},
		{`rke2.x="a b" y=1`, Cmdline{"rke2.x": "a b", "y": "1"}},
		{"  ", Cmdline{}},
		{"a=b=c", Cmdline{"a": "b=c"}},
	}
	for _, tc := range tests {
		if got := ParseCmdline(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCmdline(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestProbeLabel(t *testing.T) {
	iso := make([]byte, 0x8800)
	iso[0x8000] = 1
	copy(iso[0x8001:], "CD001")
	copy(iso[0x8000+40:], "RKE2_BOOT                       ")
	fat := make([]byte, 512)
	fat[510], fat[511] = 0x55, 0xAA
	copy(fat[0x47:], "RKE2_A     FAT32   ")
	tests := []struct {
		name          string
		data          []byte
		fstype, label string
	}{
		{"iso", iso, "iso9660", "RKE2_BOOT"},
		{"fat32", fat, "vfat", "RKE2_A"},
		{"empty", make([]byte, 0x8800), "", ""},
		{"short", []byte{1, 2, 3}, "", ""},
	}
	for _, tc := range tests {
		fstype, label := ProbeLabel(tc.data)
		if fstype != tc.fstype || label != tc.label {
			t.Errorf("%s: ProbeLabel = %q %q, want %q %q", tc.name, fstype, label, tc.fstype, tc.label)
		}
	}
}

func FuzzProbeLabel(f *testing.F) {
	f.Add(make([]byte, 0x8800))
	f.Fuzz(func(t *testing.T, b []byte) {
		ProbeLabel(b) // must not panic on any device content
	})
}
