package ceph

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
	"github.com/msgr-dev/msgr/internal/testenv"
)

// The real `ceph` CLI (16.2.15) against MonServer, the engine of
// `msgr serve`.

func startServer(t *testing.T, o MonServerOptions) *MonServer {
	t.Helper()
	o.Logf = t.Logf
	s, err := NewMonServer("127.0.0.1:0", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func serverHost(s *MonServer) string {
	a, _ := s.Addrs().Msgr2()
	return "v2:" + a.AddrPort.String()
}

// frameErrors matches what Ceph's ProtocolV2 logs on a bad frame or a
// decode failure (FACTS.md §4, ProtocolV2.cc).
var frameErrors = regexp.MustCompile(`(?i)bad (preamble|segment|epilogue|number of segments|tag)|failed to decode|decode error|_fault|frame.*(error|failed)|read frame (preamble|segment|epilogue) failed|malformed|corrupt`)

// cliLog returns the CLI's stderr and its log files in dir.
func cliLog(t *testing.T, dir string, r testenv.CLIResult) string {
	var b strings.Builder
	b.Write(r.Stderr)
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err == nil {
			b.Write(data)
		}
	}
	return b.String()
}

func checkNoFrameErrors(t *testing.T, log string) {
	t.Helper()
	var bad []string
	for _, l := range strings.Split(log, "\n") {
		if frameErrors.MatchString(l) {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		t.Errorf("the CLI logged %d frame errors, e.g.:\n%s", len(bad), strings.Join(bad[:min(5, len(bad))], "\n"))
	}
	if !strings.Contains(log, "handle_read_frame") {
		t.Errorf("no debug-ms trace in the CLI's log (%d bytes): the check above saw nothing", len(log))
	}
}

// TestCLIForward: `ceph -s` through MonServer relaying to a real monitor
// completes and prints the cluster id.
func TestCLIForward(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{})
	s := startServer(t, MonServerOptions{Forward: mon.AddrString()})
	dir := t.TempDir()
	conf, err := testenv.ClientConf(dir, serverHost(s), mon.Fsid)
	if err != nil {
		t.Fatal(err)
	}
	r := testenv.RunCeph(conf, 30*time.Second, "-s", "--debug-ms=20")
	if r.Err != nil || !strings.Contains(string(r.Stdout), "id:     "+mon.Fsid) {
		t.Fatalf("ceph -s through the relay: %v", r)
	}
	t.Logf("ceph -s in %v:\n%s", r.Elapsed.Round(time.Millisecond), r.Stdout)
	checkNoFrameErrors(t, cliLog(t, dir, r))

	// A JSON command, answered by the monitor.
	r = testenv.RunCeph(conf, 30*time.Second, "mon", "versions")
	if r.Err != nil || !strings.Contains(string(r.Stdout), "16.2.15") {
		t.Fatalf("ceph mon versions through the relay: %v", r)
	}
	st := s.Stats()
	if st.Relayed == 0 || st.Returned == 0 || st.Answered != 0 {
		t.Errorf("relay stats %+v", st)
	}
	// The relay only rewrote monmaps: the CLI saw our address as the mon.
	if log := cliLog(t, dir, r); strings.Contains(log, mon.Addr.String()) {
		t.Errorf("the monitor's own address %s leaked to the CLI", mon.Addr)
	}
}

// TestCLICanned: `ceph -s` and `ceph mon versions` against canned answers:
// the handshake completes and the CLI receives MMonCommandAcks.
func TestCLICanned(t *testing.T) {
	testenv.RequireCeph(t)
	snap := leakcheck.Take() // checked after every cleanup (server closed)
	t.Cleanup(func() { snap.Check(t) })
	fsid := testenv.NewUUID()
	u, err := testenv.ParseUUID(fsid)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, MonServerOptions{Fsid: wire.UUID(u)})
	dir := t.TempDir()
	conf, err := testenv.ClientConf(dir, serverHost(s), fsid)
	if err != nil {
		t.Fatal(err)
	}
	r := testenv.RunCeph(conf, 30*time.Second, "-s", "--debug-ms=20")
	if r.Err != nil || !strings.Contains(string(r.Stdout), "id:     "+fsid) {
		t.Fatalf("ceph -s against canned answers: %v", r)
	}
	log := cliLog(t, dir, r)
	if !regexp.MustCompile(`<== mon\.0 \S+ \d+ ==== mon_command_ack\(\[\{"prefix": "status"\}\]=0`).MatchString(log) {
		t.Errorf("the CLI's log shows no mon_command_ack for status")
	}
	checkNoFrameErrors(t, log)
	r = testenv.RunCeph(conf, 30*time.Second, "mon", "versions")
	if r.Err != nil || !strings.Contains(string(r.Stdout), "canned") {
		t.Fatalf("ceph mon versions against canned answers: %v", r)
	}
	// An unknown command is refused with the server's reason.
	r = testenv.RunCeph(conf, 30*time.Second, "osd", "tree")
	if r.Err == nil {
		t.Errorf("ceph osd tree against canned answers succeeded: %v", r)
	}
	if st := s.Stats(); st.Answered == 0 || st.Relayed != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestServeBadFrames: a truncated frame and frames with a bad crc sent to
// the server on raw TCP sessions: each connection is closed, the server
// lives on, and another session (a MonClient) keeps working throughout.
func TestServeBadFrames(t *testing.T) {
	testenv.RequireCeph(t)
	snap := leakcheck.Take() // checked after every cleanup (server closed)
	t.Cleanup(func() { snap.Check(t) })
	s := startServer(t, MonServerOptions{})
	a, _ := s.Addrs().Msgr2()
	fake := &testenv.Mon{Addr: a.AddrPort}
	mc := dialMon(t, a.AddrPort.String(), MonClientOptions{})
	ctx := ctxT(t, 30*time.Second)

	frame := func(raw *monConn) []byte {
		m := (&MMonGetVersion{Handle: 1, What: "osdmap"}).Encode(msg.FeaturesAll)
		m.Seq = raw.m.Session().Info().OutSeq + 1
		b, err := wire.AppendMessageFrame(nil, raw.m.Rev(), m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		send func(raw *monConn)
	}{
		{"truncated", func(raw *monConn) {
			b := frame(raw)
			raw.c.Write(b[:len(b)/2])
			raw.c.(interface{ CloseWrite() error }).CloseWrite()
		}},
		{"bad segment crc", func(raw *monConn) {
			b := frame(raw)
			b[len(b)-20] ^= 0xff
			raw.c.Write(b)
		}},
		{"bad preamble crc", func(raw *monConn) {
			b := frame(raw)
			b[29] ^= 0x01
			raw.c.Write(b)
		}},
		{"garbage before the banner", func(raw *monConn) {}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := dial(t, fake, dialOpts{})
			if c.name == "garbage before the banner" {
				raw.c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			} else {
				raw.handshake()
				c.send(raw)
			}
			waitClosed(t, raw.c, 5*time.Second)
			raw.c.Close()
			res, err := mc.Command(ctx, `{"prefix": "mon versions"}`)
			if err != nil || res.R != 0 {
				t.Fatalf("the other session after %s: %+v %v", c.name, res, err)
			}
			raw2 := dial(t, fake, dialOpts{})
			raw2.handshake()
			rep := raw2.request((&MMonGetVersion{Handle: 5, What: "monmap"}).Encode(msg.FeaturesAll), ofType(msg.MsgMonGetVersionReply))
			if r, err := DecodeMMonGetVersionReply(rep); err != nil || r.Handle != 5 {
				t.Errorf("a new session after %s: %+v %v", c.name, r, err)
			}
			raw2.c.Close()
		})
	}
	if st := mc.Stats(); st.Resets != 0 {
		t.Errorf("the healthy session was reset %d times", st.Resets)
	}
	p := s.Messenger().Perf()
	t.Logf("server perf: faults %d, protocol errors %d, accepted %d", p.Faults, p.ProtocolErrors, p.Accepted)
	if p.ProtocolErrors == 0 && p.Faults == 0 {
		t.Error("the server counted no fault for the bad frames")
	}
}

// TestServeForwardDeadMon: `msgr serve --forward` to a dead monitor drops
// its clients' connections (they see no answer, and nothing leaks)
// instead of holding them open.
func TestServeForwardDeadMon(t *testing.T) {
	testenv.RequireCeph(t)
	snap := leakcheck.Take() // checked after every cleanup (server closed)
	t.Cleanup(func() { snap.Check(t) })
	s := startServer(t, MonServerOptions{Forward: "127.0.0.1:1"})
	a, _ := s.Addrs().Msgr2()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := DialMon(ctx, a.AddrPort.String(), MonClientOptions{Timeout: 2 * time.Second})
	if err == nil {
		t.Fatal("a relay to a dead monitor answered")
	}
	t.Log(err)
}

// TestCLIFrameRevisions: the real CLI against a server offering msgr2.1
// and one offering only msgr2.0 (RawServer: the messenger cannot force
// rev0); `ceph -s` completes with either, in the layout offered.
func TestCLIFrameRevisions(t *testing.T) {
	testenv.RequireCeph(t)
	snap := leakcheck.Take()
	t.Cleanup(func() { snap.Check(t) })
	fsid := testenv.NewUUID()
	u, err := testenv.ParseUUID(fsid)
	if err != nil {
		t.Fatal(err)
	}
	for _, rev0 := range []bool{false, true} {
		t.Run(fmt.Sprintf("rev0=%v", rev0), func(t *testing.T) {
			rs, err := NewRawServer("127.0.0.1:0", wire.UUID(u), rev0)
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Close()
			a, _ := rs.Addrs().Msgr2()
			dir := t.TempDir()
			conf, err := testenv.ClientConf(dir, "v2:"+a.AddrPort.String(), fsid)
			if err != nil {
				t.Fatal(err)
			}
			r := testenv.RunCeph(conf, 30*time.Second, "-s", "--debug-ms=20")
			if r.Err != nil || !strings.Contains(string(r.Stdout), "id:     "+fsid) {
				t.Fatalf("ceph -s: %v", r)
			}
			log := cliLog(t, dir, r)
			checkNoFrameErrors(t, log)
			// The CLI's log shows the layout of each connection (rev1=1
			// once msgr2.1 was agreed).
			if got := strings.Contains(log, "rev1=1"); got == rev0 {
				t.Errorf("CLI log has rev1=1: %v; server offered rev0 only: %v", got, rev0)
			}
			if rs.Answered() == 0 {
				t.Error("nothing answered")
			}
		})
	}
}
