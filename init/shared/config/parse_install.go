package config

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// installEntry is the install section as it is read: whether device and
// disk were given (even with a bad value, so that one mistake is one
// error).
type installEntry struct {
	in             Install
	device, disk   bool
	deviceK, diskK *yaml.Node
	bad            bool // an unknown key, which may be a misspelt device
}

// installFields are install's keys.
var installFields = fieldTable[installEntry]{fields: []field[installEntry]{
	{"device", func(p *parser, e *installEntry, k, v *yaml.Node, path string) {
		e.device, e.deviceK = true, k
		if s, ok := p.str(v, path); ok {
			if err := checkDevicePath(s); err != nil {
				p.fail(v, path, "%v", err)
			} else {
				e.in.Device = s
			}
		} else if isNull(deref(v)) {
			p.fail(v, path, "is empty; name the disk, like /dev/vda")
		}
	}},
	{"disk", func(p *parser, e *installEntry, k, v *yaml.Node, path string) {
		e.disk, e.diskK = true, k
		var d DiskSelector
		if !diskFields.walk(p, v, path, &d) {
			if isNull(deref(v)) {
				p.fail(v, path, "is empty; give min_size, model or serial, like \"disk: {min_size: 8GiB}\"")
			}
			return
		}
		if d == (DiskSelector{}) && len(deref(v).Content) == 0 {
			p.fail(v, path, "selects every disk; give min_size, model or serial, like \"disk: {min_size: 8GiB}\"")
			return
		}
		if d != (DiskSelector{}) {
			e.in.Disk = &d
		}
	}},
	{"wipe", func(p *parser, e *installEntry, _, v *yaml.Node, path string) { e.in.Wipe, _ = p.boolean(v, path) }},
	oneOf("after", "%q is not what the node does after the install: use reboot or poweroff",
		func(e *installEntry) *string { return &e.in.After }, InstallReboot, InstallPowerOff),
},
	onBad: func(e *installEntry) { e.bad = true },
}

// diskFields are install.disk's keys.
var diskFields = fieldTable[DiskSelector]{fields: []field[DiskSelector]{
	{"min_size", func(p *parser, d *DiskSelector, _, v *yaml.Node, path string) {
		if s, ok := p.str(v, path); ok {
			if n, err := ParseSize(s); err != nil {
				p.fail(v, path, "%v", err)
			} else {
				d.MinSize = n
			}
		}
	}},
	{"model", globField(func(d *DiskSelector) *string { return &d.Model })},
	{"serial", globField(func(d *DiskSelector) *string { return &d.Serial })},
}}

// globField reads a shell glob, like QEMU* or "Samsung SSD 8?0*".
func globField(dst func(*DiskSelector) *string) func(*parser, *DiskSelector, *yaml.Node, *yaml.Node, string) {
	return func(p *parser, d *DiskSelector, _, v *yaml.Node, path string) {
		s, ok := p.str(v, path)
		switch {
		case !ok:
		case s == "":
			p.fail(v, path, "is empty; give a pattern like \"QEMU*\", or remove the key")
		case len(s) > 256:
			p.fail(v, path, "is %d characters long; a model or serial pattern is at most 256", len(s))
		default:
			if _, err := checkGlob(s); err != nil {
				p.fail(v, path, "%q is not a pattern: %v (use * and ? as in a shell, [...] for a set)", s, err)
				return
			}
			*dst(d) = s
		}
	}
}

// checkGlob checks a pattern as MatchGlob will use it.
func checkGlob(pattern string) (bool, error) { return path.Match(pattern, "") }

// install walks install.
func (p *parser) install(n *yaml.Node, path string) *Install {
	e := installEntry{}
	if !installFields.walk(p, n, path, &e) {
		if isNull(deref(n)) {
			p.fail(n, path, "is empty; name the disk to install onto, like \"install: {device: /dev/vda}\"")
		}
		return nil
	}
	switch {
	case e.device && e.disk:
		later := e.diskK
		if e.deviceK.Line > later.Line || e.deviceK.Line == later.Line && e.deviceK.Column > later.Column {
			later = e.deviceK
		}
		p.fail(later, path, "sets both device and disk; keep one: device names one disk, disk selects the first that matches")
		return nil
	case !e.device && !e.disk && !e.bad:
		p.fail(deref(n), path, "names no disk: set device (like /dev/vda) or disk (like \"disk: {min_size: 8GiB}\")")
		return nil
	case e.in.Device == "" && e.in.Disk == nil:
		return nil // the bad value or key is reported
	}
	return &e.in
}

// checkDevicePath checks install.device: a disk under /dev.
func checkDevicePath(s string) error {
	switch {
	case !strings.HasPrefix(s, "/dev/") || len(s) == len("/dev/"):
		return fmt.Errorf("%q is not a device: name a disk under /dev, like /dev/vda or /dev/disk/by-id/...", s)
	case path.Clean(s) != s || strings.Contains(s, ".."):
		return fmt.Errorf("%q is not a clean path; write it like /dev/vda", s)
	case len(s) > 256 || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return fmt.Errorf("%q is not a device path", s)
	}
	return nil
}

// sizeUnits are the units ParseSize reads, lower-cased, and their bytes.
var sizeUnits = func() map[string]int64 {
	m := map[string]int64{"": 1, "b": 1}
	bin, dec := int64(1), int64(1)
	for _, u := range []string{"k", "m", "g", "t", "p"} {
		bin, dec = bin*1024, dec*1000
		m[u], m[u+"i"], m[u+"ib"], m[u+"b"] = bin, bin, bin, dec
	}
	return m
}()

// ParseSize reads a size in bytes: a whole number with an optional unit,
// binary (K, M, G, T, P, or KiB, MiB, GiB, TiB, PiB: powers of 1024, as
// qemu-img and truncate read "8G") or decimal (KB, MB, GB, TB, PB: powers
// of 1000, as disks are sold). Units are case-insensitive.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	mult, ok := sizeUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	n, err := strconv.ParseInt(t[:i], 10, 64)
	switch {
	case !ok || err != nil:
		return 0, fmt.Errorf("%q is not a size: use a whole number with a unit, like 8GiB or 8G (binary) or 8GB (decimal), or a number of bytes", s)
	case n == 0:
		return 0, fmt.Errorf("%q is no size at all; give the least size of the disk, like 8GiB", s)
	case n > (1<<62)/mult:
		return 0, fmt.Errorf("%q is larger than any disk", s)
	}
	return n * mult, nil
}

// FormatSize writes a size as ParseSize reads it, in the unit, binary or
// decimal, that writes it shortest (8GiB, 500GB), else in bytes.
func FormatSize(n int64) string {
	best := strconv.FormatInt(n, 10)
	for u, size := range sizeUnits {
		if n != 0 && size > 1 && n%size == 0 && (len(u) == 3 || len(u) == 2 && u[1] == 'b') {
			s := strconv.FormatInt(n/size, 10) + strings.ToUpper(u[:1]) + strings.Replace(u[1:], "ib", "iB", 1)
			s = strings.Replace(s, "b", "B", 1)
			if len(s) < len(best) || len(s) == len(best) && s < best {
				best = s
			}
		}
	}
	return best
}

// MatchGlob matches a disk's model or serial (spaces around it trimmed,
// as sysfs pads them) against a pattern of install.disk.
func MatchGlob(pattern, value string) bool {
	ok, _ := path.Match(pattern, strings.TrimSpace(value))
	return ok
}
