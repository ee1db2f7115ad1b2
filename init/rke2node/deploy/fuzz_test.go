package deploy

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// FuzzParseManifest checks that any bytes give objects or an error, never
// a panic, and that what is returned is fit to be applied.
func FuzzParseManifest(f *testing.F) {
	for _, s := range []string{
		"",
		"---\n# c\n---\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: b, labels: {x: y}}\ndata: {k: v}\n",
		"apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n",
		"apiVersion: v1\nkind: ConfigMapList\nitems:\n- metadata: {name: a}\n",
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}{"apiVersion":"v1","kind":"List","items":[]}`,
		"apiVersion: v1\nkind: [\n",
		"a: &a [*a]\n",
		"apiVersion: v1\n--- x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := parseManifest(data)
		if err != nil {
			if objs != nil {
				t.Errorf("objects %v with error %v", objs, err)
			}
			return
		}
		for _, o := range objs {
			if o.GetKind() == "" || o.GetAPIVersion() == "" || o.GetName() == "" {
				t.Errorf("object without kind, apiVersion or name: %v", o.Object)
			}
			if _, err := schema.ParseGroupVersion(o.GetAPIVersion()); err != nil {
				t.Errorf("object with bad apiVersion: %v", err)
			}
			// What apply does to it must not panic either.
			newOwner("fuzz").stamp(o)
			_ = o.DeepCopy()
			if _, err := o.MarshalJSON(); err != nil {
				t.Errorf("object does not marshal: %v", err)
			}
		}
	})
}
