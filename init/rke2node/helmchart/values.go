package helmchart

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/strvals"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// spec is what the controller reads of a HelmChart, as helm-controller
// names it.
type spec struct {
	Chart           string         `json:"chart,omitempty"`
	Repo            string         `json:"repo,omitempty"`
	Version         string         `json:"version,omitempty"`
	TargetNamespace string         `json:"targetNamespace,omitempty"`
	CreateNamespace bool           `json:"createNamespace,omitempty"`
	ChartContent    string         `json:"chartContent,omitempty"`
	ValuesContent   string         `json:"valuesContent,omitempty"`
	Set             map[string]any `json:"set,omitempty"`
	Bootstrap       bool           `json:"bootstrap,omitempty"`
	FailurePolicy   string         `json:"failurePolicy,omitempty"`
	Timeout         string         `json:"timeout,omitempty"`
}

// readSpec decodes obj's spec.
func readSpec(obj *unstructured.Unstructured) (spec, error) {
	var s spec
	raw, _, _ := unstructured.NestedMap(obj.Object, "spec")
	b, err := json.Marshal(raw)
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		return s, fmt.Errorf("spec: %w", err)
	}
	return s, nil
}

// loadChart is the chart of spec.chartContent. This OS runs offline:
// a chart to fetch from a repository cannot be installed, and the error
// says how to give it instead.
func loadChart(s spec) (*chart.Chart, error) {
	if s.ChartContent == "" {
		return nil, fmt.Errorf("spec.chartContent is empty and this node cannot fetch chart %q from %q offline: embed the chart as spec.chartContent (base64 of the .tgz: base64 -w0 chart.tgz)", s.Chart, s.Repo)
	}
	tgz, err := base64.StdEncoding.DecodeString(s.ChartContent)
	if err != nil {
		return nil, fmt.Errorf("spec.chartContent is not base64: %w", err)
	}
	c, err := loader.LoadArchive(bytes.NewReader(tgz))
	if err != nil {
		return nil, fmt.Errorf("spec.chartContent: %w", err)
	}
	return c, nil
}

// values merges what helm-controller passes to helm, in its order: the
// chart's valuesContent, then the HelmChartConfig's valuesContent (a
// second --values file: maps merged, later values win), then globals
// (RKE2's injected cluster values) and spec.set as --set flags.
func values(s spec, configValues string, globals map[string]any) (map[string]any, error) {
	out := map[string]any{}
	for _, v := range []struct{ what, text string }{{"spec.valuesContent", s.ValuesContent}, {"HelmChartConfig spec.valuesContent", configValues}} {
		m := map[string]any{}
		if err := yaml.Unmarshal([]byte(v.text), &m); err != nil {
			return nil, fmt.Errorf("%s: %w", v.what, err)
		}
		merge(out, m)
	}
	for _, k := range sortedKeys(globals) {
		if err := setValue(out, k, globals[k]); err != nil {
			return nil, fmt.Errorf("global value %s: %w", k, err)
		}
	}
	for _, k := range sortedKeys(s.Set) {
		if err := setValue(out, k, s.Set[k]); err != nil {
			return nil, fmt.Errorf("spec.set %s: %w", k, err)
		}
	}
	return out, nil
}

// setValue is one --set: numbers and true/false typed, other strings as
// --set-string, as helm-controller's install job passes them.
func setValue(dst map[string]any, key string, v any) error {
	switch x := v.(type) {
	case string:
		if x == "true" || x == "false" {
			return strvals.ParseInto(key+"="+x, dst)
		}
		return strvals.ParseIntoString(key+"="+x, dst)
	case bool, float64, int, int64:
		return strvals.ParseInto(fmt.Sprintf("%s=%v", key, x), dst)
	default:
		return fmt.Errorf("value %v is neither a string, a number nor true/false", v)
	}
}

// merge merges src into dst: maps recursively, anything else replaced.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// hash names the desired release: the chart's bytes, the values and where
// it goes. A release carrying the same hash needs nothing.
func hash(s spec, vals map[string]any) string {
	v, _ := json.Marshal(vals) // maps marshal with sorted keys
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", s.ChartContent, v, s.TargetNamespace, s.Version)
	return hex.EncodeToString(h.Sum(nil))[:32]
}
