package main

/*
#include <stdlib.h>
#include "msgr_impl.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/msgr-dev/msgr/core/messenger"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/stack"
)

// stackGroupOption names the C API's own option: messengers created with
// the same group name share one network stack (its worker threads), as
// Ceph's messengers share their CephContext's NetworkStack. The first
// messenger of a group makes the stack from its options (ms_type,
// ms_async_op_threads, ms_async_busy_poll); the last one destroyed stops it.
const stackGroupOption = "ms_stack_group"

type stackGroup struct {
	st   *stack.Stack
	refs int
}

var (
	groupsMu sync.Mutex
	groups   = map[string]*stackGroup{}
)

func joinStackGroup(name string, o messenger.Options) (*stack.Stack, error) {
	groupsMu.Lock()
	defer groupsMu.Unlock()
	g := groups[name]
	if g == nil {
		st, err := messenger.NewStack(o)
		if err != nil {
			return nil, err
		}
		g = &stackGroup{st: st}
		groups[name] = g
	}
	g.refs++
	return g.st, nil
}

// leaveStackGroup drops a messenger (shut down) from its group; the last
// one stops the stack.
func leaveStackGroup(name string) {
	groupsMu.Lock()
	g := groups[name]
	if g == nil {
		groupsMu.Unlock()
		return
	}
	g.refs--
	last := g.refs == 0
	if last {
		delete(groups, name)
	}
	groupsMu.Unlock()
	if last {
		_ = g.st.Stop()
	}
}

// Lifecycle of a messenger as the C API sees it.
const (
	msNew = iota
	msStarted
	msShut // shutdown started or done
)

// mentry is the Go side of one msgr_messenger handle.
type mentry struct {
	id   uint64
	m    *messenger.Messenger
	name string

	// The C log callback (C pointers; never Go pointers).
	logFn   C.msgr_log_fn
	logUser unsafe.Pointer
	quiet   atomic.Bool // set once destroy begins: no more log calls

	mu          sync.Mutex
	state       int
	dispatchers []*cDispatcher
	pull        *pullQueue

	// Connection handles of this messenger, for destroy.
	connMu sync.Mutex
	conns  map[uint64]*centry

	group string // ms_stack_group: the shared network stack's group, or ""

	// capi counters (perf dump "capi" section).
	sends, sendCopies, sendZeroCopy atomic.Uint64
}

func (e *mentry) handleID() uint64 { return e.id }

var (
	messengers  table[mentry, *mentry]
	dispatchers atomic.Int64 // registered C dispatchers not yet released
)

func messengerOf(id C.uint64_t) (*mentry, C.int) {
	e := messengers.get(uint64(id))
	if e == nil {
		return nil, fail(C.MSGR_EBADF, "messenger handle %#x is closed or unknown", uint64(id))
	}
	return e, 0
}

// logf is the messenger's Options.LogLevelf: lines go to the C callback
// with their own level.
func (e *mentry) logf(level int, format string, args ...any) {
	if e.logFn == nil || e.quiet.Load() {
		return
	}
	s := fmt.Sprintf(format, args...)
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	C.msgrc_call_log(e.logFn, e.logUser, C.uint64_t(e.id), C.int(level),
		(*C.char)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s)))
}

//export msgrgo_messenger_create
func msgrgo_messenger_create(out *C.uint64_t, name *C.char, nonce C.uint32_t,
	opts *C.msgr_option, nopts C.size_t, logFn C.msgr_log_fn, logUser unsafe.Pointer) (rc C.int) {
	defer guard(&rc)
	nameStr := C.GoString(name)
	en, err := msg.ParseEntityName(nameStr)
	if err != nil {
		return fail(C.MSGR_EINVAL, "entity name %q: %v (the number must be numeric, as Ceph's entity_name_t: \"mon.0\", not \"mon.a\")", nameStr, err)
	}
	o := messenger.DefaultOptions()
	if nopts > 1<<16 {
		return fail(C.MSGR_EINVAL, "%d options is too many", uint64(nopts))
	}
	group := ""
	for i, opt := range unsafe.Slice(opts, int(nopts)) {
		if opt.name == nil || opt.value == nil {
			return fail(C.MSGR_EINVAL, "option %d has a NULL name or value", i)
		}
		name, value := C.GoString(opt.name), C.GoString(opt.value)
		if strings.ReplaceAll(strings.TrimSpace(name), "-", "_") == stackGroupOption {
			group = value
			continue
		}
		if err := o.Set(name, value); err != nil {
			return fail(C.MSGR_EINVAL, "%v", err)
		}
	}
	id := messengers.reserve()
	if id == 0 {
		return fail(C.MSGR_ENOMEM, "too many messengers")
	}
	e := &mentry{id: id, name: en.String(), logFn: logFn, logUser: logUser,
		conns: map[uint64]*centry{}, group: group}
	o.LogLevelf = e.logf
	if group != "" {
		st, err := joinStackGroup(group, o)
		if err != nil {
			messengers.unreserve(id)
			return fail(C.MSGR_EINVAL, "option %s=%q: %v", stackGroupOption, group, err)
		}
		o.Stack = st
	}
	m, err := messenger.New(en, uint32(nonce), o)
	if err != nil {
		if group != "" {
			leaveStackGroup(group)
		}
		messengers.unreserve(id)
		return fail(C.MSGR_EINVAL, "%v", err)
	}
	e.m = m
	messengers.set(e)
	*out = C.uint64_t(id)
	return 0
}

//export msgrgo_messenger_destroy
func msgrgo_messenger_destroy(id C.uint64_t) (rc C.int) {
	defer guard(&rc)
	e, rc := messengerOf(id)
	if e == nil {
		return rc
	}
	// Remove the handle first: from here on every call with it is EBADF;
	// calls already inside see the messenger shut down.
	if !messengers.remove(e.id) {
		return fail(C.MSGR_EBADF, "messenger handle %#x is closed or unknown", uint64(id))
	}
	err := e.m.Shutdown()
	e.m.Wait()
	e.quiet.Store(true)
	e.mu.Lock()
	e.state = msShut
	ds := e.dispatchers
	e.dispatchers = nil
	pq := e.pull
	e.mu.Unlock()
	if pq != nil {
		pq.close()
	}
	// Every worker and the dispatch thread are gone: no callback can run.
	for _, d := range ds {
		d.release()
	}
	e.connMu.Lock()
	cs := e.conns
	e.conns = map[uint64]*centry{}
	e.connMu.Unlock()
	for _, c := range cs {
		c.drop()
	}
	if e.group != "" {
		leaveStackGroup(e.group)
	}
	if err != nil {
		return failErr(err)
	}
	return 0
}

//export msgrgo_messenger_set_policy
func msgrgo_messenger_set_policy(id C.uint64_t, ptype C.int, p *C.msgr_policy) (rc C.int) {
	defer guard(&rc)
	e, rc := messengerOf(id)
	if e == nil {
		return rc
	}
	t, ok := entityType(ptype)
	if !ok {
		return fail(C.MSGR_EINVAL, "unknown entity type %d", int(ptype))
	}
	known := C.uint32_t(C.MSGR_POLICY_F_LOSSY | C.MSGR_POLICY_F_SERVER | C.MSGR_POLICY_F_STANDBY |
		C.MSGR_POLICY_F_RESETCHECK | C.MSGR_POLICY_F_REGISTER_LOSSY_CLIENTS)
	if p.flags&^known != 0 {
		return fail(C.MSGR_EINVAL, "unknown policy flags %#x", uint32(p.flags&^known))
	}
	pol := msg.Policy{
		Lossy:                p.flags&C.MSGR_POLICY_F_LOSSY != 0,
		Server:               p.flags&C.MSGR_POLICY_F_SERVER != 0,
		Standby:              p.flags&C.MSGR_POLICY_F_STANDBY != 0,
		ResetCheck:           p.flags&C.MSGR_POLICY_F_RESETCHECK != 0,
		RegisterLossyClients: p.flags&C.MSGR_POLICY_F_REGISTER_LOSSY_CLIENTS != 0,
		FeaturesSupported:    uint64(p.features_supported),
		FeaturesRequired:     uint64(p.features_required),
		ThrottleBytes:        uint64(p.throttle_bytes),
		ThrottleMessages:     uint64(p.throttle_messages),
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != msNew {
		return fail(C.MSGR_ESTATE, "set_policy after start")
	}
	if t == msg.EntityAny {
		e.m.SetDefaultPolicy(pol)
	} else {
		e.m.SetPolicy(t, pol)
	}
	return 0
}

// entityType checks a C entity type.
func entityType(t C.int) (msg.EntityType, bool) {
	et := msg.EntityType(t)
	if t < 0 || t > 0xFF || et.String() == "unknown" {
		return 0, false
	}
	return et, true
}

//export msgrgo_messenger_bind
func msgrgo_messenger_bind(id C.uint64_t, addr *C.char, minPort, maxPort, ranged C.int) (rc C.int) {
	defer guard(&rc)
	e, rc := messengerOf(id)
	if e == nil {
		return rc
	}
	s := C.GoString(addr)
	av, err := msg.ParseAddrVec(s)
	if err != nil {
		return failErr(err)
	}
	for _, a := range av {
		if a.IsBlank() {
			return fail(C.MSGR_EINVAL, "bind %q: no IP address", s)
		}
	}
	if ranged != 0 && len(av) != 1 {
		return fail(C.MSGR_EINVAL, "bind range %q: one address only", s)
	}
	e.mu.Lock()
	st := e.state
	e.mu.Unlock()
	if st != msNew {
		return fail(C.MSGR_ESTATE, "bind after start")
	}
	if ranged != 0 {
		if minPort < 1 {
			return fail(C.MSGR_EINVAL, "bind range starts at port %d", int(minPort))
		}
		err = e.m.BindRange(av[0], int(minPort), int(maxPort))
	} else {
		err = e.m.BindAddrs(av)
	}
	if err != nil {
		return failErr(err)
	}
	return 0
}

//export msgrgo_messenger_string
func msgrgo_messenger_string(id C.uint64_t, what C.int, buf *C.char, n C.size_t) (rc C.int) {
	defer guard(&rc)
	e, rc := messengerOf(id)
	if e == nil {
		return rc
	}
	if what == 0 {
		return writeCString(buf, n, e.m.Addrs().String())
	}
	return writeCString(buf, n, e.name)
}

//export msgrgo_messenger_start
func msgrgo_messenger_start(id C.uint64_t) (rc C.int) {
	defer guard(&rc)
	e, rc := messengerOf(id)
	if e == nil {
		return rc
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.state {
	case msStarted:
		return fail(C.MSGR_ESTATE, "messenger already started")
	case msShut:
		return fail(C.MSGR_ESHUTDOWN, "messenger shut down")
	}
	if err := e.m.Start(); err != nil {
		return failErr(err)
	}
	e.state = msStarted
	return 0
}

//export msgrgo_messenger_wait
func msgrgo_messenger_wait(id C.uint64_t) (rc C.int) {
	defer guard(&rc)
	e, rc := messengerOf(id)
	if e == nil {
		return rc
	}
	e.mu.Lock()
	st := e.state
	e.mu.Unlock()
	if st == msNew {
		return fail(C.MSGR_ESTATE, "wait on a messenger that was never started")
	}
	e.m.Wait()
	return 0
}

//export msgrgo_messenger_shutdown
func msgrgo_messenger_shutdown(id C.uint64_t, fromCallback C.int) (rc C.int) {
	defer guard(&rc)
	e, rc := messengerOf(id)
	if e == nil {
		return rc
	}
	e.mu.Lock()
	e.state = msShut
	pq := e.pull
	e.mu.Unlock()
	if pq != nil {
		pq.shutdown()
	}
	if fromCallback != 0 {
		// The callback's thread is one Shutdown waits for: run it aside.
		go e.m.Shutdown() //nolint:errcheck // destroy or wait reports
		return 0
	}
	if err := e.m.Shutdown(); err != nil {
		return failErr(err)
	}
	return 0
}

//export msgrgo_messenger_add_dispatcher
func msgrgo_messenger_add_dispatcher(id C.uint64_t, d *C.struct_msgrc_dispatcher, where C.int) (rc C.int) {
	defer guard(&rc)
	e, rc := messengerOf(id)
	if e == nil {
		return rc
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != msNew {
		return fail(C.MSGR_ESTATE, "add_dispatcher after start")
	}
	cd := newCDispatcher(e, d)
	e.dispatchers = append(e.dispatchers, cd)
	dispatchers.Add(1)
	if where == C.MSGR_HEAD {
		e.m.AddDispatcherHead(cd)
	} else {
		e.m.AddDispatcherTail(cd)
	}
	return 0
}

//export msgrgo_messenger_connect
func msgrgo_messenger_connect(id C.uint64_t, ptype C.int, addrs *C.char, out *C.uint64_t) (rc C.int) {
	defer guard(&rc)
	e, rc := messengerOf(id)
	if e == nil {
		return rc
	}
	t, ok := entityType(ptype)
	if !ok || t == msg.EntityAny {
		return fail(C.MSGR_EINVAL, "bad peer entity type %d", int(ptype))
	}
	s := C.GoString(addrs)
	av, err := msg.ParseAddrVec(s)
	if err != nil {
		return failErr(err)
	}
	a, ok := av.Msgr2()
	if !ok {
		a, ok = av.Legacy()
	}
	if !ok || a.IsBlank() || a.Port() == 0 {
		return fail(C.MSGR_EINVAL, "connect %q: no v2 or v1 address with an IP and a port", s)
	}
	e.mu.Lock()
	st := e.state
	e.mu.Unlock()
	switch st {
	case msNew:
		return fail(C.MSGR_ESTATE, "connect before start")
	case msShut:
		return fail(C.MSGR_ESHUTDOWN, "messenger shut down")
	}
	c, err := e.m.ConnectTo(t, av)
	if err != nil {
		return failErr(err)
	}
	ce := e.entryFor(c)
	if ce == nil {
		return fail(C.MSGR_ENOMEM, "too many connection handles")
	}
	ce.ref(c)
	*out = C.uint64_t(ce.id)
	return 0
}

//export msgrgo_messenger_perf_dump
func msgrgo_messenger_perf_dump(id C.uint64_t, out **C.char) (rc C.int) {
	defer guard(&rc)
	e, rc := messengerOf(id)
	if e == nil {
		return rc
	}
	core, err := e.m.PerfJSON()
	if err != nil {
		return failErr(err)
	}
	capi := map[string]any{
		"sends":          e.sends.Load(),
		"send_copies":    e.sendCopies.Load(),
		"send_zero_copy": e.sendZeroCopy.Load(),
	}
	e.connMu.Lock()
	capi["conn_handles"] = len(e.conns)
	e.connMu.Unlock()
	e.mu.Lock()
	pq := e.pull
	e.mu.Unlock()
	if pq != nil {
		q, delivered := pq.stats()
		capi["pull_queue_len"] = q
		capi["pull_delivered"] = delivered
	}
	js, err := json.Marshal(map[string]any{"msgr": json.RawMessage(core), "capi": capi})
	if err != nil {
		return failErr(err)
	}
	p := C.malloc(C.size_t(len(js) + 1))
	if p == nil {
		return fail(C.MSGR_ENOMEM, "out of memory")
	}
	b := unsafe.Slice((*byte)(p), len(js)+1)
	copy(b, js)
	b[len(js)] = 0
	*out = (*C.char)(p)
	return 0
}

//export msgrgo_live_counts
func msgrgo_live_counts(v *C.uint64_t) (rc C.int) {
	defer guard(&rc)
	// An array pointer, not unsafe.Slice: with a nil v this is an ordinary
	// nil dereference that guard turns into MSGR_EINTERNAL, where
	// unsafe.Slice(nil, 3) is a fatal error under -race (checkptr).
	out := (*[3]C.uint64_t)(unsafe.Pointer(v))
	out[0] = C.uint64_t(messengers.live.Load())
	out[1] = C.uint64_t(conns.live.Load())
	out[2] = C.uint64_t(dispatchers.Load())
	return 0
}
