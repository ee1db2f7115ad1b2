package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Sources of a NoCloud "cidata" volume, as they are named in errors.
const (
	UserDataSource = "cidata:user-data"
	MetaDataSource = "cidata:meta-data"
)

// cloudConfigHeader is the first line cloud-init demands of a user-data
// config; other first lines (#!, #cloud-boothook, MIME) are other formats.
const cloudConfigHeader = "#cloud-config"

// MetaData is the NoCloud meta-data file: who the instance is.
type MetaData struct {
	// InstanceID is "instance-id": changes when the machine is a new
	// instance.
	InstanceID string
	// LocalHostname is "local-hostname": the host name the platform gives
	// the machine, possibly a fully qualified name.
	LocalHostname string
}

// Hostname returns the host name meta-data gives: the first label of
// local-hostname, as cloud-init sets it; "" if there is none.
func (m *MetaData) Hostname() string {
	if m == nil {
		return ""
	}
	h, _, _ := strings.Cut(m.LocalHostname, ".")
	return h
}

// ParseMetaData parses a NoCloud meta-data document. Unlike a config, keys
// it does not know are ignored: hypervisors and tools write their own
// (public-keys, hostname, network-interfaces, ...) into meta-data, and
// nothing in them is meant for this OS. The keys it reads are checked.
func ParseMetaData(source string, data []byte) (*MetaData, error) {
	root, err := decodeDocument(source, data)
	if err != nil {
		return nil, err
	}
	md := &MetaData{}
	if root == nil || isNull(root) {
		return md, nil
	}
	p := &parser{source: source}
	if root.Kind != yaml.MappingNode {
		p.fail(root, "", "must be a YAML mapping like \"instance-id: node1\", not a %s", kindName(root))
		return nil, p.err()
	}
	p.mapping(root, "", func(key string, k, v *yaml.Node) {
		switch key {
		case "instance-id":
			if s, ok := p.str(v, key); ok {
				md.InstanceID = s
			}
		case "local-hostname":
			if s, ok := p.str(v, key); ok && s != "" {
				// A fully qualified name may be longer than a host name; its
				// first label, which becomes the host name, is at most 63.
				if !isDNSName(s, 253) {
					p.fail(v, key, "%q is not a host name: use letters, digits and \"-\" in dot-separated labels, like \"node1\" or \"node1.example.com\"", s)
					return
				}
				md.LocalHostname = s
			}
		}
	})
	if err := p.err(); err != nil {
		return nil, err
	}
	return md, nil
}

// ParseUserData parses a NoCloud user-data document. It must be a
// "#cloud-config" document, as cloud-init demands; empty user-data is an
// empty config.
func ParseUserData(source string, data []byte) (*Config, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if len(bytes.TrimSpace(data)) == 0 {
		return &Config{}, nil
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	first = bytes.TrimRight(first, " \t\r")
	if string(first) != cloudConfigHeader {
		what := "its first line is not \"#cloud-config\"; add that line"
		switch {
		case bytes.HasPrefix(first, []byte("#!")):
			what = "it is a script; this OS runs no scripts at boot, write a \"#cloud-config\" document instead"
		case bytes.HasPrefix(first, []byte("Content-Type:")) || bytes.HasPrefix(first, []byte("MIME-Version:")):
			what = "it is a MIME multipart document; give a single \"#cloud-config\" document instead"
		case bytes.HasPrefix(first, []byte("#")):
			what = fmt.Sprintf("%q is not a format this OS reads; begin the file with \"#cloud-config\"", string(first))
		}
		return nil, &Error{Source: source, Line: 1, Column: 1, Msg: "is not a cloud-config: " + what}
	}
	return Parse(source, data)
}

// ParseNoCloud parses the user-data and meta-data files of a NoCloud
// "cidata" volume into one config: meta-data's local-hostname sets the host
// name when user-data does not. Either may be nil (file absent).
func ParseNoCloud(userData, metaData []byte) (*Config, error) {
	c, uerr := ParseUserData(UserDataSource, userData)
	md, merr := ParseMetaData(MetaDataSource, metaData)
	if uerr != nil || merr != nil {
		return nil, errors.Join(merr, uerr)
	}
	if c.Hostname == "" {
		c.Hostname = md.Hostname()
	}
	return c, nil
}
