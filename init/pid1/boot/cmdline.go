package boot

import (
	"strings"

	"github.com/rke2os/rke2os/init/shared/config"
)

// Cmdline is the kernel command line split into its key=value words.
type Cmdline map[string]string

// ParseCmdline splits a kernel command line as the kernel does (double
// quotes group words with spaces; config.SplitCmdline is the one splitter).
func ParseCmdline(s string) Cmdline {
	c := Cmdline{}
	for _, p := range config.SplitCmdline(s) {
		k, v, _ := strings.Cut(p, "=")
		c[k] = v
	}
	return c
}
