package join

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/rke2os/rke2os/init/rke2node/supervisorapi"
	"github.com/rke2os/rke2os/init/shared/serverpki"
)

// Bootstrap takes a further server's share of the cluster from the
// supervisor at o.Server (a server's token: "K10...::server:<secret>" or
// the bare secret): the CAs with their keys, the service account key, the
// encryption config and passwd, written below server/ where the node has
// none. A file the node has with other content is an error, never
// replaced: the node holds another cluster's secrets. Only passwd with the
// same server secret is taken again, for the agents' secret in it. It
// returns the files written.
func Bootstrap(ctx context.Context, o Options) ([]string, error) {
	c, _, err := connect(ctx, o, "server", serverTrust)
	if err != nil {
		return nil, err
	}
	defer c.http.CloseIdleConnections()
	if c.user != "server" {
		return nil, permanent("token: a server joins with the server token (K10...::server:<secret>), not an agent's")
	}
	if _, err := c.get(ctx, supervisorapi.Prefix+"/readyz"); err != nil {
		return nil, err
	}
	b, err := c.get(ctx, supervisorapi.Prefix+"/server-bootstrap")
	if err != nil {
		return nil, err
	}
	var files map[string]supervisorapi.BootstrapFile
	if err := json.Unmarshal(b, &files); err != nil {
		return nil, fmt.Errorf("%s/server-bootstrap: %w", supervisorapi.Prefix, err)
	}
	want := serverpki.BootstrapFiles()
	// Check everything before writing anything: all or nothing.
	var todo []string
	for _, rel := range want {
		f, ok := files[rel]
		if !ok || len(f.Content) == 0 {
			// Not permanent: the server may run an older release that
			// lacks a CA added since (upgrade the first server first).
			return nil, fmt.Errorf("%s/server-bootstrap: no %s (does the server %s run an older release? upgrade the first server first)", supervisorapi.Prefix, rel, o.Server)
		}
		p := o.Paths.Server(filepath.FromSlash(rel))
		have, err := os.ReadFile(p)
		switch {
		case err == nil && bytes.Equal(have, f.Content):
		case err == nil && rel == "cred/passwd" && serverpki.SameServerSecret(have, f.Content):
			// The same cluster, whose agents' secret changed (its first
			// server made one, or agent-token set another): the
			// cluster's wins, so that every server accepts the agents'.
			todo = append(todo, rel)
		case err == nil:
			return nil, permanent("%s differs from the cluster's at %s: this node holds another cluster's secrets; wipe its state partition to join this cluster", p, o.Server)
		case errors.Is(err, os.ErrNotExist):
			todo = append(todo, rel)
		default:
			return nil, err
		}
	}
	for rel := range files {
		if !slices.Contains(want, rel) || path.Clean(rel) != rel {
			return nil, fmt.Errorf("%s/server-bootstrap: unexpected file %q", supervisorapi.Prefix, rel)
		}
	}
	var written []string
	for _, rel := range todo {
		p := o.Paths.Server(filepath.FromSlash(rel))
		if err := writeFile(p, files[rel].Content, 0o600); err != nil {
			return written, err
		}
		written = append(written, p)
	}
	return written, nil
}
