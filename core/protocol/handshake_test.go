package protocol

import (
	"testing"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// TestHandshakeMatrix opens a session with every combination of frame
// revision on each side and lossy/lossless policy, and checks what each
// side learned about the other.
func TestHandshakeMatrix(t *testing.T) {
	defer leakcheck.Take().Check(t)
	for _, crev1 := range []bool{true, false} {
		for _, srev1 := range []bool{true, false} {
			for _, lossy := range []bool{true, false} {
				name := map[bool]string{true: "rev1", false: "rev0"}
				t.Run("client-"+name[crev1]+"/server-"+name[srev1]+"/"+map[bool]string{true: "lossy", false: "lossless"}[lossy], func(t *testing.T) {
					cpol, spol := msg.LosslessClient(0), msg.StatefulServer(0)
					if lossy {
						cpol, spol = msg.LossyClient(0), msg.StatelessServer(0)
					}
					c, s, p := pair(t, cpol, spol, func(cc, sc *Config) {
						cc.DisableRev1, sc.DisableRev1 = !crev1, !srev1
					})
					p.run(t)
					if c.err != nil || s.err != nil {
						t.Fatalf("client err %v, server err %v", c.err, s.err)
					}
					if c.m.State() != StateReady || s.m.State() != StateReady {
						t.Fatalf("states %v / %v", c.m.State(), s.m.State())
					}
					wantRev := wire.Rev0
					if crev1 && srev1 {
						wantRev = wire.Rev1
					}
					if c.m.Rev() != wantRev || s.m.Rev() != wantRev {
						t.Fatalf("revs %v / %v, want %v", c.m.Rev(), s.m.Rev(), wantRev)
					}
					ci, si := c.ev.lastReady(), s.ev.lastReady()
					if ci.Lossy != lossy || si.Lossy != lossy {
						t.Fatalf("lossy %v / %v, want %v", ci.Lossy, si.Lossy, lossy)
					}
					if ci.Reconnect || si.Reconnect {
						t.Fatal("a new session reported as a reconnect")
					}
					if want := (msg.EntityName{Type: msg.EntityOSD, Num: 3}); ci.PeerName != want {
						t.Fatalf("client sees %v, want %v", ci.PeerName, want)
					}
					if want := (msg.EntityName{Type: msg.EntityClient, Num: -1}); si.PeerName != want {
						t.Fatalf("server sees %v, want %v", si.PeerName, want)
					}
					if ci.Features != msg.FeaturesAll || si.Features != msg.FeaturesAll {
						t.Fatalf("features %#x / %#x", ci.Features, si.Features)
					}
					// The client never bound: it learns its IP from the
					// server's HELLO, keeps type ANY, port 0 and its nonce.
					wantAddrs := msg.AddrVec{msg.MustParseAddr("any:127.0.0.1:0/42")}
					if c.ev.learned.String() != wantAddrs.String() || si.PeerAddrs.String() != wantAddrs.String() {
						t.Fatalf("client learned %v, server sees %v, want %v", c.ev.learned, si.PeerAddrs, wantAddrs)
					}
					if ci.PeerAddrs.String() != srvAddr.String() {
						t.Fatalf("client sees server at %v", ci.PeerAddrs)
					}
					cs, ss := c.m.Session().Info(), s.m.Session().Info()
					if cs.ClientCookie != ss.ClientCookie || cs.ServerCookie != ss.ServerCookie {
						t.Fatalf("cookies differ: client %#x/%#x server %#x/%#x", cs.ClientCookie, cs.ServerCookie, ss.ClientCookie, ss.ServerCookie)
					}
					if lossy != (cs.ClientCookie == 0) || lossy != (cs.ServerCookie == 0) {
						t.Fatalf("lossy=%v but cookies %#x/%#x", lossy, cs.ClientCookie, cs.ServerCookie)
					}
					if cs.GlobalSeq != 1 || ss.PeerGlobalSeq != 1 {
						t.Fatalf("global_seq %d, server saw %d", cs.GlobalSeq, ss.PeerGlobalSeq)
					}
				})
			}
		}
	}
}

// TestHandshakeFrames checks the exact frames and sizes a client and a
// server produce, against the sizes seen between real 16.2.15 binaries
// (FACTS.md §1: banner 26, HELLO 72, AUTH_REQUEST 74, AUTH_DONE 52,
// AUTH_SIGNATURE 68, CLIENT_IDENT 159).
func TestHandshakeFrames(t *testing.T) {
	c, s, p := pair(t, msg.LossyClient(0), msg.StatelessServer(0), nil)
	p.run(t)
	if c.err != nil || s.err != nil {
		t.Fatalf("client err %v, server err %v", c.err, s.err)
	}
	if len(c.sent) < wire.BannerLen || string(c.sent[:8]) != "ceph v2\n" {
		t.Fatal("client did not start with the banner")
	}
	b, _, _ := wire.DecodeBanner(c.sent)
	if b != (wire.Banner{Supported: 1, Required: 0}) {
		t.Fatalf("banner %+v", b)
	}
	cf, csz := frames(t, c.sent, wire.Rev1)
	wantC := []struct {
		tag  wire.Tag
		size int
	}{{wire.TagHello, 72}, {wire.TagAuthRequest, 74}, {wire.TagAuthSignature, 68}, {wire.TagClientIdent, 159}}
	if len(cf) != len(wantC) {
		t.Fatalf("client sent %d frames, want %d", len(cf), len(wantC))
	}
	for i, w := range wantC {
		if cf[i].Tag != w.tag || csz[i] != w.size {
			t.Fatalf("client frame %d: %v %d bytes, want %v %d", i, cf[i].Tag, csz[i], w.tag, w.size)
		}
	}
	var ci wire.ClientIdent
	if err := ci.Decode(cf[3].Payload()); err != nil {
		t.Fatal(err)
	}
	if ci.Flags != 1 || ci.ClientCookie != 0 || ci.GID != -1 || ci.TargetAddr != srvAddr ||
		ci.SupportedFeatures != msg.FeaturesAll || ci.RequiredFeatures != msg.FeatureMsgAddr2 {
		t.Fatalf("client ident %+v", ci)
	}
	var sig wire.AuthSignature
	if err := sig.Decode(cf[2].Payload()); err != nil || sig.Sig != [32]byte{} {
		t.Fatalf("auth none signature %x (%v), want zeros", sig.Sig, err)
	}
	sf, ssz := frames(t, s.sent, wire.Rev1)
	wantS := []struct {
		tag  wire.Tag
		size int
	}{{wire.TagHello, 72}, {wire.TagAuthDone, 52}, {wire.TagAuthSignature, 68}, {wire.TagServerIdent, 124}}
	if len(sf) != len(wantS) {
		t.Fatalf("server sent %d frames, want %d", len(sf), len(wantS))
	}
	for i, w := range wantS {
		if sf[i].Tag != w.tag || ssz[i] != w.size {
			t.Fatalf("server frame %d: %v %d bytes, want %v %d", i, sf[i].Tag, ssz[i], w.tag, w.size)
		}
	}
	var h wire.Hello
	if err := h.Decode(sf[0].Payload()); err != nil {
		t.Fatal(err)
	}
	// The server tells the client how it sees it: a v2 address, nonce 0.
	if h.EntityType != msg.EntityOSD || h.PeerAddr != cliSock {
		t.Fatalf("server hello %+v", h)
	}
}
