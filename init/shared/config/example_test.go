package config_test

import (
	"encoding/base64"
	"fmt"

	"github.com/rke2os/rke2os/init/shared/config"
)

// The init reads its sources in order and merges them, later wins.
func ExampleMerge() {
	baked, err := config.Parse("/etc/rke2os/config.yaml", []byte("role: agent\nrke2:\n  server: https://192.168.122.10:9345\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	cidata, err := config.ParseNoCloud(
		[]byte("#cloud-config\nrke2:\n  token: 5f0c8e3a9b1d47e2a6c4f8b2d9e7a1c3\n"),
		[]byte("instance-id: iid-rke2-agent-1\nlocal-hostname: rke2-agent-1.cluster.example.com\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	doc := base64.StdEncoding.EncodeToString([]byte("rke2:\n  node-label: [topology.kubernetes.io/zone=rack-2]\n"))
	cmdline, err := config.ParseCmdline("BOOT_IMAGE=/boot/vmlinuz console=ttyS0 rke2.config=" + doc)
	if err != nil {
		fmt.Println(err)
		return
	}
	c := config.Merge(baked, cidata, cmdline)
	if err := c.Validate(config.RoleServer); err != nil {
		fmt.Println(err)
		return
	}
	out, _ := c.RKE2ConfigYAML()
	fmt.Printf("hostname %s, role %s\n%s", c.Hostname, c.Role(config.RoleServer), out)
	// Output:
	// hostname rke2-agent-1, role agent
	// # Written by rke2-init from the node config at every boot; edit the config, not this file.
	// node-label:
	//   - topology.kubernetes.io/zone=rack-2
	// server: https://192.168.122.10:9345
	// token: 5f0c8e3a9b1d47e2a6c4f8b2d9e7a1c3
}

// Every problem is reported with its source, line, key path and fix.
func ExampleParse() {
	_, err := config.Parse("/etc/x.yaml", []byte("hostname: node-1\nwrite_files:\n  - path: /etc/motd\n    permissions: rw\n"))
	fmt.Println(err)
	// Output:
	// config /etc/x.yaml line 4 column 18: write_files[0].permissions "rw" is not an octal mode like "0644"
}
