package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseManifest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string // kind/namespace/name
		wantErr []string
	}{
		{name: "empty", in: ""},
		{name: "only comments and separators", in: "# hi\n---\n---\n# bye\n"},
		{name: "multi-document", in: `---
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: ns1}
data: {replicas: 3}
---
# comment only
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: b}
`, want: []string{"ConfigMap/ns1/a", "Deployment//b"}},
		{name: "json stream", in: `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}} {"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"}}`,
			want: []string{"ConfigMap//a", "Secret//b"}},
		{name: "kind List", in: `apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}
- apiVersion: v1
  kind: List
  items:
  - {apiVersion: v1, kind: Secret, metadata: {name: nested}}
`, want: []string{"ConfigMap//a", "Secret//nested"}},
		{name: "typed list items inherit kind", in: `apiVersion: v1
kind: ConfigMapList
items:
- metadata: {name: a}
`, want: []string{"ConfigMap//a"}},
		{name: "empty list", in: "apiVersion: v1\nkind: List\nitems: []\n"},
		{name: "yaml syntax error", in: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: [x\n",
			wantErr: []string{"document 2 (from line 5)", "yaml: line 2"}},
		{name: "yaml 1.1 boolean as namespace", in: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\n", wantErr: []string{"namespace"}},
		{name: "bad separator", in: "apiVersion: v1\n--- junk\n", wantErr: []string{"document 1", "separator"}},
		{name: "no kind", in: "apiVersion: v1\nmetadata: {name: a}\n", wantErr: []string{"document 1", "no kind"}},
		{name: "no name", in: "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: a-}\n", wantErr: []string{"metadata.name"}},
		{name: "bad apiVersion", in: "apiVersion: a/b/c\nkind: X\nmetadata: {name: a}\n", wantErr: []string{"X", "a/b/c"}},
		{name: "metadata not a map", in: "apiVersion: v1\nkind: ConfigMap\nmetadata: a\n", wantErr: []string{"metadata is not an object"}},
		{name: "label not a string", in: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: {x: {y: z}}}\n", wantErr: []string{"labels"}},
		{name: "items not a list", in: "apiVersion: v1\nkind: List\nitems: 3\n", wantErr: []string{"items is not a list"}},
		{name: "item not an object", in: "apiVersion: v1\nkind: List\nitems: [3]\n", wantErr: []string{"List item 1"}},
		{name: "scalar document", in: "just text\n", wantErr: []string{"document 1"}},
		{name: "array document", in: "[1, 2]\n", wantErr: []string{"document 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := parseManifest([]byte(tt.in))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want one with %q", tt.wantErr)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseManifestKeepsIntegers(t *testing.T) {
	objs, err := parseManifest([]byte("apiVersion: v1\nkind: X\nmetadata: {name: a}\nspec: {replicas: 3}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := objs[0].Object["spec"].(map[string]any)["replicas"].(int64); !ok || v != 3 {
		t.Errorf("replicas = %#v, want int64 3", objs[0].Object["spec"].(map[string]any)["replicas"])
	}
}

func TestManifestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{
		"a.yaml", "b.YML", "c.json", "d.txt", ".e.yaml", "f.yaml", "f.yaml.skip",
		"sub/g.yaml", "sub/h.yaml", "sub/h.yaml.skip", ".git/i.yaml",
	} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "a.yaml"), filepath.Join(dir, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "linkdir.yaml")); err != nil {
		t.Fatal(err)
	}
	got, err := manifestFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i], _ = filepath.Rel(dir, got[i])
	}
	want := []string{"a.yaml", "b.YML", "c.json", "link.yaml", "sub/g.yaml"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, err := manifestFiles(filepath.Join(dir, "absent")); err != nil || len(got) != 0 {
		t.Errorf("absent dir: %q, %v", got, err)
	}
}

func TestAddonName(t *testing.T) {
	for in, want := range map[string]string{
		"/m/rke2-coredns.yaml": "rke2-coredns",
		"/m/sub/app.v2.yml":    "app.v2",
		"x.json":               "x",
	} {
		if got := addonName(in); got != want {
			t.Errorf("addonName(%q) = %q, want %q", in, got, want)
		}
	}
}
