package charts

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

var chartNames = []string{"rke2-coredns", "rke2-flannel"}

// entries lists the archive's entries with their headers and contents.
func entries(t *testing.T, tgz []byte) ([]*tar.Header, map[string][]byte) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.Equal(epoch) {
		t.Errorf("gzip header: name %q, time %v; want none and %v", zr.Name, zr.ModTime, epoch)
	}
	tr := tar.NewReader(zr)
	var hdrs []*tar.Header
	data := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		hdrs = append(hdrs, h)
		data[h.Name] = b
	}
	return hdrs, data
}

func TestPackageLayout(t *testing.T) {
	for _, name := range chartNames {
		t.Run(name, func(t *testing.T) {
			tgz, err := Package(name, epoch)
			if err != nil {
				t.Fatal(err)
			}
			hdrs, data := entries(t, tgz)
			var names []string
			for i, h := range hdrs {
				names = append(names, h.Name)
				if i > 0 && hdrs[i-1].Name >= h.Name {
					t.Errorf("%s after %s: not sorted", h.Name, hdrs[i-1].Name)
				}
				if !strings.HasPrefix(h.Name, name+"/") {
					t.Errorf("%s is not under %s/", h.Name, name)
				}
				if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(epoch) {
					t.Errorf("%s: owner %d:%d (%q:%q), time %v", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
				}
				want := int64(0o644)
				if h.Typeflag == tar.TypeDir {
					want = 0o755
				} else if h.Typeflag != tar.TypeReg {
					t.Errorf("%s: type %c", h.Name, h.Typeflag)
				}
				if h.Mode != want {
					t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, want)
				}
			}
			for _, f := range []string{"Chart.yaml", "values.yaml", "templates/_helpers.tpl"} {
				want, err := os.ReadFile(filepath.Join(name, f))
				if err != nil {
					t.Fatal(err)
				}
				if got, ok := data[name+"/"+f]; !ok || !bytes.Equal(got, want) {
					t.Errorf("%s/%s missing or differs from the file; entries: %v", name, f, names)
				}
			}
		})
	}
}

// TestPackageReproducible packages each chart twice, the second time from a
// copy whose files have other times and modes: same bytes.
func TestPackageReproducible(t *testing.T) {
	for _, name := range chartNames {
		t.Run(name, func(t *testing.T) {
			a, err := Package(name, epoch)
			if err != nil {
				t.Fatal(err)
			}
			cp := filepath.Join(t.TempDir(), name)
			if err := os.CopyFS(cp, os.DirFS(name)); err != nil {
				t.Fatal(err)
			}
			later := time.Now().Add(time.Hour)
			if err := filepath.Walk(cp, func(p string, fi os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				if !fi.IsDir() {
					if err := os.Chmod(p, 0o600); err != nil {
						return err
					}
				}
				return os.Chtimes(p, later, later)
			}); err != nil {
				t.Fatal(err)
			}
			// Left out: hidden files, such as an editor's.
			if err := os.WriteFile(filepath.Join(cp, "templates", ".daemonset.yaml.swp"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			b, err := Package(cp, epoch)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Error("two packagings of the same files differ")
			}
			c, err := Package(name, epoch.Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(a, c) {
				t.Error("the epoch does not change the archive")
			}
		})
	}
}

func TestPackageErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Package(dir, epoch); err == nil {
		t.Error("a directory without Chart.yaml packaged")
	}
	for _, chart := range []string{
		"apiVersion: v1\nname: x\nversion: 1.0.0\n",
		"apiVersion: v2\nname: Not_A_Name\nversion: 1.0.0\n",
		"apiVersion: v2\nname: x\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte(chart), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Package(dir, epoch); err == nil {
			t.Errorf("packaged with Chart.yaml %q", chart)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte("apiVersion: v2\nname: x\nversion: 1.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("Chart.yaml", filepath.Join(dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := Package(dir, epoch); err == nil {
		t.Error("packaged a symlink")
	}
}

func TestManifest(t *testing.T) {
	tgz := []byte("not really a chart, but any bytes")
	got := Manifest("rke2-flannel", tgz, true)
	want := "apiVersion: helm.cattle.io/v1\n" +
		"kind: HelmChart\n" +
		"metadata:\n" +
		"  name: rke2-flannel\n" +
		"  namespace: kube-system\n" +
		"spec:\n" +
		"  bootstrap: true\n" +
		"  chartContent: " + base64.StdEncoding.EncodeToString(tgz) + "\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestAll decodes the manifests as the HelmChart controller would and
// checks the archives inside are the charts.
func TestAll(t *testing.T) {
	ms, err := All(".", epoch)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != len(chartNames) {
		t.Errorf("%d manifests, want %d: %v", len(ms), len(chartNames), ms)
	}
	for _, name := range chartNames {
		m, ok := ms[name+".yaml"]
		if !ok {
			t.Errorf("no %s.yaml", name)
			continue
		}
		if !bytes.HasPrefix(m, []byte("apiVersion: helm.cattle.io/v1\n")) {
			t.Errorf("%s.yaml does not start as RKE2's do:\n%.200s", name, m)
		}
		var hc struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   struct {
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
			} `yaml:"metadata"`
			Spec map[string]any `yaml:"spec"`
		}
		if err := yaml.Unmarshal(m, &hc); err != nil {
			t.Fatalf("%s.yaml: %v", name, err)
		}
		if hc.APIVersion != "helm.cattle.io/v1" || hc.Kind != "HelmChart" || hc.Metadata.Name != name || hc.Metadata.Namespace != "kube-system" {
			t.Errorf("%s.yaml: %+v", name, hc)
		}
		if want := name == "rke2-flannel"; hc.Spec["bootstrap"] != want {
			t.Errorf("%s.yaml: bootstrap %v, want %v", name, hc.Spec["bootstrap"], want)
		}
		for k := range hc.Spec {
			if k != "bootstrap" && k != "chartContent" {
				t.Errorf("%s.yaml: unexpected spec.%s", name, k)
			}
		}
		content, _ := hc.Spec["chartContent"].(string)
		tgz, err := base64.StdEncoding.DecodeString(content)
		if err != nil {
			t.Fatalf("%s.yaml: chartContent: %v", name, err)
		}
		want, err := Package(name, epoch)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tgz, want) {
			t.Errorf("%s.yaml: chartContent is not the packaged chart", name)
		}
	}
}

func TestBootstrap(t *testing.T) {
	if !Bootstrap("rke2-flannel") || !Bootstrap("rke2-canal") || Bootstrap("rke2-coredns") || Bootstrap("rke2-metrics-server") {
		t.Error("bootstrap: true is for the CNI charts only")
	}
}
