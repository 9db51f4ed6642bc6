package messenger

import (
	"encoding/json"

	"github.com/msgr-dev/msgr/core/conn"
)

// Perf is a snapshot of the messenger's counters (Ceph's AsyncMessenger
// perf counters, named after them in JSON where Ceph has one).
type Perf struct {
	// Traffic, over every connection the messenger ever had.
	MsgsIn   uint64 `json:"msgr_recv_messages"`
	MsgsOut  uint64 `json:"msgr_send_messages"`
	BytesIn  uint64 `json:"msgr_recv_bytes"`
	BytesOut uint64 `json:"msgr_send_bytes"`

	// Connections now: registered, still handshaking (accepting), closed
	// and waiting for the reaper, and open (session READY).
	Connections       int `json:"msgr_connections"`
	Accepting         int `json:"msgr_accepting_connections"`
	Deleted           int `json:"msgr_deleted_connections"`
	ActiveConnections int `json:"msgr_active_connections"`

	// Sessions opened, as client and as server (reconnects included).
	Connected uint64 `json:"msgr_connected"`
	Accepted  uint64 `json:"msgr_accepted"`

	Reconnects       uint64 `json:"msgr_reconnects"`
	Faults           uint64 `json:"msgr_faults"`
	Refused          uint64 `json:"msgr_refused"`
	ReadyTimeouts    uint64 `json:"msgr_connection_ready_timeouts"`
	IdleTimeouts     uint64 `json:"msgr_connection_idle_timeouts"`
	ProtocolErrors   uint64 `json:"msgr_protocol_errors"`
	Replaced         uint64 `json:"msgr_replaced_sessions"`
	InjectedFailures uint64 `json:"msgr_injected_socket_failures"`
	InjectedDelays   uint64 `json:"msgr_injected_delays"`

	// Queues: messages waiting to be written, over all connections, and
	// items in the dispatch queue.
	OutQueueLen      int `json:"msgr_out_queue_len"`
	DispatchQueueLen int `json:"msgr_dispatch_queue_len"`

	// Dispatch outcomes (core/dispatch Queue counters).
	Dispatched     uint64 `json:"msgr_dispatched"`
	FastDispatched uint64 `json:"msgr_fast_dispatched"`
	Unclaimed      uint64 `json:"msgr_unclaimed"`
	Discarded      uint64 `json:"msgr_discarded"`
	Events         uint64 `json:"msgr_connection_events"`
	DispatchPanics uint64 `json:"msgr_dispatch_panics"`

	// Throttle: bytes held by undispatched messages, its limit
	// (ms_dispatch_throttle_bytes, 0 = none), and how often a connection
	// stopped reading for want of budget.
	DispatchThrottleBytes int64  `json:"msgr_dispatch_throttle_bytes"`
	DispatchThrottleMax   int64  `json:"msgr_dispatch_throttle_max"`
	ThrottleStalls        uint64 `json:"msgr_throttle_stalls"`

	// Event loops: wake-ups by eventfd, loop iterations, handler panics.
	LoopWakeups uint64 `json:"msgr_loop_wakeups"`
	LoopRuns    uint64 `json:"msgr_loop_iterations"`
	LoopPanics  uint64 `json:"msgr_loop_panics"`
}

// Perf returns the counters. Any goroutine (dispatch callbacks included).
func (m *Messenger) Perf() Perf {
	var p Perf
	m.mu.Lock()
	all := make([]*conn.Connection, 0, len(m.conns)+len(m.accepting)+len(m.deleted)+1)
	seen := map[*conn.Connection]struct{}{}
	for _, c := range m.conns {
		if _, ok := seen[c]; !ok {
			seen[c] = struct{}{}
			all = append(all, c)
			p.Connections++
		}
	}
	for c := range m.accepting {
		if _, ok := seen[c]; !ok {
			seen[c] = struct{}{}
			all = append(all, c)
			p.Accepting++
		}
	}
	for c := range m.deleted {
		if _, ok := seen[c]; !ok {
			seen[c] = struct{}{}
			all = append(all, c)
			p.Deleted++
		}
	}
	all = append(all, m.local)
	tot := m.closedTotals
	m.mu.Unlock()

	p.MsgsIn, p.MsgsOut, p.BytesIn, p.BytesOut = tot.MsgsIn, tot.MsgsOut, tot.BytesIn, tot.BytesOut
	for _, c := range all {
		s := c.Stats()
		p.MsgsIn += s.MsgsIn
		p.MsgsOut += s.MsgsOut
		p.BytesIn += s.BytesIn
		p.BytesOut += s.BytesOut
		if c.IsLocal() {
			continue
		}
		p.OutQueueLen += s.Queued
		if c.IsConnected() {
			p.ActiveConnections++
		}
	}
	cn := &m.counters
	p.Connected = cn.Connected.Load()
	p.Accepted = cn.Accepted.Load()
	p.Reconnects = cn.Reconnects.Load()
	p.Faults = cn.Faults.Load()
	p.Refused = cn.Refused.Load()
	p.ReadyTimeouts = cn.ReadyTimeouts.Load()
	p.IdleTimeouts = cn.IdleTimeouts.Load()
	p.ProtocolErrors = cn.ProtocolErrors.Load()
	p.Replaced = cn.Replaced.Load()
	p.InjectedFailures = cn.InjectedFailures.Load()
	p.InjectedDelays = cn.InjectedDelays.Load()
	p.ThrottleStalls = cn.ThrottleStalls.Load()

	qs := m.queue.Stats()
	p.DispatchQueueLen = qs.Len
	p.Dispatched = qs.Dispatched
	p.FastDispatched = qs.FastDispatched
	p.Unclaimed = qs.Unclaimed
	p.Discarded = qs.Discarded
	p.Events = qs.Events
	p.DispatchPanics = qs.Panics

	p.DispatchThrottleBytes = m.dthrot.Current()
	p.DispatchThrottleMax = m.dthrot.Max()

	for _, w := range m.stack.Workers() {
		st := w.Center.Stats()
		p.LoopWakeups += st.Wakeups
		p.LoopRuns += st.Loops
		p.LoopPanics += st.Panics
	}
	return p
}

// PerfJSON returns Perf as a JSON object.
func (m *Messenger) PerfJSON() ([]byte, error) {
	return json.Marshal(m.Perf())
}
