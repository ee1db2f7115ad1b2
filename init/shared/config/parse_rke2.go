package config

import (
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// rke2TypedKeys are the rke2 keys the init reads itself, with how each is
// checked; any other key is kept as written.
var rke2TypedKeys = map[string]func(p *parser, v *yaml.Node, path string) bool{
	"token":                       func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkToken) },
	"agent-token":                 func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkToken) },
	"server":                      func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkServerURL) },
	"node-name":                   func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkNodeName) },
	"node-label":                  func(p *parser, v *yaml.Node, path string) bool { return p.rke2List(v, path, checkLabel) },
	"node-taint":                  func(p *parser, v *yaml.Node, path string) bool { return p.rke2List(v, path, checkTaint) },
	"tls-san":                     func(p *parser, v *yaml.Node, path string) bool { return p.rke2List(v, path, checkSAN) },
	"node-ip":                     func(p *parser, v *yaml.Node, path string) bool { return p.rke2List(v, path, checkNodeIP) },
	"cni":                         (*parser).rke2CNI,
	"etcd-snapshot-schedule-cron": func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkCron) },
	"etcd-snapshot-retention":     func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkRetention) },
	"etcd-snapshot-name":          func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkSnapshotName) },
	"etcd-snapshot-dir":           func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkSnapshotDir) },
	"etcd-snapshot-compress":      func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkBool) },
	"etcd-disable-snapshots":      func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkBool) },
	"cluster-reset":               func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkBool) },
	"etcd-s3":                     func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkBool) },
	"etcd-s3-skip-ssl-verify":     func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkBool) },
	"etcd-s3-insecure":            func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkBool) },
	"etcd-s3-timeout":             func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkDuration) },
	"etcd-s3-endpoint-ca":         func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkAbsFile) },
	"etcd-s3-bucket-lookup-type":  func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkBucketLookup) },
	"etcd-s3-config-secret":       func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkNodeName) },
	"etcd-s3-proxy":               func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkS3Proxy) },
	"cluster-reset-restore-path":  func(p *parser, v *yaml.Node, path string) bool { return p.rke2String(v, path, checkRestorePath) },
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
