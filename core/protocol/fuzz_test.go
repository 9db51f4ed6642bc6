package protocol

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// The fuzz targets feed arbitrary bytes to a fresh machine of each role.
// Their seed corpus (testdata/fuzz/Fuzz*) holds real transcripts of what
// the other side sends, so mutations reach every state; plain `go test`
// runs the seeds. Regenerate with MSGR_WRITE_FUZZ_CORPUS=1 go test -run
// TestWriteFuzzCorpus.

const (
	fuzzClientCookie = 0x1111
	fuzzServerCookie = 0x2222
)

func fixedRand(v uint64) func() uint64 { return func() uint64 { return v } }

var fuzzNow = func() time.Time { return time.Unix(1700000000, 5) }

// fuzzServer returns a server machine whose registry knows one standby
// session of the client (cookies fixed), so transcripts can resume it.
func fuzzServer() (*Machine, *recorder) {
	n := newNode(srvAddr)
	ev := &recorder{} // also the existing connection's, so a resumed session reports here
	sess := NewSession(msg.StatefulServer(0), nil)
	sess.clientCookie, sess.serverCookie = fuzzClientCookie, fuzzServerCookie
	sess.peerAddrs = msg.AddrVec{msg.MustParseAddr("any:127.0.0.1:0/42")}
	sess.standby = true
	n.conns[sess.peerAddrs[0]] = &fakeConn{peer: sess.peerAddrs, sess: sess, ev: ev}
	cfg := serverConfig(&gseq{n: 100}, ev, msg.StatefulServer(0))
	cfg.Registry = n
	cfg.Rand = fixedRand(fuzzServerCookie)
	cfg.Now = fuzzNow
	cfg.Limits = wire.Limits{MaxFrameLen: 1 << 20, MaxSegmentLen: 1 << 20, MaxControlLen: 64 << 10}
	m, err := NewServer(cfg)
	if err != nil {
		panic(err)
	}
	return m, ev
}

// fuzzClient returns a client machine; resume makes it reconnect a
// session the fuzz server knows.
func fuzzClient(resume bool) (*Machine, *recorder) {
	ev := &recorder{}
	cfg := clientConfig(&gseq{}, ev, msg.LosslessClient(0))
	cfg.Rand = fixedRand(fuzzClientCookie)
	cfg.Now = fuzzNow
	cfg.Limits = wire.Limits{MaxFrameLen: 1 << 20, MaxSegmentLen: 1 << 20, MaxControlLen: 64 << 10}
	var s *Session
	if resume {
		s = NewSession(msg.LosslessClient(0), nil)
		s.clientCookie, s.serverCookie, s.connectSeq = fuzzClientCookie, fuzzServerCookie, 1
	}
	m, err := NewClient(cfg, s)
	if err != nil {
		panic(err)
	}
	return m, ev
}

// transcript runs a client against the fuzz server, with traffic, and
// returns what each side sent.
func transcript(t testing.TB, resume, clientRev1, serverRev1 bool) (fromClient, fromServer []byte) {
	cm, cev := fuzzClient(resume)
	sm, sev := fuzzServer()
	for _, x := range []struct {
		m    *Machine
		rev1 bool
	}{{cm, clientRev1}, {sm, serverRev1}} {
		if !x.rev1 {
			x.m.myBanner.Supported = 0
			x.m.out = x.m.myBanner.Encode(x.m.out[:0])
			x.m.preTx = append(x.m.preTx[:0], x.m.out...)
		}
	}
	c, s := &end{m: cm, ev: cev}, &end{m: sm, ev: sev}
	p := newPipe(c, s)
	for i := 0; i < 3; i++ {
		c.m.Send(numbered(i))
	}
	c.m.SendKeepalive()
	p.run(t)
	for i := 0; i < 3; i++ {
		s.m.Send(numbered(i))
	}
	s.m.SendKeepalive()
	p.run(t)
	if c.err != nil || s.err != nil || !c.ev.isReady() {
		t.Fatalf("transcript: %v / %v", c.err, s.err)
	}
	return c.sent, s.sent
}

type fuzzSeed struct {
	resume bool // the client resumes a session (FuzzClient's first argument)
	data   []byte
}

// fuzzSeeds returns transcripts of what a peer sends to the fuzzed role.
// For msgr2.0 seeds the transcript's sender side keeps rev1 and the other
// side (the one being fuzzed later advertises rev1) drops it, so the
// fuzzed machine, which advertises rev1, picks msgr2.0 as in the seed.
func fuzzSeeds(t testing.TB, server bool) map[string]fuzzSeed {
	seeds := map[string]fuzzSeed{}
	for _, resume := range []bool{false, true} {
		for _, rev1 := range []bool{true, false} {
			name := fmt.Sprintf("resume-%v-rev1-%v", resume, rev1)
			if server {
				c, _ := transcript(t, resume, rev1, true)
				seeds[name] = fuzzSeed{resume, c}
			} else {
				_, s := transcript(t, resume, true, rev1)
				seeds[name] = fuzzSeed{resume, s}
			}
		}
	}
	seeds["empty"] = fuzzSeed{}
	seeds["msgr1"] = fuzzSeed{data: []byte("ceph v027\n\x00\x00\x00\x00")}
	return seeds
}

// feedFuzz drives m with data in pieces and checks the invariants: no
// panic, consumption within bounds, errors are *Fault and sticky, and
// output proportional to input.
func feedFuzz(t *testing.T, m *Machine, data []byte) {
	var buf []byte
	step := 1 + len(data)%61
	in := 0
	var out []byte
	for i := 0; in < len(data) && i < len(data)+1; i++ {
		n := min(step, len(data)-in)
		buf = append(buf, data[in:in+n]...)
		in += n
		c, err := m.Feed(buf)
		if c < 0 || c > len(buf) {
			t.Fatalf("consumed %d of %d", c, len(buf))
		}
		buf = buf[:copy(buf, buf[c:])]
		if err != nil {
			var f *Fault
			if !errors.As(err, &f) || f != m.Err() || m.State() != StateClosed {
				t.Fatalf("error %v is not the machine's fault", err)
			}
			if _, err2 := m.Feed([]byte{0}); err2 != err {
				t.Fatal("fault not sticky")
			}
			break
		}
		if m.Want() > 2<<20 {
			t.Fatalf("Want %d beyond the limits", m.Want())
		}
		m.Send(numbered(i))
		out = m.AppendOutput(out[:0], 1<<16)
		if len(out) > 1<<20 {
			t.Fatalf("produced %d bytes of output in one call", len(out))
		}
	}
}

func FuzzServer(f *testing.F) {
	for _, s := range fuzzSeeds(f, true) {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _ := fuzzServer()
		feedFuzz(t, m, data)
	})
}

func FuzzClient(f *testing.F) {
	for _, s := range fuzzSeeds(f, false) {
		f.Add(s.resume, s.data)
	}
	f.Fuzz(func(t *testing.T, resume bool, data []byte) {
		m, _ := fuzzClient(resume)
		feedFuzz(t, m, data)
	})
}

// TestFuzzSeedsReachReady checks that the seed transcripts drive a fresh
// machine all the way to READY (so the corpus covers every state).
func TestFuzzSeedsReachReady(t *testing.T) {
	for name, seed := range fuzzSeeds(t, true) {
		if len(seed.data) < 100 {
			continue
		}
		m, ev := fuzzServer()
		if _, err := m.Feed(seed.data); err != nil || !ev.isReady() || len(ev.msgs) != 3 {
			t.Fatalf("server seed %s: err %v ready %v msgs %d", name, err, ev.isReady(), len(ev.msgs))
		}
	}
	for name, seed := range fuzzSeeds(t, false) {
		if len(seed.data) < 100 {
			continue
		}
		m, ev := fuzzClient(seed.resume)
		if _, err := m.Feed(seed.data); err != nil || !ev.isReady() || len(ev.msgs) != 3 {
			t.Fatalf("client seed %s: err %v ready %v msgs %d", name, err, ev.isReady(), len(ev.msgs))
		}
	}
	revOf := func(rev1 bool) wire.Rev {
		if rev1 {
			return wire.Rev1
		}
		return wire.Rev0
	}
	for name, args := range frameSeeds(t, true) {
		m, ev := fuzzServer()
		if _, err := m.Feed(streamOf(args[1].([]byte), revOf(args[0].(bool)))); err != nil || !ev.isReady() || len(ev.msgs) != 3 {
			t.Fatalf("server frames seed %s: err %v ready %v msgs %d", name, err, ev.isReady(), len(ev.msgs))
		}
	}
	for name, args := range frameSeeds(t, false) {
		m, ev := fuzzClient(args[0].(bool))
		if _, err := m.Feed(streamOf(args[2].([]byte), revOf(args[1].(bool)))); err != nil || !ev.isReady() || len(ev.msgs) != 3 {
			t.Fatalf("client frames seed %s: err %v ready %v msgs %d", name, err, ev.isReady(), len(ev.msgs))
		}
	}
}

// TestWriteFuzzCorpus writes the seed corpus files (only when asked).
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("MSGR_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set MSGR_WRITE_FUZZ_CORPUS=1 to regenerate testdata/fuzz")
	}
	corpus := map[string]map[string][]any{
		"FuzzServer":       {},
		"FuzzClient":       {},
		"FuzzServerFrames": frameSeeds(t, true),
		"FuzzClientFrames": frameSeeds(t, false),
	}
	for name, seed := range fuzzSeeds(t, true) {
		corpus["FuzzServer"][name] = []any{seed.data}
	}
	for name, seed := range fuzzSeeds(t, false) {
		corpus["FuzzClient"][name] = []any{seed.resume, seed.data}
	}
	for target, seeds := range corpus {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, args := range seeds {
			body := "go test fuzz v1\n"
			for _, a := range args {
				switch v := a.(type) {
				case bool:
					body += "bool(" + strconv.FormatBool(v) + ")\n"
				case []byte:
					body += "[]byte(" + strconv.Quote(string(v)) + ")\n"
				default:
					t.Fatalf("unexpected seed value %T", a)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// The *Frames fuzz targets get past the crcs: their input is a list of
// records (u8 tag, u16 length, payload) that are framed correctly (after
// a valid banner) before being fed, so mutations exercise the state
// machine rather than the crc check. A MESSAGE record's payload is the
// 41-byte header followed by the front.

// recordsOf turns a byte stream (banner, then frames) into records.
func recordsOf(t testing.TB, stream []byte, rev wire.Rev) []byte {
	_, n, err := wire.DecodeBanner(stream)
	if err != nil {
		t.Fatal(err)
	}
	stream = stream[n:]
	var rec []byte
	for len(stream) > 0 {
		f, n, err := wire.DecodeFrame(stream, rev, wire.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		var p []byte
		for i := 0; i < f.NumSegments && i < 2; i++ {
			p = append(p, f.Segments[i]...)
		}
		rec = append(rec, byte(f.Tag), byte(len(p)), byte(len(p)>>8))
		rec = append(rec, p...)
		stream = stream[n:]
	}
	return rec
}

// streamOf frames records in layout rev after a banner.
func streamOf(rec []byte, rev wire.Rev) []byte {
	b := wire.DefaultBanner
	if rev == wire.Rev0 {
		b.Supported = 0
	}
	out := b.Encode(nil)
	for len(rec) >= 3 {
		tag := wire.Tag(rec[0])
		n := min(int(rec[1])|int(rec[2])<<8, len(rec)-3)
		p := rec[3 : 3+n]
		rec = rec[3+n:]
		if tag == wire.TagMessage {
			hdr := make([]byte, wire.HeaderLen)
			copy(hdr, p)
			var front []byte
			if len(p) > wire.HeaderLen {
				front = p[wire.HeaderLen:]
			}
			out, _ = wire.AppendFrame(out, rev, tag, hdr, front)
			continue
		}
		out, _ = wire.AppendFrame(out, rev, tag, p)
	}
	return out
}

// frameSeeds returns the record seeds of the *Frames targets: (rev1,
// records) for the server, (resume, rev1, records) for the client.
func frameSeeds(t testing.TB, server bool) map[string][]any {
	seeds := map[string][]any{}
	for _, rev1 := range []bool{true, false} {
		for _, resume := range []bool{false, true} {
			rev := wire.Rev0
			if rev1 {
				rev = wire.Rev1
			}
			name := fmt.Sprintf("resume-%v-rev1-%v", resume, rev1)
			if server {
				c, _ := transcript(t, resume, rev1, true)
				seeds[name] = []any{rev1, recordsOf(t, c, rev)}
			} else {
				_, s := transcript(t, resume, true, rev1)
				seeds[name] = []any{resume, rev1, recordsOf(t, s, rev)}
			}
		}
	}
	return seeds
}

func FuzzServerFrames(f *testing.F) {
	for _, s := range frameSeeds(f, true) {
		f.Add(s[0].(bool), s[1].([]byte))
	}
	f.Fuzz(func(t *testing.T, rev1 bool, rec []byte) {
		rev := wire.Rev0
		if rev1 {
			rev = wire.Rev1
		}
		m, _ := fuzzServer()
		feedFuzz(t, m, streamOf(rec, rev))
	})
}

func FuzzClientFrames(f *testing.F) {
	for _, s := range frameSeeds(f, false) {
		f.Add(s[0].(bool), s[1].(bool), s[2].([]byte))
	}
	f.Fuzz(func(t *testing.T, resume, rev1 bool, rec []byte) {
		rev := wire.Rev0
		if rev1 {
			rev = wire.Rev1
		}
		m, _ := fuzzClient(resume)
		feedFuzz(t, m, streamOf(rec, rev))
	})
}
