package rke2node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/rke2os/rke2os/init/rke2node/etcdsnap/s3store"
)

// TestS3ConfigSecret: etcd-s3 with etcd-s3-config-secret alone reads the
// kube-system Secret, at each connect; a bad value names the key.
func TestS3ConfigSecret(t *testing.T) {
	ctx := context.Background()
	backend := s3mem.New()
	if err := backend.CreateBucket("snaps"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	env := testEnv(t)
	data := map[string][]byte{"etcd-s3-endpoint": []byte(strings.TrimPrefix(srv.URL, "http://")), "etcd-s3-bucket": []byte("snaps"),
		"etcd-s3-insecure": []byte("true"), "etcd-s3-access-key": []byte("a"), "etcd-s3-secret-key": []byte("s"),
		"etcd-s3-folder": []byte("c1"), "etcd-s3-timeout": []byte("30s"), "etcd-s3-endpoint-ca": []byte("-----BEGIN CERTIFICATE-----\n")}
	kube := kubefake.NewSimpleClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: "kube-system"}, Data: data})

	rc := rke2(t, "  etcd-s3: true\n  etcd-s3-config-secret: s3\n")
	if s3 := rc.EtcdS3(); !s3.FromKeysOnly() || s3.ConfigSecret != "s3" {
		t.Fatalf("EtcdS3 %+v", s3)
	}
	c, err := env.secretS3Config(ctx, kube, "s3")
	if err != nil {
		t.Fatal(err)
	}
	if c.Bucket != "snaps" || !c.Insecure || c.Folder != "c1" || c.Timeout.String() != "30s" || c.EndpointCA == "" {
		t.Errorf("config %+v", c)
	}
	if b, _ := os.ReadFile(c.EndpointCA); !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Errorf("the CA file %s: %q", c.EndpointCA, b)
	}
	delete(data, "etcd-s3-endpoint-ca")
	kube = kubefake.NewSimpleClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: "kube-system"}, Data: data})
	l := &lazyS3{load: func(ctx context.Context) (s3store.Config, error) { return env.secretS3Config(ctx, kube, "s3") }}
	p := filepath.Join(t.TempDir(), "etcd-snapshot-node1-1796644800")
	os.WriteFile(p, []byte("x"), 0o600)
	if o, err := l.Upload(ctx, p, "node1"); err != nil || o.Location != "s3://snaps/c1/etcd-snapshot-node1-1796644800" {
		t.Errorf("upload with the secret's config: %+v %v", o, err)
	}

	if _, err := env.secretS3Config(ctx, kube, "missing"); err == nil || !strings.Contains(err.Error(), "secret kube-system/missing") {
		t.Errorf("a missing secret: %v", err)
	}
	data["etcd-s3-insecure"] = []byte("maybe")
	kube = kubefake.NewSimpleClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: "kube-system"}, Data: data})
	if _, err := env.secretS3Config(ctx, kube, "s3"); err == nil || !strings.Contains(err.Error(), `etcd-s3-insecure is "maybe"`) {
		t.Errorf("a bad value: %v", err)
	}
	// With keys set too, the keys count (the secret is not read).
	if rke2(t, "  etcd-s3: true\n  etcd-s3-config-secret: s3\n  etcd-s3-proxy: http://p:3128\n").EtcdS3().FromKeysOnly() {
		t.Error("etcd-s3-proxy and a secret: FromKeysOnly")
	}
	if rke2(t, "  etcd-s3: true\n  etcd-s3-config-secret: s3\n  etcd-s3-bucket: b\n").EtcdS3().FromKeysOnly() {
		t.Error("keys and a secret: FromKeysOnly")
	}
}

// TestS3ConfigSecretProxy: the Secret's etcd-s3-proxy is the proxy every
// S3 request goes through; a bad one names the Secret and the key, never
// the password.
func TestS3ConfigSecretProxy(t *testing.T) {
	ctx := context.Background()
	backend := s3mem.New()
	if err := backend.CreateBucket("snaps"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer srv.Close()
	var proxied atomic.Int32
	rp := &httputil.ReverseProxy{Director: func(r *http.Request) {}} // forwards to the absolute URL it was asked for
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Host == "" || r.Header.Get("Proxy-Authorization") == "" {
			http.Error(w, "not a proxy request with credentials", http.StatusBadRequest)
			return
		}
		proxied.Add(1)
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	env := testEnv(t)
	secret := func(data map[string][]byte) *kubefake.Clientset {
		return kubefake.NewSimpleClientset(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: "kube-system"}, Data: data})
	}
	proxyURL := strings.Replace(proxy.URL, "http://", "http://user:pr0xy-Pass@", 1)
	data := map[string][]byte{"etcd-s3-endpoint": []byte(strings.TrimPrefix(srv.URL, "http://")), "etcd-s3-bucket": []byte("snaps"),
		"etcd-s3-insecure": []byte("true"), "etcd-s3-access-key": []byte("a"), "etcd-s3-secret-key": []byte("s"),
		"etcd-s3-proxy": []byte(proxyURL + "\n")}
	kube := secret(data)
	c, err := env.secretS3Config(ctx, kube, "s3")
	if err != nil || c.Proxy != proxyURL {
		t.Fatalf("config %v, %v: want Proxy %s", c, err, proxyURL)
	}
	l := &lazyS3{load: func(ctx context.Context) (s3store.Config, error) { return env.secretS3Config(ctx, kube, "s3") }}
	p := filepath.Join(t.TempDir(), "etcd-snapshot-node1-1796644800")
	os.WriteFile(p, []byte("x"), 0o600)
	if _, err := l.Upload(ctx, p, "node1"); err != nil {
		t.Fatalf("upload through the secret's proxy: %v", err)
	}
	if proxied.Load() == 0 {
		t.Error("the upload did not go through the secret's etcd-s3-proxy")
	}

	data["etcd-s3-proxy"] = []byte("socks5://user:pr0xy-Pass@proxy:1080")
	_, err = env.secretS3Config(ctx, secret(data), "s3")
	if err == nil || !strings.Contains(err.Error(), `secret kube-system/s3: etcd-s3-proxy "socks5://xxxxx@proxy:1080" is a socks5:// URL`) ||
		strings.Contains(err.Error(), "pr0xy-Pass") {
		t.Errorf("a bad proxy: %v", err)
	}
	// Keys set in the config carry the proxy too.
	if s3 := s3Config(rke2(t, "  etcd-s3: true\n  etcd-s3-proxy: none\n").EtcdS3()); s3.Proxy != "none" {
		t.Errorf("s3Config: Proxy %q", s3.Proxy)
	}
}
