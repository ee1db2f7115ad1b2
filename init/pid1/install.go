package pid1

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rke2os/rke2os/init/pid1/boot"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/nodesteps"
	"github.com/rke2os/rke2os/init/shared/supervise"
	"golang.org/x/sys/unix"
)

// installConfig is where PID 1 puts the config an install carries over,
// for rke2-node's install step (private: it may hold tokens).
const installConfig = "/run/rke2/install-config.yaml"

// installFromISO installs the system onto a disk when the node booted
// from the ISO and its config has an install section: rke2-node's install
// step does the work (PID 1 holds none of its buffers), then PID 1 asks
// for the reboot (or power-off) the config says, as Ctrl-Alt-Del (or the
// power button) would. It reports whether it installed.
func installFromISO(reaper *supervise.Reaper, cfg, carried *config.Config, cmdline boot.Cmdline, medium string) (bool, error) {
	in := cfg.Install
	if in == nil {
		return false, nil
	}
	if slot := cmdline["rke2.slot"]; slot != "" {
		slog.Info("install: the node booted from its disk (system slot " + slot + "); the config's install section is for a boot from the ISO, and is left alone")
		return false, nil
	}
	if medium == "" || cmdline["rke2.medium"] != layout.BootLabel {
		return false, fmt.Errorf("the config has an install section, but the node did not boot from the ISO (boot medium %q): an install writes the system from the ISO's files; boot the ISO, or remove install: from the config", cmdline["rke2.medium"])
	}
	args := []string{"--" + nodesteps.FlagInstallMedium + "=" + medium, "--" + nodesteps.FlagInstallAfter + "=" + in.AfterAction(),
		"--" + nodesteps.FlagInstallWipe + "=" + strconv.FormatBool(in.Wipe)}
	if in.Device != "" {
		args = append(args, "--"+nodesteps.FlagInstallDevice+"="+in.Device)
	}
	if d := in.Disk; d != nil {
		args = append(args, "--"+nodesteps.FlagInstallMinSize+"="+strconv.FormatInt(d.MinSize, 10),
			"--"+nodesteps.FlagInstallModel+"="+d.Model, "--"+nodesteps.FlagInstallSerial+"="+d.Serial)
	}
	c := *carried
	c.Install = nil
	b, err := c.YAML("")
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(installConfig), 0o700); err != nil {
		return false, err
	}
	if err := os.WriteFile(installConfig, b, 0o600); err != nil {
		return false, err
	}
	defer os.Remove(installConfig)
	args = append(args, "--"+nodesteps.FlagInstallConfig+"="+installConfig)
	var res nodesteps.InstallResult
	if err := nodesteps.Run(reaper, layout.NodeBinary, &res, nodesteps.StepInstall, args...); err != nil {
		return false, err
	}
	console.Milestone("installed")
	console.Event(console.EventInstalled, "device", res.Device, "found", res.Found, "seconds", strconv.FormatFloat(res.Seconds, 'f', 3, 64),
		"written_mib", res.Written>>20, "write_seconds", strconv.FormatFloat(res.WriteSeconds, 'f', 3, 64))
	slog.Info("installed: the system is on the disk; it boots from it next (the ISO may stay attached)", "device", res.Device,
		"found", res.Found, "took", time.Duration(res.Seconds*float64(time.Second)).Round(time.Second), "after", in.AfterAction())
	sig := unix.SIGINT // the reboot request, served in order
	if in.AfterAction() == config.InstallPowerOff {
		sig = unix.SIGTERM // the power-off request
	}
	_ = unix.Kill(1, sig)
	return true, nil
}
