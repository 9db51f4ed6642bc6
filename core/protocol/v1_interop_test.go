package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
	"github.com/msgr-dev/msgr/internal/testenv"
)

// Interop of the V1 client machine with a real Ceph 16.2.15 monitor bound
// to msgr1 (testenv, "ms bind msgr1 = true"). The messages are built by
// hand from V1-FACTS §6.1 and §10 (core/protocol cannot import core/ceph).

// v1sock drives one V1 machine over a blocking socket, on the test's
// goroutine.
type v1sock struct {
	t   testing.TB
	nc  net.Conn
	m   *V1
	ev  *recorder
	in  []byte
	rd  []byte
	out []byte
}

func dialV1(t testing.TB, addr netip.AddrPort, tweak func(*Config)) *v1sock {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	var g gseq
	ev := &recorder{}
	cfg := Config{
		MyType: msg.EntityClient, MyGID: -1, Nonce: rand.Uint32() | 1,
		PeerType: msg.EntityMon, TargetAddr: msg.Addr{Type: msg.AddrLegacy, AddrPort: addr},
		Policy: msg.LossyClient(0), GlobalSeq: g.next, Events: ev,
		Release: func(*msg.Message) {},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	m, err := NewClientV1(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &v1sock{t: t, nc: nc, m: m, ev: ev, rd: make([]byte, 64<<10)}
}

// pump writes what the machine has and feeds what arrives until done
// holds, the machine faults, the socket fails or the timeout passes.
func (d *v1sock) pump(done func() bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		d.out = d.m.AppendOutput(d.out[:0], 0)
		if len(d.out) > 0 {
			d.nc.SetWriteDeadline(deadline)
			if _, err := d.nc.Write(d.out); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		if done() {
			return nil
		}
		d.nc.SetReadDeadline(deadline)
		n, err := d.nc.Read(d.rd)
		if n > 0 {
			d.in = append(d.in, d.rd[:n]...)
			used, ferr := d.m.Feed(d.in)
			d.in = append(d.in[:0], d.in[used:]...)
			if ferr != nil {
				return ferr
			}
		}
		if err != nil {
			return err
		}
	}
}

// await sends m (if not nil) and waits for a message of type typ.
func (d *v1sock) await(m *msg.Message, typ uint16) *msg.Message {
	d.t.Helper()
	if m != nil {
		d.m.Send(m)
	}
	var got *msg.Message
	err := d.pump(func() bool {
		for _, r := range d.ev.msgs {
			if r.Type == typ {
				got = r
				return true
			}
		}
		return false
	}, 10*time.Second)
	if err != nil {
		d.t.Fatalf("waiting for message type %d: %v (got types %v)", typ, err, msgTypes(d.ev.msgs))
	}
	return got
}

func msgTypes(ms []*msg.Message) []uint16 {
	var ts []uint16
	for _, m := range ms {
		ts = append(ts, m.Type)
	}
	return ts
}

// mAuth is MAuth (type 17, v1) for client.admin with auth none (§6.1):
// paxos prefix, protocol 0, auth_payload {struct_v 1, methods [1], name,
// global_id 0}, monmap_epoch 0.
func mAuth() *msg.Message {
	e := wire.NewEncoder(nil)
	e.U64(0) // paxos version
	e.U16(0xffff)
	e.U64(0)
	e.U32(0) // protocol: negotiate
	p := wire.NewEncoder(nil)
	p.U8(1)
	p.U32s([]uint32{AuthMethodNone})
	p.AuthEntityName(msg.EntityClient, "admin")
	p.U64(0)
	e.Blob(p.Bytes())
	e.U32(0) // monmap_epoch
	m := msg.New(17, e.Bytes())
	m.Priority = 127
	return m
}

// mMonGetVersion is MMonGetVersion (type 19, v1): u64 handle, string what.
func mMonGetVersion(handle uint64, what string) *msg.Message {
	e := wire.NewEncoder(nil)
	e.U64(handle)
	e.String(what)
	m := msg.New(msg.MsgMonGetVersion, e.Bytes())
	m.Priority = 127
	return m
}

func TestV1InteropMon(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ceph-mon")
	}
	snap := leakcheck.Take()
	t.Cleanup(func() { snap.Check(t) })
	mon := testenv.StartMon(t, testenv.MonOptions{Msgr1: true})
	if !mon.AddrV1.IsValid() {
		t.Fatal("the monitor has no v1 address")
	}
	t.Logf("mon at %s ready in %v", mon.MonHost(), mon.StartupTime.Round(time.Millisecond))

	t.Run("client", func(t *testing.T) {
		stamp := time.Unix(1_700_000_000, 123456789)
		d := dialV1(t, mon.AddrV1, func(c *Config) { c.Now = func() time.Time { return stamp } })
		if err := d.pump(d.ev.isReady, 10*time.Second); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		info := d.ev.lastReady()
		if !info.Lossy || info.Features != msg.FeaturesAll || info.Reconnect {
			t.Errorf("ready %+v: want lossy, all features", info)
		}
		if len(d.ev.learned) != 1 || d.ev.learned[0].AddrPort.Addr().String() != "127.0.0.1" || d.ev.learned[0].Port() != 0 {
			t.Errorf("learned %v", d.ev.learned)
		}
		if si := d.m.Session().Info(); si.ConnectSeq != 1 || si.PeerGlobalSeq == 0 {
			t.Errorf("session %+v", si)
		}
		// KEEPALIVE2 is echoed.
		d.m.SendKeepalive()
		if err := d.pump(func() bool { return len(d.ev.kaAcks) > 0 }, 10*time.Second); err != nil {
			t.Fatalf("keepalive: %v", err)
		}
		if got := d.ev.kaAcks[0]; !got.Equal(stamp) {
			t.Errorf("keepalive ack %v, sent %v", got, stamp)
		}
		// MAuth → MAuthReply: protocol none, result 0, a new global id.
		rep := d.await(mAuth(), 18)
		dd := wire.NewDecoder(rep.Front)
		proto, result, gid := dd.U32(), dd.I32(), dd.U64()
		if err := dd.Err(); err != nil || proto != AuthMethodNone || result != 0 || gid == 0 {
			t.Fatalf("MAuthReply protocol %d result %d global_id %d: %v", proto, result, gid, err)
		}
		if rep.Src != (msg.EntityName{Type: msg.EntityMon, Num: 0}) || rep.Seq == 0 {
			t.Errorf("reply from %v seq %d", rep.Src, rep.Seq)
		}
		t.Logf("global_id %d; then got types %v", gid, msgTypes(d.ev.msgs))
		// MMonGetVersion → MMonGetVersionReply with our handle.
		vr := d.await(mMonGetVersion(4242, "osdmap"), msg.MsgMonGetVersionReply)
		if h := binary.LittleEndian.Uint64(vr.Front); h != 4242 || len(vr.Front) < 16 {
			t.Errorf("MMonGetVersionReply handle %d (%d bytes)", h, len(vr.Front))
		}
		// Every message arrived once, in order.
		for i, m := range d.ev.msgs {
			if m.Seq != uint64(i+1) {
				t.Fatalf("message %d has seq %d", i, m.Seq)
			}
		}
		// A lossy session with the mon: it acknowledges nothing.
		if d.ev.acked != 0 {
			t.Errorf("acked %d", d.ev.acked)
		}
	})

	t.Run("mon-peer", func(t *testing.T) {
		// A MON-type peer sends the none authorizer and gets a lossless
		// session (V1-FACTS §6.2).
		d := dialV1(t, mon.AddrV1, func(c *Config) {
			c.MyType, c.MyGID = msg.EntityMon, 1
			c.Policy = msg.LosslessPeerReuse(0)
			c.AuthClient = NoneClient{Name: AuthName{Type: msg.EntityMon, ID: "b"}}
		})
		if err := d.pump(d.ev.isReady, 10*time.Second); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if info := d.ev.lastReady(); info.Lossy {
			t.Errorf("mon peer session is lossy: %+v", info)
		}
		c, _ := wire.DecodeV1Connect(d.sentConnect())
		if c.ProtocolVersion != 13 || c.AuthorizerProtocol != AuthMethodNone || c.AuthorizerLen == 0 {
			t.Errorf("connect %+v", c)
		}
		// Lossless: the mon acknowledges what it receives, and answers.
		// Wait for both and send our ACK of the answer, so that the mon
		// has nothing left to send (else it would reconnect to us itself,
		// which a peer without a listener cannot take).
		d.await(mMonGetVersion(1, "osdmap"), msg.MsgMonGetVersionReply)
		if err := d.pump(func() bool { return d.ev.acked == 1 && !d.m.Pending() }, 10*time.Second); err != nil {
			t.Fatalf("waiting for ACK 1: %v", err)
		}
		if si := d.m.Session().Info(); si.Unacked != 0 || si.OutSeq != 1 || si.InSeq != 1 {
			t.Fatalf("session %+v", si)
		}
		// Drop the socket and resume the session on a new one: the mon
		// answers RETRY_SESSION (we kept connect_seq in standby), then
		// SEQ with its in_seq (1), so our next message is seq 2.
		d.nc.Close()
		f := d.m.Fault(io.EOF)
		if f.Action != ActionStandby {
			t.Fatalf("fault %v", f)
		}
		sess, cfg := d.m.Session(), d.m.cfg
		sess.Enqueue(mMonGetVersion(2, "osdmap"))
		nc, err := net.DialTimeout("tcp", mon.AddrV1.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		m2, err := NewClientV1(cfg, sess)
		if err != nil {
			t.Fatal(err)
		}
		d2 := &v1sock{t: t, nc: nc, m: m2, ev: d.ev, rd: make([]byte, 64<<10)}
		if err := d2.pump(func() bool { return d.ev.acked == 2 && len(d.ev.msgs) == 2 }, 10*time.Second); err != nil {
			t.Fatalf("resumed session: %v", err)
		}
		ri := d.ev.lastReady()
		if len(d.ev.ready) != 2 || !ri.Reconnect || ri.Lossy {
			t.Fatalf("resumed ready %+v", ri)
		}
		// connect_seq 1 → RETRY_SESSION(2) → (the mon swaps sockets,
		// RETRY_GLOBAL) → SEQ with connect_seq 3.
		if si := sess.Info(); si.ConnectSeq != 3 || si.OutSeq != 2 || si.InSeq != 2 || si.Unacked != 0 {
			t.Fatalf("resumed session %+v", si)
		}
		if d.ev.msgs[1].Seq != 2 || d.ev.msgs[1].Type != msg.MsgMonGetVersionReply {
			t.Fatalf("second reply %+v", d.ev.msgs[1].Header)
		}
	})

	t.Run("mon-peer-without-authorizer", func(t *testing.T) {
		d := dialV1(t, mon.AddrV1, func(c *Config) {
			c.MyType, c.MyGID = msg.EntityMon, 1
			c.Policy = msg.LosslessPeerReuse(0)
			c.AuthClient = emptyAuth{}
		})
		err := d.pump(d.ev.isReady, 10*time.Second)
		if !errors.Is(err, ErrAuthRefused) || !strings.Contains(err.Error(), "BADAUTHORIZER") {
			t.Fatalf("got %v, want BADAUTHORIZER", err)
		}
	})

	t.Run("wrong-target", func(t *testing.T) {
		// The mon claims its own address; dialling it under another
		// nonce must fail our check (as the CLI refuses).
		d := dialV1(t, mon.AddrV1, func(c *Config) { c.TargetAddr.Nonce = 5 })
		if err := d.pump(d.ev.isReady, 10*time.Second); !errors.Is(err, ErrPeerAddr) {
			t.Fatalf("got %v, want ErrPeerAddr", err)
		}
	})

	t.Run("bad-header-crc", func(t *testing.T) {
		// The mon closes the connection on a corrupt header (§7.2).
		d := dialV1(t, mon.AddrV1, nil)
		if err := d.pump(d.ev.isReady, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		d.m.Send(mAuth())
		b := d.m.AppendOutput(nil, 0)
		b[10] ^= 0x40 // inside the header (tid)
		if _, err := d.nc.Write(b); err != nil {
			t.Fatal(err)
		}
		err := d.pump(func() bool { return false }, 10*time.Second)
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the monitor kept the connection: %v", err)
		}
		if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Logf("connection ended with %v", err)
		}
		// It logs why (at level 0, so always).
		deadline := time.Now().Add(5 * time.Second)
		for len(mon.LogLines("handle_message_header got bad header crc")) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the mon log does not mention the bad header crc")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// sentConnect returns the first connect the machine wrote, from the
// handshake output kept by a fresh machine with the same config (the
// socket driver does not record its writes).
func (d *v1sock) sentConnect() []byte {
	cfg := d.m.cfg
	m, _ := NewClientV1(cfg, nil)
	b := m.AppendOutput(nil, 0)
	hello := wire.AppendV1Banner(nil)
	hello = wire.AppendV1Addr(hello, cfg.TargetAddr)
	hello = wire.AppendV1Addr(hello, msg.Addr{})
	m.Feed(hello)
	b = m.AppendOutput(b, 0)
	return b[wire.V1ClientHelloLen:]
}

// emptyAuth is an AuthClient with no authorizer to offer.
type emptyAuth struct{ NoneClient }

func (emptyAuth) Request(msg.EntityType) (AuthRequest, error) {
	return AuthRequest{Method: AuthMethodNone}, nil
}
