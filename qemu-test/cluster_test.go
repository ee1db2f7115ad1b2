package qemutest

import (
	"bytes"
	"context"
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
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// api is the test's raw HTTP client of a node's apiserver through QEMU's
// port forwarding, for what client-go's typed clients do not cover (custom
// resources, requests without credentials).
type api struct {
	t      *testing.T
	base   string
	client *http.Client
	pool   *x509.CertPool
}

// clientWith is an api with rc's credentials (a kubeconfig's).
func (n *testNode) clientWith(rc *rest.Config) *api {
	c, err := rest.HTTPClientFor(rc)
	if err != nil {
		n.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(rc.TLSClientConfig.CAData) {
		n.t.Fatal("the kubeconfig holds no CA")
	}
	return &api{t: n.t, base: rc.Host, client: c, pool: pool}
}

// do sends a request with body (JSON, or nil) and returns the status and
// the body of the answer.
func (a *api) do(method, path string, body any) (int, []byte) {
	return a.doWith(a.client, method, path, body)
}

func (a *api) doWith(c *http.Client, method, path string, body any) (int, []byte) {
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

// refusesStrangers checks that a request without credentials, or with a
// certificate of another CA, is refused.
func (a *api) refusesStrangers() {
	stranger := newCA(a.t, "stranger").clientAs(a.t, "system:admin", "system:masters")
	for what, certs := range map[string][]tls.Certificate{"no credentials": nil, "a foreign certificate": {stranger}} {
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: a.pool, Certificates: certs}}}
		if code, body := a.doWith(c, http.MethodGet, "/api/v1/namespaces", nil); code != http.StatusUnauthorized {
			a.t.Errorf("%s: %d %s, want 401", what, code, body)
		}
	}
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
		// chartutil.Save writes values.yaml from Raw, not from Values.
		Raw: []*chart.File{{Name: "values.yaml", Data: []byte("color: blue\n")}},
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

// checkManifests checks what write_files put into server/manifests: the
// plain manifest of generation gen is applied, with its Addon; the test
// chart is installed, and on the first boot a HelmChartConfig changes its
// value (kept on later boots).
func (a *api) checkManifests(gen int) {
	t := a.t
	var cm corev1.ConfigMap
	poll(t, fmt.Sprintf("the plain manifest's ConfigMap, generation %d", gen), 5*time.Minute, func() error {
		cm = corev1.ConfigMap{}
		if err := a.getInto("/api/v1/namespaces/default/configmaps/rke2os-test-plain", &cm); err != nil {
			return err
		}
		if cm.Data["generation"] != fmt.Sprint(gen) {
			return fmt.Errorf("generation %q", cm.Data["generation"])
		}
		return nil
	})
	var addon map[string]any
	if err := a.getInto("/apis/k3s.cattle.io/v1/namespaces/kube-system/addons/rke2os-test-plain", &addon); err != nil {
		t.Errorf("Addon of the plain manifest: %v", err)
	}
	if gen == 1 {
		poll(t, "the test chart's ConfigMap", 5*time.Minute, func() error {
			cm = corev1.ConfigMap{}
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
	}
	poll(t, "the HelmChartConfig's value in the chart's ConfigMap", 5*time.Minute, func() error {
		cm = corev1.ConfigMap{}
		if err := a.getInto("/api/v1/namespaces/rke2os-test/configmaps/rke2os-test-chart", &cm); err != nil {
			return err
		}
		if cm.Data["color"] != "green" {
			return fmt.Errorf("color %q", cm.Data["color"])
		}
		return nil
	})
}

// checkWorkload runs the test workload: an HTTP server behind a Service,
// and a pod that resolves the apiserver's and that Service's cluster names
// through CoreDNS and GETs the server through the Service's ClusterIP
// (kube-proxy's rules and the pod network at work).
func checkWorkload(t *testing.T, ctx context.Context, kc kubernetes.Interface) {
	t.Helper()
	image := inputOr("RKE2_TESTWORKLOAD_IMAGE", "docker.io/rke2os/testworkload:v1")
	labels := map[string]string{"app": "echo"}
	no, yes, uid, one := false, true, int64(65534), int32(1)
	sc := &corev1.SecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid, AllowPrivilegeEscalation: &no,
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "echo"}, Spec: appsv1.DeploymentSpec{
		Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "echo", Image: image, ImagePullPolicy: corev1.PullNever, Args: []string{"serve", "--listen", ":8080"},
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}}, SecurityContext: sc,
		}}}},
	}}
	if _, err := kc.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "echo"}, Spec: corev1.ServiceSpec{Selector: labels,
		Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(8080)}}}}
	if _, err := kc.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	log := runProbe(t, ctx, kc, "probe", "", "--resolve", "kubernetes.default.svc.cluster.local", "--resolve", "echo.default.svc.cluster.local",
		"--get", "http://echo.default.svc.cluster.local:8080/")
	if !strings.Contains(log, "hello from echo-") {
		t.Errorf("the probe pod did not reach the echo pod:\n%s", log)
	}
}

// runProbe runs testworkload check with args in a pod (on node, if not
// ""), waits for it to finish and returns its log; a failed check fails
// the test.
func runProbe(t *testing.T, ctx context.Context, kc kubernetes.Interface, name, node string, args ...string) string {
	t.Helper()
	image := inputOr("RKE2_TESTWORKLOAD_IMAGE", "docker.io/rke2os/testworkload:v1")
	no, yes, uid := false, true, int64(65534)
	sc := &corev1.SecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid, AllowPrivilegeEscalation: &no,
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, NodeName: node,
		Containers: []corev1.Container{{Name: "check", Image: image, ImagePullPolicy: corev1.PullNever, SecurityContext: sc,
			Args: append(append([]string{"check"}, args...), "--timeout", "5m")}}}}
	if _, err := kc.CoreV1().Pods("default").Create(ctx, probe, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var p *corev1.Pod
	poll(t, "the pod "+name+" to finish", 10*time.Minute, func() error {
		var err error
		if p, err = kc.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			return fmt.Errorf("phase %s", p.Status.Phase)
		}
		return nil
	})
	log, err := kc.CoreV1().Pods("default").GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		// The callers look for what the pod printed: say why it is missing.
		t.Errorf("the pod %s's log: %v", name, err)
	}
	if p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("the pod %s: %s\n%s", name, p.Status.Phase, log)
	}
	t.Logf("pod %s:\n%s", name, log)
	return string(log)
}
