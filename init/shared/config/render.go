package config

import (
	"fmt"
	"slices"

	"gopkg.in/yaml.v3"
)

// renderedHeader opens every rendered file, so that whoever edits one on a
// node learns where the values come from.
const renderedHeader = "# Written by rke2-init from the node config at every boot; edit the config, not this file.\n"

// RKE2ConfigYAML renders the rke2 section as RKE2's
// /etc/rancher/rke2/config.yaml: keys sorted, values as written in the
// config, so the same config always gives the same bytes. A config without
// rke2 keys renders an empty mapping.
func (c *Config) RKE2ConfigYAML() ([]byte, error) {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	keys := make([]string, 0, len(c.RKE2))
	for k := range c.RKE2 {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := c.RKE2[k]
		if v == nil {
			continue
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, cleanNode(v))
	}
	b, err := encodeYAML(m)
	if err != nil {
		return nil, fmt.Errorf("render rke2 config.yaml: %w", err)
	}
	return b, nil
}

// RegistriesYAML renders the registries section as RKE2's
// /etc/rancher/rke2/registries.yaml, keys sorted. A config without
// registries renders an empty mapping.
func (c *Config) RegistriesYAML() ([]byte, error) {
	b, err := encodeYAML(c.Registries)
	if err != nil {
		return nil, fmt.Errorf("render rke2 registries.yaml: %w", err)
	}
	return b, nil
}

// encodeYAML encodes v with two-space indents after the header line. The
// encoder panics on some values it cannot encode; that becomes an error.
func encodeYAML(v any) ([]byte, error) {
	b, err := encodeDocument(v)
	if err != nil {
		return nil, err
	}
	return append([]byte(renderedHeader), b...), nil
}
