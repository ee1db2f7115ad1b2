package serverpki

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rke2os/rke2os/init/shared/layout"
	"github.com/rke2os/rke2os/init/shared/pki"
	"github.com/rke2os/rke2os/internal/durable"
)

// A cluster's secrets made off the node (rke2-build secrets) are its CAs,
// the service account key and the tokens, in RKE2's layout below server/:
// the admin keeps them, makes kubeconfigs from them without a shell on any
// node, and bakes them into server images, whose first boot takes them as
// its own. The upgrade signing key pair beside them (upgrade.key,
// upgrade.pub) is not a node's: see UpgradeKeyFiles.

// SecretFiles are the node's files GenerateSecrets makes (all but the
// upgrade key pair), slash-separated and relative to its directory as they
// are to server/ on a node.
func SecretFiles() []string {
	return append(requiredSecretFiles(), "agent-token")
}

// requiredSecretFiles are the files a secrets directory must have: all
// but agent-token, which directories made before agents had a token of
// their own lack (a node makes one then).
func requiredSecretFiles() []string {
	var files []string
	for _, c := range clusterCAs {
		files = append(files, c.rel+".crt", c.rel+".key")
	}
	return append(files, "tls/service.key", "token")
}

// GenerateSecrets makes a new cluster's secrets in dir, which must not
// exist: the CAs (ECDSA P-256, 10 years, named as a node names its own),
// tls/service.key, token, the servers' full K10 token that pins
// tls/server-ca.crt, and agent-token, the agents' (K10...::node:<secret>),
// with a secret of its own: an agent holding it cannot take the cluster's
// CA keys from a server, as one holding the server token can; and the
// upgrade signing key pair, upgrade.key and upgrade.pub (0644).
// Files are 0600 and directories 0700; a failure removes dir.
func GenerateSecrets(dir string) (err error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return existsError{dir}
		}
		return fmt.Errorf("secrets: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	for _, c := range clusterCAs {
		p := filepath.Join(dir, filepath.FromSlash(c.rel))
		if err := mkdirs(filepath.Dir(p)); err != nil {
			return fmt.Errorf("secrets: %w", err)
		}
		if _, err := pki.EnsureCA(p+".crt", p+".key", c.cn); err != nil {
			return fmt.Errorf("secrets: %s: %w", c.rel, err)
		}
		// pki leaves a CA certificate readable by all, as a node keeps it;
		// here it travels with its key.
		if err := os.Chmod(p+".crt", 0o600); err != nil {
			return fmt.Errorf("secrets: %w", err)
		}
	}
	b := &builder{}
	if err := b.ensureKey(filepath.Join(dir, "tls", "service.key")); err != nil {
		return fmt.Errorf("secrets: service.key: %w", err)
	}
	caFile, err := os.ReadFile(filepath.Join(dir, "tls", "server-ca.crt"))
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	hash, err := CAHash(caFile)
	if err != nil {
		return fmt.Errorf("secrets: server-ca.crt: %w", err)
	}
	for _, f := range []struct{ name, user string }{{"token", "server"}, {"agent-token", "node"}} {
		secret, err := randomSecret(16)
		if err != nil {
			return fmt.Errorf("secrets: %w", err)
		}
		tok := Token{CAHash: hash, Username: f.user, Password: secret}.String()
		if err := durable.WriteFile(filepath.Join(dir, f.name), []byte(tok+"\n"), 0o600); err != nil {
			return fmt.Errorf("secrets: %s: %w", f.name, err)
		}
	}
	if err := generateUpgradeKey(dir); err != nil {
		return fmt.Errorf("secrets: upgrade key: %w", err)
	}
	return nil
}

// existsError refuses a secrets directory that is there already: an
// fs.ErrExist.
type existsError struct{ dir string }

func (e existsError) Error() string {
	return fmt.Sprintf("secrets: %s already exists: a cluster's secrets are made once; keep using them, or name a new directory", e.dir)
}

func (e existsError) Is(target error) bool { return target == fs.ErrExist }

// CheckSecrets reports whether dir holds a cluster's secrets as
// GenerateSecrets makes them: every file, as a regular file; CAs that are
// CAs with their keys; a server token that pins tls/server-ca.crt, and an
// agent token that pins it too with another secret, if there is one (a
// directory made before agent tokens has none). Other regular files (a
// custom CA's chain) may be there too.
func CheckSecrets(dir string) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("secrets %s: %s (make the directory with rke2-build secrets --output DIR)", dir, fmt.Sprintf(format, a...))
	}
	if fi, err := os.Stat(dir); err != nil {
		return fail("%v", err)
	} else if !fi.IsDir() {
		return fail("not a directory")
	}
	// A CA added later may be missing, both its files: the secrets were
	// made before it, and the first server makes it.
	later := map[string]bool{}
	for _, c := range clusterCAs {
		if c.addedLater && absent(filepath.Join(dir, c.rel+".crt")) && absent(filepath.Join(dir, c.rel+".key")) {
			later[c.rel+".crt"], later[c.rel+".key"], later[c.rel] = true, true, true
		}
	}
	for _, rel := range SecretFiles() {
		if later[rel] {
			continue
		}
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(rel)))
		if errors.Is(err, fs.ErrNotExist) && !slices.Contains(requiredSecretFiles(), rel) {
			continue
		}
		if err != nil {
			return fail("%s is missing", rel)
		}
		if !fi.Mode().IsRegular() {
			return fail("%s is not a regular file", rel)
		}
	}
	for _, c := range clusterCAs {
		if later[c.rel] {
			continue
		}
		if _, err := loadCA(dir, c.rel); err != nil {
			return fail("%v", err)
		}
	}
	if _, err := readKey(filepath.Join(dir, "tls", "service.key")); err != nil {
		return fail("tls/service.key: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		return fail("%v", err)
	}
	t, err := ParseToken(string(data))
	if err != nil {
		return fail("token: %v", err)
	}
	caFile, err := os.ReadFile(filepath.Join(dir, "tls", "server-ca.crt"))
	if err != nil {
		return fail("%v", err)
	}
	hash, err := CAHash(caFile)
	if err != nil {
		return fail("tls/server-ca.crt: %v", err)
	}
	if t.Username != "server" || t.CAHash != hash {
		return fail("token is not a K10<sha256 of tls/server-ca.crt>::server:<secret> token for this server-ca.crt")
	}
	if data, err := os.ReadFile(filepath.Join(dir, "agent-token")); err == nil {
		at, err := ParseToken(string(data))
		if err != nil {
			return fail("agent-token: %v", err)
		}
		if at.Username != "node" || at.CAHash != hash {
			return fail("agent-token is not a K10<sha256 of tls/server-ca.crt>::node:<secret> token for this server-ca.crt")
		}
		if at.Password == t.Password {
			return fail("agent-token has the server token's secret: an agent holding it could take the cluster's CA keys")
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fail("%v", err)
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return fail("%s is neither a file nor a directory", p)
		}
		return nil
	})
}

// absent reports whether nothing at all is at p (not even a broken link).
func absent(p string) bool {
	_, err := os.Lstat(p)
	return errors.Is(err, fs.ErrNotExist)
}

// loadCA reads the CA rel (without .crt and .key) below dir, as
// GenerateSecrets made it, and checks that the key is the certificate's.
func loadCA(dir, rel string) (*pki.CA, error) {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	crt, err := readCert(p + ".crt")
	if err != nil {
		return nil, fmt.Errorf("%s.crt: %w", rel, err)
	}
	if !crt.IsCA {
		return nil, fmt.Errorf("%s.crt is not a CA certificate", rel)
	}
	key, err := readKey(p + ".key")
	if err != nil {
		return nil, fmt.Errorf("%s.key: %w", rel, err)
	}
	if !publicKeyMatches(key, crt) {
		return nil, fmt.Errorf("%s.key is not the key of %s.crt", rel, rel)
	}
	return &pki.CA{Cert: crt, Key: key}, nil
}

// AdminKubeconfig makes an admin's kubeconfig for the cluster whose secrets
// are in secretsDir, shaped as rke2.yaml: the apiserver's URL server, the
// server CA, and a new client certificate (system:admin in system:masters,
// signed by the client CA, one year) with its key, all inlined. The key is
// made in memory and written nowhere.
func AdminKubeconfig(secretsDir, server string) ([]byte, error) {
	if u, err := url.Parse(server); err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return nil, fmt.Errorf("server %q is not the apiserver's URL, like https://192.0.2.10:6443", server)
	}
	fail := func(err error) error {
		return fmt.Errorf("secrets %s: %w (made by rke2-build secrets --output DIR)", secretsDir, err)
	}
	caPath := filepath.Join(secretsDir, "tls", "server-ca.crt")
	caFile, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fail(err)
	}
	if _, err := readCert(caPath); err != nil {
		return nil, fail(err)
	}
	ca, err := loadCA(secretsDir, "tls/client-ca")
	if err != nil {
		return nil, fail(err)
	}
	crt, key, err := ca.Sign(pki.Leaf{CN: "system:admin", Org: []string{groupMasters}, Client: true})
	if err != nil {
		return nil, err
	}
	return inlineKubeconfig(server, caFile, crt, key)
}

// Installed is what InstallSecrets did.
type Installed struct {
	// Files are the files copied, relative to server/ ("tls/server-ca.crt").
	Files []string
	// Token is the baked token when it may be this node's: it pins the
	// node's server CA, and the node keeps no other secret. "" otherwise.
	// It stands in for a config without token.
	Token string
	// AgentToken is the baked agent-token when it pins the node's server
	// CA, "" otherwise: the agents' token where neither the config nor the
	// node has one.
	AgentToken string
	// Warnings say which baked secrets the node's own state overrides.
	Warnings []string
}

// bakedDefaults are the baked files that are not copied to server/: the
// tokens are defaults for a config without them (Installed.Token and
// AgentToken), not the node's state, so that a config's tokens win at the
// first boot. Copied, the token was the node's own before Ensure read the
// config, which then refused the config's token as not the cluster's.
var bakedDefaults = []string{"token", "agent-token"}

// InstallSecrets copies every file below dir (layout.BakedSecrets on a node)
// but the tokens (and an upgrade key pair, which is no node's and which
// the builder never bakes there) to server/ where the node has none, 0600,
// durably: a
// node's own state always wins over the image's, so that a node rebooted
// into a new image keeps its cluster. No dir is no secrets.
func InstallSecrets(dir string, p layout.Paths) (*Installed, error) {
	in := &Installed{}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return in, nil
	}
	err := filepath.WalkDir(dir, func(src string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", src)
		}
		rel, err := filepath.Rel(dir, src)
		if err != nil {
			return err
		}
		if slices.Contains(bakedDefaults, filepath.ToSlash(rel)) || slices.Contains(UpgradeKeyFiles(), filepath.ToSlash(rel)) {
			return nil
		}
		dst := p.Server(rel)
		if ok, err := exists(dst); err != nil || ok {
			return err
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := mkdirs(filepath.Dir(dst)); err != nil {
			return err
		}
		if err := durable.WriteFile(dst, data, 0o600); err != nil {
			return err
		}
		in.Files = append(in.Files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("baked secrets %s: %w", dir, err)
	}
	if err := in.bakedTokens(dir, p); err != nil {
		return nil, fmt.Errorf("baked secrets %s: %w", dir, err)
	}
	return in, nil
}

// bakedTokens sets Token and AgentToken to the baked tokens Ensure can
// take as the config's: they pin the node's server CA (the node may have
// kept its own), and, for the token, the node holds no other server
// secret. A token that Ensure would refuse is left out with a warning,
// since the node's own wins. Whether the node has an agent token of its
// own, which wins too, Ensure decides.
func (in *Installed) bakedTokens(dir string, p layout.Paths) error {
	hash := "(none)"
	if caFile, err := os.ReadFile(p.Server("tls", "server-ca.crt")); err == nil {
		if h, err := CAHash(caFile); err == nil {
			hash = h
		}
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"token", &in.Token}, {"agent-token", &in.AgentToken}} {
		data, err := os.ReadFile(filepath.Join(dir, f.name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		t, err := ParseToken(string(data))
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if t.CAHash != "" && t.CAHash != hash {
			in.Warnings = append(in.Warnings, fmt.Sprintf("the baked %s pins CA sha256 %s, but this node's server-ca.crt hashes to %s: the node keeps its own CA, which the baked %s does not join", f.name, t.CAHash, hash, f.name))
			continue
		}
		*f.dst = strings.TrimSpace(string(data))
	}
	if in.Token == "" {
		return nil
	}
	t, _ := ParseToken(in.Token)
	stored := ""
	if users, err := readPasswd(p.Server("cred", "passwd")); err == nil {
		stored = users["server"].secret
	}
	if stored == "" {
		if b, err := os.ReadFile(p.Server("token")); err == nil {
			if nt, err := ParseToken(string(b)); err == nil {
				stored = nt.Password
			}
		}
	}
	if stored != "" && stored != t.Password {
		in.Warnings = append(in.Warnings, "this node's token is not the baked one: the node keeps its own")
		in.Token = ""
	}
	return nil
}
