package serverpki

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/csv"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
)

// tokenPrefix starts every full token: "K10<CA hash>::<user>:<secret>".
const tokenPrefix = "K10"

// bootstrapToken is a kubeadm-style token ("abcdef.0123456789abcdef"): k3s
// accepts one where a user:secret pair would be.
var bootstrapToken = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)

// Token is a parsed join token, as k3s reads them: either a bare secret or
// "K10<sha256 of the cluster CA>::<user>:<secret>".
type Token struct {
	// CAHash is the hex sha256 that pins the cluster CA, "" if the token
	// names none (a bare secret, or "K10::user:secret").
	CAHash string
	// Username is "server" or "node" in a full token, "" for a bare secret.
	Username string
	// Password is the secret itself.
	Password string
	// Bootstrap marks a kubeadm-style "abcdef.0123456789abcdef" token
	// (Password holds it whole, Username is "").
	Bootstrap bool
}

// ParseToken reads a token as k3s does: a value that does not start with
// "K10" is a bare secret; "K10<hash>::<user>:<secret>" is a full one, whose
// hash, when present, is 64 hex digits. Tokens come from users and from
// files: control characters are refused, so that a token always fits on
// the one line of server/token.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, errors.New("token is empty")
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return Token{}, fmt.Errorf("token has a control character at byte %d", i)
	}
	if !strings.HasPrefix(s, tokenPrefix) {
		return Token{Password: s, Bootstrap: bootstrapToken.MatchString(s)}, nil
	}
	var t Token
	creds := s[len(tokenPrefix):]
	if hash, rest, ok := strings.Cut(creds, "::"); ok {
		if hash != "" && (len(hash) != 2*sha256.Size || !isHex(hash)) {
			return Token{}, fmt.Errorf("token CA hash %q is not 64 hex digits (a full token is K10<sha256 of the CA>::server:<secret>)", hash)
		}
		t.CAHash, creds = strings.ToLower(hash), rest
	}
	if bootstrapToken.MatchString(creds) {
		t.Password, t.Bootstrap = creds, true
		return t, nil
	}
	user, pass, ok := strings.Cut(creds, ":")
	if !ok || pass == "" {
		return Token{}, errors.New(`token starts with K10 but has no "<user>:<secret>" after its CA hash (a full token is K10<sha256 of the CA>::server:<secret>)`)
	}
	t.Username, t.Password = user, pass
	return t, nil
}

// String is the token in k3s's K10 form.
func (t Token) String() string {
	if t.Bootstrap {
		return tokenPrefix + t.CAHash + "::" + t.Password
	}
	return tokenPrefix + t.CAHash + "::" + t.Username + ":" + t.Password
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// secretFor is the secret a configured token gives user ("server" or
// "node"): a bare secret, or a full token for that user. A full token's CA
// hash is checked later, once the CA exists.
func secretFor(key, value, user string) (Token, error) {
	t, err := ParseToken(value)
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", key, err)
	}
	if t.Bootstrap {
		return Token{}, fmt.Errorf("%s: %q is a bootstrap token (abcdef.0123456789abcdef), which joins one node; a server needs the cluster's secret", key, t.Password)
	}
	if t.Username != "" && t.Username != user {
		return Token{}, fmt.Errorf("%s: the token is for %q, not %q: give the bare secret or a K10...::%s:<secret> token", key, t.Username, user, user)
	}
	return t, nil
}

// CAHash is the hash a full token pins the cluster CA with, as k3s
// computes it: the sha256 of the file's bytes when it holds one
// certificate, else (a CA signed by a root, shipped with its chain) the
// sha256 of the DER of the root the first certificate chains to, so that
// the hash survives renewing the intermediate.
func CAHash(caFile []byte) (string, error) {
	ca, err := PinCA(caFile)
	if err != nil {
		return "", err
	}
	return ca.Hash, nil
}

// PinnedCA is a cluster CA file (a /cacerts answer, a server-ca.crt) as a
// joining node may trust it: its CAHash and the certificates that hash
// vouches for.
type PinnedCA struct {
	// Hash is the file's CAHash.
	Hash string
	// Certs are the certificates to trust. When Hash is that of a root,
	// they are the chain that ends at it (the first certificate, its
	// intermediates, the root), nothing else of the file: the hash says
	// nothing about the rest, which anyone between the node and the
	// server could have appended. When Hash is that of the file's bytes,
	// it covers every certificate, and they are all of them.
	Certs []*x509.Certificate
}

// Pool is a pool of c.Certs. Every certificate in it is a trust anchor,
// the chain's intermediates too: each is vouched for by the pinned root,
// and the server may send its own certificate without them.
func (c *PinnedCA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	for _, cert := range c.Certs {
		pool.AddCert(cert)
	}
	return pool
}

// PinCA hashes caFile as CAHash does and says which of its certificates
// the hash vouches for (see PinnedCA). caFile is untrusted: what a server
// answers before the node trusts it.
func PinCA(caFile []byte) (*PinnedCA, error) {
	var certs []*x509.Certificate
	for rest := caFile; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	hashed := caFile
	trusted := certs
	if len(certs) > 1 {
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		for _, c := range certs[1:] {
			if len(c.AuthorityKeyId) == 0 || bytes.Equal(c.AuthorityKeyId, c.SubjectKeyId) {
				roots.AddCert(c)
			} else {
				inter.AddCert(c)
			}
		}
		if chains, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			chain := chains[0]
			hashed, trusted = chain[len(chain)-1].Raw, chain
		}
	}
	sum := sha256.Sum256(hashed)
	return &PinnedCA{Hash: hex.EncodeToString(sum[:]), Certs: slices.Clone(trusted)}, nil
}

// randomSecret is a new token secret: 16 random bytes in hex, as k3s makes
// them (util.Random(16)).
func randomSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// passwd is server/cred/passwd, k3s's store of the cluster's secrets: CSV
// lines "secret,user,user,role" for the users "server" and "node".
type passwd map[string]passwdEntry

type passwdEntry struct{ secret, role string }

func readPasswd(p string) (passwd, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return parsePasswd(b)
}

func parsePasswd(b []byte) (passwd, error) {
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1
	out := passwd{}
	for line := 1; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(rec) < 2 {
			return nil, fmt.Errorf("line %d has %d fields, want secret,user[,user,role]", line, len(rec))
		}
		e := passwdEntry{secret: rec[0]}
		if len(rec) > 3 {
			e.role = rec[3]
		}
		out[rec[1]] = e
	}
}

// SameServerSecret reports whether two server/cred/passwd files give the
// servers the same secret: they are the same cluster's, whatever they give
// the agents. A further server takes the cluster's passwd at every start,
// and the agents' secret in it may have changed since (the first server
// makes one for a cluster from before agents had their own, and
// agent-token may set another).
func SameServerSecret(a, b []byte) bool {
	pa, err := parsePasswd(a)
	if err != nil {
		return false
	}
	pb, err := parsePasswd(b)
	if err != nil {
		return false
	}
	return pa["server"].secret != "" && pa["server"].secret == pb["server"].secret
}

// bytes renders the file, users sorted (k3s writes them in map order).
func (p passwd) bytes() []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	names := make([]string, 0, len(p))
	for n := range p {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		w.Write([]string{p[n].secret, n, n, p[n].role})
	}
	w.Flush()
	return b.Bytes()
}
