package ceph

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/protocol"
	"github.com/msgr-dev/msgr/core/wire"
	"github.com/msgr-dev/msgr/internal/testenv"
)

// Interop tests against a real Ceph 16.2.15 monitor (testenv.StartMon),
// one monitor per test. They need ceph-mon; see scripts/ensure-deps.sh.

// TestInteropHandshake opens a client session in both frame layouts and
// checks what the monitor tells us (FACTS.md §8.1–8.2), then exchanges a
// message in that layout.
func TestInteropHandshake(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{})
	for _, c := range []struct {
		name string
		rev0 bool
		want wire.Rev
	}{{"rev1", false, wire.Rev1}, {"rev0", true, wire.Rev0}} {
		t.Run(c.name, func(t *testing.T) {
			mc := dial(t, mon, dialOpts{rev0: c.rev0})
			mc.handshake()
			info := mc.ev.lastReady()
			if mc.m.Rev() != c.want {
				t.Errorf("frame layout %v, want %v", mc.m.Rev(), c.want)
			}
			if !info.Lossy {
				t.Error("the monitor's client sessions are lossy, got lossless")
			}
			if info.PeerName != (msg.EntityName{Type: msg.EntityMon, Num: 0}) {
				t.Errorf("peer %v, want mon.0", info.PeerName)
			}
			if !info.PeerAddrs.Contains(monAddr(mon)) {
				t.Errorf("peer addrs %v lack %v", info.PeerAddrs, monAddr(mon))
			}
			if info.Features != msg.FeaturesAll {
				t.Errorf("features %#x, want %#x", info.Features, msg.FeaturesAll)
			}
			if info.Auth.GlobalID == 0 || info.Auth.ConMode != protocol.ConModeCRC {
				t.Errorf("auth %+v: want an assigned global id, crc mode", info.Auth)
			}
			if si := mc.m.Session().Info(); si.ServerCookie != 0 {
				t.Errorf("server cookie %#x on a lossy session", si.ServerCookie)
			}
			if len(mc.ev.learned) != 1 || mc.ev.learned[0].AddrPort.Addr().String() != "127.0.0.1" {
				t.Errorf("learned address %v", mc.ev.learned)
			}
			rep := mc.request((&MMonGetVersion{Handle: 99, What: "osdmap"}).Encode(info.Features), ofType(msg.MsgMonGetVersionReply))
			r, err := DecodeMMonGetVersionReply(rep)
			if err != nil || r.Handle != 99 {
				t.Errorf("MMonGetVersionReply %+v, %v", r, err)
			}
			if rep.Src != info.PeerName || rep.Seq != 1 || rep.AckSeq != 1 {
				t.Errorf("reply src %v seq %d ack_seq %d; want mon.0, 1, 1", rep.Src, rep.Seq, rep.AckSeq)
			}
		})
	}
}

// TestInteropKeepalive: 1,000 KEEPALIVE2 round trips, each acknowledged
// with our own timestamp.
func TestInteropKeepalive(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{})
	// Distinct stamps: each ack must echo the very one we sent.
	base := time.Unix(1_700_000_000, 0)
	var sent []time.Time
	clock := func() time.Time {
		ts := base.Add(time.Duration(len(sent)+1) * 1001 * time.Microsecond)
		sent = append(sent, ts)
		return ts
	}
	mc := dial(t, mon, dialOpts{now: clock})
	mc.handshake()
	const rounds = 1000
	for i := 0; i < rounds; i++ {
		mc.m.SendKeepalive()
		if err := mc.run(func() bool { return len(mc.ev.kaAcks) > i }, 10*time.Second); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	if len(sent) != rounds || len(mc.ev.kaAcks) != rounds {
		t.Fatalf("sent %d keepalives, got %d acks", len(sent), len(mc.ev.kaAcks))
	}
	for i := range sent {
		if !mc.ev.kaAcks[i].Equal(sent[i]) {
			t.Fatalf("ack %d stamp %v, sent %v", i, mc.ev.kaAcks[i], sent[i])
		}
	}
}

// TestInteropGetVersionAndMap: MMonGetVersion("monmap") and MMonGetMap →
// MMonMap, whose monmap must carry the conf's fsid and the monitor, and
// re-encode to the monitor's exact bytes.
func TestInteropGetVersionAndMap(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{})
	mc := dial(t, mon, dialOpts{})
	mc.handshake()
	feat := mc.ev.lastReady().Features

	rep := mc.request((&MMonGetVersion{Handle: 4242, What: "monmap"}).Encode(feat), ofType(msg.MsgMonGetVersionReply))
	v, err := DecodeMMonGetVersionReply(rep)
	if err != nil {
		t.Fatal(err)
	}
	if v.Handle != 4242 || v.Version < 1 || v.OldestVersion < 1 || v.OldestVersion > v.Version {
		t.Errorf("monmap version reply %+v", v)
	}
	t.Logf("MMonGetVersionReply header: prio %d v%d compat %d flags %d; %+v", rep.Priority, rep.Version, rep.CompatVersion, rep.Flags, v)

	mapMsg := mc.request((&MMonGetMap{}).Encode(feat), ofType(msg.MsgMonMap))
	mm, err := DecodeMMonMap(mapMsg)
	if err != nil {
		t.Fatal(err)
	}
	monmap, err := mm.MonMap()
	if err != nil {
		t.Fatalf("decoding the live monmap: %v\n%x", err, mm.MonMapBL)
	}
	if monmap.Fsid != mon.FsidBytes() {
		t.Errorf("monmap fsid %s, conf says %s", testenv.FormatUUID(monmap.Fsid), mon.Fsid)
	}
	if uint64(monmap.Epoch) != v.Version {
		t.Errorf("monmap epoch %d, MMonGetVersionReply said %d", monmap.Epoch, v.Version)
	}
	a, ok := monmap.Mon(mon.Name)
	if !ok || !a.Addrs.Contains(monAddr(mon)) || len(monmap.Ranks) != 1 || monmap.Ranks[0] != mon.Name {
		t.Errorf("monmap mons %+v ranks %v", monmap.Mons, monmap.Ranks)
	}
	if monmap.MinMonRelease != 16 {
		t.Errorf("min_mon_release %d, want 16 (pacific)", monmap.MinMonRelease)
	}
	if re := monmap.Encode(); !bytes.Equal(re, mm.MonMapBL) {
		t.Errorf("re-encoded monmap differs from the monitor's\n got %x\nwant %x", re, mm.MonMapBL)
	}
}

// TestInteropCommand runs monitor commands and parses their JSON output.
func TestInteropCommand(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{})
	mc := dial(t, mon, dialOpts{})
	mc.handshake()
	feat := mc.ev.lastReady().Features
	fsid := mon.FsidBytes()
	command := func(tid uint64, fsid wire.UUID, cmd string) *MMonCommandAck {
		t.Helper()
		rep := mc.request((&MMonCommand{Tid: tid, Fsid: fsid, Cmd: []string{cmd}}).Encode(feat),
			func(m *msg.Message) bool { return m.Type == msg.MsgMonCommandAck && m.Tid == tid })
		ack, err := DecodeMMonCommandAck(rep)
		if err != nil {
			t.Fatal(err)
		}
		if len(ack.Cmd) != 1 || ack.Cmd[0] != cmd {
			t.Errorf("ack echoes %q, sent %q", ack.Cmd, cmd)
		}
		return ack
	}

	ack := command(1, fsid, `{"prefix": "mon versions"}`)
	var versions map[string]int
	if err := json.Unmarshal(ack.Output, &versions); err != nil || ack.R != 0 {
		t.Fatalf("mon versions: r=%d rs=%q output %q: %v", ack.R, ack.Rs, ack.Output, err)
	}
	if len(versions) != 1 {
		t.Errorf("mon versions %v", versions)
	}
	for k, n := range versions {
		if !strings.Contains(k, "16.2.15") || n != 1 {
			t.Errorf("mon versions %q: %d", k, n)
		}
	}

	ack = command(2, fsid, `{"prefix": "status", "format": "json"}`)
	var st struct {
		Fsid        string   `json:"fsid"`
		QuorumNames []string `json:"quorum_names"`
		Health      struct {
			Status string `json:"status"`
		} `json:"health"`
		Monmap struct {
			NumMons int `json:"num_mons"`
		} `json:"monmap"`
	}
	if err := json.Unmarshal(ack.Output, &st); err != nil || ack.R != 0 {
		t.Fatalf("status: r=%d rs=%q output %q: %v", ack.R, ack.Rs, ack.Output, err)
	}
	if st.Fsid != mon.Fsid || len(st.QuorumNames) != 1 || st.QuorumNames[0] != mon.Name || st.Monmap.NumMons != 1 || st.Health.Status == "" {
		t.Errorf("status %+v", st)
	}

	// An unknown command is refused with -EINVAL and a reason.
	ack = command(3, fsid, `{"prefix": "no such command"}`)
	if ack.R != -22 || ack.Rs == "" {
		t.Errorf("unknown command: r=%d rs=%q", ack.R, ack.Rs)
	}
	// A command for another cluster is refused.
	ack = command(4, wire.UUID{1}, `{"prefix": "mon versions"}`)
	if ack.R >= 0 {
		t.Errorf("wrong fsid: r=%d rs=%q", ack.R, ack.Rs)
	}
	t.Logf("wrong fsid: r=%d rs=%q", ack.R, ack.Rs)
}

// TestInteropSubscribeAndPing: a monmap subscription is answered with an
// MMonMap; an MPing with the monitor's JSON pong.
func TestInteropSubscribeAndPing(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{})
	mc := dial(t, mon, dialOpts{})
	mc.handshake()
	feat := mc.ev.lastReady().Features

	sub := &MMonSubscribe{What: map[string]SubscribeItem{"monmap": {Start: 0}, "config": {Start: 0}}, Hostname: "gotest"}
	rep := mc.request(sub.Encode(feat), ofType(msg.MsgMonMap))
	x, err := DecodeMMonMap(rep)
	if err != nil {
		t.Fatal(err)
	}
	if mm, err := x.MonMap(); err != nil || mm.Fsid != mon.FsidBytes() {
		t.Errorf("subscribed monmap %+v, %v", mm, err)
	}
	// A full-featured client gets no MMonSubscribeAck; check the decoder
	// on whatever arrives, if one does.
	if ack := mc.ev.take(ofType(msg.MsgMonSubscribeAck)); ack != nil {
		if _, err := DecodeMMonSubscribeAck(ack); err != nil {
			t.Error(err)
		}
	}

	pong := mc.request((&MPing{}).Encode(feat), ofType(MsgPing))
	p, err := DecodeMPing(pong)
	if err != nil {
		t.Fatal(err)
	}
	js, err := p.PongJSON()
	if err != nil {
		t.Fatalf("pong front %q: %v", p.Payload, err)
	}
	var pj map[string]any
	if err := json.Unmarshal([]byte(js), &pj); err != nil {
		t.Fatalf("pong JSON %q: %v", js, err)
	}
	if pj["health"] == nil {
		t.Errorf("pong without health: %s", js)
	}
}

// TestInteropBadFrames sends a truncated frame, a frame with a bad segment
// crc and one with a bad preamble crc on open sessions: the monitor must
// close each connection, keep running, and still serve a new session.
func TestInteropBadFrames(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{DebugMS: 20})
	frame := func(mc *monConn) []byte {
		m := (&MMonGetVersion{Handle: 1, What: "osdmap"}).Encode(msg.FeaturesAll)
		m.Seq = mc.m.Session().Info().OutSeq + 1
		b, err := wire.AppendMessageFrame(nil, mc.m.Rev(), m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name    string
		wantLog string // what the monitor logs when it drops the connection
		send    func(mc *monConn)
	}{
		{"truncated", "read frame segment failed", func(mc *monConn) {
			b := frame(mc)
			mc.c.Write(b[:len(b)/2])
			mc.c.(interface{ CloseWrite() error }).CloseWrite()
		}},
		{"bad segment crc", "bad segment crc", func(mc *monConn) {
			b := frame(mc)
			b[len(b)-20] ^= 0xff // a front byte: the front crc no longer matches
			mc.c.Write(b)
		}},
		{"bad preamble crc", "bad preamble crc", func(mc *monConn) {
			b := frame(mc)
			b[29] ^= 0x01
			mc.c.Write(b)
		}},
		{"bad preamble", "bad number of segments num_segments=5", func(mc *monConn) {
			b := frame(mc)
			b[1] = 5 // five segments, with a correct crc over it
			binary.LittleEndian.PutUint32(b[28:], wire.CRC32C(wire.PreambleCRCSeed, b[:28]))
			mc.c.Write(b)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mc := dial(t, mon, dialOpts{})
			mc.handshake()
			c.send(mc)
			waitClosed(t, mc.c, 5*time.Second)
			mc.c.Close()
			// The monitor's log names the reason (debug ms 20); the
			// log is written asynchronously, so poll for it.
			conn := fmt.Sprintf("127.0.0.1:0/%d ", mc.cfg.Nonce)
			deadline := time.Now().Add(3 * time.Second)
			for len(mon.LogLines(conn, c.wantLog)) == 0 {
				if time.Now().After(deadline) {
					t.Errorf("the monitor's log has no %q for %s", c.wantLog, conn)
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if !mon.Running() {
				t.Fatal("the monitor died")
			}
			// A new session still works.
			mc2 := dial(t, mon, dialOpts{})
			mc2.handshake()
			rep := mc2.request((&MMonGetVersion{Handle: 5, What: "monmap"}).Encode(msg.FeaturesAll), ofType(msg.MsgMonGetVersionReply))
			if r, err := DecodeMMonGetVersionReply(rep); err != nil || r.Handle != 5 {
				t.Errorf("after %s: %+v %v", c.name, r, err)
			}
			mc2.c.Close()
		})
	}
}

// TestInteropLosslessPeer connects as a mon-type peer, which the monitor
// serves with a lossless session (FACTS.md §8.6), kills the socket around a
// request, and resumes the session with a new Machine over the same
// Session on a new socket: the monitor must answer SESSION_RECONNECT_OK
// (after SESSION_RETRY if it tried to reach us meanwhile), and every
// request must be answered exactly once. Two kills: after the whole
// request is written (the monitor replays its reply), and in the middle of
// the request's frame (we replay the request).
func TestInteropLosslessPeer(t *testing.T) {
	mon := startMon(t, testenv.MonOptions{DebugMS: 20})
	ev := &recorder{}
	opts := dialOpts{
		myType: msg.EntityMon,
		policy: msg.LosslessPeerReuse(0),
		gseq:   newGlobalSeq(),
		events: ev,
		nonce:  rand.Uint32() | 1, // one messenger, hence one address, for every socket
		auth:   protocol.NoneClient{Name: protocol.AuthName{Type: msg.EntityMon, ID: "gotest"}},
	}
	mc := dial(t, mon, opts)
	mc.handshake()
	info := ev.lastReady()
	si := mc.m.Session().Info()
	if info.Lossy || si.ServerCookie == 0 || si.ClientCookie == 0 {
		t.Fatalf("want a lossless session with both cookies: lossy=%v %+v", info.Lossy, si)
	}
	feat := info.Features
	replies := map[uint64]int{}
	count := func() {
		for _, m := range ev.msgs {
			if r, err := DecodeMMonGetVersionReply(m); err == nil {
				replies[r.Handle]++
			}
		}
		ev.msgs = nil
	}
	get := func(h uint64) *msg.Message {
		return (&MMonGetVersion{Handle: h, What: "monmap"}).Encode(feat)
	}
	mc.m.Send(get(1))
	if err := mc.run(func() bool { count(); return replies[1] > 0 }, 10*time.Second); err != nil {
		t.Fatalf("first request: %v", err)
	}

	conn := fmt.Sprintf("127.0.0.1:0/%d ", opts.nonce)
	okLines := 0
	for i, kill := range []struct {
		name  string
		write func(out []byte) []byte // what reaches the socket
	}{
		{"after the request", func(out []byte) []byte { return out }},
		{"mid-frame", func(out []byte) []byte { return out[:len(out)/2] }},
	} {
		h := uint64(2 + i)
		mc.m.Send(get(h))
		out := mc.m.AppendOutput(nil, 0)
		mc.c.Write(kill.write(out))
		mc.c.Close()
		f := mc.m.Fault(errors.New("test killed the socket"))
		if f.Action != protocol.ActionReconnect {
			t.Fatalf("%s: fault on a lossless client session: %v, want reconnect", kill.name, f)
		}
		sess := mc.m.Session()
		if q := sess.Info().Queued; q != 1 {
			t.Errorf("%s: %d messages queued for replay, want the request", kill.name, q)
		}
		o := opts
		o.session = sess
		mc = dial(t, mon, o)
		mc.handshake()
		if ri := ev.lastReady(); !ri.Reconnect || ev.resets != 0 {
			t.Fatalf("%s: the new socket did not resume the session (reconnect=%v, remote resets %d)", kill.name, ri.Reconnect, ev.resets)
		}
		if err := mc.run(func() bool { count(); return replies[h] > 0 }, 10*time.Second); err != nil {
			t.Fatalf("%s: waiting for the reply to request %d: %v", kill.name, h, err)
		}
		// The monitor logs one send_reconnect_ok per resume (written
		// asynchronously: poll).
		deadline := time.Now().Add(3 * time.Second)
		for len(mon.LogLines(conn, "send_reconnect_ok sending")) <= okLines && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := len(mon.LogLines(conn, "send_reconnect_ok sending")); n != okLines+1 {
			t.Errorf("%s: monitor logged %d reconnect_ok, want %d", kill.name, n, okLines+1)
		}
		okLines++
	}
	// A last request flushes out any duplicate reply ahead of its own.
	mc.m.Send(get(9))
	if err := mc.run(func() bool { count(); return replies[9] > 0 }, 10*time.Second); err != nil {
		t.Fatalf("last request: %v", err)
	}
	if want := map[uint64]int{1: 1, 2: 1, 3: 1, 9: 1}; !reflect.DeepEqual(replies, want) {
		t.Errorf("replies per request %v, want one each", replies)
	}
	si = mc.m.Session().Info()
	if si.InSeq != 4 || si.OutSeq != 4 {
		t.Errorf("in_seq %d out_seq %d, want 4 and 4", si.InSeq, si.OutSeq)
	}
	// What the monitor saw of the resumes.
	for _, l := range mon.LogLines(conn, "reconnect") {
		if i := strings.Index(l, ")."); i >= 0 {
			t.Log(l[i+2:])
		}
	}
	mc.c.Close()
}
