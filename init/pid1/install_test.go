package pid1

import (
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/pid1/boot"
	"github.com/rke2os/rke2os/init/shared/config"
)

// Only a boot from the ISO installs: a config without an install section
// and a boot from the disk (GRUB's rke2.slot=) go on as usual; a boot
// from elsewhere (PXE) with an install section is an error that says why.
func TestInstallOnlyFromTheISO(t *testing.T) {
	in := &config.Config{Install: &config.Install{Device: "/dev/vda"}}
	for _, tc := range []struct {
		name    string
		cfg     *config.Config
		cmdline string
		medium  string
		err     string
	}{
		{"no install section", &config.Config{}, "rke2.medium=RKE2_BOOT", "/dev/sr0", ""},
		{"booted from the disk", in, "rke2.medium=RKE2_A rke2.slot=A rke2.trial=0", "/dev/vda3", ""},
		{"PXE", in, "console=ttyS0", "", `install section, but the node did not boot from the ISO (boot medium "")`},
	} {
		installed, err := installFromISO(nil, tc.cfg, &config.Config{}, boot.ParseCmdline(tc.cmdline), tc.medium)
		if installed || (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: installed %v, err %v; want %q", tc.name, installed, err, tc.err)
		}
	}
}
