package msg

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// core/msg is layer 0: it must import nothing from this module.
func TestImportsNothingFromCore(t *testing.T) {
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
			if strings.Contains(imp.Path.Value, "github.com/msgr-dev/msgr") {
				t.Errorf("%s imports %s", f, imp.Path.Value)
			}
		}
	}
}
