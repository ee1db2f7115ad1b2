package charts

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/rke2os/rke2os/internal/golden"
)

// injected are the globals the HelmChart controller sets, as it would for
// a single-stack node with RKE2's defaults.
func injected() map[string]any {
	return map[string]any{
		"clusterCIDR":           "10.42.0.0/16",
		"clusterCIDRv4":         "10.42.0.0/16",
		"clusterDNS":            "10.43.0.10",
		"clusterDomain":         "cluster.local",
		"serviceCIDR":           "10.43.0.0/16",
		"systemDefaultRegistry": "",
		"rke2DataDir":           "/var/lib/rancher/rke2",
	}
}

// load packages the chart and loads the archive as the controller does.
func load(t *testing.T, name string) *chart.Chart {
	t.Helper()
	tgz, err := Package(name, epoch)
	if err != nil {
		t.Fatal(err)
	}
	c, err := loader.LoadArchive(bytes.NewReader(tgz))
	if err != nil {
		t.Fatalf("helm cannot load the archive of %s: %v", name, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Name() != name {
		t.Fatalf("chart %q, want %q", c.Name(), name)
	}
	return c
}

// render renders the chart as its install by the controller would: a
// release named as the chart (the HelmChart's name) in kube-system, with
// the globals (injected, changed by set) as the user-supplied values.
func render(t *testing.T, name string, set map[string]any) []byte {
	t.Helper()
	globals := injected()
	maps.Copy(globals, set)
	return renderValues(t, name, map[string]any{"global": globals})
}

// renderValues renders the chart with vals as the user-supplied values. It
// returns the output as `helm template` prints it, one "# Source:" document
// per template in file order.
func renderValues(t *testing.T, name string, vals map[string]any) []byte {
	t.Helper()
	c := load(t, name)
	rv, err := chartutil.ToRenderValues(c, vals, chartutil.ReleaseOptions{
		Name:      name,
		Namespace: Namespace,
		Revision:  1,
		IsInstall: true,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(c, rv)
	if err != nil {
		t.Fatalf("rendering %s: %v", name, err)
	}
	var buf bytes.Buffer
	for _, f := range slices.Sorted(maps.Keys(out)) {
		doc := strings.TrimSpace(out[f])
		if doc == "" {
			continue
		}
		buf.WriteString("---\n# Source: " + f + "\n" + doc + "\n")
	}
	return buf.Bytes()
}

// objects decodes every document of rendered, checks each is an object of
// a kind client-go knows, with no field it does not know, and returns them
// by "Kind/name".
func objects(t *testing.T, rendered []byte) map[string]runtime.Object {
	t.Helper()
	strict := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true})
	objs := map[string]runtime.Object{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(rendered)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var u unstructured.Unstructured
		if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(doc), 4096).Decode(&u.Object); err != nil {
			t.Fatalf("%v in\n%s", err, doc)
		}
		if u.Object == nil {
			continue // only comments
		}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			t.Errorf("apiVersion %q, kind %q, name %q in\n%s", u.GetAPIVersion(), u.GetKind(), u.GetName(), doc)
		}
		key := u.GetKind() + "/" + u.GetName()
		if _, dup := objs[key]; dup {
			t.Errorf("%s twice", key)
		}
		obj, _, err := strict.Decode(doc, nil, nil)
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		objs[key] = obj
	}
	return objs
}

func TestRenderGolden(t *testing.T) {
	want := map[string][]string{
		"rke2-flannel": {
			"ClusterRole/flannel",
			"ClusterRoleBinding/flannel",
			"ConfigMap/kube-flannel-cfg",
			"DaemonSet/kube-flannel-ds",
			"ServiceAccount/flannel",
		},
		"rke2-coredns": {
			"ClusterRole/system:coredns",
			"ClusterRoleBinding/system:coredns",
			"ConfigMap/rke2-coredns-rke2-coredns",
			"Deployment/rke2-coredns-rke2-coredns",
			"Service/rke2-coredns-rke2-coredns",
			"ServiceAccount/coredns",
		},
	}
	for _, name := range chartNames {
		t.Run(name, func(t *testing.T) {
			rendered := render(t, name, nil)
			golden.Check(t, name+".golden.yaml", rendered)
			objs := objects(t, rendered)
			if got := slices.Sorted(maps.Keys(objs)); !slices.Equal(got, want[name]) {
				t.Errorf("objects %v, want %v", got, want[name])
			}
			for key, obj := range objs {
				m := obj.(interface{ GetNamespace() string })
				namespaced := !strings.HasPrefix(key, "Cluster")
				if ns := m.GetNamespace(); namespaced != (ns == Namespace) {
					t.Errorf("%s in namespace %q", key, ns)
				}
			}
		})
	}
}

// podSpec returns the pod template of the chart's workload.
func podSpec(t *testing.T, objs map[string]runtime.Object) corev1.PodSpec {
	t.Helper()
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.DaemonSet:
			return o.Spec.Template.Spec
		case *appsv1.Deployment:
			return o.Spec.Template.Spec
		}
	}
	t.Fatal("no DaemonSet or Deployment")
	return corev1.PodSpec{}
}

func TestSystemDefaultRegistry(t *testing.T) {
	for _, name := range chartNames {
		t.Run(name, func(t *testing.T) {
			for _, reg := range []string{"registry.example.com", "registry.example.com/"} {
				spec := podSpec(t, objects(t, render(t, name, map[string]any{"systemDefaultRegistry": reg})))
				for _, c := range append(spec.InitContainers, spec.Containers...) {
					if !strings.HasPrefix(c.Image, "registry.example.com/rancher/hardened-") {
						t.Errorf("registry %q: container %s runs %s", reg, c.Name, c.Image)
					}
					if c.ImagePullPolicy != corev1.PullIfNotPresent {
						t.Errorf("container %s: pull policy %s", c.Name, c.ImagePullPolicy)
					}
				}
			}
			spec := podSpec(t, objects(t, render(t, name, nil)))
			for _, c := range append(spec.InitContainers, spec.Containers...) {
				if !strings.HasPrefix(c.Image, "rancher/hardened-") {
					t.Errorf("no registry: container %s runs %s", c.Name, c.Image)
				}
			}
		})
	}
}

// flannelConfig returns the flannel ConfigMap's two JSON files, decoded.
func flannelConfig(t *testing.T, set map[string]any) (netConf, cniConf map[string]any) {
	t.Helper()
	cm, ok := objects(t, render(t, "rke2-flannel", set))["ConfigMap/kube-flannel-cfg"].(*corev1.ConfigMap)
	if !ok {
		t.Fatal("no ConfigMap kube-flannel-cfg")
	}
	for key, v := range map[string]*map[string]any{"net-conf.json": &netConf, "cni-conf.json": &cniConf} {
		if err := json.Unmarshal([]byte(cm.Data[key]), v); err != nil {
			t.Fatalf("%s is not JSON: %v\n%s", key, err, cm.Data[key])
		}
	}
	return netConf, cniConf
}

func TestFlannelNetConf(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  map[string]any
		want map[string]any
	}{{
		name: "injected",
		want: map[string]any{"Network": "10.42.0.0/16", "EnableIPv4": true},
	}, {
		name: "only clusterCIDR",
		set:  map[string]any{"clusterCIDR": "10.52.0.0/16", "clusterCIDRv4": ""},
		want: map[string]any{"Network": "10.52.0.0/16", "EnableIPv4": true},
	}, {
		name: "dual-stack",
		set:  map[string]any{"clusterCIDR": "10.42.0.0/16,2001:cafe:42::/56", "clusterCIDRv4": "", "clusterCIDRv6": ""},
		want: map[string]any{"Network": "10.42.0.0/16", "EnableIPv4": true, "IPv6Network": "2001:cafe:42::/56", "EnableIPv6": true},
	}, {
		name: "IPv6 only",
		set:  map[string]any{"clusterCIDR": "2001:cafe:42::/56", "clusterCIDRv4": "", "clusterCIDRv6": "2001:cafe:42::/56"},
		want: map[string]any{"EnableIPv4": false, "IPv6Network": "2001:cafe:42::/56", "EnableIPv6": true},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			netConf, _ := flannelConfig(t, tc.set)
			tc.want["Backend"] = map[string]any{"Type": "vxlan"}
			got, _ := json.Marshal(netConf)
			want, _ := json.Marshal(tc.want)
			if !bytes.Equal(got, want) {
				t.Errorf("net-conf.json is %s, want %s", got, want)
			}
		})
	}
}

func TestFlannelCNIConf(t *testing.T) {
	_, cniConf := flannelConfig(t, nil)
	if cniConf["name"] != "cbr0" || cniConf["cniVersion"] != "1.0.0" {
		t.Errorf("cni-conf.json: %v", cniConf)
	}
	plugins, _ := cniConf["plugins"].([]any)
	var types []string
	for _, p := range plugins {
		p, _ := p.(map[string]any)
		typ, _ := p["type"].(string)
		types = append(types, typ)
	}
	if !slices.Equal(types, []string{"flannel", "portmap"}) {
		t.Errorf("cni-conf.json plugins are %v", types)
	}
}

func TestFlannelIface(t *testing.T) {
	objs := objects(t, renderValues(t, "rke2-flannel", map[string]any{
		"global":  injected(),
		"flannel": map[string]any{"iface": "eth0"},
	}))
	spec := podSpec(t, objs)
	want := []string{"/opt/bin/flanneld", "--ip-masq", "--kube-subnet-mgr", "--iface=eth0"}
	if got := spec.Containers[0].Command; !slices.Equal(got, want) {
		t.Errorf("flanneld runs %q, want %q", got, want)
	}
}

func TestCoreDNSGlobals(t *testing.T) {
	objs := objects(t, render(t, "rke2-coredns", map[string]any{
		"clusterDNS":    "10.53.0.10,2001:cafe:53::a",
		"clusterDomain": "example.internal",
	}))
	svc, ok := objs["Service/rke2-coredns-rke2-coredns"].(*corev1.Service)
	if !ok {
		t.Fatal("no Service")
	}
	if svc.Spec.ClusterIP != "10.53.0.10" || !slices.Equal(svc.Spec.ClusterIPs, []string{"10.53.0.10", "2001:cafe:53::a"}) {
		t.Errorf("Service clusterIP %s, clusterIPs %v", svc.Spec.ClusterIP, svc.Spec.ClusterIPs)
	}
	cm, ok := objs["ConfigMap/rke2-coredns-rke2-coredns"].(*corev1.ConfigMap)
	if !ok {
		t.Fatal("no ConfigMap")
	}
	if !strings.Contains(cm.Data["Corefile"], "\n    kubernetes example.internal in-addr.arpa ip6.arpa {\n") {
		t.Errorf("the Corefile does not serve example.internal:\n%s", cm.Data["Corefile"])
	}
}

// TestCoreDNSServers adds a server block, as a HelmChartConfig would for a
// stub domain.
func TestCoreDNSServers(t *testing.T) {
	objs := objects(t, renderValues(t, "rke2-coredns", map[string]any{
		"global": injected(),
		"servers": []any{
			map[string]any{"zones": []any{map[string]any{"zone": "."}}, "port": 53, "plugins": []any{
				map[string]any{"name": "errors"},
				map[string]any{"name": "forward", "parameters": ". /etc/resolv.conf"},
			}},
			map[string]any{"zones": []any{map[string]any{"zone": "example.org"}, map[string]any{"zone": "example.net"}}, "port": 53, "plugins": []any{
				map[string]any{"name": "forward", "parameters": ". 192.0.2.53", "configBlock": "max_fails 2\nexpire 10s"},
			}},
		},
	}))
	cm := objs["ConfigMap/rke2-coredns-rke2-coredns"].(*corev1.ConfigMap)
	want := ".:53 {\n" +
		"    errors\n" +
		"    forward . /etc/resolv.conf\n" +
		"}\n" +
		"example.org example.net:53 {\n" +
		"    forward . 192.0.2.53 {\n" +
		"        max_fails 2\n" +
		"        expire 10s\n" +
		"    }\n" +
		"}"
	if got := cm.Data["Corefile"]; got != want {
		t.Errorf("Corefile\n%s\nwant\n%s", got, want)
	}
}
