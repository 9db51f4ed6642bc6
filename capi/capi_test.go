package main

// The C API's tests. `import "C"` is not allowed in _test.go files, so the
// C side is tested as it is used: this file builds libmsgr.so with
// capi/build.sh, compiles the C programs of testdata/ (and the header and
// C++ checks of bindings/c/tests, abi/compat.c) with the system compiler,
// runs them against the library, and fails on a non-zero exit (Go's
// testcshared, libtailscale's tsnetctest). Every C program ends by
// asserting that no messenger, connection handle, message or dispatcher is
// left (msgr_live_counts_get).
//
// MSGR_CAPI_VARIANTS="asan cgocheck2 race" also runs the C programs against
// the library built that way (`make test-c` sets it): ASan+UBSan for the
// shim and the test programs, GOEXPERIMENT=cgocheck2 for Go pointers
// written to C memory, the race detector for the Go side.

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	root    = func() string { d, _ := filepath.Abs(".."); return d }()
	workDir string // build outputs of this test run

	libMu    sync.Mutex
	libBuilt = map[string]string{} // variant -> directory with libmsgr.so
	libErr   = map[string]error{}
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "msgr-capi-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// lib builds (once per variant) and returns the directory of libmsgr.so.
func lib(t *testing.T, variant string) string {
	t.Helper()
	libMu.Lock()
	defer libMu.Unlock()
	if d, ok := libBuilt[variant]; ok {
		return d
	}
	if err, ok := libErr[variant]; ok {
		t.Fatalf("building the %s library failed before: %v", variant, err)
	}
	dir := filepath.Join(workDir, "lib-"+variant)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "capi", "build.sh"), dir, variant)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		libErr[variant] = err
		t.Fatalf("capi/build.sh %s: %v\n%s", variant, err, out)
	}
	libBuilt[variant] = dir
	return dir
}

func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s not installed", tool)
	}
	return p
}

// compile builds one program from srcs against include/ (and extra -I
// dirs), linked with the library in libDir.
func compile(t *testing.T, compiler string, flags []string, out string, libDir string, srcs ...string) {
	t.Helper()
	args := append([]string{}, flags...)
	args = append(args, "-I"+filepath.Join(root, "include"), "-I"+filepath.Join(root, "bindings", "c"))
	args = append(args, srcs...)
	args = append(args, "-o", out, "-L"+libDir, "-lmsgr", "-lpthread")
	cmd := exec.Command(compiler, args...)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", compiler, strings.Join(args, " "), err, o)
	}
}

// run runs a compiled C program against libDir and fails on a non-zero
// exit or a hang.
func run(t *testing.T, libDir string, env []string, timeout time.Duration, prog string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+libDir)
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s: no result after %v (hang)\n%s", filepath.Base(prog), timeout, out.String())
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", filepath.Base(prog), err, out.String())
	}
	return out.String()
}

var cFlags = []string{"-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-pedantic"}

func cPrograms(t *testing.T) []string {
	srcs, err := filepath.Glob(filepath.Join(root, "capi", "testdata", "*.c"))
	if err != nil || len(srcs) == 0 {
		t.Fatalf("no C tests found: %v", err)
	}
	sort.Strings(srcs)
	return srcs
}

// TestCPrograms runs every C test program against the library.
func TestCPrograms(t *testing.T) {
	cc := need(t, "cc")
	dir := lib(t, "normal")
	bin := filepath.Join(workDir, "bin-normal")
	os.MkdirAll(bin, 0o755)
	var env []string
	if testing.Short() {
		env = append(env, "MSGR_TEST_SCALE=0.1")
	}
	for _, src := range cPrograms(t) {
		name := strings.TrimSuffix(filepath.Base(src), ".c")
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(bin, name)
			compile(t, cc, cFlags, out, dir, src)
			t.Log(strings.TrimSpace(run(t, dir, env, 3*time.Minute, out)))
		})
	}
}

// TestVariants runs the C programs against sanitizer, cgocheck2 and race
// builds of the library, as MSGR_CAPI_VARIANTS lists them.
func TestVariants(t *testing.T) {
	vs := strings.Fields(os.Getenv("MSGR_CAPI_VARIANTS"))
	if len(vs) == 0 {
		t.Skip("set MSGR_CAPI_VARIANTS (e.g. \"asan cgocheck2 race\"); make test-c does")
	}
	cc := need(t, "cc")
	for _, v := range vs {
		t.Run(v, func(t *testing.T) {
			dir := lib(t, v)
			flags := append([]string{}, cFlags...)
			env := []string{"MSGR_TEST_SCALE=0.05"}
			switch v {
			case "asan":
				flags = append(flags, "-O1", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
					"-fno-sanitize-recover=undefined")
				// Leak checking covers C allocations (messages, dispatchers);
				// the Go heap is not malloc'd.
				env = append(env, "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0",
					"UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
			case "race":
				env = append(env, "GORACE=halt_on_error=1")
			}
			bin := filepath.Join(workDir, "bin-"+v)
			os.MkdirAll(bin, 0o755)
			for _, src := range cPrograms(t) {
				name := strings.TrimSuffix(filepath.Base(src), ".c")
				t.Run(name, func(t *testing.T) {
					out := filepath.Join(bin, name)
					compile(t, cc, flags, out, dir, src)
					t.Log(strings.TrimSpace(run(t, dir, env, 4*time.Minute, out)))
				})
			}
		})
	}
}

// TestHeader compiles msgr.h alone as C99 and as C++17, warning-free under
// -Wall -Wextra -Werror -pedantic, and msgr.hpp as C++17 and C++20.
func TestHeader(t *testing.T) {
	cc := need(t, "cc")
	dir := lib(t, "normal")
	tests := filepath.Join(root, "bindings", "c", "tests")
	strict := []string{"-Wall", "-Wextra", "-Werror", "-pedantic"}
	for _, std := range []string{"c99", "c11"} {
		out := filepath.Join(workDir, "header_"+std)
		compile(t, cc, append([]string{"-std=" + std}, strict...), out, dir, filepath.Join(tests, "header_c99.c"))
		run(t, dir, nil, time.Minute, out)
	}
	// The header's own text: no C++ comments in a C89/C99 header, no
	// platform errno values.
	hdr, err := os.ReadFile(filepath.Join(root, "include", "msgr.h"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(hdr, []byte("<errno.h>")) {
		t.Error("msgr.h includes errno.h: codes must be the library's own")
	}
	cxx, err := exec.LookPath("c++")
	if err != nil {
		t.Skip("no C++ compiler: C++ header checks skipped")
	}
	for _, std := range []string{"c++17", "c++20"} {
		out := filepath.Join(workDir, "header_cxx_"+std)
		compile(t, cxx, append([]string{"-std=" + std}, strict...), out, dir, filepath.Join(tests, "header_cxx.cc"))
		run(t, dir, nil, time.Minute, out)
		out = filepath.Join(workDir, "cpp_wrapper_"+std)
		compile(t, cxx, append([]string{"-std=" + std, "-O1"}, strict...), out, dir, filepath.Join(tests, "cpp_wrapper.cc"))
		if std == "c++17" {
			t.Log(strings.TrimSpace(run(t, dir, nil, 2*time.Minute, out)))
		}
	}
}

// exportedSymbols lists the dynamic symbols the library defines.
func exportedSymbols(t *testing.T, so string) []string {
	t.Helper()
	need(t, "nm")
	out, err := exec.Command("nm", "-D", "--defined-only", so).Output()
	if err != nil {
		t.Fatalf("nm: %v", err)
	}
	var syms []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 {
			syms = append(syms, f[2])
		}
	}
	sort.Strings(syms)
	return syms
}

// TestSymbols: the library exports exactly abi/symbols.txt, which is
// exactly the functions msgr.h declares; the soname carries the major.
func TestSymbols(t *testing.T) {
	dir := lib(t, "normal")
	so := filepath.Join(dir, "libmsgr.so")
	got := exportedSymbols(t, so)
	wantB, err := os.ReadFile(filepath.Join(root, "abi", "symbols.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(wantB))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("exported symbols differ from abi/symbols.txt (an ABI change must be deliberate):\n%s",
			diffLists(want, got))
	}
	hdr, err := os.ReadFile(filepath.Join(root, "include", "msgr.h"))
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, m := range regexp.MustCompile(`(?m)^MSGR_API [^;(]*?\b(msgr_[a-z0-9_]+)\(`).FindAllSubmatch(hdr, -1) {
		declared = append(declared, string(m[1]))
	}
	sort.Strings(declared)
	if strings.Join(declared, "\n") != strings.Join(want, "\n") {
		t.Errorf("abi/symbols.txt differs from the functions msgr.h declares:\n%s", diffLists(declared, want))
	}
	out, err := exec.Command("readelf", "-d", so).Output()
	if err == nil && !regexp.MustCompile(`SONAME\)\s+Library soname: \[libmsgr\.so\.\d+\]`).Match(out) {
		t.Errorf("no versioned soname:\n%s", out)
	}
}

func diffLists(want, got []string) string {
	w := map[string]bool{}
	for _, s := range want {
		w[s] = true
	}
	g := map[string]bool{}
	for _, s := range got {
		g[s] = true
	}
	var b strings.Builder
	for _, s := range want {
		if !g[s] {
			fmt.Fprintf(&b, "  missing: %s\n", s)
		}
	}
	for _, s := range got {
		if !w[s] {
			fmt.Fprintf(&b, "  extra:   %s\n", s)
		}
	}
	return b.String()
}

// TestABICompat: a program compiled against each released header
// (abi/<version>/msgr.h) runs against the library built from this tree,
// and again against a second, independent build of it.
func TestABICompat(t *testing.T) {
	cc := need(t, "cc")
	dir := lib(t, "normal")
	hdrs, _ := filepath.Glob(filepath.Join(root, "abi", "*", "msgr.h"))
	if len(hdrs) == 0 {
		t.Fatal("no released header under abi/")
	}
	for _, h := range hdrs {
		ver := filepath.Base(filepath.Dir(h))
		out := filepath.Join(workDir, "compat-"+ver)
		args := []string{"-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I" + filepath.Dir(h),
			filepath.Join(root, "abi", "compat.c"), "-o", out, "-L" + dir, "-lmsgr"}
		if o, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Fatalf("compile compat.c against %s: %v\n%s", h, err, o)
		}
		t.Log(strings.TrimSpace(run(t, dir, nil, time.Minute, out)))
		// The binary records the soname only: any library of the same
		// major version satisfies it.
		o, _ := exec.Command("readelf", "-d", out).Output()
		if !bytes.Contains(o, []byte("[libmsgr.so.")) || bytes.Contains(o, []byte("[libmsgr.so]")) {
			t.Errorf("compat binary does not depend on the soname:\n%s", o)
		}
	}
}

// TestInstall: `make install`'s script lays out a prefix from which a
// program outside the tree builds with pkg-config and with CMake's
// find_package(msgr), and runs.
func TestInstall(t *testing.T) {
	cc := need(t, "cc")
	dir := lib(t, "normal")
	dest := filepath.Join(workDir, "destdir")
	prefix := "/opt/msgr-test"
	cmd := exec.Command(filepath.Join(root, "bindings", "c", "install.sh"), dir, prefix)
	cmd.Env = append(os.Environ(), "DESTDIR="+dest)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install.sh: %v\n%s", err, o)
	}
	p := filepath.Join(dest, prefix)
	for _, f := range []string{"include/msgr.h", "include/msgr.hpp", "lib/libmsgr.so.0.2.0",
		"lib/libmsgr.so.0", "lib/libmsgr.so", "lib/pkgconfig/msgr.pc",
		"lib/cmake/msgr/msgrConfig.cmake", "lib/cmake/msgr/msgrConfigVersion.cmake"} {
		if _, err := os.Stat(filepath.Join(p, f)); err != nil {
			t.Errorf("not installed: %s", f)
		}
	}
	if l, _ := os.Readlink(filepath.Join(p, "lib", "libmsgr.so.0")); l != "libmsgr.so.0.2.0" {
		t.Errorf("libmsgr.so.0 -> %q", l)
	}
	if _, err := os.Stat(filepath.Join(p, "include", "libmsgr.so.0.1.h")); err == nil {
		t.Error("cgo's generated header was installed")
	}
	app := filepath.Join(root, "examples", "c", "echo_server.c")
	libdir := filepath.Join(p, "lib")

	t.Run("pkg-config", func(t *testing.T) {
		pc := need(t, "pkg-config")
		c := exec.Command(pc, "--cflags", "--libs", "msgr")
		c.Env = append(os.Environ(), "PKG_CONFIG_PATH="+filepath.Join(p, "lib", "pkgconfig"))
		flags, err := c.Output()
		if err != nil {
			t.Fatalf("pkg-config: %v", err)
		}
		if !strings.Contains(string(flags), "-lmsgr") {
			t.Fatalf("pkg-config flags: %s", flags)
		}
		out := filepath.Join(workDir, "pc_app")
		args := append([]string{"-std=c11", "-Wall", "-Werror", app, "-o", out}, strings.Fields(string(flags))...)
		if o, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Fatalf("cc %v: %v\n%s", args, err, o)
		}
		run(t, libdir, nil, time.Minute, out, "--selftest")
	})
	t.Run("cmake", func(t *testing.T) {
		cm := need(t, "cmake")
		proj := filepath.Join(workDir, "cmake_app")
		os.MkdirAll(proj, 0o755)
		os.WriteFile(filepath.Join(proj, "CMakeLists.txt"), []byte(`cmake_minimum_required(VERSION 3.16)
project(app C)
find_package(msgr 0.1 REQUIRED)
add_executable(app `+app+`)
target_link_libraries(app PRIVATE msgr::msgr)
`), 0o644)
		bdir := filepath.Join(proj, "build")
		for _, args := range [][]string{
			{"-S", proj, "-B", bdir, "-DCMAKE_PREFIX_PATH=" + p},
			{"--build", bdir},
		} {
			if o, err := exec.Command(cm, args...).CombinedOutput(); err != nil {
				t.Fatalf("cmake %v: %v\n%s", args, err, o)
			}
		}
		run(t, libdir, nil, time.Minute, filepath.Join(bdir, "app"), "--selftest")
		// A request for another major version must not be satisfied.
		os.WriteFile(filepath.Join(proj, "CMakeLists.txt"), []byte(`cmake_minimum_required(VERSION 3.16)
project(app C)
find_package(msgr 1.0 QUIET)
if(msgr_FOUND)
  message(FATAL_ERROR "msgr 0.x accepted for 1.0")
endif()
`), 0o644)
		if o, err := exec.Command(cm, "-S", proj, "-B", bdir+"2", "-DCMAKE_PREFIX_PATH="+p).CombinedOutput(); err != nil {
			t.Fatalf("version check: %v\n%s", err, o)
		}
	})
}

// TestExportsGuarded: every //export function defers guard (or recovers)
// first, so no Go panic can unwind into C.
func TestExportsGuarded(t *testing.T) {
	fset := token.NewFileSet()
	files, _ := filepath.Glob("*.go")
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Doc == nil || !hasExport(fd.Doc) {
				continue
			}
			n++
			if len(fd.Body.List) == 0 {
				t.Errorf("%s: empty export", fd.Name.Name)
				continue
			}
			ds, ok := fd.Body.List[0].(*ast.DeferStmt)
			if !ok {
				t.Errorf("%s: first statement is not a deferred guard", fd.Name.Name)
				continue
			}
			var name string
			switch fn := ds.Call.Fun.(type) {
			case *ast.Ident:
				name = fn.Name
			case *ast.FuncLit:
				name = "func literal"
			}
			if name != "guard" && name != "recoverVoid" {
				t.Errorf("%s: defers %s, not guard", fd.Name.Name, name)
			}
		}
	}
	if n < 20 {
		t.Fatalf("found only %d exports", n)
	}
}

func hasExport(cg *ast.CommentGroup) bool {
	for _, c := range cg.List {
		if strings.HasPrefix(c.Text, "//export ") {
			return true
		}
	}
	return false
}

// TestGuardRecovers: a panic inside an export becomes MSGR_EINTERNAL.
func TestGuardRecovers(t *testing.T) {
	// A nil out-pointer is never passed by the shim; here it makes the
	// export panic on purpose.
	rc := msgrgo_conn_send_many(0, nil, 0, nil, nil)
	if rc != -18 { // MSGR_EINTERNAL
		t.Fatalf("rc = %d, want MSGR_EINTERNAL (-18)", rc)
	}
	rc = msgrgo_conn_send_copy(0, nil, 1, 64, nil)
	if rc != -18 {
		t.Fatalf("rc = %d, want MSGR_EINTERNAL (-18)", rc)
	}
}

// TestHandleTable: ids are never 0, stale ids miss, slots are reused
// under a new generation.
func TestHandleTable(t *testing.T) {
	var tb table[mentry, *mentry]
	id := tb.reserve()
	if id == 0 || uint32(id>>32) < firstGen {
		t.Fatalf("id %#x", id)
	}
	if tb.get(id) != nil {
		t.Fatal("reserved id visible before set")
	}
	e := &mentry{id: id}
	tb.set(e)
	if tb.get(id) != e || tb.live.Load() != 1 {
		t.Fatal("get after set")
	}
	for _, bad := range []uint64{0, 1, id + 1, id ^ 1<<32, 1<<63 | uint64(uint32(id)), 0xFFFFFFFF} {
		if tb.get(bad) != nil {
			t.Errorf("get(%#x) found an entry", bad)
		}
	}
	if !tb.remove(id) || tb.remove(id) || tb.get(id) != nil {
		t.Fatal("remove")
	}
	id2 := tb.reserve()
	if uint32(id2) != uint32(id) || id2 == id {
		t.Fatalf("slot reuse: %#x after %#x", id2, id)
	}
	tb.set(&mentry{id: id2})
	if tb.get(id) != nil {
		t.Fatal("stale id found the new entry")
	}
	tb.unreserve(tb.reserve())
	if tb.live.Load() != 1 {
		t.Fatalf("live = %d", tb.live.Load())
	}
	// Many entries across chunks.
	ids := make([]uint64, 3*chunkSize)
	for i := range ids {
		ids[i] = tb.reserve()
		tb.set(&mentry{id: ids[i]})
	}
	for _, id := range ids {
		if tb.get(id) == nil || !tb.remove(id) {
			t.Fatalf("id %#x", id)
		}
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				id := tb.reserve()
				tb.set(&mentry{id: id})
				if tb.get(id) == nil || !tb.remove(id) {
					t.Error("concurrent use")
					return
				}
			}
		}()
	}
	wg.Wait()
	if tb.live.Load() != 1 {
		t.Fatalf("live = %d", tb.live.Load())
	}
}
