package pods

import (
	"sort"
	"strings"
)

// MergeArgs turns a component's default flags and the user's extra ones
// (RKE2's kube-apiserver-arg and friends, "name=value" each) into its command
// line, as k3s's util.GetArgs does:
//
//   - "name=value" replaces the default of that name; given twice, both are
//     passed, in the user's order (a repeated list flag accumulates);
//   - "name+=value" passes the default, then value; "name-=value" passes
//     value, then the default;
//   - "name" alone means "name=true";
//   - the output is sorted by flag name, each "--name=value".
//
// A leading "--" on a user's flag is dropped, as k3s drops it. Unlike k3s, a
// single leading "-" is dropped too: k3s would pass "---name", which no
// component accepts. defaults is not modified.
func MergeArgs(defaults map[string]string, user []string) []string {
	initial := make(map[string]string, len(defaults))
	for k, v := range defaults {
		initial[k] = v
	}
	multi := map[string][]string{}
	for _, raw := range user {
		name, value, ok := strings.Cut(trimDashes(raw), "=")
		if !ok {
			value = "true"
		}
		clean := strings.TrimRight(name, "+-")
		def, hasDef := initial[clean]
		prev := multi[clean]
		var vals []string
		switch {
		case strings.HasSuffix(name, "+"):
			if hasDef {
				vals = append(vals, def)
			}
			vals = append(append(vals, prev...), value)
		case strings.HasSuffix(name, "-"):
			vals = append(vals, value)
			if hasDef {
				vals = append(vals, def)
			}
			vals = append(vals, prev...)
		default:
			vals = append(append(vals, prev...), value)
		}
		// The default is used (or dropped) once: a later "+=" appends to
		// what the earlier ones made.
		delete(initial, clean)
		multi[clean] = vals
	}
	for k, v := range initial {
		multi[k] = []string{v}
	}
	names := make([]string, 0, len(multi))
	for k := range multi {
		names = append(names, k)
	}
	sort.Strings(names)
	var args []string
	for _, k := range names {
		for _, v := range multi[k] {
			args = append(args, "--"+k+"="+v)
		}
	}
	return args
}

// argValue is the value of the first user flag called name ("" if none),
// as k3s's util.ArgValue finds it.
func argValue(name string, user []string) string {
	for _, raw := range user {
		if k, v, _ := strings.Cut(trimDashes(raw), "="); k == name {
			return v
		}
	}
	return ""
}

func trimDashes(s string) string {
	if t, ok := strings.CutPrefix(s, "--"); ok {
		return t
	}
	return strings.TrimPrefix(s, "-")
}

// withoutFlag drops every --name=... from args.
func withoutFlag(args []string, name string) []string {
	out := args[:0:0]
	for _, a := range args {
		if k, _, _ := strings.Cut(a, "="); k != "--"+name {
			out = append(out, a)
		}
	}
	return out
}

// flagValues are the values of every --name=... in args, in order.
func flagValues(args []string, name string) []string {
	var vals []string
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok && k == "--"+name {
			vals = append(vals, v)
		}
	}
	return vals
}

// overrideArgs applies "name=value" user flags to an ordered list of
// "--name=value" defaults: a flag of the same name is replaced where it
// stands, a new one is appended. This is how k3s treats etcd-arg (keys of
// etcd's config file), not the other components' flags.
func overrideArgs(defaults, user []string) []string {
	args := append([]string{}, defaults...)
	for _, raw := range user {
		name, value, ok := strings.Cut(trimDashes(raw), "=")
		if !ok {
			value = "true"
		}
		flag := "--" + name + "=" + value
		replaced := false
		for i, a := range args {
			if k, _, _ := strings.Cut(a, "="); k == "--"+name {
				args[i], replaced = flag, true
			}
		}
		if !replaced {
			args = append(args, flag)
		}
	}
	return args
}
