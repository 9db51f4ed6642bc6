package protocol

import (
	"errors"

	"github.com/msgr-dev/msgr/core/msg"
)

// fakeConn is a messenger connection as the registry fake sees it: a
// session that outlives machines.
type fakeConn struct {
	peer      msg.AddrVec // the peer's addresses (dialled or identified)
	sess      *Session
	m         *Machine // current machine, nil in standby
	ev        *recorder
	replacing bool
	closed    bool
	kicked    int
}

// Info reports the connection as Ceph's existing-connection checks see it.
func (c *fakeConn) Info() ExistingInfo {
	st := ExistingConnecting
	switch {
	case c.closed:
		st = ExistingClosed
	case c.replacing && c.m != nil && c.m.Err() == nil && c.m.State() != StateReady:
		st = ExistingReplacing
	case c.m == nil || c.m.Err() != nil:
		st = ExistingStandby
	case c.m.State() == StateReady:
		st = ExistingReady
	}
	si := c.sess.Info()
	peer := si.PeerAddrs
	if len(peer) == 0 {
		peer = c.peer
	}
	return ExistingInfo{
		State:         st,
		Policy:        si.Policy,
		PeerAddrs:     peer,
		ClientCookie:  si.ClientCookie,
		ServerCookie:  si.ServerCookie,
		PeerGlobalSeq: si.PeerGlobalSeq,
		ConnectSeq:    si.ConnectSeq,
	}
}

// node is a minimal messenger: connections by peer address, a global_seq
// counter, and the Registry the server machines consult.
type node struct {
	addr    msg.Addr
	g       gseq
	conns   map[msg.Addr]*fakeConn
	refuse  bool // Accept fails
	reused  int
	markeds int
}

func newNode(addr msg.Addr) *node {
	return &node{addr: addr, conns: map[msg.Addr]*fakeConn{}}
}

func (n *node) Lookup(peer msg.AddrVec) Existing {
	for _, a := range peer {
		if c, ok := n.conns[a]; ok {
			return c
		}
	}
	return nil
}

func (n *node) Reuse(ex Existing, p Protocol) (*Session, Events, error) {
	m := p.(*Machine)
	c := ex.(*fakeConn)
	if c.m != nil {
		c.m.Close() // detach the old socket
	}
	c.m = m // the owner moves m into c
	c.replacing = true
	n.reused++
	return c.sess, c.ev, nil
}

func (n *node) MarkDown(ex Existing) {
	c := ex.(*fakeConn)
	if c.m != nil {
		c.m.Close()
	}
	c.closed = true
	c.sess.Discard()
	n.markeds++
}

func (n *node) Keepalive(ex Existing) {
	c := ex.(*fakeConn)
	c.kicked++
	c.sess.SendKeepalive()
}

func (n *node) Accept(p Protocol) error {
	m := p.(*Machine)
	if n.refuse {
		return errors.New("refused")
	}
	peer := m.Session().Info().PeerAddrs
	c := &fakeConn{peer: peer, sess: m.Session(), m: m, ev: m.ev.(*recorder)}
	for _, a := range peer {
		n.conns[a] = c
	}
	return nil
}
