package config

import (
	"strings"
	"testing"
)

func TestParseMetaData(t *testing.T) {
	md, err := ParseMetaData(MetaDataSource, []byte("instance-id: iid-node-7\nlocal-hostname: node-7.example.com\npublic-keys: [ssh-ed25519 AAAA]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if md.InstanceID != "iid-node-7" || md.LocalHostname != "node-7.example.com" || md.Hostname() != "node-7" {
		t.Errorf("got %+v, Hostname %q", md, md.Hostname())
	}
	// JSON is YAML too, and some tools write meta-data as JSON.
	md, err = ParseMetaData(MetaDataSource, []byte(`{"instance-id": "i-1", "local-hostname": "node-8"}`))
	if err != nil || md.Hostname() != "node-8" {
		t.Errorf("JSON meta-data: %+v, %v", md, err)
	}
	md, err = ParseMetaData(MetaDataSource, nil)
	if err != nil || md.Hostname() != "" {
		t.Errorf("empty meta-data: %+v, %v", md, err)
	}
	for _, tc := range []struct{ doc, want string }{
		{"instance-id: a\nlocal-hostname: node_7\n", `config cidata:meta-data line 2 column 17: local-hostname "node_7" is not a host name`},
		{"local-hostname: [a]\n", "config cidata:meta-data line 1 column 17: local-hostname must be a single value"},
		{"- a\n", "config cidata:meta-data line 1 column 1: must be a YAML mapping"},
		{"instance-id: a\ninstance-id: b\n", "config cidata:meta-data line 2 column 1: instance-id is set twice"},
		{"a: [\n", "config cidata:meta-data line 1: is not valid YAML"},
	} {
		_, err := ParseMetaData(MetaDataSource, []byte(tc.doc))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ParseMetaData(%q) = %v, want prefix %q", tc.doc, err, tc.want)
		}
	}
}

func TestParseUserData(t *testing.T) {
	c, err := ParseUserData(UserDataSource, []byte("#cloud-config\r\nhostname: node-1\n"))
	if err != nil || c.Hostname != "node-1" {
		t.Errorf("got %+v, %v", c, err)
	}
	if c, err := ParseUserData(UserDataSource, []byte("\n")); err != nil || c == nil {
		t.Errorf("empty user-data: %+v, %v", c, err)
	}
	for _, tc := range []struct{ doc, want string }{
		{"hostname: node-1\n", `config cidata:user-data line 1 column 1: is not a cloud-config: its first line is not "#cloud-config"`},
		{"#!/bin/sh\necho hi\n", "is not a cloud-config: it is a script"},
		{"#cloud-boothook\n", `"#cloud-boothook" is not a format this OS reads`},
		{"Content-Type: multipart/mixed; boundary=x\n", "MIME multipart"},
		{"#cloud-config\nhostname: a\nrole: boss\n", `config cidata:user-data line 3 column 7: role "boss" is not a role`},
	} {
		_, err := ParseUserData(UserDataSource, []byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseUserData(%q) = %v, want %q", tc.doc, err, tc.want)
		}
	}
}

func TestParseNoCloud(t *testing.T) {
	meta := []byte("instance-id: iid-1\nlocal-hostname: node-3.example.com\n")
	c, err := ParseNoCloud([]byte("#cloud-config\nrole: agent\n"), meta)
	if err != nil || c.Hostname != "node-3" || c.NodeRole != RoleAgent {
		t.Errorf("meta-data host name: %+v, %v", c, err)
	}
	c, err = ParseNoCloud([]byte("#cloud-config\nhostname: from-user-data\n"), meta)
	if err != nil || c.Hostname != "from-user-data" {
		t.Errorf("user-data host name wins: %+v, %v", c, err)
	}
	c, err = ParseNoCloud(nil, nil)
	if err != nil || c.Hostname != "" {
		t.Errorf("empty volume: %+v, %v", c, err)
	}
	_, err = ParseNoCloud([]byte("#cloud-config\nrole: boss\n"), []byte("local-hostname: a_b\n"))
	if err == nil || !strings.Contains(err.Error(), "cidata:user-data line 2") || !strings.Contains(err.Error(), "cidata:meta-data line 1") {
		t.Errorf("errors of both files: %v", err)
	}
}
