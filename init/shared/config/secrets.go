package config

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// rke2SecretKeys are the keys of RKE2's config.yaml whose values are
// secrets (datastore-endpoint: a database URL with its password).
var rke2SecretKeys = []string{"token", "agent-token", "etcd-s3-access-key", "etcd-s3-secret-key", "etcd-s3-session-token", "datastore-endpoint"}

// rke2SecretURLKeys are the keys of RKE2's config.yaml whose values are
// secrets when they carry user:password@ (a proxy's credentials).
var rke2SecretURLKeys = []string{"etcd-s3-proxy"}

// SecretPaths lists, sorted, the key paths of c that hold a secret: the
// rke2 keys of tokens and credentials (etcd-s3-proxy's when it carries
// user:password@), and registries' credentials
// ("registries.configs.<host>.auth"). The builder writes an image that
// carries any of them private (0600); the init warns when the kernel
// command line, which every process on the node reads in /proc/cmdline,
// carries any.
func (c *Config) SecretPaths() []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, k := range rke2SecretKeys {
		for _, key := range []string{k, k + "+"} {
			if _, ok := c.RKE2[key]; ok {
				out = append(out, "rke2."+key)
			}
		}
	}
	for _, k := range rke2SecretURLKeys {
		for _, key := range []string{k, k + "+"} {
			if u, err := url.Parse(c.RKE2.String(key)); err == nil && u.User != nil {
				out = append(out, "rke2."+key)
			}
		}
	}
	for _, host := range slices.Sorted(maps.Keys(c.Registries.Configs)) {
		if a := c.Registries.Configs[host].Auth; a != nil && (a.Password != "" || a.Auth != "" || a.IdentityToken != "") {
			out = append(out, "registries.configs."+host+".auth")
		}
	}
	slices.Sort(out)
	return out
}

// CmdlineSecretWarnings says, in one sentence, which secrets the configs
// of a kernel command line (its rke2.config= parameters) carry: every
// process on the node, every pod's included, reads the command line in
// /proc/cmdline. A command line whose configs do not parse says nothing:
// that is an error of its own.
func CmdlineSecretWarnings(cmdline string) []string {
	c, err := ParseCmdline(cmdline)
	if err != nil {
		return nil
	}
	paths := c.SecretPaths()
	if len(paths) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s carries %s: every process on the node reads the kernel command line (/proc/cmdline), every pod's included, "+
		"and the boot loader's config holds it in the clear; give secrets in the NoCloud user-data, or bake the config into the image (rke2-build image --config, whose outputs are then private)",
		CmdlineSource, strings.Join(paths, ", "))}
}

// AgentTokenWarnings says, one sentence each, when the config of an agent
// (its role, defaultRole if it sets none) gives it a server token: one in
// the servers' form (K10<hash>::server:<secret>), or one with the secret of
// serverToken, the server token the image carries ("" for none). With a
// server token anyone on the agent can take the cluster's CA keys from
// any server (/v1-rke2/server-bootstrap); an agent needs the agent token.
func (c *Config) AgentTokenWarnings(defaultRole, serverToken string) []string {
	if c == nil || c.Role(defaultRole) != RoleAgent || c.RKE2.Token() == "" {
		return nil
	}
	user, secret := tokenParts(c.RKE2.Token())
	fix := "give agents the agent token: the server's /var/lib/rancher/rke2/server/node-token, or agent-token of rke2-build secrets"
	switch _, baked := tokenParts(serverToken); {
	case user == "server":
		return []string{"rke2.token is a server token (K10<hash>::server:<secret>) and the node is an agent: with it anyone on the node " +
			"can take the cluster's CA keys from any server (/v1-rke2/server-bootstrap); " + fix}
	case serverToken != "" && secret == baked:
		return []string{"rke2.token holds the secret of the server token this image carries and the node is an agent: with it anyone on the node " +
			"can take the cluster's CA keys from any server (/v1-rke2/server-bootstrap); " + fix}
	}
	return nil
}

// tokenParts are the user and the secret of a token: "" and the token for
// a bare secret, the parts of "K10<hash>::<user>:<secret>" for a full one.
func tokenParts(s string) (user, secret string) {
	s = strings.TrimSpace(s)
	rest, full := strings.CutPrefix(s, "K10")
	if !full {
		return "", s
	}
	if _, creds, ok := strings.Cut(rest, "::"); ok {
		rest = creds
	}
	if u, p, ok := strings.Cut(rest, ":"); ok {
		return u, p
	}
	return "", rest
}
