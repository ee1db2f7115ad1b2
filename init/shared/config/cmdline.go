package config

import (
	"fmt"
	"strings"
)

// CmdlineKey is the kernel command line parameter that carries a config:
// rke2.config=<base64 of a YAML document>. The dot makes the kernel treat it
// as a parameter of a module named rke2, which it ignores instead of passing
// it to the init as an argument or environment variable.
const CmdlineKey = "rke2.config"

// CmdlineSource names the kernel command line in errors.
const CmdlineSource = "kernel command line " + CmdlineKey

// ParseCmdline parses the rke2.config= parameters of a kernel command line
// (the content of /proc/cmdline). It returns nil, nil if there is none. Each
// value is base64 (standard or URL alphabet, padded or not) of a YAML config
// document; several are merged in order, later wins.
func ParseCmdline(cmdline string) (*Config, error) {
	var out *Config
	n := 0
	for _, p := range SplitCmdline(cmdline) {
		key, val, _ := strings.Cut(p, "=")
		if key != CmdlineKey {
			continue
		}
		n++
		source := CmdlineSource
		if n > 1 {
			source = fmt.Sprintf("%s (#%d)", CmdlineSource, n)
		}
		data, err := decodeCmdlineBase64(val)
		if err != nil {
			return nil, &Error{Source: source, Msg: fmt.Sprintf("is not base64 of a YAML document (%v); encode the config with \"base64 -w0 FILE\"", err)}
		}
		c, err := Parse(source, data)
		if err != nil {
			return nil, err
		}
		out = Merge(out, c)
	}
	return out, nil
}

// decodeCmdlineBase64 decodes base64 in any of its common alphabets and
// paddings: bootloader configs and URL-safe tooling produce both.
func decodeCmdlineBase64(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("the value is empty")
	}
	if strings.ContainsAny(s, "-_") {
		s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
	}
	return decodeBase64(s)
}

// SplitCmdline splits a kernel command line into its parameters the way the
// kernel's next_arg does: parameters are separated by whitespace, double
// quotes group text containing spaces, and a quote around the whole
// parameter or around its value is removed (`a="b c"` is `a=b c`). The
// kernel has no escapes, so neither does this.
func SplitCmdline(cmdline string) []string {
	var params []string
	s := cmdline
	for {
		s = strings.TrimLeft(s, " \t\n\r\v\f")
		if s == "" {
			return params
		}
		inQuote := false
		i := 0
		for ; i < len(s); i++ {
			c := s[i]
			if !inQuote && isSpace(c) {
				break
			}
			if c == '"' {
				inQuote = !inQuote
			}
		}
		params = append(params, unquoteParam(s[:i]))
		s = s[i:]
	}
}

// isSpace is the kernel's isspace for the ASCII range.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}

// unquoteParam removes the quotes the kernel removes: one pair around the
// whole parameter or around the value after the first "=".
func unquoteParam(p string) string {
	if strings.HasPrefix(p, `"`) {
		p = strings.TrimSuffix(p[1:], `"`)
		return p
	}
	key, val, ok := strings.Cut(p, "=")
	if ok && strings.HasPrefix(val, `"`) {
		return key + "=" + strings.TrimSuffix(val[1:], `"`)
	}
	return p
}
