package protocol

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// FuzzV1Server and FuzzV1Client feed arbitrary bytes to a fresh V1
// machine of each role. Their seeds (testdata/fuzz/FuzzV1*) are real
// transcripts of the other side, recorded against identically configured
// machines, so mutations reach every state. Regenerate with
// MSGR_WRITE_FUZZ_CORPUS=1 go test -run TestWriteV1FuzzCorpus; the seeds
// must still drive the machines to READY (TestV1FuzzSeeds).

var v1FuzzLimits = wire.Limits{MaxFrameLen: 1 << 20, MaxSegmentLen: 1 << 20}

// fuzzServerV1 returns a server whose registry knows a standby session of
// the client at connect_seq 1, so resuming transcripts reach the
// takeover paths.
func fuzzServerV1() (*V1, *recorder) {
	n := newV1Node(v1SrvAddr)
	ev := &recorder{}
	sess := NewSession(msg.StatefulServer(0), nil)
	sess.connectSeq, sess.peerGlobalSeq, sess.inSeq = 1, 1, 0
	sess.peerAddrs = msg.AddrVec{v1CliAddr}
	sess.standby = true
	n.conns[v1CliAddr] = &v1conn{peer: sess.peerAddrs, sess: sess, ev: ev}
	cfg := v1ServerConfig(&gseq{n: 100}, ev, msg.StatefulServer(0))
	cfg.Registry = n
	cfg.Now = fuzzNow
	cfg.Limits = v1FuzzLimits
	m, err := NewServerV1(cfg)
	if err != nil {
		panic(err)
	}
	return m, ev
}

// fuzzClientV1 returns a client; resume continues a session at
// connect_seq 1 (as after a fault).
func fuzzClientV1(resume bool, feat uint64) (*V1, *recorder) {
	ev := &recorder{}
	pol := msg.LosslessClient(0)
	pol.FeaturesSupported = feat
	cfg := v1ClientConfig(&gseq{}, ev, pol)
	cfg.Now = fuzzNow
	cfg.Limits = v1FuzzLimits
	var s *Session
	if resume {
		s = NewSession(pol, ev.release)
		s.connectSeq = 1
	}
	m, err := NewClientV1(cfg, s)
	if err != nil {
		panic(err)
	}
	return m, ev
}

type v1FuzzSeed struct {
	resume     bool
	feat       uint64
	fromClient []byte // what the client sent: a FuzzV1Server seed
	fromServer []byte // what the server sent: a FuzzV1Client seed
}

// v1FuzzSeeds records sessions between the fuzz machines: 3 messages and
// a keepalive each way, in small pieces.
func v1FuzzSeeds(t testing.TB) map[string]v1FuzzSeed {
	seeds := map[string]v1FuzzSeed{}
	for _, v := range []struct {
		name   string
		resume bool
		feat   uint64
	}{
		{"new", false, msg.FeaturesAll},
		{"resume", true, msg.FeaturesAll},
		{"no-reconnect-seq", false, msg.FeaturesAll &^ wire.V1FeatureReconnectSeq},
		{"no-msg-auth", true, msg.FeaturesAll &^ wire.V1FeatureMsgAuth},
		{"no-keepalive2", false, msg.FeaturesAll &^ wire.V1FeatureKeepalive2},
	} {
		cm, cev := fuzzClientV1(v.resume, v.feat)
		sm, sev := fuzzServerV1()
		c, s := &v1end{m: cm, ev: cev}, &v1end{m: sm, ev: sev}
		p := newV1Pipe(c, s)
		p.chunk, p.max = 50, 100
		p.run(t)
		for i := 0; i < 3; i++ {
			c.m.Send(numbered(i))
			s.m.Send(numbered(10 + i))
		}
		c.m.SendKeepalive()
		s.m.SendKeepalive()
		p.run(t)
		if len(cev.msgs) != 3 || len(sev.msgs) != 3 || c.err != nil || s.err != nil {
			t.Fatalf("seed %s: %d/%d messages, %v %v", v.name, len(cev.msgs), len(sev.msgs), c.err, s.err)
		}
		seeds[v.name] = v1FuzzSeed{resume: v.resume, feat: v.feat, fromClient: c.sent, fromServer: s.sent}
	}
	return seeds
}

// feedFuzzV1 drives m with data in pieces and checks the invariants: no
// panic, consumption within bounds, errors are sticky *Faults, Want and
// output bounded.
func feedFuzzV1(t *testing.T, m *V1, data []byte) {
	var buf, out []byte
	step := 1 + len(data)%61
	for in, i := 0, 0; in < len(data) && i <= len(data); i++ {
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
			return
		}
		if m.Want() > 2<<20 || m.Want() < 1 {
			t.Fatalf("Want %d", m.Want())
		}
		m.Send(numbered(i))
		out = m.AppendOutput(out[:0], 1<<16)
		if len(out) > 1<<20 {
			t.Fatalf("produced %d bytes of output in one call", len(out))
		}
	}
}

func FuzzV1Server(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, _ := fuzzServerV1()
		feedFuzzV1(t, m, data)
	})
}

func FuzzV1Client(f *testing.F) {
	f.Fuzz(func(t *testing.T, resume bool, noReconnectSeq bool, data []byte) {
		feat := msg.FeaturesAll
		if noReconnectSeq {
			feat &^= wire.V1FeatureReconnectSeq
		}
		m, _ := fuzzClientV1(resume, feat)
		feedFuzzV1(t, m, data)
	})
}

// TestV1FuzzSeeds: each seed drives a fresh machine to READY with its 3
// messages, and the corpus files hold the current seeds.
func TestV1FuzzSeeds(t *testing.T) {
	for name, s := range v1FuzzSeeds(t) {
		sm, sev := fuzzServerV1()
		if _, err := sm.Feed(s.fromClient); err != nil || !sev.isReady() || len(sev.msgs) != 3 {
			t.Errorf("server seed %s: %v, ready %v, %d messages", name, err, sev.isReady(), len(sev.msgs))
		}
		if s.feat == msg.FeaturesAll || s.feat == msg.FeaturesAll&^wire.V1FeatureReconnectSeq {
			cm, cev := fuzzClientV1(s.resume, s.feat)
			if _, err := cm.Feed(s.fromServer); err != nil || !cev.isReady() || len(cev.msgs) != 3 {
				t.Errorf("client seed %s: %v, ready %v, %d messages", name, err, cev.isReady(), len(cev.msgs))
			}
		}
	}
	for target, files := range v1CorpusFiles(t) {
		for name, body := range files {
			got, err := os.ReadFile(filepath.Join("testdata", "fuzz", target, name))
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("%s/%s missing or stale (MSGR_WRITE_FUZZ_CORPUS=1 go test -run TestWriteV1FuzzCorpus): %v", target, name, err)
			}
		}
	}
}

// v1CorpusFiles renders the seeds as corpus files, by target and name.
func v1CorpusFiles(t testing.TB) map[string]map[string][]byte {
	files := map[string]map[string][]byte{"FuzzV1Server": {}, "FuzzV1Client": {}}
	for name, s := range v1FuzzSeeds(t) {
		files["FuzzV1Server"]["seed-"+name] = []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(s.fromClient)) + ")\n")
		if s.feat == msg.FeaturesAll || s.feat == msg.FeaturesAll&^wire.V1FeatureReconnectSeq {
			files["FuzzV1Client"]["seed-"+name] = []byte("go test fuzz v1\nbool(" + strconv.FormatBool(s.resume) + ")\nbool(" +
				strconv.FormatBool(s.feat != msg.FeaturesAll) + ")\n[]byte(" + strconv.Quote(string(s.fromServer)) + ")\n")
		}
	}
	files["FuzzV1Server"]["seed-msgr2-banner"] = []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(wire.DefaultBanner.Encode(nil))) + ")\n")
	return files
}

// TestWriteV1FuzzCorpus writes the seed corpus files (only when asked).
func TestWriteV1FuzzCorpus(t *testing.T) {
	if os.Getenv("MSGR_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set MSGR_WRITE_FUZZ_CORPUS=1 to regenerate testdata/fuzz")
	}
	for target, files := range v1CorpusFiles(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
