package content

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/rke2os/rke2os/init/shared/config"
)

// Remote says where Pull reads images from: the mirrors and per-host
// settings of an RKE2 registries.yaml (config.Registries, the one schema of
// that file), and how the pull uses them.
type Remote struct {
	// Registries is the registries.yaml; nil pulls every image from its own
	// registry, as RKE2 without a registries.yaml does.
	Registries *config.Registries
	// DisableDefaultEndpoint leaves the registry itself out of the
	// endpoints when it has mirrors, as RKE2's
	// disable-default-registry-endpoint option does. It is an option of
	// RKE2, not a key of registries.yaml.
	DisableDefaultEndpoint bool
}

// LoadRegistries reads and checks a registries.yaml, as ParseRegistries.
func LoadRegistries(path string) (*config.Registries, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read registries: %w", err)
	}
	return ParseRegistries(b, path)
}

// ParseRegistries parses and checks a registries.yaml with the node
// config's parser (config.ParseRegistries): unknown keys and bad values are
// errors naming source and the line, so that a misspelt "endpoints" does not
// silently send every pull to Docker Hub. It also refuses what RKE2 accepts
// but Pull cannot follow: an endpoint with a path other than /v2.
func ParseRegistries(data []byte, source string) (*config.Registries, error) {
	r, err := config.ParseRegistries(source, data)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, reg := range sortedKeys(r.Mirrors) {
		for i, e := range r.Mirrors[reg].Endpoints {
			if _, err := parseEndpoint(e); err != nil {
				errs = append(errs, &config.Error{Source: source, Path: fmt.Sprintf("mirrors[%q].endpoint[%d]", reg, i), Msg: err.Error()})
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parseEndpoint parses an endpoint URL as Pull uses it: scheme and host;
// go-containerregistry cannot follow a path before /v2.
func parseEndpoint(e string) (*url.URL, error) {
	u, err := url.Parse(e)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL like \"https://mirror.example.com:5000\"", e)
	}
	if p := strings.TrimSuffix(u.Path, "/"); p != "" && p != "/v2" {
		return nil, fmt.Errorf("%q has a path; the pull supports no path other than /v2", e)
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
	Config *config.RegistryConfig
}

// Endpoints lists where to pull ref from, in order: the mirrors of its
// registry (or of "*"), then the registry itself. A nil Remote, or one
// without Registries, gives just the registry.
func (r *Remote) Endpoints(ref string) ([]Endpoint, error) {
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

	var regs *config.Registries
	if r != nil {
		regs = r.Registries
	}
	var out []Endpoint
	if regs != nil {
		m, ok := regs.Mirrors[reg]
		if !ok {
			m, ok = regs.Mirrors["*"]
		}
		if ok {
			rewritten, err := rewrite(m, repo)
			if err != nil {
				return nil, err
			}
			for _, e := range m.Endpoints {
				u, err := parseEndpoint(e)
				if err != nil {
					return nil, err
				}
				ep, err := endpoint(regs, u, rewritten+suffix, true)
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
	ep, err := endpoint(regs, u, repo+suffix, false)
	if err != nil {
		return nil, err
	}
	return append(out, ep), nil
}

func endpoint(regs *config.Registries, u *url.URL, repoAndTag string, mirror bool) (Endpoint, error) {
	var opts []name.Option
	if u.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(u.Host+"/"+repoAndTag, opts...)
	if err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %s: %w", u, err)
	}
	ep := Endpoint{URL: u, Ref: ref, Mirror: mirror}
	if regs != nil {
		if c, ok := regs.Configs[u.Host]; ok {
			ep.Config = &c
		} else if c, ok := regs.Configs[u.Hostname()]; ok {
			ep.Config = &c
		}
	}
	return ep, nil
}

// rewrite applies the first rewrite rule of m, in the order of their
// patterns, that matches repo.
func rewrite(m config.Mirror, repo string) (string, error) {
	for _, p := range sortedKeys(m.Rewrites) {
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
