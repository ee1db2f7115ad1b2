package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem found in a config: where it is and what to do about
// it. Parse returns all of them, joined with errors.Join and sorted by
// position; errors.As finds the first.
type Error struct {
	// Source names where the config came from: a file name,
	// "cidata:user-data" or "kernel command line rke2.config".
	Source string
	// Line and Column locate the offending key or value, from 1; 0 if
	// unknown.
	Line, Column int
	// Path is the key path, like write_files[0].permissions; "" for the
	// document as a whole.
	Path string
	// Msg says what is wrong and how to fix it; it follows Path in the
	// message.
	Msg string
}

// Error formats the problem as
// `config SOURCE line L column C: PATH MSG`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config")
	if e.Source != "" {
		b.WriteString(" ")
		b.WriteString(e.Source)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, " column %d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(" ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Parse parses one config document. source names it in errors (a file
// name, "cidata:user-data", ...). A leading "#cloud-config" line is allowed
// but not required; ParseUserData requires it. An empty document is an empty
// config.
func Parse(source string, data []byte) (*Config, error) {
	root, err := decodeDocument(source, data)
	if err != nil {
		return nil, err
	}
	p := &parser{source: source}
	c := p.config(root)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseRegistries parses a standalone RKE2 registries.yaml (what a config's
// registries section holds, as /etc/rancher/rke2/registries.yaml) with the
// same checks Parse gives the section; key paths in errors start at the
// file's top (mirrors, configs). source names it in errors. An empty
// document has no mirrors.
func ParseRegistries(source string, data []byte) (*Registries, error) {
	root, err := decodeDocument(source, data)
	if err != nil {
		return nil, err
	}
	p := &parser{source: source}
	r := p.registries(root, "")
	if err := p.err(); err != nil {
		return nil, err
	}
	return &r, nil
}

// yamlLineRe finds the line number in yaml.v3's syntax errors, like
// "yaml: line 3: mapping values are not allowed in this context".
var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decodeDocument decodes data into the root node of its single YAML
// document; nil for an empty document.
func decodeDocument(source string, data []byte) (root *yaml.Node, err error) {
	// PID 1 must never panic on a bad config, and YAML parsers have panicked
	// on malformed input before: turn one into an error.
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, &Error{Source: source, Msg: fmt.Sprintf("is not valid YAML (the parser failed: %v)", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlError(source, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, &Error{Source: source, Line: next.Line, Column: next.Column,
			Msg: "starts a second YAML document (after \"---\"); a config is one document: remove the separator and merge the keys"}
	case !errors.Is(err, io.EOF):
		return nil, yamlError(source, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, nil
	}
	root = doc.Content[0]
	if err := checkAliases(source, root); err != nil {
		return nil, err
	}
	return root, nil
}

// maxExpandedNodes bounds the size of a document with its aliases expanded.
// A few anchors can stand for an exponential number of nodes ("billion
// laughs"); a real config has a few hundred nodes.
const maxExpandedNodes = 100000

// checkAliases refuses a document whose aliases expand it beyond
// maxExpandedNodes or refer to the node that contains them.
func checkAliases(source string, root *yaml.Node) error {
	const inProgress = -1
	sizes := map[*yaml.Node]int{}
	var bad *Error
	var size func(n *yaml.Node, depth int) int
	size = func(n *yaml.Node, depth int) int {
		if bad != nil {
			return 0
		}
		if depth > 10000 {
			bad = &Error{Source: source, Line: n.Line, Column: n.Column, Msg: "nests too deeply"}
			return 0
		}
		alias := n
		if n.Kind == yaml.AliasNode {
			if n.Alias == nil {
				return 1
			}
			n = n.Alias
		}
		switch s, seen := sizes[n]; {
		case seen && s == inProgress:
			bad = &Error{Source: source, Line: alias.Line, Column: alias.Column, Msg: fmt.Sprintf("uses the alias *%s inside its own anchor; write the value out", alias.Value)}
			return 0
		case seen:
			return s
		}
		sizes[n] = inProgress
		total := 1
		for _, c := range n.Content {
			total += size(c, depth+1)
			if total > maxExpandedNodes {
				total = maxExpandedNodes + 1
			}
		}
		sizes[n] = total
		return total
	}
	if size(root, 0) > maxExpandedNodes {
		return &Error{Source: source, Line: root.Line, Column: root.Column, Msg: fmt.Sprintf("expands to more than %d values through its YAML aliases; write the values out", maxExpandedNodes)}
	}
	if bad != nil {
		return bad
	}
	return nil
}

// yamlError turns a yaml.v3 syntax error into an *Error with its line.
func yamlError(source string, err error) error {
	msg := err.Error()
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{Source: source, Line: line, Msg: "is not valid YAML: " + m[2]}
	}
	return &Error{Source: source, Msg: "is not valid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// parser walks a document's nodes and collects every problem it finds, so
// that one run reports all of them.
type parser struct {
	source string
	errs   []*Error
}

// fail records a problem at n's position.
func (p *parser) fail(n *yaml.Node, path, format string, args ...any) {
	p.errs = append(p.errs, &Error{Source: p.source, Line: n.Line, Column: n.Column, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// err returns the collected problems sorted by position, or nil.
func (p *parser) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	sort.SliceStable(p.errs, func(i, j int) bool {
		a, b := p.errs[i], p.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// unsupportedKeys are cloud-init keys people carry over from other systems,
// with the reason this OS does without them.
var unsupportedKeys = map[string]string{
	"runcmd":              "is not supported: this OS runs no shell scripts at boot; use write_files, or Kubernetes manifests for cluster work",
	"bootcmd":             "is not supported: this OS runs no shell scripts at boot; use write_files, sysctls or modules",
	"packages":            "is not supported: the image is immutable; add software as container images or rebuild the image",
	"package_update":      "is not supported: the image is immutable; upgrade by booting a new image",
	"package_upgrade":     "is not supported: the image is immutable; upgrade by booting a new image",
	"users":               "is not supported: this OS has no login users; reach the node through Kubernetes",
	"ssh_authorized_keys": "is not supported: this OS runs no SSH server; reach the node through Kubernetes",
	"fqdn":                "is not supported: set hostname",
	"manage_etc_hosts":    "is not supported: the init writes /etc/hosts itself",
}

// configFields are a config's keys, in the order the hints list them.
var configFields = fieldTable[Config]{
	fields: []field[Config]{
		{"hostname", func(p *parser, c *Config, _, v *yaml.Node, path string) {
			if s, ok := p.str(v, path); ok && s != "" {
				if err := checkHostname(s); err != nil {
					p.fail(v, path, "%v", err)
				} else {
					c.Hostname = s
				}
			}
		}},
		oneOf("role", "%q is not a role: use server or agent (or leave it out for the image's default)",
			func(c *Config) *string { return &c.NodeRole }, RoleServer, RoleAgent),
		{"write_files", func(p *parser, c *Config, _, v *yaml.Node, path string) { c.WriteFiles = p.writeFiles(v, path) }},
		{"sysctls", func(p *parser, c *Config, _, v *yaml.Node, path string) { c.Sysctls = p.sysctls(v, path) }},
		{"modules", func(p *parser, c *Config, _, v *yaml.Node, path string) { c.Modules = p.modules(v, path) }},
		{"network", func(p *parser, c *Config, _, v *yaml.Node, path string) { c.Network = p.network(v, path) }},
		{"ntp", func(p *parser, c *Config, _, v *yaml.Node, path string) { c.NTP = p.ntp(v, path) }},
		{"rke2", func(p *parser, c *Config, _, v *yaml.Node, path string) { c.RKE2 = p.rke2(v, path) }},
		{"registries", func(p *parser, c *Config, _, v *yaml.Node, path string) { c.Registries = p.registries(v, path) }},
		oneOf("on_containerd_exit", "%q is not an action: use restart or reboot",
			func(c *Config) *string { return &c.OnContainerdExit }, ContainerdExitRestart, ContainerdExitReboot),
		{"debug", func(p *parser, c *Config, _, v *yaml.Node, path string) { c.Debug = p.debug(v, path) }},
		{"join", func(p *parser, c *Config, _, v *yaml.Node, path string) { c.Join = p.join(v, path) }},
		{"install", func(p *parser, c *Config, _, v *yaml.Node, path string) { c.Install = p.install(v, path) }},
	},
	unsupported: unsupportedKeys,
}

// oneOf is a string field that takes one of values (or is left empty);
// another value is refused with refusal, which formats it.
func oneOf[T any](key, refusal string, dst func(*T) *string, values ...string) field[T] {
	return field[T]{key, func(p *parser, st *T, _, v *yaml.Node, path string) {
		s, ok := p.str(v, path)
		switch {
		case !ok:
		case s == "" || slices.Contains(values, s):
			*dst(st) = s
		default:
			p.fail(v, path, refusal, s)
		}
	}}
}

// config walks the root node of a document.
func (p *parser) config(root *yaml.Node) *Config {
	c := &Config{}
	if root == nil || isNull(root) {
		return c
	}
	if root.Kind != yaml.MappingNode {
		p.fail(root, "", "must be a YAML mapping of keys like \"hostname: node1\", not a %s", kindName(root))
		return c
	}
	configFields.walk(p, root, "", c)
	return c
}

// A field is one key of a config mapping and how its value is read into
// the mapping's state T (the section's struct, or an entry's with what
// its checks need). Its key, listed in its table's order, is also a known
// key that hints for a typo come from: the parsing and the known keys are
// one table.
type field[T any] struct {
	key  string
	read func(p *parser, st *T, k, v *yaml.Node, path string)
}

// fieldTable is the keys of one mapping.
type fieldTable[T any] struct {
	fields []field[T]
	// unsupported are keys refused with the reason (carried over from
	// cloud-init, say).
	unsupported map[string]string
	// onBad marks the state of an entry that had an unknown or
	// unsupported key, where such an entry is not kept.
	onBad func(st *T)
}

// keys are the table's keys, for hints.
func (t fieldTable[T]) keys() []string {
	keys := make([]string, len(t.fields))
	for i, f := range t.fields {
		keys[i] = f.key
	}
	return keys
}

// walk reads the mapping n at path into st, each key by its field; it
// reports whether n was a mapping.
func (t fieldTable[T]) walk(p *parser, n *yaml.Node, path string, st *T) bool {
	return p.mapping(n, path, func(key string, k, v *yaml.Node) {
		kpath := child(path, key)
		for _, f := range t.fields {
			if f.key == key {
				f.read(p, st, k, v, kpath)
				return
			}
		}
		if why, ok := t.unsupported[key]; ok {
			p.fail(k, kpath, "%s", why)
		} else {
			p.unknown(k, path, key, t.keys())
		}
		if t.onBad != nil {
			t.onBad(st)
		}
	})
}

// unknown reports an unknown key of the mapping at path, suggesting the
// closest known one.
func (p *parser) unknown(k *yaml.Node, path, key string, known []string) {
	hint := "known keys are " + strings.Join(known, ", ")
	if best := closest(key, known); best != "" {
		hint = fmt.Sprintf("did you mean %q?", best)
	}
	p.fail(k, child(path, key), "is not a known key; %s", hint)
}

// closest returns the known key nearest to key in edit distance, if near
// enough to be a typo.
func closest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, for typo hints.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// simpleKeyRe matches keys that read well in a dotted path.
var simpleKeyRe = regexp.MustCompile(`^[A-Za-z0-9_+-]+$`)

// child returns the path of key under path: path.key, or path["key"] for
// keys with dots or other characters.
func child(path, key string) string {
	if !simpleKeyRe.MatchString(key) {
		return fmt.Sprintf("%s[%q]", path, key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// index returns the path of a list element.
func index(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// deref follows an alias to the node it names, keeping the alias' position
// so that errors point where the value is used.
func deref(n *yaml.Node) *yaml.Node {
	if n == nil || n.Kind != yaml.AliasNode || n.Alias == nil {
		return n
	}
	t := n.Alias
	for i := 0; t.Kind == yaml.AliasNode && t.Alias != nil && i < 16; i++ {
		t = t.Alias
	}
	c := *t
	c.Line, c.Column = n.Line, n.Column
	return &c
}

// isNull reports whether n is a YAML null (an empty value, "~" or null).
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName names a node's kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "value"
}

// mapping calls fn for each key of the mapping n, in order. It reports
// non-scalar, merge and duplicate keys itself. A null n is an empty mapping.
func (p *parser) mapping(n *yaml.Node, path string, fn func(key string, k, v *yaml.Node)) bool {
	n = deref(n)
	if isNull(n) {
		return false
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "must be a mapping (\"key: value\" lines), not a %s", kindName(n))
		return false
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.fail(k, path, "has a key that is a %s; keys are plain words", kindName(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			p.fail(k, path, "uses a YAML merge key (<<), which this config does not support; write the keys out")
			continue
		}
		if line, dup := seen[k.Value]; dup {
			p.fail(k, child(path, k.Value), "is set twice (first on line %d); keep one", line)
			continue
		}
		seen[k.Value] = k.Line
		fn(k.Value, k, v)
	}
	return true
}

// sequence calls fn for each element of the list n. A null n is an empty
// list.
func (p *parser) sequence(n *yaml.Node, path string, fn func(i int, v *yaml.Node)) bool {
	n = deref(n)
	if isNull(n) {
		return false
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, path, "must be a list (lines starting with \"- \"), not a %s", kindName(n))
		return false
	}
	for i, v := range n.Content {
		fn(i, v)
	}
	return true
}

// scalarTags are the YAML tags a plain value may carry; anything else (a
// custom "!tag", !!binary where not expected) is refused rather than guessed.
var scalarTags = map[string]bool{"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!timestamp": true}

// str returns the text of the scalar n; ok is false for null (the key is then
// unset) or after reporting a value that is not a plain scalar.
func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	n = deref(n)
	if isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		p.fail(n, path, "must be a single value, not a %s", kindName(n))
		return "", false
	}
	if !scalarTags[n.ShortTag()] {
		p.fail(n, path, "has the YAML tag %s, which this config does not understand; remove it", n.Tag)
		return "", false
	}
	return n.Value, true
}

// boolean returns the value of a true/false scalar. cloud-init reads YAML
// 1.1, where yes/no/on/off are booleans too, and configs written for it use
// them (netplan's "dhcp4: yes"), so they are accepted here as well.
func (p *parser) boolean(n *yaml.Node, path string) (bool, bool) {
	n = deref(n)
	if isNull(n) {
		return false, false
	}
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err == nil {
				return b, true
			}
		case "!!str":
			if n.Style == 0 {
				switch strings.ToLower(n.Value) {
				case "yes", "on":
					return true, true
				case "no", "off":
					return false, true
				}
			}
		}
	}
	p.fail(n, path, "%s is not true or false", describe(n))
	return false, false
}

// integer returns the value of a whole-number scalar within [lo, hi].
func (p *parser) integer(n *yaml.Node, path string, lo, hi int64, what string) (int64, bool) {
	n = deref(n)
	if isNull(n) {
		return 0, false
	}
	var v int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		p.fail(n, path, "%s is not a whole number; %s", describe(n), what)
		return 0, false
	}
	if v < lo || v > hi {
		p.fail(n, path, "%d is out of range; %s", v, what)
		return 0, false
	}
	return v, true
}

// describe quotes a scalar's text, or names the kind of another node, for
// messages.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return "a " + kindName(n)
}

// strings returns the texts of a list of scalars.
func (p *parser) strList(n *yaml.Node, path string) []string {
	var out []string
	p.sequence(n, path, func(i int, v *yaml.Node) {
		if s, ok := p.str(v, index(path, i)); ok {
			out = append(out, s)
		} else if isNull(deref(v)) {
			p.fail(v, index(path, i), "is empty; remove the \"-\" line or give it a value")
		}
	})
	return out
}
