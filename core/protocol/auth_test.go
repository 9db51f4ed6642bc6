package protocol

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// TestNoneRequestToMon checks the AUTH_REQUEST payload against the bytes
// the real 16.2.15 CLI sends to a monitor (FACTS.md §6.1).
func TestNoneRequestToMon(t *testing.T) {
	r, err := NoneClient{}.Request(msg.EntityMon)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("0a" + "08000000" + "05000000" + "61646d696e" + "0000000000000000")
	if r.Method != AuthMethodNone || len(r.PreferredModes) != 1 || r.PreferredModes[0] != ConModeCRC || !bytes.Equal(r.Payload, want) {
		t.Fatalf("request %+v payload %x", r, r.Payload)
	}
	p := (&wire.AuthRequest{Method: r.Method, PreferredModes: r.PreferredModes, Payload: r.Payload}).Encode(nil)
	wantFrame, _ := hex.DecodeString("01000000" + "01000000" + "01000000" + "16000000")
	if !bytes.HasPrefix(p, wantFrame) || len(p) != len(wantFrame)+22 {
		t.Fatalf("frame payload %x", p)
	}
	// To other daemons the payload is the none authorizer (struct_v 1).
	r, _ = NoneClient{Name: AuthName{Type: msg.EntityOSD, ID: "7"}, GlobalID: 4101}.Request(msg.EntityOSD)
	name, gid, err := parseNonePayload(r.Payload)
	if r.Payload[0] != 1 || err != nil || name != (AuthName{Type: msg.EntityOSD, ID: "7"}) || gid != 4101 {
		t.Fatalf("authorizer %x: %v %v %v", r.Payload, name, gid, err)
	}
}

// TestNoneServerAssignsGlobalID: a mon-like server assigns a global id to
// a client asking for one; the client learns it at AUTH_DONE.
func TestNoneServerAssignsGlobalID(t *testing.T) {
	next := uint64(4100)
	c, s, p := pair(t, msg.LossyClient(0), msg.StatelessServer(0), func(cc, sc *Config) {
		cc.PeerType = msg.EntityMon
		sc.MyType = msg.EntityMon
		sc.AuthServer = NoneServer{NextGlobalID: func() uint64 { next++; return next }}
	})
	p.run(t)
	if c.ev.lastReady().Auth.GlobalID != 4101 || s.ev.lastReady().Auth.GlobalID != 4101 {
		t.Fatalf("global ids %d / %d", c.ev.lastReady().Auth.GlobalID, s.ev.lastReady().Auth.GlobalID)
	}
	if s.ev.lastReady().Auth.Name != (AuthName{Type: msg.EntityClient, ID: "admin"}) {
		t.Fatalf("server saw %v", s.ev.lastReady().Auth.Name)
	}
}

func TestNoneServerRefusesGarbage(t *testing.T) {
	for _, p := range [][]byte{nil, {10}, {99, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if r := (NoneServer{}).Handle(msg.EntityClient, AuthMethodNone, false, p); r.Status != AuthBadMethod {
			t.Fatalf("payload %x: status %v", p, r.Status)
		}
	}
	if r := (NoneServer{}).Handle(msg.EntityClient, AuthMethodCephx, false, nil); r.Status != AuthBadMethod || r.Result != -95 {
		t.Fatalf("cephx: %+v", r)
	}
}

// TestAuthSignature: zero for an empty key (auth none), HMAC-SHA256
// otherwise (RFC 4231 test case 2).
func TestAuthSignature(t *testing.T) {
	if authSignature(nil, []byte("x")) != ([32]byte{}) {
		t.Fatal("empty key must give a zero signature")
	}
	sig := authSignature([]byte("Jefe"), []byte("what do ya want for nothing?"))
	if hex.EncodeToString(sig[:]) != "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" {
		t.Fatalf("hmac %x", sig)
	}
}

// A monitor authenticating to another monitor must send the authorizer
// form; only a non-monitor talking to a monitor sends mode MON.
func TestNoneClientPayloadForm(t *testing.T) {
	for _, tc := range []struct {
		me, peer msg.EntityType
		mode     byte
	}{
		{msg.EntityClient, msg.EntityMon, authModeMon},
		{msg.EntityOSD, msg.EntityMon, authModeMon},
		{msg.EntityMon, msg.EntityMon, authModeAuthorizer},
		{msg.EntityClient, msg.EntityOSD, authModeAuthorizer},
	} {
		req, err := NoneClient{Name: AuthName{Type: tc.me, ID: "x"}}.Request(tc.peer)
		if err != nil {
			t.Fatal(err)
		}
		if req.Payload[0] != tc.mode {
			t.Errorf("%v -> %v: mode %d, want %d", tc.me, tc.peer, req.Payload[0], tc.mode)
		}
	}
}
