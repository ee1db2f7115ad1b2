package qemu

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The console's event lines (init/shared/console.Event): `rke2-init
// event=<name> t=<seconds since kernel start> key=value ...`, a value bare
// or quoted as Go quotes strings.
const eventPrefix = "rke2-init event="

var (
	eventNameRE = regexp.MustCompile(`^[a-z]+(-[a-z]+)*$`)
	eventTimeRE = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)
	eventKeyRE  = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// ParseEvent reads one console line (its trailing carriage return, as the
// serial console ends lines, is dropped) as an event: its name and its
// key/values, t among them. A line that is not an event, or not one
// written exactly in that format, is an error.
func ParseEvent(line string) (name string, kv map[string]string, err error) {
	line = strings.TrimSuffix(line, "\r")
	rest, ok := strings.CutPrefix(line, eventPrefix)
	if !ok {
		return "", nil, fmt.Errorf("not an event line")
	}
	name, rest, _ = strings.Cut(rest, " ")
	if !eventNameRE.MatchString(name) {
		return "", nil, fmt.Errorf("event name %q is not lower-case-with-dashes", name)
	}
	kv = map[string]string{}
	for rest != "" {
		key, after, ok := strings.Cut(rest, "=")
		if !ok || !eventKeyRE.MatchString(key) {
			return "", nil, fmt.Errorf("event %s: no key=value at %q", name, rest)
		}
		var value string
		if strings.HasPrefix(after, `"`) {
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return "", nil, fmt.Errorf("event %s: %s: bad quoting at %q", name, key, after)
			}
			value, _ = strconv.Unquote(q) // QuotedPrefix took a valid one
			rest = after[len(q):]
		} else {
			end := strings.IndexByte(after, ' ')
			if end < 0 {
				end = len(after)
			}
			value, rest = after[:end], after[end:]
			if value == "" || strings.ContainsFunc(value, func(r rune) bool { return r == '"' || r == '=' || unicode.IsControl(r) }) {
				return "", nil, fmt.Errorf("event %s: %s: %q should have been quoted", name, key, value)
			}
		}
		if rest != "" {
			if rest, ok = strings.CutPrefix(rest, " "); !ok || rest == "" {
				return "", nil, fmt.Errorf("event %s: %s: no single space after the value", name, key)
			}
		}
		if len(kv) == 0 && (key != "t" || !eventTimeRE.MatchString(value)) {
			return "", nil, fmt.Errorf("event %s: no t=<seconds> after the name", name)
		}
		if _, dup := kv[key]; dup {
			return "", nil, fmt.Errorf("event %s: %s twice", name, key)
		}
		kv[key] = value
	}
	if len(kv) == 0 {
		return "", nil, fmt.Errorf("event %s: no t=<seconds> after the name", name)
	}
	return name, kv, nil
}

// eventsIn are the events named name in the console text b, in order,
// with all of match's key/values (a nil or empty match takes every one).
// Only whole lines are read unless partial: a line being written is not
// an event yet.
func eventsIn(b []byte, name string, match map[string]string, partial bool) []map[string]string {
	var out []map[string]string
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 && !partial {
			break
		}
		line := b
		if i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if !bytes.HasPrefix(line, []byte(eventPrefix+name+" ")) {
			continue
		}
		n, kv, err := ParseEvent(string(line))
		if err != nil || n != name || !matches(kv, match) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func matches(kv, match map[string]string) bool {
	for k, v := range match {
		if got, ok := kv[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Events returns the key/values (t among them) of every event named name
// on the console so far, in order.
func (vm *VM) Events(name string) []map[string]string {
	b, _ := os.ReadFile(vm.console)
	lines, _ := untangle(b, false)
	return eventsIn(lines, name, nil, false)
}

// WaitEvent waits until the console has an event named name whose keys
// include every one of match with its value, and returns all its
// key/values (t among them); a nil match takes the first event of that
// name. It fails when QEMU exits first or timeout passes.
func (vm *VM) WaitEvent(name string, match map[string]string, timeout time.Duration) (map[string]string, error) {
	what := fmt.Sprintf("event %s", name)
	if len(match) > 0 {
		keys := make([]string, 0, len(match))
		for k := range match {
			keys = append(keys, k+"="+match[k])
		}
		sort.Strings(keys)
		what += " " + strings.Join(keys, " ")
	}
	return vm.WaitEventFunc(name, func(kv map[string]string) bool { return matches(kv, match) }, what, timeout)
}

// WaitEventFunc waits, as WaitEvent does, for an event named name whose
// key/values ok accepts; what describes it in the error. It scans only
// the lines the console has grown by since its last look, so that waiting
// on a chatty console (debug logs) costs the host little.
func (vm *VM) WaitEventFunc(name string, ok func(map[string]string) bool, what string, timeout time.Duration) (map[string]string, error) {
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	from := 0 // the start of the first line not read yet
	scan := func(partial bool) map[string]string {
		b, _ := os.ReadFile(vm.console)
		if len(b) < from {
			from = 0
		}
		lines, used := untangle(b[from:], partial)
		from += used
		for _, kv := range eventsIn(lines, name, nil, partial) {
			if ok(kv) {
				return kv
			}
		}
		return nil
	}
	for {
		if kv := scan(false); kv != nil {
			return kv, nil
		}
		select {
		case <-deadline:
			return nil, fmt.Errorf("no %s on the console after %s", what, timeout)
		case <-vm.done:
			// The last line may have no newline: QEMU wrote all it will.
			if kv := scan(true); kv != nil {
				return kv, nil
			}
			return nil, fmt.Errorf("qemu exited before %s appeared on the console", what)
		case <-tick.C:
		}
	}
}
