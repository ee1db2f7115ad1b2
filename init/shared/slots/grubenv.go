// Package slots is the A/B system slots' boot state: which slot is good,
// which one is being tried and how many tries it has left. The state lives
// in GRUB's environment block on the ESP (/boot/grub/grubenv), where
// GRUB's grub.cfg reads it and counts the tries down before Linux starts;
// the node reads and writes it here, stdlib only, so that PID 1 can.
//
// The block is GRUB's format: 1024 bytes, a header line, `name=value`
// lines, padded with '#'. Rewritten in place (same file, same size, same
// blocks) as GRUB's own save_env does, so a rewrite never moves the file
// and GRUB always finds it.
package slots

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// EnvSize is the size of GRUB's environment block.
const EnvSize = 1024

const envHeader = "# GRUB Environment Block\n"

// The variables grub.cfg reads (see builder/bootloader).
const (
	// VarGood names the slot that boots when nothing is being tried.
	VarGood = "good"
	// VarTry names a slot being tried; empty when none is.
	VarTry = "try"
	// VarTries counts the tries left: GRUB takes one before booting the
	// slot being tried, and boots VarGood once none are left.
	VarTries = "tries"
)

// ErrEnv marks a block that is not GRUB's environment block.
var ErrEnv = errors.New("not a GRUB environment block")

// Env is the environment block's variables.
type Env map[string]string

// ParseEnv reads a GRUB environment block.
func ParseEnv(b []byte) (Env, error) {
	if len(b) != EnvSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrEnv, len(b), EnvSize)
	}
	if !bytes.HasPrefix(b, []byte(envHeader)) {
		return nil, fmt.Errorf("%w: no header", ErrEnv)
	}
	env := Env{}
	for _, line := range strings.Split(string(b[len(envHeader):]), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok || !validName(name) {
			return nil, fmt.Errorf("%w: line %q", ErrEnv, line)
		}
		env[name] = unescape(value)
	}
	return env, nil
}

// Bytes writes the block: variables in name order, then '#' padding.
func (e Env) Bytes() ([]byte, error) {
	names := make([]string, 0, len(e))
	for n := range e {
		if !validName(n) {
			return nil, fmt.Errorf("grubenv: bad variable name %q", n)
		}
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(envHeader)
	for _, n := range names {
		b.WriteString(n + "=" + escape(e[n]) + "\n")
	}
	if b.Len() > EnvSize {
		return nil, fmt.Errorf("grubenv: %d bytes of variables do not fit its %d", b.Len(), EnvSize)
	}
	b.Write(bytes.Repeat([]byte{'#'}, EnvSize-b.Len()))
	return b.Bytes(), nil
}

func validName(n string) bool {
	if n == "" {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// GRUB escapes a backslash and a newline in values.
func escape(v string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(v)
}

func unescape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
			if v[i] == 'n' {
				b.WriteByte('\n')
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
