package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/internal/testenv"
)

// TestCMonClient: examples/c/mon_client.c, a C program over libmsgr, runs
// `mon versions` against a real Ceph 16.2.15 monitor bound to [v2, v1],
// over msgr2 and over msgr1, and against the Go `msgr serve` tool (the
// stand-in monitor of cmd/msgr) bound to both as well.
func TestCMonClient(t *testing.T) {
	cc := need(t, "cc")
	dir := lib(t, "normal")
	prog := filepath.Join(workDir, "mon_client")
	compile(t, cc, cFlags, prog, dir, filepath.Join(root, "examples", "c", "mon_client.c"))

	t.Run("ceph-mon", func(t *testing.T) {
		mon := testenv.StartMon(t, testenv.MonOptions{Msgr1: true})
		for _, addr := range []string{"v2:" + mon.Addr.String(), "v1:" + mon.AddrV1.String(), mon.AddrString()} {
			out := run(t, dir, nil, time.Minute, prog, addr)
			if !strings.Contains(out, "fsid: "+mon.Fsid) || !strings.Contains(out, "-> 0") || !strings.Contains(out, "16.2.15") {
				t.Errorf("mon_client %s:\n%s", addr, out)
			}
			if strings.HasPrefix(addr, "v1:") && !regexp.MustCompile(`auth: protocol 1 result 0 global id [1-9]`).MatchString(out) {
				t.Errorf("mon_client %s: no MAuthReply with a global id:\n%s", addr, out)
			}
		}
	})

	t.Run("msgr-serve", func(t *testing.T) {
		tool := filepath.Join(workDir, "msgr")
		if o, err := exec.Command("go", "build", "-o", tool, filepath.Join(root, "cmd", "msgr")).CombinedOutput(); err != nil {
			t.Fatalf("go build cmd/msgr: %v\n%s", err, o)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		srv := exec.CommandContext(ctx, tool, "serve", "[v2:127.0.0.1:0,v1:127.0.0.1:0]")
		stdout, err := srv.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		srv.Stderr = os.Stderr
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
		line, err := bufio.NewReader(stdout).ReadString('\n')
		m := regexp.MustCompile(`serving on \[(v2:\S+?)/0,(v1:\S+?)/0\]`).FindStringSubmatch(line)
		if err != nil || m == nil {
			t.Fatalf("msgr serve said %q (%v)", line, err)
		}
		for _, addr := range m[1:] {
			out := run(t, dir, nil, time.Minute, prog, addr)
			if !strings.Contains(out, `"msgr serve (canned)": 1`) || !strings.Contains(out, "-> 0") {
				t.Errorf("mon_client %s against msgr serve:\n%s", addr, out)
			}
		}
	})
}
