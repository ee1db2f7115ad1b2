package config

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

// YAML renders the whole config as a config document that Parse reads
// back to the same config: what an install carries over to the installed
// disk, so that the node boots from it with the config it was installed
// with. Keys come in the schema's order, maps sorted; header (comment
// lines, or "") opens the document.
func (c *Config) YAML(header string) ([]byte, error) {
	doc := renderedConfig{
		Hostname: c.Hostname, Role: c.NodeRole, Sysctls: c.Sysctls, Modules: c.Modules,
		OnContainerdExit: c.OnContainerdExit, Debug: c.Debug,
	}
	for _, f := range c.WriteFiles {
		doc.WriteFiles = append(doc.WriteFiles, renderedFile{Path: f.Path, Content: f.Content, Encoding: f.Encoding,
			Permissions: f.Permissions, Owner: f.Owner, Append: f.Append})
	}
	if len(c.Network.Interfaces)+len(c.Network.DNS.Servers)+len(c.Network.DNS.Search) > 0 {
		nw := &renderedNetwork{}
		for _, ifc := range c.Network.Interfaces {
			r := renderedInterface{Name: ifc.Name, DHCP4: ifc.DHCP4, MTU: ifc.MTU}
			if len(ifc.MAC) > 0 {
				r.MAC = ifc.MAC.String()
			}
			for _, a := range ifc.Addresses {
				r.Addresses = append(r.Addresses, a.String())
			}
			if ifc.Gateway4.IsValid() {
				r.Gateway4 = ifc.Gateway4.String()
			}
			for _, rt := range ifc.Routes {
				r.Routes = append(r.Routes, renderedRoute{To: rt.To.String(), Via: rt.Via.String(), Metric: rt.Metric})
			}
			nw.Interfaces = append(nw.Interfaces, r)
		}
		if len(c.Network.DNS.Servers)+len(c.Network.DNS.Search) > 0 {
			nw.DNS = &renderedDNS{Search: c.Network.DNS.Search}
			for _, a := range c.Network.DNS.Servers {
				nw.DNS.Servers = append(nw.DNS.Servers, a.String())
			}
		}
		doc.Network = nw
	}
	if c.NTP.Enabled != nil || len(c.NTP.Servers)+len(c.NTP.Pools) > 0 {
		doc.NTP = &renderedNTP{Enabled: c.NTP.Enabled, Servers: c.NTP.Servers, Pools: c.NTP.Pools}
	}
	if len(c.RKE2) > 0 {
		doc.RKE2 = map[string]*yaml.Node{}
		for k, v := range c.RKE2 {
			if v != nil {
				doc.RKE2[k] = cleanNode(v)
			}
		}
	}
	if len(c.Registries.Mirrors)+len(c.Registries.Configs) > 0 {
		doc.Registries = &c.Registries
	}
	if c.Join.TrustOnFirstUse != nil {
		doc.Join = &renderedJoin{TrustOnFirstUse: c.Join.TrustOnFirstUse}
	}
	if in := c.Install; in != nil {
		r := &renderedInstall{Device: in.Device, Wipe: in.Wipe, After: in.After}
		if d := in.Disk; d != nil {
			r.Disk = &renderedDisk{Model: d.Model, Serial: d.Serial}
			if d.MinSize > 0 {
				r.Disk.MinSize = FormatSize(d.MinSize)
			}
		}
		doc.Install = r
	}
	b, err := encodeDocument(doc)
	if err != nil {
		return nil, fmt.Errorf("render the config: %w", err)
	}
	return append([]byte(header), b...), nil
}

// encodeDocument encodes v with two-space indents; an encoder panic is an
// error.
func encodeDocument(v any) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("yaml encoder: %v", r)
		}
	}()
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// The config's YAML form, key for key: what YAML renders.
type (
	renderedConfig struct {
		Hostname         string                `yaml:"hostname,omitempty"`
		Role             string                `yaml:"role,omitempty"`
		WriteFiles       []renderedFile        `yaml:"write_files,omitempty"`
		Sysctls          map[string]string     `yaml:"sysctls,omitempty"`
		Modules          []string              `yaml:"modules,omitempty"`
		Network          *renderedNetwork      `yaml:"network,omitempty"`
		NTP              *renderedNTP          `yaml:"ntp,omitempty"`
		RKE2             map[string]*yaml.Node `yaml:"rke2,omitempty"`
		Registries       *Registries           `yaml:"registries,omitempty"`
		OnContainerdExit string                `yaml:"on_containerd_exit,omitempty"`
		Debug            map[string]bool       `yaml:"debug,omitempty"`
		Join             *renderedJoin         `yaml:"join,omitempty"`
		Install          *renderedInstall      `yaml:"install,omitempty"`
	}
	renderedFile struct {
		Path        string `yaml:"path"`
		Content     string `yaml:"content"` // yaml.v3 writes bytes that are not UTF-8 as !!binary
		Encoding    string `yaml:"encoding,omitempty"`
		Permissions string `yaml:"permissions,omitempty"`
		Owner       string `yaml:"owner,omitempty"`
		Append      bool   `yaml:"append,omitempty"`
	}
	renderedNetwork struct {
		Interfaces []renderedInterface `yaml:"interfaces,omitempty"`
		DNS        *renderedDNS        `yaml:"dns,omitempty"`
	}
	renderedInterface struct {
		Name      string          `yaml:"name,omitempty"`
		MAC       string          `yaml:"mac,omitempty"`
		DHCP4     bool            `yaml:"dhcp4,omitempty"`
		Addresses []string        `yaml:"addresses,omitempty"`
		Gateway4  string          `yaml:"gateway4,omitempty"`
		Routes    []renderedRoute `yaml:"routes,omitempty"`
		MTU       int             `yaml:"mtu,omitempty"`
	}
	renderedRoute struct {
		To     string `yaml:"to"`
		Via    string `yaml:"via"`
		Metric uint32 `yaml:"metric,omitempty"`
	}
	renderedDNS struct {
		Servers []string `yaml:"servers,omitempty"`
		Search  []string `yaml:"search,omitempty"`
	}
	renderedNTP struct {
		Enabled *bool    `yaml:"enabled,omitempty"`
		Servers []string `yaml:"servers,omitempty"`
		Pools   []string `yaml:"pools,omitempty"`
	}
	renderedJoin struct {
		TrustOnFirstUse *bool `yaml:"trust_on_first_use,omitempty"`
	}
	renderedInstall struct {
		Device string        `yaml:"device,omitempty"`
		Disk   *renderedDisk `yaml:"disk,omitempty"`
		Wipe   bool          `yaml:"wipe,omitempty"`
		After  string        `yaml:"after,omitempty"`
	}
	renderedDisk struct {
		MinSize string `yaml:"min_size,omitempty"`
		Model   string `yaml:"model,omitempty"`
		Serial  string `yaml:"serial,omitempty"`
	}
)
