package content

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"gopkg.in/yaml.v3"
)

// Registries is an RKE2 registries.yaml (/etc/rancher/rke2/registries.yaml):
// mirrors to pull each registry's images from, and per-host credentials
// and TLS settings. The fields and their meaning are RKE2's.
type Registries struct {
	// Mirrors maps a registry ("docker.io", "registry.example.com:5000",
	// or "*" for every registry without an entry of its own) to the
	// endpoints to try first.
	Mirrors map[string]Mirror `yaml:"mirrors"`
	// Configs maps an endpoint's host[:port] to how to talk to it.
	Configs map[string]RegistryConfig `yaml:"configs"`
	// DisableDefaultEndpoint leaves the registry itself out of the
	// endpoints when it has mirrors, as RKE2's
	// disable-default-registry-endpoint option does. It is not a key of
	// registries.yaml.
	DisableDefaultEndpoint bool `yaml:"-"`
}

// Mirror lists the endpoints to try for one registry, in order, before the
// registry itself.
type Mirror struct {
	// Endpoints are URLs: "https://mirror.example:5000"; a URL without a
	// scheme is https.
	Endpoints []string `yaml:"endpoint"`
	// Rewrites maps a regular expression on the repository
	// ("rancher/rke2-runtime") to its replacement ("mirrored/$1") when
	// pulling from a mirror endpoint; the registry itself gets the
	// original name.
	Rewrites map[string]string `yaml:"rewrite"`
}

// RegistryConfig is how to talk to one endpoint.
type RegistryConfig struct {
	Auth *AuthConfig `yaml:"auth"`
	TLS  *TLSConfig  `yaml:"tls"`
}

// AuthConfig holds credentials: a username and password, or the same as
// base64 "user:password" in Auth, or an identity token.
type AuthConfig struct {
	Username      string `yaml:"username"`
	Password      string `yaml:"password"`
	Auth          string `yaml:"auth"`
	IdentityToken string `yaml:"identitytoken"`
}

// TLSConfig names the files of a private CA and a client certificate.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// LoadRegistries reads and checks a registries.yaml.
func LoadRegistries(path string) (*Registries, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read registries: %w", err)
	}
	return ParseRegistries(b, path)
}

// ParseRegistries parses and checks a registries.yaml; source names it in
// errors. Unknown keys are errors, so that a misspelt "endpoints" does not
// silently send every pull to Docker Hub.
func ParseRegistries(data []byte, source string) (*Registries, error) {
	r := &Registries{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(r); err != nil && !errors.Is(err, io.EOF) { // empty: no mirrors
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	for reg, m := range r.Mirrors {
		if reg != "*" {
			if _, err := name.NewRegistry(reg); err != nil {
				return nil, fmt.Errorf("%s: mirrors: %q is not a registry name like docker.io or host:5000", source, reg)
			}
		}
		for i, e := range m.Endpoints {
			if _, err := parseEndpoint(e); err != nil {
				return nil, fmt.Errorf("%s: mirrors.%s.endpoint[%d]: %w", source, reg, i, err)
			}
		}
		for pat := range m.Rewrites {
			if _, err := regexp.Compile(pat); err != nil {
				return nil, fmt.Errorf("%s: mirrors.%s.rewrite %q: %w", source, reg, pat, err)
			}
		}
	}
	for host, c := range r.Configs {
		if c.Auth != nil && c.Auth.Auth != "" && (c.Auth.Username != "" || c.Auth.Password != "") {
			return nil, fmt.Errorf("%s: configs.%s.auth: give either username and password or auth, not both", source, host)
		}
		if c.TLS != nil && (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
			return nil, fmt.Errorf("%s: configs.%s.tls: cert_file and key_file go together", source, host)
		}
	}
	return r, nil
}

// parseEndpoint checks an endpoint URL and returns it with its scheme.
func parseEndpoint(e string) (*url.URL, error) {
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	u, err := url.Parse(e)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", e, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("endpoint %q: scheme must be http or https", e)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("endpoint %q: want a URL like https://host:port", e)
	}
	if p := strings.TrimSuffix(u.Path, "/"); p != "" && p != "/v2" {
		return nil, fmt.Errorf("endpoint %q: a path other than /v2 is not supported", e)
	}
	return u, nil
}

// Endpoint is one place to pull an image from.
type Endpoint struct {
	// URL is the endpoint, "https://mirror.example:5000".
	URL *url.URL
	// Ref is the reference to ask it for: its host, the repository after
	// any rewrite, the tag or digest.
	Ref name.Reference
	// Mirror is false for the image's own registry.
	Mirror bool
	// Config is the configs entry for the endpoint's host, if any.
	Config *RegistryConfig
}

// Endpoints lists where to pull ref from, in order: the mirrors of its
// registry (or of "*"), then the registry itself. A nil Registries gives
// just the registry.
func (r *Registries) Endpoints(ref string) ([]Endpoint, error) {
	norm, err := NormalizeName(ref)
	if err != nil {
		return nil, err
	}
	parsed, err := name.ParseReference(norm)
	if err != nil {
		return nil, err
	}
	reg := parsed.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = dockerHub
	}
	repo := parsed.Context().RepositoryStr()
	suffix := strings.TrimPrefix(norm, reg+"/"+repo) // ":tag" or "@sha256:..."

	var out []Endpoint
	if r != nil {
		m, ok := r.Mirrors[reg]
		if !ok {
			m, ok = r.Mirrors["*"]
		}
		if ok {
			rewritten, err := m.rewrite(repo)
			if err != nil {
				return nil, err
			}
			for _, e := range m.Endpoints {
				u, err := parseEndpoint(e)
				if err != nil {
					return nil, err
				}
				ep, err := r.endpoint(u, rewritten+suffix, true)
				if err != nil {
					return nil, err
				}
				out = append(out, ep)
			}
		}
	}
	if r != nil && r.DisableDefaultEndpoint && len(out) > 0 {
		return out, nil
	}
	defHost := reg
	if reg == dockerHub {
		defHost = "registry-1.docker.io"
	}
	u := &url.URL{Scheme: "https", Host: defHost}
	for _, e := range out {
		if e.URL.Host == u.Host {
			return out, nil // the registry is already listed as its own mirror
		}
	}
	ep, err := r.endpoint(u, repo+suffix, false)
	if err != nil {
		return nil, err
	}
	return append(out, ep), nil
}

func (r *Registries) endpoint(u *url.URL, repoAndTag string, mirror bool) (Endpoint, error) {
	var opts []name.Option
	if u.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(u.Host+"/"+repoAndTag, opts...)
	if err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %s: %w", u, err)
	}
	ep := Endpoint{URL: u, Ref: ref, Mirror: mirror}
	if r != nil {
		if c, ok := r.Configs[u.Host]; ok {
			ep.Config = &c
		} else if c, ok := r.Configs[u.Hostname()]; ok {
			ep.Config = &c
		}
	}
	return ep, nil
}

// rewrite applies the first rewrite rule, in the order of their patterns,
// that matches repo.
func (m Mirror) rewrite(repo string) (string, error) {
	pats := make([]string, 0, len(m.Rewrites))
	for p := range m.Rewrites {
		pats = append(pats, p)
	}
	sort.Strings(pats)
	for _, p := range pats {
		re, err := regexp.Compile(p)
		if err != nil {
			return "", fmt.Errorf("rewrite %q: %w", p, err)
		}
		if re.MatchString(repo) {
			return re.ReplaceAllString(repo, m.Rewrites[p]), nil
		}
	}
	return repo, nil
}
