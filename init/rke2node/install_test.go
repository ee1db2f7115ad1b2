package rke2node

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rke2os/rke2os/init/shared/config"
)

// The install step reads the install section from its flags, and carries
// the config file it is given over without its install section, in a
// form the init parses back.
func TestInstallArgs(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte("hostname: n1\nrke2: {token: secret}\ninstall: {device: /dev/vda}\n"), 0o600)
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	args := installFlags(fs)
	if err := fs.Parse([]string{"--min-size=8589934592", "--model=QEMU*", "--wipe", "--after=poweroff", "--medium=/dev/sr0", "--config=" + cfg}); err != nil {
		t.Fatal(err)
	}
	o, err := DefaultEnv.installOptions(args())
	if err != nil {
		t.Fatal(err)
	}
	want := config.Install{Disk: &config.DiskSelector{MinSize: 8 << 30, Model: "QEMU*"}, Wipe: true, After: config.InstallPowerOff}
	if !reflect.DeepEqual(o.Install, want) || o.Medium != "/dev/sr0" || o.MediumDir != DefaultEnv.MediumDir {
		t.Errorf("options %+v", o)
	}
	if !strings.HasPrefix(string(o.Config), "# Carried over by the rke2os install") {
		t.Errorf("config %q", o.Config)
	}
	c, err := config.Parse("carried", o.Config)
	if err != nil || c.Install != nil || c.Hostname != "n1" || c.RKE2.Token() != "secret" {
		t.Errorf("carried config %+v, %v:\n%s", c, err, o.Config)
	}
	// Without flags of the selector, device alone.
	fs = flag.NewFlagSet("install", flag.ContinueOnError)
	args = installFlags(fs)
	fs.Parse([]string{"--device=/dev/vda"})
	if o, err := DefaultEnv.installOptions(args()); err != nil || o.Install.Disk != nil || o.Install.Device != "/dev/vda" || o.Config != nil {
		t.Errorf("device only: %+v, %v", o, err)
	}
}
