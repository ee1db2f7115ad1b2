package config

import (
	"bytes"
	"os"
	"reflect"
	"testing"

	"github.com/rke2os/rke2os/internal/golden"

	"gopkg.in/yaml.v3"
)

func TestRenderGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/render.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("testdata/render.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	rke2, err := c.RKE2ConfigYAML()
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "rke2-config.golden.yaml", rke2)
	reg, err := c.RegistriesYAML()
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "registries.golden.yaml", reg)

	// RKE2 reads the rendered file as it would have read the section.
	var src struct{ RKE2 map[string]any }
	if err := yaml.Unmarshal(data, &src); err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := yaml.Unmarshal(rke2, &out); err != nil {
		t.Fatalf("rendered config.yaml is not YAML: %v", err)
	}
	if !reflect.DeepEqual(out, src.RKE2) {
		t.Errorf("rendered config.yaml reads differently:\n got %v\nwant %v", out, src.RKE2)
	}
	var regOut Registries
	if err := yaml.Unmarshal(reg, &regOut); err != nil || !reflect.DeepEqual(regOut, c.Registries) {
		t.Errorf("rendered registries.yaml reads as %+v, %v; want %+v", regOut, err, c.Registries)
	}

	// The same config merged from elsewhere renders the same bytes.
	again, err := Merge(nil, c).RKE2ConfigYAML()
	if err != nil || !bytes.Equal(again, rke2) {
		t.Errorf("rendering is not deterministic: %v\n%s", err, again)
	}
}

func TestRenderEmpty(t *testing.T) {
	c := &Config{}
	for name, render := range map[string]func() ([]byte, error){"rke2": c.RKE2ConfigYAML, "registries": c.RegistriesYAML} {
		b, err := render()
		if err != nil || string(b) != renderedHeader+"{}\n" {
			t.Errorf("%s of an empty config = %q, %v", name, b, err)
		}
	}
}
