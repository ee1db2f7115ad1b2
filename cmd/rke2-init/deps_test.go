package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPID1StaysSmall keeps rke2-init small by construction: PID 1 must not
// link an HTTP stack, X.509, templates or any Kubernetes package (those
// live in rke2-node, whose crash costs a restart, not the kernel). A new
// import that pulls one of them in fails here, naming the chain to cut.
func TestPID1StaysSmall(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages: %q", len(deps), deps)
	}
	forbidden := func(p string) bool {
		switch p {
		case "net/http", "crypto/x509", "text/template", "html/template":
			return true
		}
		return strings.HasPrefix(p, "k8s.io/")
	}
	for _, p := range deps {
		if forbidden(p) {
			why, _ := exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "-deps", ".").Output()
			var importers []string
			for _, line := range strings.Split(string(why), "\n") {
				if name, imports, ok := strings.Cut(line, ": "); ok && strings.Contains(" "+imports+" ", " "+p+" ") {
					importers = append(importers, name)
				}
			}
			t.Errorf("rke2-init links %s (imported by %s): PID 1 must stay without it; move that code into rke2-node", p, strings.Join(importers, ", "))
		}
	}
}
