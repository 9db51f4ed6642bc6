package conn_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgr-dev/msgr/core/conn"
	"github.com/msgr-dev/msgr/core/dispatch"
	"github.com/msgr-dev/msgr/core/internal/leakcheck"
	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/stack"
)

func zcByte(k, i int) byte { return byte(k*31 + i*7 + i>>9) }

// zcChecker checks every large payload byte for byte.
type zcChecker struct {
	dispatch.Base
	mu   sync.Mutex
	next int
	bad  error
	n    atomic.Int64
}

func (c *zcChecker) CanFastDispatch(*msg.Message) bool { return true }
func (c *zcChecker) FastDispatch(_ dispatch.Conn, m *msg.Message) {
	k := int(binary.LittleEndian.Uint32(m.Front))
	c.mu.Lock()
	if k != c.next && c.bad == nil {
		c.bad = fmt.Errorf("message %d, want %d", k, c.next)
	}
	c.next = k + 1
	for i, b := range m.Data {
		if b != zcByte(k, i) && c.bad == nil {
			c.bad = fmt.Errorf("message %d: byte %d is %#x, want %#x", k, i, b, zcByte(k, i))
			break
		}
	}
	c.mu.Unlock()
	m.Release()
	c.n.Add(1)
}

// Large data segments are written from the messages' own buffers
// (writev), across partial writes (small socket buffers). A message must
// not be released before its bytes are written: DataFree scribbles over
// the buffer, so an early release corrupts what the peer gets (a crc
// fault or a wrong byte).
func TestZeroCopyWrite(t *testing.T) {
	for _, lossy := range []bool{false, true} {
		t.Run(fmt.Sprintf("lossy=%v", lossy), func(t *testing.T) {
			defer leakcheck.Take().Check(t)
			cpol, spol := msg.LosslessClient(0), msg.StatefulServer(0)
			if lossy {
				cpol, spol = msg.LossyClient(0), msg.StatelessServer(0)
			}
			st, q, stop := startStack(t, 2)
			chk := &zcChecker{}
			q.AddTail(chk)
			q.Start()

			small := stack.DefaultSockOpts()
			small.RcvBuf, small.SndBuf = 32<<10, 32<<10 // force partial writes
			sh := newHost(spol)
			scfg := &conn.Config{Stack: st, Queue: q, Host: sh, Name: msg.EntityName{Type: msg.EntityOSD, Num: 1}, Nonce: 7,
				SockOpts: small, ReadyTimeout: 5 * time.Second}
			var accepted []*conn.Connection
			var amu sync.Mutex
			l, err := st.Listen(netip.MustParseAddrPort("127.0.0.1:0"), small, 0, func(s *stack.Socket) {
				c := conn.NewServer(scfg, s, msg.AddrMsgr2)
				amu.Lock()
				accepted = append(accepted, c)
				amu.Unlock()
				c.Start()
			})
			if err != nil {
				t.Fatal(err)
			}
			srvAddr := msg.Addr{Type: msg.AddrMsgr2, Nonce: 7, AddrPort: l.Addr()}
			sh.addrs = msg.AddrVec{srvAddr}

			ccfg := &conn.Config{Stack: st, Queue: q, Host: newHost(cpol), Name: msg.EntityName{Type: msg.EntityClient, Num: 9}, Nonce: 8,
				SockOpts: small, ReadyTimeout: 5 * time.Second, ZeroCopyMin: 16 << 10, WriteBatch: 64 << 10}
			c := conn.NewClient(ccfg, msg.EntityOSD, srvAddr, cpol)
			c.Start()

			const n = 60
			var freed atomic.Int64
			for k := 0; k < n; k++ {
				size := 20<<10 + k*3001 // some above, the small one below ZeroCopyMin
				if k%7 == 3 {
					size = 1000
				}
				data := make([]byte, size)
				for i := range data {
					data[i] = zcByte(k, i)
				}
				m := msg.New(1, binary.LittleEndian.AppendUint32(nil, uint32(k)))
				m.Data = data
				m.DataFree = func() {
					clear(data)
					freed.Add(1)
				}
				if err := c.Send(m); err != nil {
					t.Fatal(err)
				}
			}
			deadline := time.Now().Add(20 * time.Second)
			for chk.n.Load() < n || (lossy && freed.Load() < n) {
				if time.Now().After(deadline) {
					t.Fatalf("got %d of %d, %d released", chk.n.Load(), n, freed.Load())
				}
				time.Sleep(time.Millisecond)
			}
			chk.mu.Lock()
			bad := chk.bad
			chk.mu.Unlock()
			if bad != nil {
				t.Fatal(bad)
			}
			if f := ccfg.Counters.Faults.Load(); f != 0 {
				t.Fatalf("%d faults", f)
			}
			c.MarkDown()
			if freed.Load() != n {
				t.Fatalf("%d of %d messages released after MarkDown", freed.Load(), n)
			}
			amu.Lock()
			for _, a := range accepted {
				a.Close()
			}
			amu.Unlock()
			l.Close()
			stop()
		})
	}
}
