package messenger

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/protocol"
	"github.com/msgr-dev/msgr/core/stack"
)

// Options configure a Messenger. The zero value means Ceph's defaults for
// every field; a field left at zero takes its default in New. Set sets a
// field by its Ceph option name.
//
// Booleans whose Ceph default is true (TCPNoDelay, CRCData, CRCHeader)
// cannot be told apart from "unset" in a zero Options: to turn one off,
// start from DefaultOptions() or use Set.
type Options struct {
	// Type is ms_type, one of MsTypes: "async+posix" (default, epoll),
	// "async+poll", "async+select", "async+io_uring" (sockets read and
	// write through each worker's io_uring: no syscall per message; falls
	// back to async+posix where io_uring is unavailable) or "simple" (the
	// SimpleMessenger model). "async" alone means async+posix.
	Type string
	// OpThreads is ms_async_op_threads, the number of worker loops. Ceph's
	// default is 3; ours is min(3, NumCPU), since a loop per core is what
	// moves bytes and more loops than cores only add switches.
	OpThreads int
	// TCPNoDelay is ms_tcp_nodelay (default true); TCPRcvBuf is
	// ms_tcp_rcvbuf in bytes (0: the kernel's).
	TCPNoDelay bool
	TCPRcvBuf  int
	// TCPListenBacklog is ms_tcp_listen_backlog (default 512).
	TCPListenBacklog int
	// InitialBackoff and MaxBackoff are ms_initial_backoff (0.2 s) and
	// ms_max_backoff (15 s), the reconnect delays of lossless sessions.
	InitialBackoff, MaxBackoff time.Duration
	// ConnectionReadyTimeout (ms_connection_ready_timeout, 10 s) bounds a
	// handshake; ConnectionIdleTimeout (ms_connection_idle_timeout,
	// 900 s) faults a connection without traffic. Negative disables.
	ConnectionReadyTimeout, ConnectionIdleTimeout time.Duration
	// DispatchThrottleBytes is ms_dispatch_throttle_bytes (100 MiB): the
	// bytes of received messages not yet dispatched, over all
	// connections. Negative means unlimited.
	DispatchThrottleBytes int64
	// CRCData and CRCHeader are ms_crc_data / ms_crc_header. They are
	// accepted for compatibility; msgr2 crc mode always checks every
	// frame's crcs.
	CRCData, CRCHeader bool

	// InjectSocketFailures is ms_inject_socket_failures: when N > 0, every
	// socket read or write shuts the socket down with probability 1/N.
	InjectSocketFailures uint64
	// InjectDelayType is ms_inject_delay_type: entity type names
	// ("osd client") whose messages are delayed; InjectDelayMax
	// (ms_inject_delay_max, seconds) bounds the delay, and
	// InjectDelayProbability (ms_inject_delay_probability, 0..1) is the
	// chance that a message is delayed.
	InjectDelayType        string
	InjectDelayMax         time.Duration
	InjectDelayProbability float64
	// InjectSeed seeds the injection random streams (msgr option
	// ms_inject_seed), so a failing run can be replayed. Each connection
	// draws from its own stream, seeded by InjectSeed and its id.
	InjectSeed int64

	// BusyPoll (msgr option ms_async_busy_poll) lets each worker poll for
	// up to this long before it blocks in epoll_wait: a message arriving
	// meanwhile costs no thread wake-up (about 50 µs per side on small
	// VMs). Zero means DefaultBusyPoll (50 µs); negative disables (the
	// ms_async_busy_poll option and msgr-bench's --busy-poll take 0 for
	// off).
	BusyPoll time.Duration

	// Stack, if not nil, is a network stack shared with other messengers
	// of the process (Ceph shares one NetworkStack per CephContext): the
	// messenger runs its connections on the stack's workers instead of
	// making its own, so OpThreads, BusyPoll and ms_type are ignored. The
	// caller owns the stack: it makes it (NewStack builds one from
	// Options), the messenger starts it on first need if it is not
	// running, and never stops it; the caller stops it (stack.Stop) after
	// every messenger on it has shut down. A shared stack lets many
	// messengers (say 100 clients in one process) run on a few threads.
	Stack *stack.Stack

	// ZeroCopyMin: message segments of at least this many bytes are
	// written straight from the message's buffer with writev instead of
	// being copied into the connection's output buffer. Zero means the
	// default (4 KiB); negative disables it.
	ZeroCopyMin int

	// ShutdownTimeout bounds how long Shutdown waits for queued output to
	// be written before closing connections (msgr option
	// ms_shutdown_timeout, default 1 s; negative: do not wait).
	ShutdownTimeout time.Duration

	// AuthClient makes the auth client of each outgoing handshake (nil:
	// auth none); AuthServer authenticates incoming ones (nil: none).
	AuthClient func() protocol.AuthClient
	AuthServer protocol.AuthServer

	// Logf receives diagnostics up to level DebugMS (debug_ms, 0..20; 0
	// logs only errors). nil: log.Printf.
	Logf    func(format string, args ...any)
	DebugMS int
	// LogLevelf, if set, receives every line Logf would, with the line's
	// own level (0 errors and recovered panics, 1 connection events, 5
	// faults in detail, 10+ handshake steps); Logf is then not used.
	LogLevelf func(level int, format string, args ...any)

	// explicit marks the booleans set by DefaultOptions or Set, so that
	// false is kept.
	explicit uint8
}

const (
	explicitNoDelay = 1 << iota
	explicitCRCData
	explicitCRCHeader
)

// Defaults (Ceph's, unless noted).
const (
	DefaultInitialBackoff         = 200 * time.Millisecond
	DefaultMaxBackoff             = 15 * time.Second
	DefaultConnectionReadyTimeout = 10 * time.Second
	DefaultConnectionIdleTimeout  = 900 * time.Second
	DefaultDispatchThrottleBytes  = 100 << 20
	DefaultListenBacklog          = 512
	// DefaultBusyPoll was picked with cmd/msgr-bench on a shared 2-core
	// VM (2026-11, two runs each, server and client processes on
	// loopback, CPU = user+sys of both for the whole run):
	//
	//	W1 (64 B ping-pong, 21000 rts)   p50 µs     p99 µs     CPU s (srv+cli)
	//	  busy-poll off                  72-73      168-182    1.42-1.43
	//	  20 µs                          13-19      105-128    0.64-0.97
	//	  50 µs                          14-19       58-83     0.69-0.85
	//	  100 µs                         14-15       58-64     0.72-0.76
	//	W2 (1M x 64 B one way)           msgs/s                CPU s
	//	  off                            2.21-2.32 M            0.71-0.75
	//	  20 µs                          2.63-2.66 M            0.66-0.67
	//	  50 µs                          2.38-2.43 M            0.70-0.71
	//	  100 µs                         2.31-2.35 M            0.71-0.73
	//
	// Spinning costs no extra CPU on these loads (a spin replaces a
	// futex/epoll wake-up, which costs as much), and it takes W1's p50
	// from ~72 µs to ~15 µs. 50 µs has the best p99 at about the
	// same p50 as 100 µs and CPU as 20 µs, so it stays the default. An
	// idle worker does not spin: the bound runs only after an event.
	DefaultBusyPoll        = 50 * time.Microsecond
	DefaultShutdownTimeout = time.Second
)

// NewStack makes a network stack from o's OpThreads, BusyPoll and ms_type,
// as New does for a messenger's own stack, for sharing among messengers
// through Options.Stack. The caller starts (or lets the first messenger
// start) and stops it.
func NewStack(o Options) (*stack.Stack, error) {
	o.Stack = nil
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	return newStack(o, o.Logf)
}

// newStack makes the stack for o (defaults filled in).
func newStack(o Options, logf func(string, ...any)) (*stack.Stack, error) {
	typ, drv, err := o.transport()
	if err != nil {
		return nil, err
	}
	st, err := stack.New(stack.Options{
		Type:     typ,
		Workers:  o.OpThreads,
		Driver:   drv,
		BusyPoll: max(o.BusyPoll, 0),
		Logf:     logf,
	})
	if err != nil {
		return nil, fmt.Errorf("messenger: %w", err)
	}
	return st, nil
}

// DefaultOpThreads is min(3, NumCPU).
func DefaultOpThreads() int { return max(1, min(3, runtime.NumCPU())) }

// DefaultOptions returns the options with every default filled in.
func DefaultOptions() Options {
	return Options{
		Type:                   defaultType,
		OpThreads:              DefaultOpThreads(),
		TCPNoDelay:             true,
		TCPListenBacklog:       DefaultListenBacklog,
		InitialBackoff:         DefaultInitialBackoff,
		MaxBackoff:             DefaultMaxBackoff,
		ConnectionReadyTimeout: DefaultConnectionReadyTimeout,
		ConnectionIdleTimeout:  DefaultConnectionIdleTimeout,
		DispatchThrottleBytes:  DefaultDispatchThrottleBytes,
		CRCData:                true,
		CRCHeader:              true,
		BusyPoll:               DefaultBusyPoll,
		ShutdownTimeout:        DefaultShutdownTimeout,
		explicit:               explicitNoDelay | explicitCRCData | explicitCRCHeader,
	}
}

// withDefaults fills the zero fields and checks the values.
func (o Options) withDefaults() (Options, error) {
	d := DefaultOptions()
	if o.Type == "" {
		o.Type = d.Type
	}
	if o.OpThreads == 0 {
		o.OpThreads = d.OpThreads
	}
	if o.explicit&explicitNoDelay == 0 && !o.TCPNoDelay {
		o.TCPNoDelay = true
	}
	if o.explicit&explicitCRCData == 0 && !o.CRCData {
		o.CRCData = true
	}
	if o.explicit&explicitCRCHeader == 0 && !o.CRCHeader {
		o.CRCHeader = true
	}
	if o.TCPListenBacklog == 0 {
		o.TCPListenBacklog = d.TCPListenBacklog
	}
	if o.InitialBackoff == 0 {
		o.InitialBackoff = d.InitialBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = d.MaxBackoff
	}
	if o.ConnectionReadyTimeout == 0 {
		o.ConnectionReadyTimeout = d.ConnectionReadyTimeout
	}
	if o.ConnectionIdleTimeout == 0 {
		o.ConnectionIdleTimeout = d.ConnectionIdleTimeout
	}
	if o.DispatchThrottleBytes == 0 {
		o.DispatchThrottleBytes = d.DispatchThrottleBytes
	}
	if o.BusyPoll == 0 {
		o.BusyPoll = d.BusyPoll
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = d.ShutdownTimeout
	}
	if _, _, err := o.transport(); err != nil {
		return o, err
	}
	switch {
	case o.OpThreads < 1 || o.OpThreads > 24:
		return o, fmt.Errorf("messenger: ms_async_op_threads = %d, want 1..24", o.OpThreads)
	case o.TCPRcvBuf < 0:
		return o, fmt.Errorf("messenger: negative ms_tcp_rcvbuf %d", o.TCPRcvBuf)
	case o.TCPListenBacklog < 0:
		return o, fmt.Errorf("messenger: negative ms_tcp_listen_backlog %d", o.TCPListenBacklog)
	case o.InitialBackoff < 0 || o.MaxBackoff < 0:
		return o, fmt.Errorf("messenger: negative backoff")
	case o.MaxBackoff < o.InitialBackoff:
		return o, fmt.Errorf("messenger: ms_max_backoff %v < ms_initial_backoff %v", o.MaxBackoff, o.InitialBackoff)
	case o.InjectDelayProbability < 0 || o.InjectDelayProbability > 1 || math.IsNaN(o.InjectDelayProbability):
		return o, fmt.Errorf("messenger: ms_inject_delay_probability %v not in [0, 1]", o.InjectDelayProbability)
	case o.InjectDelayMax < 0:
		return o, fmt.Errorf("messenger: negative ms_inject_delay_max")
	}
	if _, err := parseTypes(o.InjectDelayType); err != nil {
		return o, err
	}
	return o, nil
}

// defaultType is the ms_type of DefaultOptions. Only the package's tests
// change it (to run the whole suite over every ms_type).
var defaultType = "async+posix"

// MsTypes lists the ms_type values New accepts: the async messenger over
// epoll, poll(2) or select(2) (the workers' event driver) or io_uring (the
// event driver and the sockets' I/O; Ceph has no such type), and "simple",
// Ceph's SimpleMessenger model (an accepter, and a reader and a writer
// thread per connection over blocking sockets; workers still run the
// protocol and the timers).
var MsTypes = []string{"async+posix", "async+poll", "async+select", "async+io_uring", "simple"}

// transport maps ms_type to the stack's transport and the workers' event
// driver.
func (o Options) transport() (typ, driver string, err error) {
	switch o.Type {
	case "", "async", "async+posix":
		return "posix", "epoll", nil
	case "async+poll":
		return "posix", "poll", nil
	case "async+select":
		return "posix", "select", nil
	case "async+io_uring":
		return "io_uring", "io_uring", nil
	case "simple":
		return "simple", "epoll", nil
	}
	return "", "", fmt.Errorf("messenger: unknown ms_type %q (have %s)", o.Type, strings.Join(MsTypes, ", "))
}

// parseTypes parses "osd client" (spaces or commas) into a set of entity
// types.
func parseTypes(s string) (map[msg.EntityType]bool, error) {
	out := map[msg.EntityType]bool{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
		t, err := msg.ParseEntityType(f)
		if err != nil {
			return nil, fmt.Errorf("messenger: ms_inject_delay_type: %w", err)
		}
		out[t] = true
	}
	return out, nil
}

// optionSetters maps every Ceph option name Set knows to its setter.
var optionSetters = map[string]func(o *Options, v string) error{
	"ms_type": func(o *Options, v string) error {
		o2 := *o
		o2.Type = v
		if _, _, err := o2.transport(); err != nil {
			return err
		}
		o.Type = v
		return nil
	},
	"ms_async_op_threads": func(o *Options, v string) error { return setInt(&o.OpThreads, v, 1, 24) },
	"ms_tcp_nodelay": func(o *Options, v string) error {
		o.explicit |= explicitNoDelay
		return setBool(&o.TCPNoDelay, v)
	},
	"ms_tcp_rcvbuf":         func(o *Options, v string) error { return setSize(&o.TCPRcvBuf, v) },
	"ms_tcp_listen_backlog": func(o *Options, v string) error { return setInt(&o.TCPListenBacklog, v, 1, math.MaxInt32) },
	"ms_initial_backoff":    func(o *Options, v string) error { return setSeconds(&o.InitialBackoff, v, false) },
	"ms_max_backoff":        func(o *Options, v string) error { return setSeconds(&o.MaxBackoff, v, false) },
	"ms_connection_ready_timeout": func(o *Options, v string) error {
		return setSeconds(&o.ConnectionReadyTimeout, v, true)
	},
	"ms_connection_idle_timeout": func(o *Options, v string) error {
		return setSeconds(&o.ConnectionIdleTimeout, v, true)
	},
	"ms_dispatch_throttle_bytes": func(o *Options, v string) error {
		var n int
		if err := setSize(&n, v); err != nil {
			return err
		}
		o.DispatchThrottleBytes = int64(n)
		if n == 0 {
			o.DispatchThrottleBytes = -1 // Ceph: 0 means no throttle
		}
		return nil
	},
	"ms_crc_data": func(o *Options, v string) error {
		o.explicit |= explicitCRCData
		return setBool(&o.CRCData, v)
	},
	"ms_crc_header": func(o *Options, v string) error {
		o.explicit |= explicitCRCHeader
		return setBool(&o.CRCHeader, v)
	},
	"ms_inject_socket_failures": func(o *Options, v string) error {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("not an unsigned integer: %q", v)
		}
		o.InjectSocketFailures = n
		return nil
	},
	"ms_inject_delay_type": func(o *Options, v string) error {
		if _, err := parseTypes(v); err != nil {
			return err
		}
		o.InjectDelayType = v
		return nil
	},
	"ms_inject_delay_max": func(o *Options, v string) error { return setSeconds(&o.InjectDelayMax, v, false) },
	"ms_inject_delay_probability": func(o *Options, v string) error {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || f > 1 || math.IsNaN(f) {
			return fmt.Errorf("want a probability in [0, 1], got %q", v)
		}
		o.InjectDelayProbability = f
		return nil
	},
	"ms_inject_seed": func(o *Options, v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 0, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", v)
		}
		o.InjectSeed = n
		return nil
	},
	"ms_async_busy_poll": func(o *Options, v string) error { return setSeconds(&o.BusyPoll, v, true) },
	"ms_shutdown_timeout": func(o *Options, v string) error {
		return setSeconds(&o.ShutdownTimeout, v, true)
	},
	"debug_ms": func(o *Options, v string) error {
		// Ceph's "log/gather" form: the first number is the log level.
		lv, _, _ := strings.Cut(strings.TrimSpace(v), "/")
		return setInt(&o.DebugMS, lv, 0, 30)
	},
}

// OptionNames lists the option names Set accepts, sorted.
func OptionNames() []string {
	names := make([]string, 0, len(optionSetters))
	for n := range optionSetters {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Set sets an option by its Ceph name ("ms_tcp_nodelay", "ms_max_backoff",
// ...; dashes may replace underscores, as in Ceph). Durations are seconds
// as Ceph writes them ("0.2"), or Go durations ("200ms"); sizes accept
// K/M/G suffixes (powers of 1024). An unknown name or a bad value is an
// error naming it; the option is then unchanged.
func (o *Options) Set(name, value string) error {
	key := strings.ReplaceAll(strings.TrimSpace(name), "-", "_")
	f, ok := optionSetters[key]
	if !ok {
		return fmt.Errorf("messenger: unknown option %q", name)
	}
	if err := f(o, value); err != nil {
		return fmt.Errorf("messenger: option %s: bad value %q: %v", key, value, err)
	}
	return nil
}

func setInt(dst *int, v string, lo, hi int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("not an integer")
	}
	if n < lo || n > hi {
		return fmt.Errorf("want %d..%d", lo, hi)
	}
	*dst = n
	return nil
}

func setBool(dst *bool, v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		*dst = true
	case "0", "false", "no", "off":
		*dst = false
	default:
		return fmt.Errorf("not a boolean")
	}
	return nil
}

// setSize parses a byte size: "4096", "64K", "100M", "1G" (also "KiB"...).
func setSize(dst *int, v string) error {
	s := strings.TrimSpace(v)
	mult := int64(1)
	up := strings.ToUpper(s)
	for _, suf := range []struct {
		s string
		m int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(up, suf.s) {
			mult = suf.m
			s = strings.TrimSpace(s[:len(s)-len(suf.s)])
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("not a size")
	}
	if n > math.MaxInt32/mult*1024 {
		return fmt.Errorf("too large")
	}
	*dst = int(n * mult)
	return nil
}

// setSeconds parses Ceph seconds ("0.2", "900") or a Go duration
// ("200ms"). With zeroDisables, 0 is stored as -1 (disabled), since a
// zero field means "default".
func setSeconds(dst *time.Duration, v string, zeroDisables bool) error {
	s := strings.TrimSpace(v)
	var d time.Duration
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || math.IsNaN(f) || f > 1e9 {
			return fmt.Errorf("want seconds >= 0")
		}
		d = time.Duration(f * float64(time.Second))
	} else {
		pd, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want seconds or a duration")
		}
		if pd < 0 {
			return fmt.Errorf("want seconds >= 0")
		}
		d = pd
	}
	if d == 0 && zeroDisables {
		d = -1
	}
	*dst = d
	return nil
}
