package join

import (
	"errors"
	"os"

	"github.com/rke2os/rke2os/init/shared/serverpki"
)

// A full token (K10<hash>::<user>:<secret>) pins the cluster CA; a bare
// secret pins none, and k3s and RKE2 then trust whatever CA the server
// presents, at every start. Here a bare secret trusts on first use only:
// the CA a node took at its first join is the pin of every later one, so
// that someone who learns the secret cannot stand in for the server
// after that.

// trust is what a bare secret's join holds the server's CA to.
type trust struct {
	// hash is the CA hash an earlier join recorded, in file; "" for none.
	hash, file string
	// firstUse, with no hash, trusts the CA the server presents (warned);
	// without, the join is refused.
	firstUse bool
}

// agentTrust is an agent's: the hash its first join recorded in
// join.json, or (a first join that stopped before writing it) the
// server-ca.crt it took; nothing on the node's very first join, which
// trusts on first use, as RKE2's agents do.
func agentTrust(o Options) (trust, error) {
	st, err := ReadState(o.Paths)
	switch {
	case err == nil && st.CAHash != "":
		return trust{hash: st.CAHash, file: StatePath(o.Paths)}, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return trust{}, permanent("%w: the node cannot tell which cluster CA it joined first; give the full token (K10<hash>::node:<secret>, the server's /var/lib/rancher/rke2/server/node-token), or remove %s to trust the server's CA on first use again", err, StatePath(o.Paths))
	}
	return recordedCA(o.Paths.Agent("server-ca.crt"), true)
}

// serverTrust is a further server's: the cluster CA it took at its first
// bootstrap (or that its image carries); before that, only what the
// config allows (Options.TrustOnFirstUse), since a server takes the
// cluster's keys from the server it trusts.
func serverTrust(o Options) (trust, error) {
	return recordedCA(o.Paths.Server("tls", "server-ca.crt"), o.TrustOnFirstUse)
}

// recordedCA is the pin of the CA file a join wrote, or, with none there,
// firstUse.
func recordedCA(file string, firstUse bool) (trust, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return trust{firstUse: firstUse}, nil
	}
	if err != nil {
		return trust{}, err
	}
	hash, err := serverpki.CAHash(b)
	if err != nil {
		return trust{}, permanent("%s: %w: the node cannot tell which cluster CA it joined; give the full K10 token, or wipe the node's state partition", file, err)
	}
	return trust{hash: hash, file: file}, nil
}
