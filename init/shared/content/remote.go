package content

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Pull reads the linux/amd64 image ref names from the first endpoint r
// gives for it that serves it (its mirrors first, then the registry
// itself; nil r: the registry itself). Only the manifest and config are
// fetched now; layers are fetched when extracted, and checked against
// their digests then. The error of a ref no endpoint could serve lists what
// each endpoint said.
func Pull(ctx context.Context, r *Remote, ref string) (Image, error) {
	norm, err := NormalizeName(ref)
	if err != nil {
		return Image{}, fmt.Errorf("pull: %w", err)
	}
	eps, err := r.Endpoints(norm)
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", norm, err)
	}
	var errs []string
	for _, ep := range eps {
		img, err := pullFrom(ctx, ep)
		if err == nil {
			img.Name = norm
			return img, nil
		}
		if ctx.Err() != nil {
			return Image{}, fmt.Errorf("pull %s: %w", norm, ctx.Err())
		}
		errs = append(errs, fmt.Sprintf("%s: %v", ep.URL, err))
	}
	return Image{}, fmt.Errorf("pull %s: no endpoint served it:\n  %s", norm, strings.Join(errs, "\n  "))
}

func pullFrom(ctx context.Context, ep Endpoint) (Image, error) {
	auth, err := ep.authenticator()
	if err != nil {
		return Image{}, err
	}
	tr, err := ep.transport()
	if err != nil {
		return Image{}, err
	}
	ri, err := remote.Image(ep.Ref,
		remote.WithContext(ctx),
		remote.WithAuth(auth),
		remote.WithTransport(tr),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}),
	)
	if err != nil {
		return Image{}, err
	}
	cfg, err := ri.ConfigFile()
	if err != nil {
		return Image{}, fmt.Errorf("config: %w", err)
	}
	cfgName, err := ri.ConfigName()
	if err != nil {
		return Image{}, fmt.Errorf("config: %w", err)
	}
	digest, err := ri.Digest()
	if err != nil {
		return Image{}, fmt.Errorf("manifest: %w", err)
	}
	rls, err := ri.Layers()
	if err != nil {
		return Image{}, fmt.Errorf("layers: %w", err)
	}
	if len(rls) != len(cfg.RootFS.DiffIDs) {
		return Image{}, fmt.Errorf("config has %d diff_ids for %d layers", len(cfg.RootFS.DiffIDs), len(rls))
	}
	img := Image{
		ID:     cfgName.String(),
		Digest: digest.String(),
		Source: ep.URL.String() + "/" + ep.Ref.Context().RepositoryStr(),
		config: cfg,
	}
	for i, rl := range rls {
		d, err := rl.Digest()
		if err != nil {
			return Image{}, fmt.Errorf("layer %d: %w", i, err)
		}
		img.layers = append(img.layers, Layer{
			DiffID: cfg.RootFS.DiffIDs[i],
			Digest: d,
			Open:   rl.Compressed,
			Where:  img.Source + "@" + d.String(),
		})
	}
	return img, nil
}

// authenticator turns the endpoint's auth config into go-containerregistry's.
func (ep Endpoint) authenticator() (authn.Authenticator, error) {
	if ep.Config == nil || ep.Config.Auth == nil {
		return authn.Anonymous, nil
	}
	a := ep.Config.Auth
	switch {
	case a.IdentityToken != "":
		return authn.FromConfig(authn.AuthConfig{IdentityToken: a.IdentityToken}), nil
	case a.Auth != "":
		raw, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return nil, fmt.Errorf("configs.%s.auth.auth: not base64: %w", ep.URL.Host, err)
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, fmt.Errorf("configs.%s.auth.auth: want base64 of user:password", ep.URL.Host)
		}
		return &authn.Basic{Username: user, Password: pass}, nil
	case a.Username != "" || a.Password != "":
		return &authn.Basic{Username: a.Username, Password: a.Password}, nil
	}
	return authn.Anonymous, nil
}

// transport is remote's default transport with the endpoint's TLS settings.
func (ep Endpoint) transport() (http.RoundTripper, error) {
	if ep.Config == nil || ep.Config.TLS == nil {
		return remote.DefaultTransport, nil
	}
	t := ep.Config.TLS
	base, ok := remote.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("remote.DefaultTransport is not an *http.Transport")
	}
	tr := base.Clone()
	tc := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // asked for in registries.yaml
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("configs.%s.tls.ca_file: %w", ep.URL.Host, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("configs.%s.tls.ca_file %s: no PEM certificate in it", ep.URL.Host, t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("configs.%s.tls: %w", ep.URL.Host, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr.TLSClientConfig = tc
	return tr, nil
}
