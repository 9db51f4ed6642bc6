package wire

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// core/wire is layer 1: from this module it may import core/msg only, and
// it does no I/O (no net, os or syscall packages; x/sys/cpu only reads
// CPU features).
func TestImports(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			switch {
			case p == "github.com/msgr-dev/msgr/core/msg":
			case p == "golang.org/x/sys/cpu": // CPU features for the crc, no I/O
			case strings.HasPrefix(p, "github.com/msgr-dev/msgr"):
				t.Errorf("%s imports %s", f, p)
			case p == "net" || p == "os" || p == "syscall" || strings.HasPrefix(p, "golang.org/x/sys"):
				t.Errorf("%s imports %s (wire does no I/O)", f, p)
			}
		}
	}
}
