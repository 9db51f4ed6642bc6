package ceph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/messenger"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/protocol"
	"github.com/msgr-dev/msgr/core/wire"
)

// MonServerOptions configure NewMonServer.
type MonServerOptions struct {
	// Forward is the address of a real monitor: every message a client
	// sends is relayed to it over a connection of its own, and every
	// answer relayed back, with monmaps rewritten to list this server as
	// the only monitor. Empty: answer from canned data.
	Forward string
	// Fsid of the canned cluster (default: a fixed test fsid).
	Fsid wire.UUID
	// Messenger options of the server (and of the upstream connections).
	Messenger messenger.Options
	// Logf logs relay events (nil: log.Printf).
	Logf func(format string, args ...any)
}

// MonServerStats are the server's counters.
type MonServerStats struct {
	Sessions  uint64 // client connections that sent a message
	Relayed   uint64 // messages relayed client → monitor
	Returned  uint64 // messages relayed monitor → client
	Answered  uint64 // messages answered from canned data
	Upstreams int    // open upstream connections
}

// MonServer is a stand-in monitor that a real Ceph client (the `ceph`
// CLI) can talk to: it answers MMonGetMap / MMonSubscribe / MMonCommand
// itself, or relays to a real monitor.
type MonServer struct {
	dispatch.Base
	ms   *messenger.Messenger
	opts MonServerOptions
	fwd  msg.AddrVec
	// fixedAddrs, if set, are the addresses to advertise (RawServer).
	fixedAddrs msg.AddrVec

	mu      sync.Mutex
	wg      sync.WaitGroup    // relay shutdowns in flight
	relays  map[uint64]*relay // by client connection id
	closed  bool
	nextGID atomic.Uint64

	sessions, relayed, returned, answered atomic.Uint64
}

// relay is one client connection's upstream: a messenger of its own, so
// that each client gets a separate monitor session.
type relay struct {
	dispatch.Base
	s    *MonServer
	down dispatch.Conn
	ms   *messenger.Messenger
	up   dispatch.Conn
	// authReply, when set, is an MAuthReply held back until the upstream
	// monmap arrives: a monitor sends the map right behind MAuthReply, and
	// a msgr1 client needs it (the fsid) before its first command.
	authReply atomic.Pointer[msg.Message]
}

// DefaultFsid is the canned cluster's fsid.
var DefaultFsid = wire.UUID{0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55}

// NewMonServer binds bind ("127.0.0.1:3300", port 0 picks one) and starts
// serving.
func NewMonServer(bind string, opts MonServerOptions) (*MonServer, error) {
	av, err := parseAddr(bind)
	if err != nil {
		return nil, err
	}
	if opts.Logf == nil {
		opts.Logf = log.Printf
	}
	if opts.Fsid == (wire.UUID{}) {
		opts.Fsid = DefaultFsid
	}
	s := &MonServer{opts: opts, relays: map[uint64]*relay{}}
	if opts.Forward != "" {
		if s.fwd, err = ParseMonAddr(opts.Forward); err != nil {
			return nil, fmt.Errorf("--forward: %w", err)
		}
	}
	s.nextGID.Store(14100)
	mo := opts.Messenger
	mo.AuthServer = protocol.NoneServer{NextGlobalID: func() uint64 { return s.nextGID.Add(1) }}
	// A monitor's name is mon.<rank> and its nonce 0 (monmap addresses
	// carry nonce 0).
	ms, err := messenger.New(msg.EntityName{Type: msg.EntityMon, Num: 0}, 0, mo)
	if err != nil {
		return nil, err
	}
	ms.SetDefaultPolicy(msg.StatelessServer(0))
	ms.AddDispatcherTail(s)
	if err := ms.BindAddrs(av); err != nil {
		ms.Shutdown()
		return nil, err
	}
	if err := ms.Start(); err != nil {
		ms.Shutdown()
		return nil, err
	}
	s.ms = ms
	return s, nil
}

// Addrs returns the server's bound address.
func (s *MonServer) Addrs() msg.AddrVec {
	if s.fixedAddrs != nil {
		return s.fixedAddrs
	}
	return s.ms.Addrs()
}

// Messenger returns the server's messenger.
func (s *MonServer) Messenger() *messenger.Messenger { return s.ms }

// Stats returns the server's counters.
func (s *MonServer) Stats() MonServerStats {
	s.mu.Lock()
	n := len(s.relays)
	s.mu.Unlock()
	return MonServerStats{Sessions: s.sessions.Load(), Relayed: s.relayed.Load(), Returned: s.returned.Load(),
		Answered: s.answered.Load(), Upstreams: n}
}

// Close stops the server and its upstream connections.
func (s *MonServer) Close() error {
	s.mu.Lock()
	s.closed = true
	rs := s.relays
	s.relays = map[uint64]*relay{}
	s.mu.Unlock()
	for _, r := range rs {
		r.ms.Shutdown()
		r.ms.Wait()
	}
	err := s.ms.Shutdown()
	s.ms.Wait()
	s.wg.Wait()
	return err
}

// cloneMsg copies m's header fields that describe the payload, and the
// payload, into a new message (the messenger sets seq/ack on sending).
func cloneMsg(m *msg.Message) *msg.Message {
	c := msg.New(m.Type, bytes.Clone(m.Front))
	c.Middle, c.Data = bytes.Clone(m.Middle), bytes.Clone(m.Data)
	c.Tid, c.Priority, c.Version, c.CompatVersion = m.Tid, m.Priority, m.Version, m.CompatVersion
	c.Flags, c.DataOff = m.Flags, m.DataOff
	return c
}

// Dispatch answers or relays one client message.
func (s *MonServer) Dispatch(c dispatch.Conn, m *msg.Message) bool {
	if m.Type == msg.MsgAuth {
		s.answerAuth(c, m)
		return true
	}
	if s.fwd != nil {
		r, err := s.relayFor(c)
		if err != nil {
			s.opts.Logf("msgr serve: relay for %v: %v", c.PeerAddr(), err)
			m.Release()
			c.MarkDown()
			return true
		}
		cm := cloneMsg(m)
		m.Release()
		s.relayed.Add(1)
		_ = r.up.Send(cm)
		return true
	}
	s.answer(c, m)
	return true
}

func (s *MonServer) relayFor(c dispatch.Conn) (*relay, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrMonClientClosed
	}
	if r := s.relays[c.ID()]; r != nil {
		s.mu.Unlock()
		return r, nil
	}
	s.mu.Unlock()
	mo := s.opts.Messenger
	mo.OpThreads = 1
	mo.AuthServer = nil
	ms, err := messenger.New(msg.EntityName{Type: msg.EntityClient, Num: msg.NumNew}, randNonce(), mo)
	if err != nil {
		return nil, err
	}
	r := &relay{s: s, down: c, ms: ms}
	ms.SetPolicy(msg.EntityMon, msg.LossyClient(0))
	ms.AddDispatcherTail(r)
	if err := ms.Start(); err != nil {
		ms.Shutdown()
		return nil, err
	}
	up, err := ms.ConnectTo(msg.EntityMon, s.fwd)
	if err != nil {
		ms.Shutdown()
		return nil, err
	}
	r.up = up
	s.mu.Lock()
	s.relays[c.ID()] = r
	s.mu.Unlock()
	s.sessions.Add(1)
	return r, nil
}

// HandleReset: a client left; drop its upstream.
func (s *MonServer) HandleReset(c dispatch.Conn) bool {
	s.dropRelay(c.ID())
	return true
}

// dropRelay shuts down the upstream of client connection id, if any.
func (s *MonServer) dropRelay(id uint64) {
	s.mu.Lock()
	r := s.relays[id]
	delete(s.relays, id)
	if r != nil {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if r != nil {
		go func() { // not from a dispatch thread
			defer s.wg.Done()
			r.ms.Shutdown()
			r.ms.Wait()
		}()
	}
}

// Dispatch relays a monitor message back to the client, rewriting monmaps.
func (r *relay) Dispatch(_ dispatch.Conn, m *msg.Message) bool {
	var out *msg.Message
	if m.Type == msg.MsgMonMap {
		out = r.s.rewriteMonMap(m)
		if a := r.authReply.Swap(nil); a != nil {
			_ = r.down.Send(a)
		}
	}
	if out == nil {
		out = cloneMsg(m)
	}
	m.Release()
	r.s.returned.Add(1)
	_ = r.down.Send(out)
	return true
}

// HandleReset: the monitor dropped us; drop the client (it reconnects).
func (r *relay) HandleReset(dispatch.Conn) bool {
	r.down.MarkDown()
	r.s.dropRelay(r.down.ID())
	return true
}

// HandleRefused: the monitor is not there.
func (r *relay) HandleRefused(dispatch.Conn) bool {
	r.s.opts.Logf("msgr serve: %v: the monitor at %v refused the connection", ErrUnreachable, r.s.fwd)
	r.down.MarkDown()
	r.s.dropRelay(r.down.ID())
	return true
}

// rewriteMonMap returns m's monmap with this server as its only monitor
// (rank 0, the first monitor's name), or nil if m does not decode.
func (s *MonServer) rewriteMonMap(m *msg.Message) *msg.Message {
	x, err := DecodeMMonMap(m)
	if err != nil {
		return nil
	}
	mm, err := x.MonMap()
	if err != nil || len(mm.Ranks) == 0 {
		return nil
	}
	first, ok := mm.Mon(mm.Ranks[0])
	if !ok {
		return nil
	}
	first.Addrs = s.Addrs()
	mm.Mons = []MonInfo{first}
	mm.Ranks = []string{first.Name}
	out := NewMMonMap(mm).Encode(msg.FeaturesAll)
	out.Priority = m.Priority
	return out
}

// cannedMonMap is the canned cluster's monmap: this server as mon "a".
func (s *MonServer) cannedMonMap() *MonMap {
	now := wire.UTime{Sec: uint32(time.Now().Unix())}
	return &MonMap{
		Fsid: s.opts.Fsid, Epoch: 1, LastChanged: now, Created: now,
		Mons:          []MonInfo{{Name: "a", Addrs: s.Addrs(), Weight: 0, CrushLoc: map[string]string{}}},
		Ranks:         []string{"a"},
		MinMonRelease: 16, ElectionStrategy: 1,
	}
}

// answerAuth accepts MAuth with auth none, the way msgr1 clients
// authenticate (msgr2 ones did in AUTH frames): MAuthReply with a new
// global id, then, as a monitor does, the monmap (canned mode only: a
// relay's client subscribes and gets the real one).
func (s *MonServer) answerAuth(c dispatch.Conn, m *msg.Message) {
	defer m.Release()
	a, err := DecodeMAuth(m)
	if err != nil {
		s.opts.Logf("msgr serve: %v from %v", err, c.PeerAddr())
		c.MarkDown()
		return
	}
	r := &MAuthReply{Protocol: AuthNone, GlobalID: a.GlobalID}
	if a.Protocol == AuthUnknown && !slices.Contains(a.Methods, AuthNone) {
		r.Result, r.Message = -95, "msgr serve speaks auth none only" // EOPNOTSUPP
	} else if r.GlobalID == 0 {
		r.GlobalID = s.nextGID.Add(1)
	}
	s.answered.Add(1)
	if r.Result == 0 && s.fwd != nil {
		rl, err := s.relayFor(c)
		if err != nil {
			s.opts.Logf("msgr serve: relay for %v: %v", c.PeerAddr(), err)
			c.MarkDown()
			return
		}
		rl.authReply.Store(r.Encode(c.Features()))
		s.relayed.Add(1)
		_ = rl.up.Send((&MMonGetMap{}).Encode(c.Features()))
		return
	}
	_ = c.Send(r.Encode(c.Features()))
	if r.Result == 0 {
		s.answered.Add(1)
		_ = c.Send(NewMMonMap(s.cannedMonMap()).Encode(c.Features()))
	}
}

// answer replies to m from canned data.
func (s *MonServer) answer(c dispatch.Conn, m *msg.Message) {
	defer m.Release()
	send := func(r *msg.Message) {
		s.answered.Add(1)
		_ = c.Send(r)
	}
	switch m.Type {
	case msg.MsgMonGetMap:
		send(NewMMonMap(s.cannedMonMap()).Encode(c.Features()))
	case msg.MsgMonSubscribe:
		sub, err := DecodeMMonSubscribe(m)
		if err != nil {
			c.MarkDown()
			return
		}
		if _, ok := sub.What["monmap"]; ok {
			send(NewMMonMap(s.cannedMonMap()).Encode(c.Features()))
		}
		if _, ok := sub.What["config"]; ok {
			cfg := msg.New(msg.MsgConfig, []byte{0, 0, 0, 0}) // MConfig: empty map
			send(cfg)
		}
	case msg.MsgMonGetVersion:
		q, err := DecodeMMonGetVersion(m)
		if err != nil {
			c.MarkDown()
			return
		}
		send((&MMonGetVersionReply{Handle: q.Handle, Version: 1, OldestVersion: 1}).Encode(c.Features()))
	case msg.MsgMonCommand:
		q, err := DecodeMMonCommand(m)
		if err != nil {
			c.MarkDown()
			return
		}
		r, rs, out := s.cannedCommand(q.Cmd)
		send((&MMonCommandAck{Tid: q.Tid, R: r, Rs: rs, Cmd: q.Cmd, Output: out}).Encode(c.Features()))
	}
}

// cannedCommand answers the few commands the canned server knows.
func (s *MonServer) cannedCommand(cmd []string) (int32, string, []byte) {
	var c struct {
		Prefix string `json:"prefix"`
		Format string `json:"format"`
	}
	if len(cmd) == 0 || json.Unmarshal([]byte(cmd[0]), &c) != nil {
		return -22, "msgr serve: command is not JSON", nil
	}
	fsid := formatUUID(s.opts.Fsid)
	switch c.Prefix {
	case "get_command_descriptions":
		// Just enough for the CLI to accept `status` and `mon versions`.
		d := map[string]any{
			"cmd000": map[string]any{"sig": []string{"status"}, "help": "show cluster status", "module": "mon", "perm": "r", "flags": 0},
			"cmd001": map[string]any{"sig": []string{"mon", "versions"}, "help": "versions", "module": "mon", "perm": "r", "flags": 0},
		}
		b, _ := json.Marshal(d)
		return 0, "", b
	case "status":
		if c.Format == "json" || c.Format == "json-pretty" {
			b, _ := json.Marshal(map[string]any{"fsid": fsid, "health": map[string]any{"status": "HEALTH_OK"},
				"quorum_names": []string{"a"}, "monmap": map[string]any{"num_mons": 1}})
			return 0, "", b
		}
		return 0, "", []byte(fmt.Sprintf("  cluster:\n    id:     %s\n    health: HEALTH_OK\n\n  services:\n    mon: 1 daemons (msgr serve, canned answers)\n", fsid))
	case "mon versions":
		return 0, "", []byte(`{"msgr serve (canned)": 1}`)
	}
	return -22, fmt.Sprintf("msgr serve (canned answers): command %q not supported", c.Prefix), nil
}

func formatUUID(u wire.UUID) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
