package main

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// helperPath is the package through which PID 1 starts goroutines.
const helperPath = "github.com/rke2os/rke2os/init/shared/goroutine"

// Every goroutine rke2-init starts goes through init/goroutine, which
// recovers its panic: an unrecovered one ends PID 1 and panics the kernel.
// This reads the source of every package of this module that rke2-init
// links and reports a go statement anywhere else, and the other ways to
// start one: a method Go (sync.WaitGroup's, errgroup's) and AfterFunc
// (time's, context's) called on anything but init/goroutine.
func TestGoroutinesRecover(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath,Dir,GoFiles,Module", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	type pkg struct {
		ImportPath, Dir string
		GoFiles         []string
		Module          *struct{ Main bool }
	}
	fset := token.NewFileSet()
	checked := 0
	for dec := json.NewDecoder(bytes.NewReader(out)); dec.More(); {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main || p.ImportPath == helperPath {
			continue
		}
		for _, name := range p.GoFiles {
			path := filepath.Join(p.Dir, name)
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			checked++
			for _, bad := range bareStarts(f) {
				t.Errorf("%s: %s: start it with goroutine.Go or goroutine.Keep (%s), which recover a panic that would otherwise end PID 1",
					fset.Position(bad.Pos()), describe(bad), helperPath)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d files: go list found too few of the init's packages", checked)
	}
}

// bareStarts lists the places in f that start a goroutine not through
// the helper.
func bareStarts(f *ast.File) []ast.Node {
	helper := "" // the helper's name in f, if f imports it
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == helperPath {
			helper = "goroutine"
			if imp.Name != nil {
				helper = imp.Name.Name
			}
		}
	}
	var bad []ast.Node
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			bad = append(bad, n)
		case *ast.CallExpr:
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Go" && sel.Sel.Name != "AfterFunc") {
				break
			}
			if x, ok := sel.X.(*ast.Ident); ok && helper != "" && x.Name == helper {
				break
			}
			bad = append(bad, n)
		}
		return true
	})
	return bad
}

func describe(n ast.Node) string {
	if c, ok := n.(*ast.CallExpr); ok {
		return "a call of " + c.Fun.(*ast.SelectorExpr).Sel.Name + " runs its function in a goroutine of its own"
	}
	return "a bare go statement"
}

func TestBareStarts(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      int
	}{
		{"go statement", "go f()", 1},
		{"go func literal", "go func() {}()", 1},
		{"WaitGroup.Go", "wg.Go(f)", 1},
		{"context.AfterFunc", "context.AfterFunc(ctx, f)", 1},
		{"time.AfterFunc", "time.AfterFunc(d, f)", 1},
		{"the helper", `goroutine.Go("x", f); goroutine.Keep(ctx, "x", g); goroutine.AfterFunc(ctx, "x", f)`, 0},
		{"a go statement inside the helper's call", `goroutine.Go("x", func() { go f() })`, 1},
		{"plain calls", "f(); x.Run()", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "package p\nimport \"" + helperPath + "\"\nfunc _() {\n" + tc.src + "\n}\n"
			f, err := parser.ParseFile(token.NewFileSet(), "p.go", src, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(bareStarts(f)); got != tc.want {
				t.Errorf("%d bare starts, want %d", got, tc.want)
			}
		})
	}
	// A file that does not import the helper cannot call it: a package
	// of its own named goroutine is no excuse.
	f, _ := parser.ParseFile(token.NewFileSet(), "p.go", "package p\nfunc _() { goroutine.Go(\"x\", f) }\n", 0)
	if got := len(bareStarts(f)); got != 1 {
		t.Errorf("goroutine.Go without the import: %d bare starts, want 1", got)
	}
}
