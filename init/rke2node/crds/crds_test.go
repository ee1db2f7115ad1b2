package crds

import (
	"testing"

	"github.com/rke2os/rke2os/internal/golden"
)

func TestYAML(t *testing.T) {
	b, err := YAML()
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "crds.yaml", b)
}
