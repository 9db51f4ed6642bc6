package messenger

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The suite runs once per transport and protocol: TestMain runs it here
// for the default (async+posix over msgr2), then re-executes the test
// binary, with the same flags, for each other variant, so every test in
// this package covers every ms_type, and msgr1, unchanged.
const (
	msTypeEnv = "MSGR_TEST_MS_TYPE" // the ms_type of this process's run
	protoEnv  = "MSGR_TEST_PROTO"   // "v1": servers bind v1 addresses
)

// testBindPrefix is the address type test servers bind ("v2:" or "v1:").
var testBindPrefix = "v2:"

// variants are the re-executed runs: every other ms_type over msgr2, then
// msgr1 over the async and the simple transport.
var variants = []struct{ typ, proto string }{
	{"async+poll", "v2"}, {"async+select", "v2"}, {"async+io_uring", "v2"}, {"simple", "v2"},
	{"async+posix", "v1"}, {"simple", "v1"},
}

func TestMain(m *testing.M) {
	if v := os.Getenv(msTypeEnv); v != "" {
		defaultType = v
		if os.Getenv(protoEnv) == "v1" {
			testBindPrefix = "v1:"
		}
		os.Exit(m.Run())
	}
	flag.Parse()
	code := m.Run()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		os.Exit(code) // benchmarks measure the default; -ms-type variants are msgr-bench's job
	}
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		os.Exit(code)
	}
	only := os.Getenv("MSGR_TEST_VARIANTS") // e.g. "simple/v2,async+posix/v1" narrows a run; "none" skips them
	for _, v := range variants {
		name := v.typ + "/" + v.proto
		if only != "" && !contains(only, name) {
			continue
		}
		fmt.Printf("=== variant ms_type=%s protocol=%s\n", v.typ, v.proto)
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), msTypeEnv+"="+v.typ, protoEnv+"="+v.proto)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Printf("--- FAIL: suite with ms_type=%s protocol=%s: %v\n", v.typ, v.proto, err)
			code = 1
		}
	}
	os.Exit(code)
}

func contains(list, s string) bool {
	return slices.Contains(strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' }), s)
}
