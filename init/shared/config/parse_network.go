package config

import "gopkg.in/yaml.v3"

// networkFields are network's keys.
var networkFields = fieldTable[Network]{fields: []field[Network]{
	{"interfaces", func(p *parser, nw *Network, _, v *yaml.Node, path string) { nw.Interfaces = p.interfaces(v, path) }},
	{"dns", func(p *parser, nw *Network, _, v *yaml.Node, path string) { nw.DNS = p.dns(v, path) }},
}}

// network walks network.
func (p *parser) network(n *yaml.Node, path string) Network {
	var nw Network
	networkFields.walk(p, n, path, &nw)
	return nw
}

// interfaceEntry is one network.interfaces entry as it is read, with the
// names and MACs of the entries before it (name or MAC to line).
type interfaceEntry struct {
	ifc Interface
	// named is set by a name or mac key even if its value is bad, so
	// that one mistake is reported once.
	named       bool
	names, macs map[string]int
}

// interfaceFields are an interface's keys.
var interfaceFields = fieldTable[interfaceEntry]{fields: []field[interfaceEntry]{
	{"name", func(p *parser, e *interfaceEntry, _, v *yaml.Node, path string) {
		e.named = true
		if s, ok := p.str(v, path); ok {
			if err := checkLinkName(s); err != nil {
				p.fail(v, path, "%v", err)
			} else if line, dup := e.names[s]; dup {
				p.fail(v, path, "%q is already configured on line %d; merge the two entries", s, line)
			} else {
				e.names[s] = v.Line
				e.ifc.Name = s
			}
		}
	}},
	{"mac", func(p *parser, e *interfaceEntry, _, v *yaml.Node, path string) {
		e.named = true
		if s, ok := p.str(v, path); ok {
			mac, err := parseMAC(s)
			if err != nil {
				p.fail(v, path, "%v", err)
			} else if line, dup := e.macs[mac.String()]; dup {
				p.fail(v, path, "%q is already configured on line %d; merge the two entries", s, line)
			} else {
				e.macs[mac.String()] = v.Line
				e.ifc.MAC = mac
			}
		}
	}},
	{"dhcp4", func(p *parser, e *interfaceEntry, _, v *yaml.Node, path string) { e.ifc.DHCP4, _ = p.boolean(v, path) }},
	{"addresses", func(p *parser, e *interfaceEntry, _, v *yaml.Node, path string) {
		p.sequence(v, path, func(j int, v *yaml.Node) {
			apath := index(path, j)
			if s, ok := p.str(v, apath); ok {
				if a, err := parseInterfaceAddress(s); err != nil {
					p.fail(v, apath, "%v", err)
				} else {
					e.ifc.Addresses = append(e.ifc.Addresses, a)
				}
			}
		})
	}},
	{"gateway4", func(p *parser, e *interfaceEntry, _, v *yaml.Node, path string) {
		if s, ok := p.str(v, path); ok {
			if a, err := parseGateway4(s); err != nil {
				p.fail(v, path, "%v", err)
			} else {
				e.ifc.Gateway4 = a
			}
		}
	}},
	{"routes", func(p *parser, e *interfaceEntry, _, v *yaml.Node, path string) { e.ifc.Routes = p.routes(v, path) }},
	{"mtu", func(p *parser, e *interfaceEntry, _, v *yaml.Node, path string) {
		if m, ok := p.integer(v, path, 68, 65535, "use a value from 68 to 65535, like 1500 or 9000"); ok {
			e.ifc.MTU = int(m)
		}
	}},
}}

// interfaces walks network.interfaces.
func (p *parser) interfaces(n *yaml.Node, path string) []Interface {
	var out []Interface
	names := map[string]int{}
	macs := map[string]int{}
	p.sequence(n, path, func(i int, v *yaml.Node) {
		ipath := index(path, i)
		e := interfaceEntry{names: names, macs: macs}
		if !interfaceFields.walk(p, v, ipath, &e) {
			if isNull(deref(v)) {
				p.fail(v, ipath, "is empty; give it a name like eth0 or a mac")
			}
			return
		}
		switch {
		case !e.named:
			p.fail(v, ipath, "has neither name nor mac; add one like \"name: eth0\" or \"mac: 52:54:00:12:34:56\"")
			return
		case e.ifc.Name == "" && e.ifc.MAC == nil:
			return
		}
		out = append(out, e.ifc)
	})
	return out
}

// routeEntry is one route as it is read.
type routeEntry struct {
	r                 Route
	hasTo, hasVia, ok bool
}

// routeFields are a route's keys.
var routeFields = fieldTable[routeEntry]{
	fields: []field[routeEntry]{
		{"to", func(p *parser, e *routeEntry, _, v *yaml.Node, path string) {
			if s, good := p.str(v, path); good {
				to, err := parseRouteDest(s)
				if err != nil {
					p.fail(v, path, "%v", err)
					e.ok = false
				}
				e.r.To, e.hasTo = to, true
			}
		}},
		{"via", func(p *parser, e *routeEntry, _, v *yaml.Node, path string) {
			if s, good := p.str(v, path); good {
				via, err := parseNextHop(s)
				if err != nil {
					p.fail(v, path, "%v", err)
					e.ok = false
				}
				e.r.Via, e.hasVia = via, true
			}
		}},
		{"metric", func(p *parser, e *routeEntry, _, v *yaml.Node, path string) {
			if m, good := p.integer(v, path, 0, 1<<32-1, "use a value from 0 to 4294967295, like 100"); good {
				e.r.Metric = uint32(m)
			} else {
				e.ok = false
			}
		}},
	},
	onBad: func(e *routeEntry) { e.ok = false },
}

// routes walks an interface's routes.
func (p *parser) routes(n *yaml.Node, path string) []Route {
	var out []Route
	p.sequence(n, path, func(i int, v *yaml.Node) {
		ipath := index(path, i)
		e := routeEntry{ok: true}
		if !routeFields.walk(p, v, ipath, &e) {
			if isNull(deref(v)) {
				p.fail(v, ipath, "is empty; give it to and via")
			}
			return
		}
		r := e.r
		switch {
		case !e.ok:
		case !e.hasTo || !e.hasVia:
			p.fail(v, ipath, "needs both to and via, like \"to: 10.20.0.0/16\" and \"via: 10.0.0.254\"")
		case r.To.Addr().Is4() != r.Via.Is4():
			p.fail(v, ipath, "mixes address families: to %s is %s but via %s is %s; use a next hop of the same family", r.To, family(r.To.Addr()), r.Via, family(r.Via))
		default:
			out = append(out, r)
		}
	})
	return out
}

// dnsFields are network.dns's keys.
var dnsFields = fieldTable[DNS]{fields: []field[DNS]{
	{"servers", func(p *parser, d *DNS, _, v *yaml.Node, path string) {
		p.sequence(v, path, func(i int, v *yaml.Node) {
			ipath := index(path, i)
			if s, ok := p.str(v, ipath); ok {
				if a, err := parseDNSServer(s); err != nil {
					p.fail(v, ipath, "%v", err)
				} else {
					d.Servers = append(d.Servers, a)
				}
			}
		})
	}},
	{"search", func(p *parser, d *DNS, _, v *yaml.Node, path string) {
		p.sequence(v, path, func(i int, v *yaml.Node) {
			ipath := index(path, i)
			if s, ok := p.str(v, ipath); ok {
				if err := checkDomain(s); err != nil {
					p.fail(v, ipath, "%v", err)
				} else {
					d.Search = append(d.Search, s)
				}
			}
		})
	}},
}}

// dns walks network.dns.
func (p *parser) dns(n *yaml.Node, path string) DNS {
	var d DNS
	dnsFields.walk(p, n, path, &d)
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

// ntpFields are ntp's keys.
var ntpFields = fieldTable[NTP]{
	fields: []field[NTP]{
		{"enabled", func(p *parser, t *NTP, _, v *yaml.Node, path string) {
			if b, ok := p.boolean(v, path); ok {
				t.Enabled = &b
			}
		}},
		{"servers", func(p *parser, t *NTP, _, v *yaml.Node, path string) { t.Servers = p.ntpServers(v, path) }},
		{"pools", func(p *parser, t *NTP, _, v *yaml.Node, path string) { t.Pools = p.ntpServers(v, path) }},
	},
	unsupported: ntpUnsupportedKeys,
}

// ntp walks ntp.
func (p *parser) ntp(n *yaml.Node, path string) NTP {
	var t NTP
	ntpFields.walk(p, n, path, &t)
	return t
}

// ntpServers walks ntp.servers or ntp.pools.
func (p *parser) ntpServers(n *yaml.Node, path string) []string {
	return p.checkedStrings(n, path, `name a server like "pool.ntp.org"`, checkNTPServer)
}
