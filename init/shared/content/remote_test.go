package content

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	ct "github.com/rke2os/rke2os/init/shared/content/contenttest"
)

func TestPullThroughMirrorWithRewrite(t *testing.T) {
	srv, host := ct.Registry(t, "", "", false)
	ct.PushRuntime(t, srv, host, "mirrored/rancher/rke2-runtime:v1.34.4-rke2r1", authn.Anonymous)
	reg, err := ParseRegistries([]byte(fmt.Sprintf(`
mirrors:
  docker.io:
    endpoint:
      - "http://%s"
    rewrite:
      "^rancher/(.*)": "mirrored/rancher/$1"
`, host)), "registries.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Docker Hub itself is never reachable from a test.
	remote := &Remote{Registries: reg, DisableDefaultEndpoint: true}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img, err := Pull(ctx, remote, ct.RuntimeRef)
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != runtimeName || !strings.HasPrefix(img.Digest, "sha256:") || !strings.Contains(img.Source, host+"/mirrored/rancher/rke2-runtime") {
		t.Errorf("digest %q source %q", img.Digest, img.Source)
	}
	dest := filepath.Join(t.TempDir(), "data")
	if err := ExtractPaths(img, dest, []string{"/bin", "/charts"}); err != nil {
		t.Fatal(err)
	}
	ct.CheckRuntimeTree(t, dest)

	// Nothing under the original name on the mirror: the error says
	// what the endpoint answered.
	_, err = Pull(ctx, remote, "rancher/hardened-etcd:v3.6.7")
	if err == nil || !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "no endpoint served it") {
		t.Errorf("pull of a missing image: %v", err)
	}
}

func TestPullWithAuthAndTLS(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tls    bool
		config func(caFile string) string
		want   string // "" for success
	}{
		{"basic auth", false, func(string) string {
			return "auth:\n      username: u\n      password: p"
		}, ""},
		{"auth field", false, func(string) string {
			return "auth:\n      auth: " + base64.StdEncoding.EncodeToString([]byte("u:p"))
		}, ""},
		{"wrong password", false, func(string) string {
			return "auth:\n      username: u\n      password: wrong"
		}, "401 Unauthorized"},
		{"no credentials", false, func(string) string { return "{}" }, "401 Unauthorized"},
		{"tls with ca_file", true, func(ca string) string {
			return "auth:\n      username: u\n      password: p\n    tls:\n      ca_file: " + ca
		}, ""},
		{"tls without the ca", true, func(string) string {
			return "auth:\n      username: u\n      password: p"
		}, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, host := ct.Registry(t, "u", "p", tc.tls)
			ct.PushRuntime(t, srv, host, "rancher/rke2-runtime:v1.34.4-rke2r1", &authn.Basic{Username: "u", Password: "p"})
			ca := filepath.Join(t.TempDir(), "ca.pem")
			if tc.tls {
				os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
			}
			yaml := fmt.Sprintf("configs:\n  %q:\n    %s\n", host, tc.config(ca))
			reg, err := ParseRegistries([]byte(yaml), "registries.yaml")
			if err != nil {
				t.Fatalf("%v in\n%s", err, yaml)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// The image's own registry is the loopback server: no mirror.
			img, err := Pull(ctx, &Remote{Registries: reg}, host+"/rancher/rke2-runtime:v1.34.4-rke2r1")
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("pull: %v, want an error saying %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(t.TempDir(), "data")
			if err := ExtractPaths(img, dest, []string{"/bin"}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	reg, err := ParseRegistries([]byte(`
mirrors:
  docker.io:
    endpoint: ["https://mirror.example.com:5000", "http://plain.example.com"]
    rewrite:
      "^rancher/(.*)": "cache/rancher/$1"
  "*":
    endpoint: ["https://everything.example.com"]
  registry.example.com:
    endpoint: ["https://registry.example.com"]
configs:
  mirror.example.com:5000:
    auth: {username: u, password: p}
`), "registries.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref  string
		want []string
	}{
		{"rancher/rke2-runtime:v1", []string{
			"https://mirror.example.com:5000 mirror.example.com:5000/cache/rancher/rke2-runtime:v1 auth",
			"http://plain.example.com plain.example.com/cache/rancher/rke2-runtime:v1",
			"https://registry-1.docker.io registry-1.docker.io/rancher/rke2-runtime:v1",
		}},
		{"busybox:1", []string{
			"https://mirror.example.com:5000 mirror.example.com:5000/library/busybox:1 auth",
			"http://plain.example.com plain.example.com/library/busybox:1",
			"https://registry-1.docker.io registry-1.docker.io/library/busybox:1",
		}},
		{"quay.io/a/b:2", []string{
			"https://everything.example.com everything.example.com/a/b:2",
			"https://quay.io quay.io/a/b:2",
		}},
		// A registry listed as its own mirror is not tried twice.
		{"registry.example.com/a:3", []string{
			"https://registry.example.com registry.example.com/a:3",
		}},
	} {
		eps, err := (&Remote{Registries: reg}).Endpoints(tc.ref)
		if err != nil {
			t.Fatalf("Endpoints(%q): %v", tc.ref, err)
		}
		var got []string
		for _, e := range eps {
			s := e.URL.String() + " " + e.Ref.String()
			if e.Config != nil && e.Config.Auth != nil {
				s += " auth"
			}
			got = append(got, s)
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("Endpoints(%q) =\n%s\nwant\n%s", tc.ref, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
	for _, none := range []*Remote{nil, {}, {DisableDefaultEndpoint: true}} {
		eps, err := none.Endpoints("rancher/x:1")
		if err != nil || len(eps) != 1 || eps[0].URL.Host != "registry-1.docker.io" {
			t.Errorf("no registries (%+v): %v, %v", none, eps, err)
		}
	}
	// DisableDefaultEndpoint leaves the registry out when it has mirrors,
	// not when it has none.
	noDefault := &Remote{Registries: reg, DisableDefaultEndpoint: true}
	for ref, want := range map[string]int{"rancher/x:1": 2, "quay.io/a/b:2": 1, "registry.example.com/a:3": 1} {
		eps, err := noDefault.Endpoints(ref)
		if err != nil || len(eps) != want || eps[len(eps)-1].URL.Host == "registry-1.docker.io" || eps[len(eps)-1].URL.Host == "quay.io" {
			t.Errorf("DisableDefaultEndpoint: Endpoints(%q) = %v, %v; want %d mirrors", ref, eps, err, want)
		}
	}
}

func TestParseRegistriesErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"mirrors:\n  docker.io:\n    endpoints: [x]\n", `registries.yaml line 3 column 5: mirrors["docker.io"].endpoints is not a known key; did you mean "endpoint"?`},
		{"mirror:\n  docker.io: {}\n", `registries.yaml line 1 column 1: mirror is not a known key; did you mean "mirrors"?`},
		{"mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n", "line 3 column 16: " + `mirrors["docker.io"].endpoint[0] "ftp://x" is not an http(s) URL`},
		{"mirrors:\n  docker.io:\n    endpoint: [\"mirror.example.com:5000\"]\n", "is not an http(s) URL"},
		{"mirrors:\n  docker.io:\n    endpoint: [\"https://x/some/path\"]\n", `registries.yaml: mirrors["docker.io"].endpoint[0] "https://x/some/path" has a path; the pull supports no path other than /v2`},
		{"mirrors:\n  docker.io:\n    rewrite:\n      \"(\": x\n", `line 4 column 7: mirrors["docker.io"].rewrite["("] "(" is not a regular expression`},
		{"mirrors:\n  \"not a registry!\":\n    endpoint: []\n", "line 2 column 3: " + `mirrors["not a registry!"] "not a registry!" is not a registry host`},
		{"configs:\n  x:\n    auth: {username: u, auth: dTpw}\n", "line 3 column 11: configs.x.auth gives auth and username or password; give either username and password or auth, not both"},
		{"configs:\n  x:\n    tls: {cert_file: /c}\n", "line 3 column 10: configs.x.tls needs cert_file and key_file together"},
		{"configs:\n  x:\n    tls: {ca_file: ca.pem}\n", "is not an absolute path"},
		{"mirrors: [\n", "registries.yaml"},
	} {
		_, err := ParseRegistries([]byte(tc.yaml), "registries.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRegistries(%q) = %v, want an error saying %q", tc.yaml, err, tc.want)
		}
	}
	for _, doc := range []string{"", "{}\n", "mirrors:\n  docker.io:\n    endpoint: [\"https://m.example.com/v2/\"]\n"} {
		if r, err := ParseRegistries([]byte(doc), "ok"); err != nil || r == nil {
			t.Errorf("ParseRegistries(%q): %v", doc, err)
		}
	}
	dir := t.TempDir()
	if _, err := LoadRegistries(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("LoadRegistries of a missing file: %v", err)
	}
	file := filepath.Join(dir, "registries.yaml")
	os.WriteFile(file, []byte("configs:\n  m.example.com:\n    auth: {username: u}\n"), 0o644)
	if _, err := LoadRegistries(file); err == nil || !strings.Contains(err.Error(), file+" line 3") {
		t.Errorf("LoadRegistries: %v, want an error naming %s and its line", err, file)
	}
}
