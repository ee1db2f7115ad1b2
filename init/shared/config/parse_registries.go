package config

import "gopkg.in/yaml.v3"

// registriesFields are registries' keys.
var registriesFields = fieldTable[Registries]{fields: []field[Registries]{
	{"mirrors", func(p *parser, r *Registries, _, v *yaml.Node, path string) {
		p.mapping(v, path, func(name string, k, v *yaml.Node) {
			mpath := child(path, name)
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
	}},
	{"configs", func(p *parser, r *Registries, _, v *yaml.Node, path string) {
		p.mapping(v, path, func(host string, k, v *yaml.Node) {
			hpath := child(path, host)
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
	}},
}}

// registries walks registries.
func (p *parser) registries(n *yaml.Node, path string) Registries {
	var r Registries
	registriesFields.walk(p, n, path, &r)
	return r
}

// mirrorEntry is one registries.mirrors entry as it is read.
type mirrorEntry struct {
	m  Mirror
	ok bool
}

// mirrorFields are a mirror's keys.
var mirrorFields = fieldTable[mirrorEntry]{
	fields: []field[mirrorEntry]{
		{"endpoint", func(p *parser, e *mirrorEntry, _, v *yaml.Node, path string) {
			p.sequence(v, path, func(i int, v *yaml.Node) {
				ipath := index(path, i)
				s, good := p.str(v, ipath)
				if !good {
					e.ok = false
					if isNull(deref(v)) {
						p.fail(v, ipath, "is empty; give a URL like \"https://mirror.example.com:5000\"")
					}
					return
				}
				if err := checkEndpoint(s); err != nil {
					p.fail(v, ipath, "%v", err)
					e.ok = false
					return
				}
				e.m.Endpoints = append(e.m.Endpoints, s)
			})
		}},
		{"rewrite", func(p *parser, e *mirrorEntry, _, v *yaml.Node, path string) {
			p.mapping(v, path, func(re string, k, v *yaml.Node) {
				rpath := child(path, re)
				if err := checkRewrite(re); err != nil {
					p.fail(k, rpath, "%v", err)
					e.ok = false
					return
				}
				s, good := p.str(v, rpath)
				if !good {
					e.ok = false
					if isNull(deref(v)) {
						p.fail(v, rpath, "has no replacement; give one like \"mirrored/$1\"")
					}
					return
				}
				if e.m.Rewrites == nil {
					e.m.Rewrites = map[string]string{}
				}
				e.m.Rewrites[re] = s
			})
		}},
	},
	onBad: func(e *mirrorEntry) { e.ok = false },
}

// mirror walks one registries.mirrors entry.
func (p *parser) mirror(n *yaml.Node, path string) (Mirror, bool) {
	e := mirrorEntry{ok: true}
	mirrorFields.walk(p, n, path, &e)
	return e.m, e.ok
}

// registryEntry is one registries.configs entry as it is read.
type registryEntry struct {
	rc RegistryConfig
	ok bool
}

// registryFields are a registries.configs entry's keys.
var registryFields = fieldTable[registryEntry]{
	fields: []field[registryEntry]{
		{"auth", func(p *parser, e *registryEntry, _, v *yaml.Node, path string) {
			a := authEntry{ok: true}
			if !authFields.walk(p, v, path, &a) || !a.ok {
				e.ok = false
				return
			}
			if err := checkAuth(&a.a); err != nil {
				p.fail(deref(v), path, "%v", err)
				e.ok = false
				return
			}
			if a.a != (RegistryAuth{}) {
				e.rc.Auth = &a.a
			}
		}},
		{"tls", func(p *parser, e *registryEntry, _, v *yaml.Node, path string) {
			t := tlsEntry{ok: true}
			good := tlsFields.walk(p, v, path, &t)
			if !t.ok {
				e.ok = false
			}
			if !good || !e.ok {
				return
			}
			if (t.t.CertFile == "") != (t.t.KeyFile == "") {
				p.fail(deref(v), path, "needs cert_file and key_file together (a client certificate and its key), or neither")
				e.ok = false
				return
			}
			if t.t != (RegistryTLS{}) {
				e.rc.TLS = &t.t
			}
		}},
	},
	onBad: func(e *registryEntry) { e.ok = false },
}

// registryConfig walks one registries.configs entry.
func (p *parser) registryConfig(n *yaml.Node, path string) (RegistryConfig, bool) {
	e := registryEntry{ok: true}
	registryFields.walk(p, n, path, &e)
	return e.rc, e.ok
}

// authEntry is a registry's auth as it is read.
type authEntry struct {
	a  RegistryAuth
	ok bool
}

// authFields are a registry auth's keys, all strings.
var authFields = fieldTable[authEntry]{
	fields: []field[authEntry]{
		authField("username", func(a *RegistryAuth) *string { return &a.Username }),
		authField("password", func(a *RegistryAuth) *string { return &a.Password }),
		authField("auth", func(a *RegistryAuth) *string { return &a.Auth }),
		authField("identitytoken", func(a *RegistryAuth) *string { return &a.IdentityToken }),
	},
	onBad: func(e *authEntry) { e.ok = false },
}

func authField(key string, dst func(*RegistryAuth) *string) field[authEntry] {
	return field[authEntry]{key, func(p *parser, e *authEntry, _, v *yaml.Node, path string) {
		if s, good := p.str(v, path); good {
			*dst(&e.a) = s
		}
	}}
}

// tlsEntry is a registry's tls as it is read.
type tlsEntry struct {
	t  RegistryTLS
	ok bool
}

// tlsFields are a registry tls's keys.
var tlsFields = fieldTable[tlsEntry]{
	fields: []field[tlsEntry]{
		tlsFile("cert_file", func(t *RegistryTLS) *string { return &t.CertFile }),
		tlsFile("key_file", func(t *RegistryTLS) *string { return &t.KeyFile }),
		tlsFile("ca_file", func(t *RegistryTLS) *string { return &t.CAFile }),
		{"insecure_skip_verify", func(p *parser, e *tlsEntry, _, v *yaml.Node, path string) {
			e.t.InsecureSkipVerify, _ = p.boolean(v, path)
		}},
	},
	onBad: func(e *tlsEntry) { e.ok = false },
}

func tlsFile(key string, dst func(*RegistryTLS) *string) field[tlsEntry] {
	return field[tlsEntry]{key, func(p *parser, e *tlsEntry, _, v *yaml.Node, path string) {
		if s, good := p.str(v, path); good {
			if err := checkFilePath(s); err != nil {
				p.fail(v, path, "%v", err)
				e.ok = false
				return
			}
			*dst(&e.t) = s
		}
	}}
}
