package protocol

import (
	"errors"
	"io"
	"testing"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

const waitTag = wire.TagWait

// peerNode is one side of a connection race: a node with a registry, an
// outgoing connection being dialled, and the machines of both sockets.
type peerNode struct {
	node *node
	rec  *recorder // events of the connection to the other node
	out  *fakeConn // our connection to the other node
}

func newPeerNode(t *testing.T, addr msg.Addr) *peerNode {
	return &peerNode{node: newNode(addr), rec: &recorder{}}
}

func (pn *peerNode) clientConfig(peer msg.Addr) Config {
	return Config{
		MyType: msg.EntityOSD, MyGID: int64(peer.Port() % 10), MyAddrs: msg.AddrVec{pn.node.addr},
		PeerType: msg.EntityOSD, TargetAddr: peer, Policy: msg.LosslessPeer(0),
		GlobalSeq: pn.node.g.next, Events: pn.rec,
	}
}

func (pn *peerNode) serverConfig(sock msg.Addr) Config {
	return Config{
		MyType: msg.EntityOSD, MyGID: 9, MyAddrs: msg.AddrVec{pn.node.addr}, PeerSocketAddr: sock,
		PolicyFor: func(msg.EntityType) msg.Policy { return msg.LosslessPeer(0) },
		GlobalSeq: pn.node.g.next, Events: &recorder{}, Registry: pn.node,
	}
}

// TestConnectRace: two peers connect to each other at the same time. As
// in Ceph, the connection initiated by the peer with the lower address
// wins: the other peer's connection object takes over the winning socket
// (its own outgoing socket is dropped, or answered WAIT). Every message
// queued on either side before the race is delivered exactly once.
func TestConnectRace(t *testing.T) {
	lo := msg.MustParseAddr("v2:127.0.0.1:6800/7")
	hi := msg.MustParseAddr("v2:127.0.0.1:6801/7")
	for _, tc := range []struct {
		name       string
		aAddr      msg.Addr
		bAddr      msg.Addr
		bFirst     bool // B's CLIENT_IDENT reaches A first
		aWins      bool // the socket A dialled survives
		expectWait bool
	}{
		{"a-low/a-ident-first", lo, hi, false, true, false},
		{"a-low/b-ident-first", lo, hi, true, true, true},
		{"a-high/a-ident-first", hi, lo, false, false, true},
		{"a-high/b-ident-first", hi, lo, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			A, B := newPeerNode(t, tc.aAddr), newPeerNode(t, tc.bAddr)
			sockA := msg.MustParseAddr("v2:127.0.0.1:40001/0") // A's socket as B sees it
			sockB := msg.MustParseAddr("v2:127.0.0.1:40002/0")
			// Each node dials the other and queues messages for it.
			dial := func(pn *peerNode, peer msg.Addr) *end {
				e := mustClient(t, pn.clientConfig(peer), nil)
				pn.out = &fakeConn{peer: msg.AddrVec{peer}, sess: e.m.Session(), m: e.m, ev: pn.rec}
				pn.node.conns[peer] = pn.out
				for i := 0; i < 5; i++ {
					e.m.Send(numbered(i))
				}
				return e
			}
			ac, bc := dial(A, tc.bAddr), dial(B, tc.aAddr)
			bs := mustServer(t, B.serverConfig(sockA)) // accepts A's socket
			as := mustServer(t, A.serverConfig(sockB)) // accepts B's socket
			pAB, pBA := newPipe(ac, bs), newPipe(bc, as)
			first, second := pAB, pBA
			if tc.bFirst {
				first, second = pBA, pAB
			}
			for i := 0; i < 100; i++ {
				m1, m2 := first.step(), second.step()
				if !m1 && !m2 {
					break
				}
			}
			// The losing socket is torn down by its owners.
			winner, loser := pAB, pBA
			wNode, lNode := B, A // the node accepting the winning socket
			if !tc.aWins {
				winner, loser = pBA, pAB
				wNode, lNode = A, B
			}
			if winner.a.m.State() != StateReady || winner.b.m.State() != StateReady {
				t.Fatalf("winning socket: %v (%v) / %v (%v)", winner.a.m.State(), winner.a.err, winner.b.m.State(), winner.b.err)
			}
			// The losing socket's client got WAIT, or was detached when
			// its connection took the winning socket over.
			wantReason := ErrClosed
			if tc.expectWait {
				wantReason = ErrWait
			}
			if lf := loser.a.m.Err(); lf == nil || !errors.Is(lf, wantReason) {
				t.Fatalf("losing socket's client: %v, want %v", lf, wantReason)
			}
			if f := loser.b.m.Fault(io.EOF); f.Action != ActionClose {
				t.Fatalf("losing socket's server: %v", f)
			}
			// The accepting node's own outgoing connection took over the
			// winning socket.
			ri := wNode.rec.lastReady()
			if ri.Replaced != wNode.out || wNode.out.m != winner.b.m {
				t.Fatalf("accepting node: replaced %v", ri.Replaced)
			}
			if sawWait := sentTag(t, loser.b, waitTag); sawWait != tc.expectWait {
				t.Fatalf("WAIT sent: %v, want %v", sawWait, tc.expectWait)
			}
			if tc.expectWait && lNode.out.kicked != 1 {
				t.Fatalf("the winning connection was not kicked")
			}
			// Both queues drain over the winning socket.
			winner.run(t)
			checkInOrder(t, "A", A.rec.msgs, seqRange(0, 5))
			checkInOrder(t, "B", B.rec.msgs, seqRange(0, 5))
			if tc.expectWait && len(wNode.rec.kas) != 1 {
				t.Fatalf("keepalive after the kick: %d", len(wNode.rec.kas))
			}
		})
	}
}
