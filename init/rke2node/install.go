package rke2node

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/rke2os/rke2os/init/rke2node/install"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/nodesteps"
)

// The install step's flags: the config's install section, the boot
// medium and the config to carry over (nodesteps.FlagInstall*).
type installArgs struct {
	in             config.Install
	medium, config string
}

func installFlags(fs *flag.FlagSet) func() installArgs {
	var a installArgs
	d := &config.DiskSelector{}
	fs.StringVar(&a.in.Device, nodesteps.FlagInstallDevice, "", "the disk to install onto (install.device)")
	fs.Int64Var(&d.MinSize, nodesteps.FlagInstallMinSize, 0, "install.disk.min_size, in bytes")
	fs.StringVar(&d.Model, nodesteps.FlagInstallModel, "", "install.disk.model")
	fs.StringVar(&d.Serial, nodesteps.FlagInstallSerial, "", "install.disk.serial")
	fs.BoolVar(&a.in.Wipe, nodesteps.FlagInstallWipe, false, "install.wipe")
	fs.StringVar(&a.in.After, nodesteps.FlagInstallAfter, "", "install.after")
	fs.StringVar(&a.medium, nodesteps.FlagInstallMedium, "", "the boot medium's device, never written")
	fs.StringVar(&a.config, nodesteps.FlagInstallConfig, "", "the node config to carry over to the installed disk")
	return func() installArgs {
		if *d != (config.DiskSelector{}) {
			a.in.Disk = d
		}
		return a
	}
}

// configHeader opens the config an install writes to the installed ESP.
const configHeader = "# Carried over by the rke2os install from the config the ISO booted with (its install section left out).\n" +
	"# The init reads it at every boot from this disk, after the system slot's config and before NoCloud's.\n"

// Install writes the system from the ISO onto the disk the install
// section selects, with the node's config (the file a.config) on its ESP.
func (e Env) Install(ctx context.Context, a installArgs) (*nodesteps.InstallResult, error) {
	o, err := e.installOptions(a)
	if err != nil {
		return nil, err
	}
	return install.Run(ctx, o)
}

// installOptions are the install's options from the step's arguments: the
// config file read, checked and rendered again without its install
// section.
func (e Env) installOptions(a installArgs) (install.Options, error) {
	o := install.DefaultOptions
	o.Install, o.Medium, o.MediumDir = a.in, a.medium, e.MediumDir
	if a.config != "" {
		b, err := os.ReadFile(a.config)
		if err != nil {
			return o, fmt.Errorf("install: the config to carry over: %w", err)
		}
		c, err := config.Parse(a.config, b)
		if err != nil {
			return o, fmt.Errorf("install: the config to carry over: %w", err)
		}
		c.Install = nil // the installed node does not install again
		if o.Config, err = c.YAML(configHeader); err != nil {
			return o, fmt.Errorf("install: %w", err)
		}
	}
	return o, nil
}
