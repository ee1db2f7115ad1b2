package boot

import (
	"os"
	"strings"
)

// Cmdline is the kernel command line split into its key=value words.
type Cmdline map[string]string

// ReadCmdline reads /proc/cmdline.
func ReadCmdline() Cmdline {
	b, _ := os.ReadFile("/proc/cmdline")
	return ParseCmdline(string(b))
}

// ParseCmdline splits a kernel command line; double quotes group words
// with spaces, as the kernel's own parser does.
func ParseCmdline(s string) Cmdline {
	c := Cmdline{}
	var word strings.Builder
	inQuote := false
	flush := func() {
		if word.Len() == 0 {
			return
		}
		k, v, _ := strings.Cut(word.String(), "=")
		c[k] = v
		word.Reset()
	}
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			flush()
		default:
			word.WriteRune(r)
		}
	}
	flush()
	return c
}
