package pid1

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rke2os/rke2os/init/pid1/boot"
	"github.com/rke2os/rke2os/init/shared/config"
	"github.com/rke2os/rke2os/init/shared/console"
	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/slots"
)

// Where configs are read from, earliest (weakest) first; the NoCloud volume
// and the kernel command line come after these.
const (
	// BakedConfig is the config rke2-build --config put into the initramfs.
	BakedConfig = layout.BakedConfig
	// mediumConfig is a config placed on the boot medium, next to the images.
	mediumConfig = layout.MediumDir + layout.MediumConfig
)

// loadedConfig is the node's config, merged from its sources, and the part
// of it an install carries over to the disk.
type loadedConfig struct {
	merged *config.Config
	// carried merges the sources that do not come with the image: the
	// boot medium's config and NoCloud's (not the baked config nor the
	// kernel command line, which the installed slot has itself, and
	// which an upgrade replaces; a copy on the ESP would pin their old
	// values).
	carried *config.Config
}

// loadConfig reads and merges every config source: baked into the image <
// on the boot medium < on the disk's ESP (a boot from an installed disk:
// the config the install carried over) < NoCloud cidata < kernel command
// line. Any error in any source stops the boot with the source, the line
// and the fix.
func loadConfig(cmdline string, defaultRole string) (*loadedConfig, error) {
	var layers, carried []*config.Config
	var sources []string
	read := func(p, source string, readFile func(string) ([]byte, error), carry bool) error {
		b, err := readFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("config %s: %w", source, err)
		}
		c, err := config.Parse(source, b)
		if err != nil {
			return err
		}
		layers, sources = append(layers, c), append(sources, source)
		if carry {
			carried = append(carried, c)
		}
		return nil
	}
	if err := read(BakedConfig, BakedConfig, os.ReadFile, false); err != nil {
		return nil, err
	}
	if err := read(mediumConfig, mediumConfig, os.ReadFile, true); err != nil {
		return nil, err
	}
	if cur, ok, err := slots.ReadCurrent(); err != nil {
		return nil, err
	} else if ok {
		esp := slots.ESP{Device: cur.ESP}
		if err := read(layout.ESPConfig, cur.ESP+":"+layout.ESPConfig, esp.ReadFile, false); err != nil {
			return nil, err
		}
	}
	dir, err := boot.MountCIData()
	if err != nil {
		return nil, err
	}
	if dir != "" {
		ud, md, err := boot.ReadCIData(dir)
		if err != nil {
			return nil, err
		}
		c, err := config.ParseNoCloud(ud, md)
		if err != nil {
			return nil, err
		}
		layers, sources = append(layers, c), append(sources, "cidata "+filepath.Base(dir))
		carried = append(carried, c)
	}
	c, err := config.ParseCmdline(cmdline)
	if err != nil {
		return nil, err
	}
	if c != nil {
		layers, sources = append(layers, c), append(sources, "kernel command line")
	}
	merged := config.Merge(&config.Config{}, layers...)
	if err := merged.Validate(defaultRole); err != nil {
		return nil, err
	}
	slog.Info("config loaded", "sources", strings.Join(sources, ", "), "role", merged.Role(defaultRole))
	console.Event(console.EventConfigLoaded, "sources", strings.Join(sources, ", "), "role", merged.Role(defaultRole),
		"debug", strings.Join(debugSwitches(merged), ","))
	for _, w := range configWarnings(merged, cmdline, defaultRole, layout.BakedSecrets) {
		slog.Warn(w)
	}
	return &loadedConfig{merged: merged, carried: config.Merge(&config.Config{}, carried...)}, nil
}

// debugSwitches are the config's debug switches that are on, sorted.
func debugSwitches(c *config.Config) []string {
	var on []string
	for k, v := range c.Debug {
		if v {
			on = append(on, k)
		}
	}
	sort.Strings(on)
	return on
}

// configWarnings are what the init warns about at every boot, so that it
// does not go unnoticed: debug switches meant for a test, keys not acted
// on, an agent given a server token (by its form, or the secret of the
// server token the image carries in secretsDir), a token on the kernel
// command line, which every pod reads.
func configWarnings(merged *config.Config, cmdline, defaultRole, secretsDir string) []string {
	serverToken, _ := os.ReadFile(filepath.Join(secretsDir, "token")) // none: no image secret to compare
	w := append(merged.DebugWarnings(), merged.RKE2Warnings()...)
	w = append(w, merged.AgentTokenWarnings(defaultRole, string(serverToken))...)
	return append(w, config.CmdlineSecretWarnings(cmdline)...)
}
