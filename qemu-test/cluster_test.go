package qemutest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	corev1 "k8s.io/api/core/v1"
)

// api is the test's client of a node's apiserver through QEMU's port
// forwarding, as system:admin.
type api struct {
	t     *testing.T
	base  string
	pool  *x509.CertPool
	admin tls.Certificate
}

func (n *testNode) client() *api {
	pool := x509.NewCertPool()
	pool.AddCert(n.cas.server.cert)
	return &api{t: n.t, base: fmt.Sprintf("https://127.0.0.1:%d", n.api), pool: pool,
		admin: n.cas.client.clientAs(n.t, "system:admin", "system:masters")}
}

// do sends a request with body (JSON, or nil) and returns the status and
// the body of the answer.
func (a *api) do(method, path string, body any, certs ...tls.Certificate) (int, []byte) {
	if certs == nil {
		certs = []tls.Certificate{a.admin}
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: a.pool, Certificates: certs, ServerName: "localhost"}}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, b
}

// getInto GETs path into v, or says why not.
func (a *api) getInto(path string, v any) error {
	code, body := a.do(http.MethodGet, path, nil)
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, code, body)
	}
	return json.Unmarshal(body, v)
}

// runningPods waits until the pods of kube-system that match selector are
// all Running and ready, and there is at least one.
func (a *api) runningPods(what, selector string, timeout time.Duration) {
	a.t.Helper()
	poll(a.t, what+" Running and ready", timeout, func() error {
		var pods corev1.PodList
		if err := a.getInto("/api/v1/namespaces/kube-system/pods?labelSelector="+selector, &pods); err != nil {
			return err
		}
		if len(pods.Items) == 0 {
			return fmt.Errorf("no pod")
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 || !p.Status.ContainerStatuses[0].Ready {
				return fmt.Errorf("%s: %s %+v", p.Name, p.Status.Phase, p.Status.ContainerStatuses)
			}
		}
		return nil
	})
}

// testChart is a HelmChart manifest with chartContent: a chart whose
// ConfigMap shows its value "color" (and RKE2's injected clusterDNS).
func testChart(t *testing.T) string {
	t.Helper()
	c := &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: "v2", Name: "rke2os-test", Version: "0.1.0"},
		Values:   map[string]any{"color": "blue"},
		Templates: []*chart.File{{Name: "templates/cm.yaml", Data: []byte(
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rke2os-test-chart\ndata:\n  color: {{ .Values.color | quote }}\n  dns: {{ .Values.global.clusterDNS | quote }}\n")}},
	}
	p, err := chartutil.Save(c, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tgz, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata:\n  name: rke2os-test\n  namespace: kube-system\nspec:\n  targetNamespace: rke2os-test\n  createNamespace: true\n  chartContent: %s\n",
		base64.StdEncoding.EncodeToString(tgz))
}

// manifestFiles are write_files entries that put a HelmChart and a plain
// manifest into server/manifests, as a user would.
func manifestFiles(t *testing.T) string {
	plain := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rke2os-test-plain\n  namespace: default\ndata:\n  from: server/manifests\n"
	var b strings.Builder
	for name, content := range map[string]string{"rke2os-test-chart.yaml": testChart(t), "rke2os-test-plain.yaml": plain} {
		fmt.Fprintf(&b, "  - path: /var/lib/rancher/rke2/server/manifests/%s\n    content: |\n%s\n", name, indent(content, 6))
	}
	return b.String()
}

// checkCluster checks the single-server cluster once the Node is Ready:
// flannel and CoreDNS run (installed from RKE2's chart manifests by the
// HelmChart controller), the user's HelmChart and plain manifest from
// server/manifests are applied, and a HelmChartConfig changes the chart's
// value.
func (n *testNode) checkCluster() {
	t := n.t
	a := n.client()
	a.runningPods("flannel", "app=flannel", 10*time.Minute)
	a.runningPods("CoreDNS", "k8s-app=kube-dns", 10*time.Minute)

	var cm corev1.ConfigMap
	poll(t, "the plain manifest's ConfigMap", 5*time.Minute, func() error {
		return a.getInto("/api/v1/namespaces/default/configmaps/rke2os-test-plain", &cm)
	})
	var addon map[string]any
	if err := a.getInto("/apis/k3s.cattle.io/v1/namespaces/kube-system/addons/rke2os-test-plain", &addon); err != nil {
		t.Errorf("Addon of the plain manifest: %v", err)
	}
	poll(t, "the test chart's ConfigMap", 5*time.Minute, func() error {
		return a.getInto("/api/v1/namespaces/rke2os-test/configmaps/rke2os-test-chart", &cm)
	})
	if cm.Data["color"] != "blue" || cm.Data["dns"] != "10.43.0.10" {
		t.Errorf("chart ConfigMap %v, want color blue and RKE2's clusterDNS", cm.Data)
	}
	cfg := map[string]any{"apiVersion": "helm.cattle.io/v1", "kind": "HelmChartConfig",
		"metadata": map[string]any{"name": "rke2os-test", "namespace": "kube-system"},
		"spec":     map[string]any{"valuesContent": "color: green\n"}}
	if code, body := a.do(http.MethodPost, "/apis/helm.cattle.io/v1/namespaces/kube-system/helmchartconfigs", cfg); code != http.StatusCreated {
		t.Fatalf("create HelmChartConfig: %d %s", code, body)
	}
	poll(t, "the HelmChartConfig's value in the chart's ConfigMap", 5*time.Minute, func() error {
		if err := a.getInto("/api/v1/namespaces/rke2os-test/configmaps/rke2os-test-chart", &cm); err != nil {
			return err
		}
		if cm.Data["color"] != "green" {
			return fmt.Errorf("color %q", cm.Data["color"])
		}
		return nil
	})
}
