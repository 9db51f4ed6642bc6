// Command msgr talks msgr2 and msgr1 to real Ceph daemons and clients.
//
//	msgr ping ADDR [-n 10] [-interval 0] [-rev0]  handshake + KEEPALIVE2 round trips
//	msgr mon-command ADDR JSON               run a monitor command, print its output
//	msgr get-version ADDR [monmap|osdmap]    MMonGetVersion
//	msgr mon-bench ADDR [-n 10000]           MMonGetVersion and keepalive latency percentiles
//	msgr serve ADDR [--forward MONADDR] [-rev0]  a stand-in monitor for the `ceph` CLI
//	msgr bench ARGS...                       the messenger benchmark (cmd/msgr-bench)
//
// ADDR is in Ceph's syntax: "v2:IP:PORT" or "IP:PORT" (msgr2), "v1:IP:PORT"
// (msgr1), or a vector "[v2:IP:PORT,v1:IP:PORT]" (serve binds every address
// of it; clients pick v2 when there is one). Options after the subcommand include
// -ms NAME=VALUE (repeatable; Ceph ms_* options), -timeout and -debug-ms.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/msgr-dev/msgr/core/ceph"
	"github.com/msgr-dev/msgr/core/messenger"
)

const usage = `usage: msgr COMMAND [options] ARGS
commands:
  ping ADDR              handshake + KEEPALIVE2 round trips, prints latency
  mon-command ADDR JSON  run a monitor command (e.g. '{"prefix":"mon versions"}')
  get-version ADDR WHAT  MMonGetVersion for monmap, osdmap, ...
  mon-bench ADDR         latency percentiles of MMonGetVersion and keepalives
  serve ADDR             stand-in monitor for the ceph CLI (--forward MONADDR relays to a real one)
  bench ARGS...          the messenger benchmark (cmd/msgr-bench)
ADDR: v2:IP:PORT or IP:PORT (msgr2), v1:IP:PORT (msgr1), [v2:IP:PORT,v1:IP:PORT]
run "msgr COMMAND -h" for a command's options`

// msOpts collects -ms name=value.
type msOpts []string

func (o *msOpts) String() string     { return strings.Join(*o, ",") }
func (o *msOpts) Set(v string) error { *o = append(*o, v); return nil }

type common struct {
	ms      msOpts
	timeout time.Duration
	debug   int
}

func (c *common) register(fs *flag.FlagSet) {
	fs.Var(&c.ms, "ms", "messenger option NAME=VALUE (Ceph ms_* names), repeatable")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "connect / request timeout")
	fs.IntVar(&c.debug, "debug-ms", 0, "messenger debug level (0..20) to stderr")
}

func (c *common) options() (messenger.Options, error) {
	o := messenger.DefaultOptions()
	for _, kv := range c.ms {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return o, fmt.Errorf("-ms %q: want NAME=VALUE", kv)
		}
		if err := o.Set(strings.ReplaceAll(strings.TrimSpace(k), " ", "_"), strings.TrimSpace(v)); err != nil {
			return o, err
		}
	}
	o.DebugMS = c.debug
	o.Logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	return o, nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "ping":
		err = cmdPing(args)
	case "mon-command":
		err = cmdMonCommand(args)
	case "get-version":
		err = cmdGetVersion(args)
	case "mon-bench":
		err = cmdMonBench(args)
	case "serve":
		err = cmdServe(args)
	case "bench":
		err = cmdBench(args)
	case "-h", "-help", "--help", "help":
		fmt.Println(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "msgr: unknown command %q\n%s\n", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "msgr %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

// parse parses fs with flags allowed after positional arguments too.
func parse(fs *flag.FlagSet, args []string, npos int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != npos {
		return nil, fmt.Errorf("want %d argument(s), got %d (%q); see -h", npos, len(pos), pos)
	}
	return pos, nil
}

func dial(c *common, addr string) (*ceph.MonClient, context.Context, context.CancelFunc, error) {
	o, err := c.options()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	mc, err := ceph.DialMon(ctx, addr, ceph.MonClientOptions{Messenger: o, Timeout: c.timeout})
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return mc, ctx, cancel, nil
}

func cmdPing(args []string) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	var c common
	c.register(fs)
	n := fs.Int("n", 10, "number of keepalive round trips")
	interval := fs.Duration("interval", 0, "pause between round trips")
	quiet := fs.Bool("q", false, "print only the summary")
	rev0 := fs.Bool("rev0", false, "offer only msgr2.0 framing (bypasses the messenger: protocol machine on a plain socket)")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *rev0 {
		return pingRaw(pos[0], *n, *interval, *quiet, c.timeout)
	}
	t0 := time.Now()
	mc, ctx, cancel, err := dial(&c, pos[0])
	if err != nil {
		return err
	}
	defer cancel()
	defer mc.Close()
	con := mc.Conn()
	fmt.Printf("connected to %v (%v) in %v, features %#x, lossy %v\n", con.PeerName(), con.PeerAddr(), time.Since(t0).Round(time.Microsecond), con.Features(), con.IsLossy())
	var lat []time.Duration
	for i := 0; i < *n; i++ {
		rctx, rc := context.WithTimeout(ctx, c.timeout)
		d, err := mc.Ping(rctx)
		rc()
		if err != nil {
			return fmt.Errorf("keepalive %d: %w", i+1, err)
		}
		lat = append(lat, d)
		if !*quiet {
			fmt.Printf("keepalive2 ack from %v: seq=%d time=%v\n", con.PeerAddr(), i+1, d.Round(time.Microsecond))
		}
		if *interval > 0 {
			time.Sleep(*interval)
		}
	}
	fmt.Println(summary("keepalive rtt", lat))
	return nil
}

// pingRaw is ping over ceph.RawConn, which can force msgr2.0 framing.
func pingRaw(addr string, n int, interval time.Duration, quiet bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	t0 := time.Now()
	rc, err := ceph.DialRaw(ctx, addr, true)
	if err != nil {
		return err
	}
	defer rc.Close()
	ri := rc.Ready()
	fmt.Printf("connected to %v (frames %v, no messenger) in %v, features %#x, lossy %v\n", ri.PeerName, rc.Rev(), time.Since(t0).Round(time.Microsecond), ri.Features, ri.Lossy)
	var lat []time.Duration
	for i := 0; i < n; i++ {
		d, err := rc.Ping(timeout)
		if err != nil {
			return fmt.Errorf("keepalive %d: %w", i+1, err)
		}
		lat = append(lat, d)
		if !quiet {
			fmt.Printf("keepalive2 ack: seq=%d time=%v\n", i+1, d.Round(time.Microsecond))
		}
		time.Sleep(interval)
	}
	fmt.Println(summary("keepalive rtt", lat))
	return nil
}

// summary formats count, min, p50, p99, max of lat.
func summary(what string, lat []time.Duration) string {
	if len(lat) == 0 {
		return what + ": no samples"
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	p := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))].Round(time.Microsecond) }
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return fmt.Sprintf("%s: n=%d min=%v avg=%v p50=%v p99=%v max=%v", what, len(s), s[0].Round(time.Microsecond),
		(sum / time.Duration(len(s))).Round(time.Microsecond), p(0.50), p(0.99), s[len(s)-1].Round(time.Microsecond))
}

func cmdMonCommand(args []string) error {
	fs := flag.NewFlagSet("mon-command", flag.ContinueOnError)
	var c common
	c.register(fs)
	pos, err := parse(fs, args, 2)
	if err != nil {
		return err
	}
	mc, ctx, cancel, err := dial(&c, pos[0])
	if err != nil {
		return err
	}
	defer cancel()
	defer mc.Close()
	rctx, rc := context.WithTimeout(ctx, c.timeout)
	defer rc()
	res, err := mc.Command(rctx, pos[1])
	if err != nil {
		return err
	}
	os.Stdout.Write(res.Output)
	if len(res.Output) > 0 && res.Output[len(res.Output)-1] != '\n' {
		fmt.Println()
	}
	if res.Rs != "" {
		fmt.Fprintln(os.Stderr, res.Rs)
	}
	if res.R != 0 {
		return fmt.Errorf("the monitor answered r=%d (%s)", res.R, syscall.Errno(-res.R))
	}
	return nil
}

func cmdGetVersion(args []string) error {
	fs := flag.NewFlagSet("get-version", flag.ContinueOnError)
	var c common
	c.register(fs)
	pos, err := parse(fs, args, 2)
	if err != nil {
		return err
	}
	mc, ctx, cancel, err := dial(&c, pos[0])
	if err != nil {
		return err
	}
	defer cancel()
	defer mc.Close()
	rctx, rc := context.WithTimeout(ctx, c.timeout)
	defer rc()
	r, err := mc.GetVersion(rctx, pos[1])
	if err != nil {
		return err
	}
	fmt.Printf("%s: version %d oldest %d\n", pos[1], r.Version, r.OldestVersion)
	return nil
}

func cmdMonBench(args []string) error {
	fs := flag.NewFlagSet("mon-bench", flag.ContinueOnError)
	var c common
	c.register(fs)
	n := fs.Int("n", 10000, "requests (and keepalives) to time")
	ncmd := fs.Int("cmds", 1000, "mon versions commands to time")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	mc, ctx, cancel, err := dial(&c, pos[0])
	if err != nil {
		return err
	}
	defer cancel()
	defer mc.Close()
	var gv, ka []time.Duration
	for i := 0; i < *n; i++ {
		t0 := time.Now()
		rctx, rc := context.WithTimeout(ctx, c.timeout)
		_, err := mc.GetVersion(rctx, "monmap")
		rc()
		if err != nil {
			return fmt.Errorf("request %d: %w", i+1, err)
		}
		gv = append(gv, time.Since(t0))
	}
	for i := 0; i < *n; i++ {
		rctx, rc := context.WithTimeout(ctx, c.timeout)
		d, err := mc.Ping(rctx)
		rc()
		if err != nil {
			return fmt.Errorf("keepalive %d: %w", i+1, err)
		}
		ka = append(ka, d)
	}
	var cm []time.Duration
	for i := 0; i < *ncmd; i++ {
		t0 := time.Now()
		rctx, rc := context.WithTimeout(ctx, c.timeout)
		res, err := mc.Command(rctx, `{"prefix": "mon versions"}`)
		rc()
		if err != nil || res.R != 0 {
			return fmt.Errorf("command %d: %v %v", i+1, res, err)
		}
		cm = append(cm, time.Since(t0))
	}
	fmt.Println(summary("MMonGetVersion rtt", gv))
	fmt.Println(summary("keepalive rtt", ka))
	fmt.Println(summary("mon_command 'mon versions' rtt", cm))
	return nil
}

func cmdServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var c common
	c.register(fs)
	fwd := fs.String("forward", "", "relay to the real monitor at this address")
	rev0 := fs.Bool("rev0", false, "offer only msgr2.0 framing (canned answers; bypasses the messenger)")
	fsid := fs.String("fsid", "", "fsid of the canned cluster (default 11111111-2222-3333-4444-555555555555)")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	o, err := c.options()
	if err != nil {
		return err
	}
	so := ceph.MonServerOptions{Forward: *fwd, Messenger: o}
	if *fsid != "" {
		u, err := parseUUID(*fsid)
		if err != nil {
			return err
		}
		so.Fsid = u
	}
	if *rev0 {
		if *fwd != "" {
			return errors.New("--rev0 serves canned answers only (no --forward)")
		}
		rs, err := ceph.NewRawServer(pos[0], so.Fsid, true)
		if err != nil {
			return err
		}
		fmt.Printf("serving on %v (canned answers, msgr2.0 frames only, no messenger); ceph conf: mon host = %v\n", rs.Addrs(), rs.Addrs()[0])
		ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer cancel()
		<-ctx.Done()
		fmt.Printf("stopping: %d answered\n", rs.Answered())
		return rs.Close()
	}
	if *fwd != "" {
		// Fail now, not at the first client, if the monitor is not there.
		av, err := ceph.ParseMonAddr(*fwd)
		if err != nil {
			return fmt.Errorf("--forward: %w", err)
		}
		if err := ceph.ProbeMon(av, c.timeout); err != nil {
			return fmt.Errorf("--forward %s: %w", *fwd, err)
		}
	}
	s, err := ceph.NewMonServer(pos[0], so)
	if err != nil {
		return err
	}
	mode := "canned answers"
	if *fwd != "" {
		mode = "forwarding to " + *fwd
	}
	host := s.Addrs().String()
	if len(s.Addrs()) == 1 {
		host = s.Addrs()[0].String()
	}
	fmt.Printf("serving on %v (%s); ceph conf: mon host = %v\n", s.Addrs(), mode, strings.ReplaceAll(host, "/0", ""))
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	<-ctx.Done()
	st := s.Stats()
	fmt.Printf("stopping: %d sessions, %d relayed, %d returned, %d answered\n", st.Sessions, st.Relayed, st.Returned, st.Answered)
	return s.Close()
}

func parseUUID(s string) (u [16]byte, err error) {
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return u, fmt.Errorf("bad uuid %q", s)
	}
	for i := range u {
		if _, err := fmt.Sscanf(h[2*i:2*i+2], "%02x", &u[i]); err != nil {
			return u, fmt.Errorf("bad uuid %q", s)
		}
	}
	return u, nil
}

// cmdBench runs the messenger benchmark: msgr-bench next to this binary or
// on PATH, else `go run ./cmd/msgr-bench` from a source tree.
func cmdBench(args []string) error {
	var bin string
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "msgr-bench"); fileExists(p) {
			bin = p
		}
	}
	if bin == "" {
		if p, err := exec.LookPath("msgr-bench"); err == nil {
			bin = p
		}
	}
	var cmd *exec.Cmd
	if bin != "" {
		cmd = exec.Command(bin, args...)
	} else if fileExists("cmd/msgr-bench/main.go") {
		cmd = exec.Command("go", append([]string{"run", "./cmd/msgr-bench"}, args...)...)
	} else {
		return errors.New("msgr-bench not found: build it (make build puts it in build/bin) or run from the source tree")
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
