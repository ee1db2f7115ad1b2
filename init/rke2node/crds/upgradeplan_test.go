package crds

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	"sigs.k8s.io/yaml"
)

// crd is a definition as the apiserver's own types read it, strictly: a
// misspelt key in the definition fails here, not at a node's boot.
func crd(t *testing.T, d definition) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	b, err := yaml.Marshal(d.object().Object)
	if err != nil {
		t.Fatal(err)
	}
	var c apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		t.Fatalf("%s: %v", d.gvr.Resource, err)
	}
	return &c
}

// TestSchemasAreStructural holds every definition to what the apiserver
// asks of a CRD's schema (a structural schema: every field typed, the
// anyOf only restricting): a refused definition would stop a server's
// manifests and charts.
func TestSchemasAreStructural(t *testing.T) {
	for _, d := range definitions {
		c := crd(t, d)
		for _, v := range c.Spec.Versions {
			var internal apiextensions.JSONSchemaProps
			if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
				t.Fatal(err)
			}
			s, err := structuralschema.NewStructural(&internal)
			if err != nil {
				t.Fatalf("%s: %v", d.gvr.Resource, err)
			}
			if errs := structuralschema.ValidateStructural(field.NewPath("openAPIV3Schema"), s); len(errs) > 0 {
				t.Errorf("%s: not structural: %v", d.gvr.Resource, errs.ToAggregate())
			}
		}
	}
}

func upgradePlanDefinition(t *testing.T) definition {
	t.Helper()
	for _, d := range definitions {
		if d.gvr == UpgradePlan {
			return d
		}
	}
	t.Fatal("no UpgradePlan definition")
	return definition{}
}

func TestUpgradePlanDefinition(t *testing.T) {
	c := crd(t, upgradePlanDefinition(t))
	if c.Name != "upgradeplans.rke2os.io" || c.Spec.Scope != apiextensionsv1.ClusterScoped {
		t.Errorf("name %s scope %s", c.Name, c.Spec.Scope)
	}
	n := c.Spec.Names
	if n.Plural != "upgradeplans" || n.Singular != "upgradeplan" || n.Kind != "UpgradePlan" || strings.Join(n.ShortNames, ",") != "up" {
		t.Errorf("names %+v", n)
	}
	v := c.Spec.Versions[0]
	if v.Subresources == nil || v.Subresources.Status == nil {
		t.Error("status is not a subresource")
	}
	var cols []string
	for _, col := range v.AdditionalPrinterColumns {
		cols = append(cols, strings.ToUpper(col.Name)+"="+col.JSONPath)
	}
	if got, want := strings.Join(cols, " "), "PHASE=.status.phase DONE=.status.done TOTAL=.status.total MESSAGE=.status.message AGE=.metadata.creationTimestamp"; got != want {
		t.Errorf("columns %s, want %s", got, want)
	}
}

// TestUpgradePlanValidation validates plans against the schema as the
// apiserver does (kube-openapi's validator, which it uses).
func TestUpgradePlanValidation(t *testing.T) {
	raw, err := json.Marshal(upgradePlanSchema())
	if err != nil {
		t.Fatal(err)
	}
	var s spec.Schema
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	validator := validate.NewSchemaValidator(&s, nil, "", strfmt.Default)
	sha := strings.Repeat("ab", 32)
	good := `{"spec": {"server": {"url": "https://example.com/rke2-server.upgrade", "sha256": "` + sha + `"},
		"agent": {"url": "http://10.0.0.1/a", "sha256": "` + sha + `"},
		"nodeSelector": {"matchLabels": {"pool": "a"}, "matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]},
		"concurrency": 2, "drainTimeout": "15m"}}`
	for _, tc := range []struct {
		name, plan, err string
	}{
		{"good", good, ""},
		{"agent only", `{"spec": {"agent": {"url": "https://h/a", "sha256": "` + sha + `"}}}`, ""},
		{"no spec", `{}`, "spec"},
		{"no artifact", `{"spec": {"concurrency": 1}}`, "anyOf"},
		{"ftp", `{"spec": {"server": {"url": "ftp://h/a", "sha256": "` + sha + `"}}}`, "url"},
		{"upper-case digest", `{"spec": {"server": {"url": "https://h/a", "sha256": "` + strings.ToUpper(sha) + `"}}}`, "sha256"},
		{"short digest", `{"spec": {"server": {"url": "https://h/a", "sha256": "abc"}}}`, "sha256"},
		{"no digest", `{"spec": {"server": {"url": "https://h/a"}}}`, "sha256"},
		{"concurrency 0", `{"spec": {"server": {"url": "https://h/a", "sha256": "` + sha + `"}, "concurrency": 0}}`, "concurrency"},
		{"bad timeout", `{"spec": {"server": {"url": "https://h/a", "sha256": "` + sha + `"}, "drainTimeout": "ten minutes"}}`, "drainTimeout"},
		{"bad operator", `{"spec": {"server": {"url": "https://h/a", "sha256": "` + sha + `"}, "nodeSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}}`, "operator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var obj any
			if err := json.Unmarshal([]byte(tc.plan), &obj); err != nil {
				t.Fatal(err)
			}
			res := validator.Validate(obj)
			var msgs []string
			for _, e := range res.Errors {
				msgs = append(msgs, e.Error())
			}
			got := strings.Join(msgs, "; ")
			if tc.err == "" && got != "" {
				t.Errorf("refused: %s", got)
			}
			if tc.err != "" && !strings.Contains(got, tc.err) {
				t.Errorf("errors %q, want one about %s", got, tc.err)
			}
		})
	}
}

// TestDurationPattern: what the pattern lets through, metav1.Duration
// (time.ParseDuration) reads.
func TestDurationPattern(t *testing.T) {
	re := regexp.MustCompile(DurationPattern)
	for _, s := range []string{"10m", "1h30m", "90s", "1.5h", "500ms", "ten", "10", "-1m", "1d", ""} {
		_, err := time.ParseDuration(s)
		if re.MatchString(s) && err != nil {
			t.Errorf("%q matches the pattern, but: %v", s, err)
		}
	}
	for _, s := range []string{"10m", "1h30m", "90s", "1.5h", "500ms"} {
		if !re.MatchString(s) {
			t.Errorf("%q refused", s)
		}
	}
}
