package serverpki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// generate makes a cluster's secrets in a new directory.
func generate(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "secrets")
	if err := GenerateSecrets(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// GenerateSecrets makes every file once, private, in RKE2's layout; a
// directory or a file already there is refused and left as it was.
func TestGenerateSecrets(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		err   error // nil: made
	}{
		{"new", func(*testing.T, string) {}, nil},
		{"parent missing", func(t *testing.T, dir string) { must(t, os.RemoveAll(filepath.Dir(dir))) }, nil},
		{"directory exists", func(t *testing.T, dir string) { must(t, os.Mkdir(dir, 0o700)) }, fs.ErrExist},
		{"file exists", func(t *testing.T, dir string) { must(t, os.WriteFile(dir, []byte("mine"), 0o600)) }, fs.ErrExist},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "sub", "secrets")
			must(t, os.MkdirAll(filepath.Dir(dir), 0o755))
			c.setup(t, dir)
			before, _ := os.ReadFile(dir)
			err := GenerateSecrets(dir)
			if c.err != nil {
				if !errors.Is(err, c.err) || !strings.Contains(err.Error(), dir) {
					t.Fatalf("err = %v, want %v naming %s", err, c.err, dir)
				}
				if after, _ := os.ReadFile(dir); !bytes.Equal(before, after) {
					t.Error("the existing file was changed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkSecretsDir(t, dir)
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func checkSecretsDir(t *testing.T, dir string) {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		must(t, err)
		fi, _ := d.Info()
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: mode %v, want 0700", rel, fi.Mode().Perm())
			}
			return nil
		}
		files = append(files, filepath.ToSlash(rel))
		want := os.FileMode(0o600)
		if rel == UpgradePublicKeyFile {
			want = 0o644
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", rel, fi.Mode().Perm(), want)
		}
		return nil
	})
	want := append(SecretFiles(), UpgradeKeyFiles()...)
	if strings.Join(files, " ") != strings.Join(sorted(want), " ") {
		t.Errorf("files %q, want %q", files, want)
	}
	for _, c := range clusterCAs {
		ca, err := loadCA(dir, c.rel)
		if err != nil {
			t.Fatal(err)
		}
		pub, ok := ca.Cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() || !strings.HasPrefix(ca.Cert.Subject.CommonName, c.cn+"@") ||
			ca.Cert.NotAfter.Before(time.Now().AddDate(10, 0, -1)) {
			t.Errorf("%s: CN %q, key %T, valid to %v: want %s@..., P-256, 10 years", c.rel, ca.Cert.Subject.CommonName, ca.Cert.PublicKey, ca.Cert.NotAfter, c.cn)
		}
	}
	if _, err := readKey(filepath.Join(dir, "tls", "service.key")); err != nil {
		t.Error(err)
	}
	caFile, _ := os.ReadFile(filepath.Join(dir, "tls", "server-ca.crt"))
	hash, _ := CAHash(caFile)
	secrets := map[string]string{}
	for f, user := range map[string]string{"token": "server", "agent-token": "node"} {
		tok, _ := os.ReadFile(filepath.Join(dir, f))
		pt, err := ParseToken(string(tok))
		if err != nil || pt.CAHash != hash || pt.Username != user || len(pt.Password) != 32 || pt.String()+"\n" != string(tok) {
			t.Errorf("%s %q (%v): want K10%s::%s:<32 hex digits>", f, tok, err, hash, user)
		}
		secrets[user] = pt.Password
	}
	// An agent holding the agent token cannot pass for a server.
	if secrets["server"] == secrets["node"] {
		t.Error("token and agent-token have the same secret")
	}
	if err := CheckSecrets(dir); err != nil {
		t.Errorf("CheckSecrets: %v", err)
	}
	if _, err := CheckUpgradeKey(dir); err != nil {
		t.Errorf("CheckUpgradeKey: %v", err)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// CheckSecrets refuses a directory that is not what GenerateSecrets makes,
// naming the file.
func TestCheckSecrets(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(t *testing.T, dir string)
		want   string
	}{
		{"missing key", func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "tls", "etcd", "peer-ca.key"))) }, "tls/etcd/peer-ca.key is missing"},
		{"another CA's key", func(t *testing.T, dir string) {
			other := generate(t)
			b, _ := os.ReadFile(filepath.Join(other, "tls", "client-ca.key"))
			must(t, os.WriteFile(filepath.Join(dir, "tls", "client-ca.key"), b, 0o600))
		}, "tls/client-ca.key is not the key of tls/client-ca.crt"},
		{"another cluster's token", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(generate(t), "token"))
			must(t, os.WriteFile(filepath.Join(dir, "token"), b, 0o600))
		}, "token is not a K10"},
		{"another cluster's agent-token", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(generate(t), "agent-token"))
			must(t, os.WriteFile(filepath.Join(dir, "agent-token"), b, 0o600))
		}, "agent-token is not a K10"},
		{"server token as agent-token", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "token"))
			must(t, os.WriteFile(filepath.Join(dir, "agent-token"), b, 0o600))
		}, "agent-token is not a K10"},
		{"server secret as agent-token", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "token"))
			must(t, os.WriteFile(filepath.Join(dir, "agent-token"), []byte(strings.Replace(string(b), "::server:", "::node:", 1)), 0o600))
		}, "agent-token has the server token's secret"},
		{"agent-token a link", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "agent-token")))
			must(t, os.Symlink("token", filepath.Join(dir, "agent-token")))
		}, "agent-token is not a regular file"},
		{"symlink", func(t *testing.T, dir string) { must(t, os.Symlink("/etc/passwd", filepath.Join(dir, "tls", "extra"))) }, "neither a file nor a directory"},
		{"not there", func(t *testing.T, dir string) { must(t, os.RemoveAll(dir)) }, "no such file"},
		{"half a CA added later", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "tls", "kubelet-serving-ca.key")))
		},
			"tls/kubelet-serving-ca.key is missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := generate(t)
			c.change(t, dir)
			if err := CheckSecrets(dir); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "rke2-build secrets") {
				t.Fatalf("err = %v, want %q and the fix", err, c.want)
			}
		})
	}
	// Secrets made before agents had a token of their own have no
	// agent-token: the node makes one.
	dir := generate(t)
	must(t, os.Remove(filepath.Join(dir, "agent-token")))
	if err := CheckSecrets(dir); err != nil {
		t.Errorf("secrets without agent-token: %v", err)
	}
}

// TestCheckSecretsBeforeKubeletServingCA: secrets made before the
// kubelet serving CA existed are still a cluster's secrets (the first
// server makes the CA), so that an image can still be built from them.
func TestCheckSecretsBeforeKubeletServingCA(t *testing.T) {
	dir := generate(t)
	for _, f := range []string{"kubelet-serving-ca.crt", "kubelet-serving-ca.key"} {
		must(t, os.Remove(filepath.Join(dir, "tls", f)))
	}
	if err := CheckSecrets(dir); err != nil {
		t.Fatal(err)
	}
}

// The admin's kubeconfig inlines server-ca.crt and a new system:admin
// certificate of the client CA, with its key.
func TestAdminKubeconfig(t *testing.T) {
	dir := generate(t)
	b, err := AdminKubeconfig(dir, "https://192.0.2.10:6443")
	if err != nil {
		t.Fatal(err)
	}
	var kc kubeconfig
	must(t, yaml.UnmarshalStrict(b, &kc))
	if len(kc.Clusters) != 1 || len(kc.Users) != 1 || kc.CurrentContext != "default" {
		t.Fatalf("kubeconfig %s", b)
	}
	if kc.Clusters[0].Cluster.Server != "https://192.0.2.10:6443" {
		t.Errorf("server %q", kc.Clusters[0].Cluster.Server)
	}
	caFile, _ := os.ReadFile(filepath.Join(dir, "tls", "server-ca.crt"))
	if !bytes.Equal(kc.Clusters[0].Cluster.CertificateAuthorityData, caFile) {
		t.Error("the CA data is not server-ca.crt")
	}
	crtPath, keyPath := filepath.Join(t.TempDir(), "admin.crt"), filepath.Join(t.TempDir(), "admin.key")
	must(t, os.WriteFile(crtPath, kc.Users[0].User.ClientCertificateData, 0o600))
	must(t, os.WriteFile(keyPath, kc.Users[0].User.ClientKeyData, 0o600))
	c := loadCert(t, crtPath)
	clientCA := loadCert(t, filepath.Join(dir, "tls", "client-ca.crt"))
	pool := x509.NewCertPool()
	pool.AddCert(clientCA)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the certificate does not chain to client-ca: %v", err)
	}
	if c.Subject.CommonName != "system:admin" || strings.Join(c.Subject.Organization, ",") != "system:masters" {
		t.Errorf("subject %v, want CN=system:admin O=system:masters", c.Subject)
	}
	if d := c.NotAfter.Sub(time.Now()); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("valid to %v, want a year", c.NotAfter)
	}
	if k, err := readKey(keyPath); err != nil || !publicKeyMatches(k, c) {
		t.Errorf("the key is not the certificate's: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 5 { // tls, token, agent-token, upgrade.key, upgrade.pub
		t.Errorf("AdminKubeconfig wrote into the secrets directory: %d entries", len(ents))
	}

	for _, c := range []struct{ dir, server, want string }{
		{dir, "http://192.0.2.10:6443", "not the apiserver's URL"},
		{dir, "192.0.2.10:6443", "not the apiserver's URL"},
		{filepath.Join(t.TempDir(), "none"), "https://192.0.2.10:6443", "rke2-build secrets"},
	} {
		if _, err := AdminKubeconfig(c.dir, c.server); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: err = %v, want %q", c.dir, c.server, err, c.want)
		}
	}
}

// A node takes the baked secrets where it has none, and Ensure keeps them;
// a node with its own CA keeps it, and the baked token is left out.
func TestInstallSecrets(t *testing.T) {
	baked := generate(t)
	bakedCA, _ := os.ReadFile(filepath.Join(baked, "tls", "server-ca.crt"))
	bakedToken, _ := os.ReadFile(filepath.Join(baked, "token"))
	bakedAgentToken, _ := os.ReadFile(filepath.Join(baked, "agent-token"))

	o := testOptions(t)
	in, err := InstallSecrets(baked, o.Paths)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range sorted(SecretFiles()) {
		if !slices.Contains(bakedDefaults, f) {
			want = append(want, f)
		}
	}
	if strings.Join(in.Files, " ") != strings.Join(want, " ") || in.Token != strings.TrimSpace(string(bakedToken)) ||
		in.AgentToken != strings.TrimSpace(string(bakedAgentToken)) || len(in.Warnings) > 0 {
		t.Fatalf("installed %+v", in)
	}
	// The tokens are defaults, not the node's state (a config's tokens win).
	for _, f := range bakedDefaults {
		if _, err := os.Lstat(o.Paths.Server(f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the baked %s was installed as server/%s: %v", f, f, err)
		}
	}
	o.Token, o.DefaultAgentToken = in.Token, in.AgentToken
	res := ensure(t, o)
	if got, _ := os.ReadFile(o.Paths.Server("tls", "server-ca.crt")); !bytes.Equal(got, bakedCA) {
		t.Error("Ensure replaced the baked server CA")
	}
	if res.Token+"\n" != string(bakedToken) || res.AgentToken+"\n" != string(bakedAgentToken) {
		t.Errorf("tokens %q and %q, want the baked %q and %q", res.Token, res.AgentToken, bakedToken, bakedAgentToken)
	}
	// Again, with the node's state in place: nothing to copy.
	if in, err := InstallSecrets(baked, o.Paths); err != nil || len(in.Files) > 0 || in.Token == "" {
		t.Errorf("second install: %+v, %v", in, err)
	}

	own := testOptions(t)
	ensure(t, own)
	ownCA, _ := os.ReadFile(own.Paths.Server("tls", "server-ca.crt"))
	in, err = InstallSecrets(baked, own.Paths)
	if err != nil || in.Token != "" || in.AgentToken != "" || len(in.Warnings) != 2 ||
		!strings.Contains(in.Warnings[0], "token pins CA") || !strings.Contains(in.Warnings[1], "agent-token pins CA") {
		t.Fatalf("node with its own PKI: %+v, %v", in, err)
	}
	for _, w := range in.Warnings {
		if !strings.Contains(w, "keeps its own CA") {
			t.Errorf("warning %q", w)
		}
	}
	if got, _ := os.ReadFile(own.Paths.Server("tls", "server-ca.crt")); !bytes.Equal(got, ownCA) {
		t.Error("the node's own CA was replaced")
	}

	if in, err := InstallSecrets(filepath.Join(t.TempDir(), "none"), testOptions(t).Paths); err != nil || len(in.Files) > 0 || in.Token != "" {
		t.Errorf("no baked dir: %+v, %v", in, err)
	}
}
