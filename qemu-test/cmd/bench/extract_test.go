package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// builtArchive is the archive images/build.sh writes, seen from here.
const builtArchive = "../../../build/images/rke2-images.linux-amd64.tar.zst"

// TestBenchExtract runs the extraction benchmark once on the built airgap
// archive: the init and tar must have written the same runtime, and the
// rows must hold figures.
func TestBenchExtract(t *testing.T) {
	if _, err := os.Stat(builtArchive); err != nil {
		t.Skip("no built airgap archive (make images):", err)
	}
	if testing.Short() {
		t.Skip("extracts the runtime from a 230 MB archive")
	}
	const version = "v1.34.4+rke2r1"
	tb := &benchTB{}
	t.Cleanup(tb.cleanup)

	layers, err := runtimeLayers(tb, builtArchive, version)
	if err != nil || len(layers) == 0 {
		t.Fatalf("runtime layers: %v %v", layers, err)
	}
	ours, _, err := extractOurs(tb, builtArchive, version)
	if err != nil {
		t.Fatal(err)
	}
	base, _, err := extractTar(tb, layers)
	if err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{ours, base} {
		for _, f := range []string{"bin/containerd", "bin/kubelet"} {
			if fi, err := os.Stat(filepath.Join(root, f)); err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
				t.Errorf("%s: %s missing: %v", root, f, err)
			}
		}
	}
	if err := sameTree(base, ours, "bin", "charts"); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(ours, ".extracted")); err != nil {
		t.Errorf("the init wrote no .extracted marker: %v", err)
	}

	rows := benchExtract(tb, builtArchive, version, 1)
	if len(rows) != 2 { // the uncompressed .tar is built beside the .tar.zst
		t.Fatalf("rows: %+v", rows)
	}
	for _, r := range rows {
		for _, v := range []string{r.value, strings.SplitN(r.baseline, "|", 2)[1], strings.TrimSuffix(r.ratio, "x")} {
			if x, err := strconv.ParseFloat(v, 64); err != nil || x <= 0 {
				t.Errorf("row %q: figure %q", r.what, v)
			}
		}
		t.Logf("%s: %s; %s: %s", r.what, r.value, r.baseline, r.ratio)
	}
}
