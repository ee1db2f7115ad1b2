package config

import (
	"regexp"

	"gopkg.in/yaml.v3"
)

// fileEntry is one write_files entry as it is read.
type fileEntry struct {
	f       WriteFile
	content *yaml.Node
	hasPath bool
	ok      bool
}

// fileFields are a write_files entry's keys.
var fileFields = fieldTable[fileEntry]{
	fields: []field[fileEntry]{
		{"path", func(p *parser, e *fileEntry, _, v *yaml.Node, path string) {
			if s, good := p.str(v, path); good {
				if err := checkFilePath(s); err != nil {
					p.fail(v, path, "%v", err)
					e.ok = false
				}
				e.f.Path, e.hasPath = s, true
			}
		}},
		{"content", func(p *parser, e *fileEntry, _, v *yaml.Node, path string) {
			e.content = deref(v)
			if e.content.Kind == yaml.ScalarNode && e.content.ShortTag() == "!!binary" {
				b, err := decodeBase64(e.content.Value)
				if err != nil {
					p.fail(e.content, path, "is a !!binary that is not valid base64: %v", err)
					e.ok = false
				}
				e.f.Content = string(b)
			} else if s, good := p.str(v, path); good {
				e.f.Content = s
			}
		}},
		{"encoding", checkedFileField(canonicalEncodingErr, func(e *fileEntry, s string) { e.f.Encoding = s })},
		{"permissions", checkedFileField(parseModeErr, func(e *fileEntry, s string) { e.f.Permissions = s })},
		{"owner", checkedFileField(parseOwnerErr, func(e *fileEntry, s string) { e.f.Owner = s })},
		{"append", func(p *parser, e *fileEntry, _, v *yaml.Node, path string) { e.f.Append, _ = p.boolean(v, path) }},
	},
	unsupported: map[string]string{
		"defer": "is not supported: every file is written before RKE2 starts; remove it",
	},
	onBad: func(e *fileEntry) { e.ok = false },
}

// checkedFileField reads a string field of a write_files entry, checked
// by check and kept (even when bad, so that one mistake is one error) by
// set.
func checkedFileField(check func(string) error, set func(*fileEntry, string)) func(*parser, *fileEntry, *yaml.Node, *yaml.Node, string) {
	return func(p *parser, e *fileEntry, _, v *yaml.Node, path string) {
		if s, good := p.str(v, path); good {
			if err := check(s); err != nil {
				p.fail(v, path, "%v", err)
				e.ok = false
			}
			set(e, s)
		}
	}
}

func canonicalEncodingErr(s string) error { _, err := canonicalEncoding(s); return err }
func parseModeErr(s string) error         { _, err := parseMode(s); return err }
func parseOwnerErr(s string) error        { _, _, err := parseOwner(s); return err }

// writeFiles walks write_files.
func (p *parser) writeFiles(n *yaml.Node, path string) []WriteFile {
	var out []WriteFile
	p.sequence(n, path, func(i int, v *yaml.Node) {
		ipath := index(path, i)
		e := fileEntry{f: WriteFile{Permissions: DefaultPermissions, Owner: DefaultOwner}, ok: true}
		if !fileFields.walk(p, v, ipath, &e) {
			if isNull(deref(v)) {
				p.fail(v, ipath, "is empty; give it a path and content")
			}
			return
		}
		if !e.hasPath {
			p.fail(v, ipath, "has no path; add one like \"path: /etc/motd\"")
			return
		}
		if e.ok {
			// Decode now, so that a bad file fails the build or the boot with
			// its line rather than when it is written.
			if _, err := decodeContent(e.f.Content, e.f.Encoding); err != nil {
				at := e.content
				if at == nil {
					at = deref(v)
				}
				p.fail(at, child(ipath, "content"), "%v", err)
				return
			}
		}
		out = append(out, e.f)
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

// joinFields are join's keys.
var joinFields = fieldTable[Join]{fields: []field[Join]{
	{"trust_on_first_use", func(p *parser, j *Join, _, v *yaml.Node, path string) {
		if b, ok := p.boolean(v, path); ok {
			j.TrustOnFirstUse = &b
		}
	}},
}}

// join walks join.
func (p *parser) join(n *yaml.Node, path string) Join {
	var j Join
	joinFields.walk(p, n, path, &j)
	return j
}

// debugKeyRe matches debug switch names.
var debugKeyRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
