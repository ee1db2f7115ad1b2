// Package charts packages rke2os's own Helm charts, the directories beside
// this file (rke2-flannel, rke2-coredns), the way RKE2 packages its charts:
// each chart becomes a reproducible .tgz, as `helm package` lays it out, and
// the .tgz goes base64-encoded into a HelmChart manifest (helm.cattle.io/v1).
// Those manifests are the files of the rke2-runtime image's /charts/
// directory; a node copies them to /var/lib/rancher/rke2/server/manifests/,
// where the HelmChart controller installs them with the Helm SDK, injecting
// RKE2's global values (global.clusterCIDR, global.clusterDNS, ...), which
// the charts read. The tests render the charts with the Helm SDK and keep
// the output in testdata/*.golden.yaml (go test -update rewrites it).
package charts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Namespace is where RKE2 puts its HelmChart objects, and so where the
// charts' releases and objects go (the manifests set no targetNamespace).
const Namespace = "kube-system"

// bootstrapCharts are the charts RKE2 marks bootstrap: true: the CNI
// charts, which must install before there is a pod network (the controller
// runs their install on the host network and tolerates a not-ready node).
var bootstrapCharts = map[string]bool{
	"rke2-canal":      true,
	"rke2-calico":     true,
	"rke2-calico-crd": true,
	"rke2-cilium":     true,
	"rke2-flannel":    true,
	"rke2-multus":     true,
}

// Bootstrap reports whether RKE2 marks the chart called name bootstrap:
// true (the CNI charts) rather than false (the others, rke2-coredns among
// them).
func Bootstrap(name string) bool { return bootstrapCharts[name] }

// chartMeta is what Package reads of a Chart.yaml.
type chartMeta struct {
	APIVersion string `yaml:"apiVersion"`
	Name       string `yaml:"name"`
	Version    string `yaml:"version"`
}

// chartName matches the names Package and Manifest accept: what Helm
// accepts of a chart and Kubernetes of an object's name, a DNS-1123 label.
var chartName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// readMeta reads and checks dir/Chart.yaml.
func readMeta(dir string) (chartMeta, error) {
	var m chartMeta
	b, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return m, err
	}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", filepath.Join(dir, "Chart.yaml"), err)
	}
	switch {
	case m.APIVersion != "v2":
		return m, fmt.Errorf("%s: apiVersion is %q, want v2", filepath.Join(dir, "Chart.yaml"), m.APIVersion)
	case !chartName.MatchString(m.Name) || len(m.Name) > 63:
		return m, fmt.Errorf("%s: %q is not a chart name", filepath.Join(dir, "Chart.yaml"), m.Name)
	case m.Version == "":
		return m, fmt.Errorf("%s: no version", filepath.Join(dir, "Chart.yaml"))
	}
	return m, nil
}

// Package returns the chart in dir as a .tgz laid out as `helm package`
// lays it out: every entry under "<name>/", name being the chart's name in
// its Chart.yaml. Unlike helm, it makes the same bytes from the same files:
// entries sorted by path, directories (mode 0755) as well as files (0644),
// uid and gid 0 with no user or group names, every mtime set to epoch
// (truncated to the second), and a gzip header with no file name and epoch
// as its time. Files and directories whose name starts with a dot are left
// out (.helmignore is not read); anything else but regular files and
// directories is an error.
func Package(dir string, epoch time.Time) ([]byte, error) {
	meta, err := readMeta(dir)
	if err != nil {
		return nil, err
	}
	epoch = epoch.Truncate(time.Second)

	type entry struct {
		name string // slash-separated, relative to dir; "" for dir itself
		dir  bool
		src  string
	}
	var entries []entry
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		} else if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			entries = append(entries, entry{name: rel, dir: true})
		case d.Type().IsRegular():
			entries = append(entries, entry{name: rel, src: p})
		default:
			return fmt.Errorf("%s: not a regular file or a directory", p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	zw.Header = gzip.Header{ModTime: epoch, OS: 255}
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    path.Join(meta.Name, e.name),
			ModTime: epoch,
		}
		var data []byte
		if e.dir {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
			hdr.Mode = 0o755
		} else {
			if data, err = os.ReadFile(e.src); err != nil {
				return nil, err
			}
			hdr.Typeflag = tar.TypeReg
			hdr.Mode = 0o644
			hdr.Size = int64(len(data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// helmChart is a HelmChart object, its fields in the order of RKE2's files.
type helmChart struct {
	APIVersion string        `yaml:"apiVersion"`
	Kind       string        `yaml:"kind"`
	Metadata   chartObjMeta  `yaml:"metadata"`
	Spec       helmChartSpec `yaml:"spec"`
}

type chartObjMeta struct {
	Name      string `yaml:"name"`
	Namespace string `yaml:"namespace"`
}

type helmChartSpec struct {
	Bootstrap    bool   `yaml:"bootstrap"`
	ChartContent string `yaml:"chartContent"`
}

// Manifest returns the HelmChart manifest RKE2 would ship for the chart
// archive tgz, as a YAML document starting "apiVersion: helm.cattle.io/v1":
// metadata.name is name (which becomes the release's name), the namespace
// kube-system, spec.chartContent the base64 of tgz on one line and
// spec.bootstrap bootstrap. It sets no targetNamespace and no values: the
// release goes to kube-system, with the chart's values and the globals the
// controller injects.
func Manifest(name string, tgz []byte, bootstrap bool) []byte {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	err := enc.Encode(helmChart{
		APIVersion: "helm.cattle.io/v1",
		Kind:       "HelmChart",
		Metadata:   chartObjMeta{Name: name, Namespace: Namespace},
		Spec: helmChartSpec{
			Bootstrap:    bootstrap,
			ChartContent: base64.StdEncoding.EncodeToString(tgz),
		},
	})
	if err == nil {
		err = enc.Close()
	}
	if err != nil {
		// Encoding strings and a bool into a buffer cannot fail.
		panic(fmt.Sprintf("charts: encoding the HelmChart %q: %v", name, err))
	}
	return buf.Bytes()
}

// All packages every chart under root (each directory of root holding a
// Chart.yaml; its name must be the chart's) and returns the manifests by
// file name, "<chart>.yaml" as in RKE2's /charts/, bootstrap as Bootstrap
// says. epoch is the time of every entry in the archives (see Package).
func All(root string, epoch time.Time) (map[string][]byte, error) {
	des, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte)
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		dir := filepath.Join(root, de.Name())
		if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		meta, err := readMeta(dir)
		if err != nil {
			return nil, err
		}
		if meta.Name != de.Name() {
			return nil, fmt.Errorf("%s: the chart is called %q, not as its directory", dir, meta.Name)
		}
		tgz, err := Package(dir, epoch)
		if err != nil {
			return nil, err
		}
		out[meta.Name+".yaml"] = Manifest(meta.Name, tgz, Bootstrap(meta.Name))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no charts", root)
	}
	return out, nil
}
