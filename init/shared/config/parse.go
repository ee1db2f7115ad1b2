package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
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

// topKeys are the keys of a config, for "did you mean" hints.
var topKeys = []string{"hostname", "role", "write_files", "sysctls", "modules", "network", "ntp", "rke2", "registries", "on_containerd_exit", "debug", "join"}

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
	p.mapping(root, "", func(key string, k, v *yaml.Node) {
		path := key
		switch key {
		case "hostname":
			if s, ok := p.str(v, path); ok && s != "" {
				if err := checkHostname(s); err != nil {
					p.fail(v, path, "%v", err)
				} else {
					c.Hostname = s
				}
			}
		case "role":
			if s, ok := p.str(v, path); ok {
				switch s {
				case "", RoleServer, RoleAgent:
					c.NodeRole = s
				default:
					p.fail(v, path, "%q is not a role: use server or agent (or leave it out for the image's default)", s)
				}
			}
		case "write_files":
			c.WriteFiles = p.writeFiles(v, path)
		case "sysctls":
			c.Sysctls = p.sysctls(v, path)
		case "modules":
			c.Modules = p.modules(v, path)
		case "network":
			c.Network = p.network(v, path)
		case "ntp":
			c.NTP = p.ntp(v, path)
		case "rke2":
			c.RKE2 = p.rke2(v, path)
		case "registries":
			c.Registries = p.registries(v, path)
		case "on_containerd_exit":
			if s, ok := p.str(v, path); ok {
				switch s {
				case "", ContainerdExitRestart, ContainerdExitReboot:
					c.OnContainerdExit = s
				default:
					p.fail(v, path, "%q is not an action: use restart or reboot", s)
				}
			}
		case "debug":
			c.Debug = p.debug(v, path)
		case "join":
			c.Join = p.join(v, path)
		default:
			if why, ok := unsupportedKeys[key]; ok {
				p.fail(k, path, "%s", why)
				return
			}
			p.unknown(k, "", key, topKeys)
		}
	})
	return c
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

// writeFiles walks write_files.
func (p *parser) writeFiles(n *yaml.Node, path string) []WriteFile {
	var out []WriteFile
	p.sequence(n, path, func(i int, v *yaml.Node) {
		ipath := index(path, i)
		f := WriteFile{Permissions: DefaultPermissions, Owner: DefaultOwner}
		var contentNode *yaml.Node
		hasPath, ok := false, true
		if !p.mapping(v, ipath, func(key string, k, v *yaml.Node) {
			kpath := child(ipath, key)
			switch key {
			case "path":
				if s, good := p.str(v, kpath); good {
					if err := checkFilePath(s); err != nil {
						p.fail(v, kpath, "%v", err)
						ok = false
					}
					f.Path, hasPath = s, true
				}
			case "content":
				contentNode = deref(v)
				if contentNode.Kind == yaml.ScalarNode && contentNode.ShortTag() == "!!binary" {
					b, err := decodeBase64(contentNode.Value)
					if err != nil {
						p.fail(contentNode, kpath, "is a !!binary that is not valid base64: %v", err)
						ok = false
					}
					f.Content = string(b)
				} else if s, good := p.str(v, kpath); good {
					f.Content = s
				}
			case "encoding":
				if s, good := p.str(v, kpath); good {
					if _, err := canonicalEncoding(s); err != nil {
						p.fail(v, kpath, "%v", err)
						ok = false
					}
					f.Encoding = s
				}
			case "permissions":
				if s, good := p.str(v, kpath); good {
					if _, err := parseMode(s); err != nil {
						p.fail(v, kpath, "%v", err)
						ok = false
					}
					f.Permissions = s
				}
			case "owner":
				if s, good := p.str(v, kpath); good {
					if _, _, err := parseOwner(s); err != nil {
						p.fail(v, kpath, "%v", err)
						ok = false
					}
					f.Owner = s
				}
			case "append":
				f.Append, _ = p.boolean(v, kpath)
			case "defer":
				p.fail(k, kpath, "is not supported: every file is written before RKE2 starts; remove it")
				ok = false
			default:
				p.unknown(k, ipath, key, []string{"path", "content", "encoding", "permissions", "owner", "append"})
				ok = false
			}
		}) {
			if isNull(deref(v)) {
				p.fail(v, ipath, "is empty; give it a path and content")
			}
			return
		}
		if !hasPath {
			p.fail(v, ipath, "has no path; add one like \"path: /etc/motd\"")
			return
		}
		if ok {
			// Decode now, so that a bad file fails the build or the boot with
			// its line rather than when it is written.
			if _, err := decodeContent(f.Content, f.Encoding); err != nil {
				at := contentNode
				if at == nil {
					at = deref(v)
				}
				p.fail(at, child(ipath, "content"), "%v", err)
				return
			}
		}
		out = append(out, f)
	})
	return out
}

// sysctls walks sysctls.
func (p *parser) sysctls(n *yaml.Node, path string) map[string]string {
	out := map[string]string{}
	p.mapping(n, path, func(key string, k, v *yaml.Node) {
		kpath := child(path, key)
		if err := checkSysctlKey(key); err != nil {
			p.fail(k, kpath, "%v", err)
			return
		}
		s, ok := p.str(v, kpath)
		if !ok {
			if isNull(deref(v)) {
				p.fail(v, kpath, "has no value; give it one like \"1\"")
			}
			return
		}
		if err := checkSysctlValue(s); err != nil {
			p.fail(v, kpath, "%v", err)
			return
		}
		out[key] = s
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// modules walks modules.
func (p *parser) modules(n *yaml.Node, path string) []string {
	return p.checkedStrings(n, path, "name a module like br_netfilter", checkModuleName)
}

// checkedStrings walks a list of strings, each checked by check; an empty
// entry is an error that says what to write there (fix).
func (p *parser) checkedStrings(n *yaml.Node, path, fix string, check func(string) error) []string {
	var out []string
	p.sequence(n, path, func(i int, v *yaml.Node) {
		ipath := index(path, i)
		s, ok := p.str(v, ipath)
		if !ok {
			if isNull(deref(v)) {
				p.fail(v, ipath, "is empty; remove the \"-\" line or %s", fix)
			}
			return
		}
		if err := check(s); err != nil {
			p.fail(v, ipath, "%v", err)
			return
		}
		out = append(out, s)
	})
	return out
}

// debug walks debug.
func (p *parser) debug(n *yaml.Node, path string) map[string]bool {
	out := map[string]bool{}
	p.mapping(n, path, func(key string, k, v *yaml.Node) {
		kpath := child(path, key)
		if !debugKeyRe.MatchString(key) {
			p.fail(k, kpath, "is not a debug switch name: use lowercase letters, digits, \"_\" and \"-\", like hooks")
			return
		}
		if b, ok := p.boolean(v, kpath); ok {
			out[key] = b
		}
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// join walks join.
func (p *parser) join(n *yaml.Node, path string) Join {
	var j Join
	p.mapping(n, path, func(key string, k, v *yaml.Node) {
		kpath := child(path, key)
		switch key {
		case "trust_on_first_use":
			if b, ok := p.boolean(v, kpath); ok {
				j.TrustOnFirstUse = &b
			}
		default:
			p.unknown(k, path, key, []string{"trust_on_first_use"})
		}
	})
	return j
}

// debugKeyRe matches debug switch names.
var debugKeyRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// network walks network.
func (p *parser) network(n *yaml.Node, path string) Network {
	var nw Network
	p.mapping(n, path, func(key string, k, v *yaml.Node) {
		kpath := child(path, key)
		switch key {
		case "interfaces":
			nw.Interfaces = p.interfaces(v, kpath)
		case "dns":
			nw.DNS = p.dns(v, kpath)
		default:
			p.unknown(k, path, key, []string{"interfaces", "dns"})
		}
	})
	return nw
}

// interfaces walks network.interfaces.
func (p *parser) interfaces(n *yaml.Node, path string) []Interface {
	var out []Interface
	names := map[string]int{}
	macs := map[string]int{}
	p.sequence(n, path, func(i int, v *yaml.Node) {
		ipath := index(path, i)
		var ifc Interface
		// named is set by a name or mac key even if its value is bad, so that
		// one mistake is reported once.
		named := false
		if !p.mapping(v, ipath, func(key string, k, v *yaml.Node) {
			kpath := child(ipath, key)
			switch key {
			case "name":
				named = true
				if s, ok := p.str(v, kpath); ok {
					if err := checkLinkName(s); err != nil {
						p.fail(v, kpath, "%v", err)
					} else if line, dup := names[s]; dup {
						p.fail(v, kpath, "%q is already configured on line %d; merge the two entries", s, line)
					} else {
						names[s] = v.Line
						ifc.Name = s
					}
				}
			case "mac":
				named = true
				if s, ok := p.str(v, kpath); ok {
					mac, err := parseMAC(s)
					if err != nil {
						p.fail(v, kpath, "%v", err)
					} else if line, dup := macs[mac.String()]; dup {
						p.fail(v, kpath, "%q is already configured on line %d; merge the two entries", s, line)
					} else {
						macs[mac.String()] = v.Line
						ifc.MAC = mac
					}
				}
			case "dhcp4":
				ifc.DHCP4, _ = p.boolean(v, kpath)
			case "addresses":
				p.sequence(v, kpath, func(j int, v *yaml.Node) {
					apath := index(kpath, j)
					if s, ok := p.str(v, apath); ok {
						if a, err := parseInterfaceAddress(s); err != nil {
							p.fail(v, apath, "%v", err)
						} else {
							ifc.Addresses = append(ifc.Addresses, a)
						}
					}
				})
			case "gateway4":
				if s, ok := p.str(v, kpath); ok {
					if a, err := parseGateway4(s); err != nil {
						p.fail(v, kpath, "%v", err)
					} else {
						ifc.Gateway4 = a
					}
				}
			case "routes":
				ifc.Routes = p.routes(v, kpath)
			case "mtu":
				if m, ok := p.integer(v, kpath, 68, 65535, "use a value from 68 to 65535, like 1500 or 9000"); ok {
					ifc.MTU = int(m)
				}
			default:
				p.unknown(k, ipath, key, []string{"name", "mac", "dhcp4", "addresses", "gateway4", "routes", "mtu"})
			}
		}) {
			if isNull(deref(v)) {
				p.fail(v, ipath, "is empty; give it a name like eth0 or a mac")
			}
			return
		}
		switch {
		case !named:
			p.fail(v, ipath, "has neither name nor mac; add one like \"name: eth0\" or \"mac: 52:54:00:12:34:56\"")
			return
		case ifc.Name == "" && ifc.MAC == nil:
			return
		}
		out = append(out, ifc)
	})
	return out
}

// routes walks an interface's routes.
func (p *parser) routes(n *yaml.Node, path string) []Route {
	var out []Route
	p.sequence(n, path, func(i int, v *yaml.Node) {
		ipath := index(path, i)
		var r Route
		hasTo, hasVia, ok := false, false, true
		if !p.mapping(v, ipath, func(key string, k, v *yaml.Node) {
			kpath := child(ipath, key)
			switch key {
			case "to":
				if s, good := p.str(v, kpath); good {
					to, err := parseRouteDest(s)
					if err != nil {
						p.fail(v, kpath, "%v", err)
						ok = false
					}
					r.To, hasTo = to, true
				}
			case "via":
				if s, good := p.str(v, kpath); good {
					via, err := parseNextHop(s)
					if err != nil {
						p.fail(v, kpath, "%v", err)
						ok = false
					}
					r.Via, hasVia = via, true
				}
			case "metric":
				if m, good := p.integer(v, kpath, 0, 1<<32-1, "use a value from 0 to 4294967295, like 100"); good {
					r.Metric = uint32(m)
				} else {
					ok = false
				}
			default:
				p.unknown(k, ipath, key, []string{"to", "via", "metric"})
				ok = false
			}
		}) {
			if isNull(deref(v)) {
				p.fail(v, ipath, "is empty; give it to and via")
			}
			return
		}
		switch {
		case !ok:
		case !hasTo || !hasVia:
			p.fail(v, ipath, "needs both to and via, like \"to: 10.20.0.0/16\" and \"via: 10.0.0.254\"")
		case r.To.Addr().Is4() != r.Via.Is4():
			p.fail(v, ipath, "mixes address families: to %s is %s but via %s is %s; use a next hop of the same family", r.To, family(r.To.Addr()), r.Via, family(r.Via))
		default:
			out = append(out, r)
		}
	})
	return out
}

// dns walks network.dns.
func (p *parser) dns(n *yaml.Node, path string) DNS {
	var d DNS
	p.mapping(n, path, func(key string, k, v *yaml.Node) {
		kpath := child(path, key)
		switch key {
		case "servers":
			p.sequence(v, kpath, func(i int, v *yaml.Node) {
				ipath := index(kpath, i)
				if s, ok := p.str(v, ipath); ok {
					if a, err := parseDNSServer(s); err != nil {
						p.fail(v, ipath, "%v", err)
					} else {
						d.Servers = append(d.Servers, a)
					}
				}
			})
		case "search":
			p.sequence(v, kpath, func(i int, v *yaml.Node) {
				ipath := index(kpath, i)
				if s, ok := p.str(v, ipath); ok {
					if err := checkDomain(s); err != nil {
						p.fail(v, ipath, "%v", err)
					} else {
						d.Search = append(d.Search, s)
					}
				}
			})
		default:
			p.unknown(k, path, key, []string{"servers", "search"})
		}
	})
	return d
}

// ntpUnsupportedKeys are the keys of cloud-init's ntp module that this OS
// does without, with the reason: the init asks the servers itself, there is
// no NTP daemon.
var ntpUnsupportedKeys = map[string]string{
	"ntp_client": "is not supported: the init sets the clock itself, there is no NTP client to choose; remove it",
	"config":     "is not supported: there is no NTP daemon to configure; remove it",
	"peers":      "is not supported: the node only asks servers for the time; list them under servers",
	"allow":      "is not supported: the node serves the time to no one; remove it",
}

// ntp walks ntp.
func (p *parser) ntp(n *yaml.Node, path string) NTP {
	var t NTP
	p.mapping(n, path, func(key string, k, v *yaml.Node) {
		kpath := child(path, key)
		switch key {
		case "enabled":
			if b, ok := p.boolean(v, kpath); ok {
				t.Enabled = &b
			}
		case "servers":
			t.Servers = p.ntpServers(v, kpath)
		case "pools":
			t.Pools = p.ntpServers(v, kpath)
		default:
			if why, ok := ntpUnsupportedKeys[key]; ok {
				p.fail(k, kpath, "%s", why)
				return
			}
			p.unknown(k, path, key, []string{"enabled", "servers", "pools"})
		}
	})
	return t
}

// ntpServers walks ntp.servers or ntp.pools.
func (p *parser) ntpServers(n *yaml.Node, path string) []string {
	return p.checkedStrings(n, path, `name a server like "pool.ntp.org"`, checkNTPServer)
}

// rke2TypedKeys are the rke2 keys the init reads itself, with how each is
// checked; any other key is kept as written.
var rke2TypedKeys = map[string]func(p *parser, v *yaml.Node, path string) bool{
	"token":       func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkToken) },
	"agent-token": func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkToken) },
	"server":      func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkServerURL) },
	"node-name":   func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkNodeName) },
	"node-label":  func(p *parser, v *yaml.Node, path string) bool { return p.rke2List(v, path, checkLabel) },
	"node-taint":  func(p *parser, v *yaml.Node, path string) bool { return p.rke2List(v, path, checkTaint) },
	"tls-san":     func(p *parser, v *yaml.Node, path string) bool { return p.rke2List(v, path, checkSAN) },
	"node-ip":     func(p *parser, v *yaml.Node, path string) bool { return p.rke2List(v, path, checkNodeIP) },
	"cni":         (*parser).rke2CNI,
	"control-plane-probe-configuration": func(p *parser, v *yaml.Node, path string) bool {
		return p.rke2List(v, path, checkProbeConfiguration)
	},
}

// rke2KeyRe matches RKE2 option names: its flag names, with an optional "+"
// (append to the value of an earlier file).
var rke2KeyRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*\+?$`)

// rke2 walks rke2.
func (p *parser) rke2(n *yaml.Node, path string) RKE2Config {
	out := RKE2Config{}
	p.mapping(n, path, func(key string, k, v *yaml.Node) {
		kpath := child(path, key)
		if !rke2KeyRe.MatchString(key) || len(key) > 128 {
			hint := "RKE2 options are its flag names, lowercase words joined by \"-\", like node-label"
			if fixed := strings.ToLower(strings.ReplaceAll(key, "_", "-")); rke2KeyRe.MatchString(fixed) && fixed != key {
				hint = fmt.Sprintf("did you mean %q? %s", fixed, hint)
			}
			p.fail(k, kpath, "is not an RKE2 option name; %s", hint)
			return
		}
		v = deref(v)
		if isNull(v) {
			p.fail(v, kpath, "has no value; give it one or remove the key")
			return
		}
		check, typed := rke2TypedKeys[strings.TrimSuffix(key, "+")]
		if typed {
			if !check(p, v, kpath) {
				return
			}
		} else if !p.rke2Value(v, kpath) {
			return
		}
		out[key] = cleanNode(v)
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// rke2Value checks a value of an RKE2 option the init does not read itself:
// RKE2 turns config.yaml into command-line flags, so a value is a scalar or
// a list of scalars.
func (p *parser) rke2Value(v *yaml.Node, path string) bool {
	switch v.Kind {
	case yaml.ScalarNode:
		_, ok := p.str(v, path)
		return ok
	case yaml.SequenceNode:
		ok := true
		for i, c := range v.Content {
			c = deref(c)
			if c.Kind != yaml.ScalarNode || isNull(c) {
				p.fail(c, index(path, i), "must be a single value, not %s: RKE2 options are flags", map[bool]string{true: "empty", false: "a " + kindName(c)}[isNull(c)])
				ok = false
				continue
			}
			if _, good := p.str(c, index(path, i)); !good {
				ok = false
			}
		}
		return ok
	}
	p.fail(v, path, "must be a value or a list of values, not a %s: RKE2 options are flags", kindName(v))
	return false
}

// rke2String checks a scalar RKE2 option with check.
func (p *parser) rke2String(v *yaml.Node, path string, check func(string) error) bool {
	s, ok := p.str(v, path)
	if !ok {
		return false
	}
	if err := check(s); err != nil {
		p.fail(v, path, "%v", err)
		return false
	}
	return true
}

// rke2List checks a list RKE2 option, each element with check. A single
// value counts as a list of one, as RKE2 reads it (tls-san: name).
func (p *parser) rke2List(v *yaml.Node, path string, check func(string) error) bool {
	if v.Kind == yaml.ScalarNode && !isNull(v) {
		return p.rke2String(v, path, check)
	}
	if v.Kind != yaml.SequenceNode {
		p.fail(v, path, "must be a value or a list (lines starting with \"- \"), not a %s", kindName(v))
		return false
	}
	ok := true
	for i, c := range v.Content {
		ipath := index(path, i)
		c = deref(c)
		s, good := p.str(c, ipath)
		if !good {
			if isNull(c) {
				p.fail(c, ipath, "is empty; remove the \"-\" line or give it a value")
			}
			ok = false
			continue
		}
		if err := check(s); err != nil {
			p.fail(c, ipath, "%v", err)
			ok = false
		}
	}
	return ok
}

// rke2CNI checks cni: a name, comma-separated names or a list of names.
func (p *parser) rke2CNI(v *yaml.Node, path string) bool {
	var names []string
	switch v.Kind {
	case yaml.ScalarNode:
		s, ok := p.str(v, path)
		if !ok {
			return false
		}
		names = strings.Split(s, ",")
	case yaml.SequenceNode:
		for i, c := range v.Content {
			c = deref(c)
			s, ok := p.str(c, index(path, i))
			if !ok {
				if isNull(c) {
					p.fail(c, index(path, i), "is empty; name a CNI like canal")
				}
				return false
			}
			names = append(names, strings.Split(s, ",")...)
		}
	default:
		p.fail(v, path, "must be a CNI name like canal or a list like [multus, canal], not a %s", kindName(v))
		return false
	}
	if err := checkCNI(names); err != nil {
		p.fail(v, path, "%v", err)
		return false
	}
	return true
}

// cleanNode copies a value node for rendering: aliases resolved, anchors,
// comments and positions dropped, lists in block style. Scalars keep their
// tag and quoting, so RKE2 reads the rendered value as it would the
// original.
func cleanNode(n *yaml.Node) *yaml.Node {
	n = deref(n)
	c := &yaml.Node{Kind: n.Kind, Tag: n.ShortTag(), Value: n.Value}
	if n.Kind == yaml.ScalarNode {
		c.Style = n.Style &^ (yaml.FlowStyle | yaml.TaggedStyle)
		if n.Style&yaml.TaggedStyle != 0 && c.Tag == "!!str" {
			// "!!str 123" says what quotes say, and quotes are what the
			// readers of RKE2's config expect.
			c.Style = yaml.DoubleQuotedStyle
		}
		if c.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 && !strings.Contains(c.Value, "\n") {
			c.Style = 0
		}
	}
	for _, e := range n.Content {
		c.Content = append(c.Content, cleanNode(e))
	}
	return c
}

// registries walks registries.
func (p *parser) registries(n *yaml.Node, path string) Registries {
	var r Registries
	p.mapping(n, path, func(key string, k, v *yaml.Node) {
		kpath := child(path, key)
		switch key {
		case "mirrors":
			p.mapping(v, kpath, func(name string, k, v *yaml.Node) {
				mpath := child(kpath, name)
				if err := checkMirrorName(name); err != nil {
					p.fail(k, mpath, "%v", err)
					return
				}
				m, ok := p.mirror(v, mpath)
				if !ok {
					return
				}
				if r.Mirrors == nil {
					r.Mirrors = map[string]Mirror{}
				}
				r.Mirrors[name] = m
			})
		case "configs":
			p.mapping(v, kpath, func(host string, k, v *yaml.Node) {
				hpath := child(kpath, host)
				if err := checkRegistryHost(host); err != nil {
					p.fail(k, hpath, "%v", err)
					return
				}
				rc, ok := p.registryConfig(v, hpath)
				if !ok {
					return
				}
				if r.Configs == nil {
					r.Configs = map[string]RegistryConfig{}
				}
				r.Configs[host] = rc
			})
		default:
			p.unknown(k, path, key, []string{"mirrors", "configs"})
		}
	})
	return r
}

// mirror walks one registries.mirrors entry.
func (p *parser) mirror(n *yaml.Node, path string) (Mirror, bool) {
	var m Mirror
	ok := true
	p.mapping(n, path, func(key string, k, v *yaml.Node) {
		kpath := child(path, key)
		switch key {
		case "endpoint":
			p.sequence(v, kpath, func(i int, v *yaml.Node) {
				ipath := index(kpath, i)
				s, good := p.str(v, ipath)
				if !good {
					ok = false
					if isNull(deref(v)) {
						p.fail(v, ipath, "is empty; give a URL like \"https://mirror.example.com:5000\"")
					}
					return
				}
				if err := checkEndpoint(s); err != nil {
					p.fail(v, ipath, "%v", err)
					ok = false
					return
				}
				m.Endpoints = append(m.Endpoints, s)
			})
		case "rewrite":
			p.mapping(v, kpath, func(re string, k, v *yaml.Node) {
				rpath := child(kpath, re)
				if err := checkRewrite(re); err != nil {
					p.fail(k, rpath, "%v", err)
					ok = false
					return
				}
				s, good := p.str(v, rpath)
				if !good {
					ok = false
					if isNull(deref(v)) {
						p.fail(v, rpath, "has no replacement; give one like \"mirrored/$1\"")
					}
					return
				}
				if m.Rewrites == nil {
					m.Rewrites = map[string]string{}
				}
				m.Rewrites[re] = s
			})
		default:
			p.unknown(k, path, key, []string{"endpoint", "rewrite"})
			ok = false
		}
	})
	return m, ok
}

// registryConfig walks one registries.configs entry.
func (p *parser) registryConfig(n *yaml.Node, path string) (RegistryConfig, bool) {
	var rc RegistryConfig
	ok := true
	p.mapping(n, path, func(key string, k, v *yaml.Node) {
		kpath := child(path, key)
		switch key {
		case "auth":
			a := &RegistryAuth{}
			fields := map[string]*string{"username": &a.Username, "password": &a.Password, "auth": &a.Auth, "identitytoken": &a.IdentityToken}
			if !p.stringFields(v, kpath, fields, []string{"username", "password", "auth", "identitytoken"}) {
				ok = false
				return
			}
			if err := checkAuth(a); err != nil {
				p.fail(deref(v), kpath, "%v", err)
				ok = false
				return
			}
			if *a != (RegistryAuth{}) {
				rc.Auth = a
			}
		case "tls":
			t := &RegistryTLS{}
			good := p.mapping(v, kpath, func(key string, k, v *yaml.Node) {
				fpath := child(kpath, key)
				var dst *string
				switch key {
				case "cert_file":
					dst = &t.CertFile
				case "key_file":
					dst = &t.KeyFile
				case "ca_file":
					dst = &t.CAFile
				case "insecure_skip_verify":
					t.InsecureSkipVerify, _ = p.boolean(v, fpath)
					return
				default:
					p.unknown(k, kpath, key, []string{"cert_file", "key_file", "ca_file", "insecure_skip_verify"})
					ok = false
					return
				}
				if s, good := p.str(v, fpath); good {
					if err := checkFilePath(s); err != nil {
						p.fail(v, fpath, "%v", err)
						ok = false
						return
					}
					*dst = s
				}
			})
			if !good || !ok {
				return
			}
			if (t.CertFile == "") != (t.KeyFile == "") {
				p.fail(deref(v), kpath, "needs cert_file and key_file together (a client certificate and its key), or neither")
				ok = false
				return
			}
			if *t != (RegistryTLS{}) {
				rc.TLS = t
			}
		default:
			p.unknown(k, path, key, []string{"auth", "tls"})
			ok = false
		}
	})
	return rc, ok
}

// stringFields walks a mapping of string fields into dst, reporting unknown
// keys.
func (p *parser) stringFields(n *yaml.Node, path string, dst map[string]*string, known []string) bool {
	ok := true
	good := p.mapping(n, path, func(key string, k, v *yaml.Node) {
		fpath := child(path, key)
		d, found := dst[key]
		if !found {
			p.unknown(k, path, key, known)
			ok = false
			return
		}
		if s, good := p.str(v, fpath); good {
			*d = s
		}
	})
	return good && ok
}
