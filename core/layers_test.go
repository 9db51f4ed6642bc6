// Package core_test keeps the layering of ARCHITECTURE.md honest: a core
// package may import only module packages of a lower layer. A new package
// must be added to the table below, which makes its place a decision.
package core_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/msgr-dev/msgr/"

// layer of every package in the module (path relative to the module root).
// core/internal/* is layer 0 and importable by everything in core.
var layer = map[string]int{
	"core/msg":          0,
	"core/internal":     0,
	"core/wire":         1,
	"core/event/driver": 1,
	"core/event":        2,
	"core/dispatch":     2,
	"core/protocol":     2,
	"core/stack":        3,
	"core/conn":         4,
	"core/messenger":    5,
	"core/ceph":         6, // Ceph message helpers, above the messenger
	"capi":              7,
	"cmd":               8,
	"examples":          8,
	"internal/testenv":  0, // test harness (a real ceph-mon), for tests at every layer
}

func layerOf(pkg string) (int, bool) {
	rel := strings.TrimPrefix(pkg, module)
	for p := rel; p != "."; {
		if l, ok := layer[p]; ok {
			return l, true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0, false
}

func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := f[0]
		if pkg == strings.TrimSuffix(module, "/")+"/core" {
			continue // this test package
		}
		l, ok := layerOf(pkg)
		if !ok {
			t.Errorf("%s has no layer in layers_test.go; add it", pkg)
			continue
		}
		checked++
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			il, ok := layerOf(imp)
			if !ok {
				t.Errorf("%s imports %s, which has no layer", pkg, imp)
				continue
			}
			sameInternal := strings.Contains(imp, "/core/internal/")
			if il >= l && !sameInternal {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must point down", pkg, l, imp, il)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package checked")
	}
}
