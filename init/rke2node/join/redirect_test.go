package join

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestNoRedirects: a supervisor never redirects, and a client that
// followed one would send the token (basic auth) and the node's password
// wherever the answer points (Go's client forwards both to the same host
// on another port). Every client of the package stops at a 3xx and names
// the server and the Location; the redirect's target gets nothing.
func TestNoRedirects(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		status     int
		run        func(ctx context.Context, c *cluster, o Options) error
	}{
		{"cacerts", "/cacerts", http.StatusFound, func(ctx context.Context, c *cluster, o Options) error { _, err := Join(ctx, o); return err }},
		{"readyz with the token", "/v1-rke2/readyz", http.StatusTemporaryRedirect, func(ctx context.Context, c *cluster, o Options) error { _, err := Join(ctx, o); return err }},
		{"certificate request with the node password", "/v1-rke2/client-kubelet.crt", http.StatusPermanentRedirect, func(ctx context.Context, c *cluster, o Options) error { _, err := Join(ctx, o); return err }},
		{"server bootstrap", "/v1-rke2/server-bootstrap", http.StatusTemporaryRedirect, func(ctx context.Context, c *cluster, o Options) error { _, err := Bootstrap(ctx, o); return err }},
		{"apiservers", "/v1-rke2/apiservers", http.StatusTemporaryRedirect, func(ctx context.Context, c *cluster, o Options) error {
			_, err := APIServers(ctx, c.url, c.token, c.paths.Server("tls", "server-ca.crt"))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The redirect's target: plain HTTP, on the same host.
			thief := &recorder{}
			steal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				thief.record(r)
				w.Write([]byte("ok"))
			}))
			defer steal.Close()
			location := steal.URL + "/stolen" + tc.path
			c := newClusterWrapped(t, true, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == tc.path {
						http.Redirect(w, r, location, tc.status)
						return
					}
					h.ServeHTTP(w, r)
				})
			})
			err := tc.run(context.Background(), c, c.agent(t, "a", "pw", c.token))
			if got := thief.requests(); len(got) > 0 {
				t.Errorf("the redirect's target got %q", got)
			}
			if err == nil {
				t.Fatal("no error")
			}
			var pe *PermanentError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), c.url) || !strings.Contains(err.Error(), location) || !strings.Contains(err.Error(), "redirect") {
				t.Errorf("err = %v, want a permanent error naming the server %s, the redirect and its Location %s", err, c.url, location)
			}
		})
	}
}
