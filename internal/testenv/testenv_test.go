package testenv

import (
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestUUID(t *testing.T) {
	const s = "11111111-2222-3333-4444-555555555555"
	u, err := ParseUUID(s)
	if err != nil || u[0] != 0x11 || u[15] != 0x55 || FormatUUID(u) != s {
		t.Fatalf("ParseUUID(%q) = %x, %v", s, u, err)
	}
	for _, bad := range []string{"", "11111111-2222-3333-4444-55555555555", "111111112222-3333-4444-5555555555555", "1111111x-2222-3333-4444-555555555555"} {
		if _, err := ParseUUID(bad); err == nil {
			t.Errorf("ParseUUID(%q) succeeded", bad)
		}
	}
	a, b := NewUUID(), NewUUID()
	if a == b {
		t.Error("NewUUID repeats")
	}
	if _, err := ParseUUID(a); err != nil {
		t.Errorf("NewUUID gave %q: %v", a, err)
	}
}

// TestMon starts a monitor, talks to it with the real CLI and checks that
// Stop leaves no daemon and no listener behind.
func TestMon(t *testing.T) {
	const fsid = "11111111-2222-3333-4444-555555555555"
	m := StartMon(t, MonOptions{Fsid: fsid, DebugMS: 1, Conf: []string{"mon osd down out interval = 123"}})
	t.Logf("mon.%s at %s started in %v", m.Name, m.AddrString(), m.StartupTime)
	if !m.Running() {
		t.Fatal("mon not running after StartMon")
	}
	if m.FsidBytes()[0] != 0x11 {
		t.Errorf("FsidBytes %x", m.FsidBytes())
	}
	r := m.Ceph(20*time.Second, "status", "--format", "json")
	if r.Err != nil {
		t.Fatalf("ceph status: %v", r)
	}
	var st struct {
		Fsid   string `json:"fsid"`
		Health struct {
			Status string `json:"status"`
		} `json:"health"`
	}
	if err := json.Unmarshal(r.Stdout, &st); err != nil {
		t.Fatalf("status json: %v\n%s", err, r.Stdout)
	}
	if st.Fsid != fsid {
		t.Errorf("status fsid %q, want %q", st.Fsid, fsid)
	}
	if st.Health.Status != "HEALTH_OK" {
		t.Errorf("health %q", st.Health.Status)
	}
	out, err := AdminSocket(m.AdminSocketPath(), `{"prefix":"mon_status"}`, 5*time.Second)
	if err != nil || !strings.Contains(string(out), `"leader"`) {
		t.Errorf("admin socket mon_status: %v %s", err, out)
	}
	// MonOptions.Conf and DebugMS reach the daemon.
	for _, c := range []struct{ name, want string }{
		{"mon_osd_down_out_interval", `"123"`}, {"debug_ms", `"1/1"`},
	} {
		out, err = AdminSocket(m.AdminSocketPath(), `{"prefix":"config get","var":"`+c.name+`"}`, 5*time.Second)
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("config get %s: %v %s", c.name, err, out)
		}
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if m.Running() {
		t.Error("mon still running after Stop")
	}
	if c, err := net.DialTimeout("tcp", m.Addr.String(), time.Second); err == nil {
		c.Close()
		t.Error("mon port still accepts connections after Stop")
	}
	if err := m.Stop(); err != nil { // idempotent
		t.Error(err)
	}
}

// TestMonMsgr1 binds a v1 address too: it must speak the msgr1 banner.
func TestMonMsgr1(t *testing.T) {
	m := StartMon(t, MonOptions{Msgr1: true})
	if !m.AddrV1.IsValid() || !strings.HasPrefix(m.MonHost(), "[v2:") {
		t.Fatalf("AddrV1 %v MonHost %q", m.AddrV1, m.MonHost())
	}
	c, err := net.DialTimeout("tcp", m.AddrV1.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 9)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	if string(b) != "ceph v027" {
		t.Errorf("v1 banner %q", b)
	}
	// The CLI reaches the cluster through the v1 address alone.
	conf, err := ClientConf(t.TempDir(), "v1:"+m.AddrV1.String(), "", "ms bind msgr2 = false")
	if err != nil {
		t.Fatal(err)
	}
	if r := RunCeph(conf, 20*time.Second, "mon", "versions"); r.Err != nil || !strings.Contains(string(r.Stdout), "ceph version") {
		t.Errorf("ceph over msgr1: %v", r)
	}
}

// TestRunCephTimeout: a CLI pointed at an address where nothing answers
// the Ceph protocol is killed at the timeout instead of hanging.
func TestRunCephTimeout(t *testing.T) {
	RequireCeph(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accept and stay silent
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ap := netip.MustParseAddrPort(l.Addr().String())
	conf, err := ClientConf(t.TempDir(), "v2:"+ap.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(conf); !strings.Contains(string(b), "mon host = v2:"+ap.String()) {
		t.Fatalf("conf:\n%s", b)
	}
	r := RunCeph(conf, 3*time.Second, "-s")
	if r.Err == nil {
		t.Fatalf("ceph -s against a silent peer succeeded: %v", r)
	}
	if r.Elapsed > 10*time.Second {
		t.Errorf("RunCeph took %v with a 3 s timeout", r.Elapsed)
	}
}

// TestMonCleanup: a monitor the test does not stop is stopped and reaped by
// the test's cleanup.
func TestMonCleanup(t *testing.T) {
	var pid int
	t.Run("start", func(t *testing.T) {
		m := StartMon(t, MonOptions{})
		pid = m.cmd.Process.Pid
	})
	if pid == 0 {
		t.Fatal("no monitor started")
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Errorf("ceph-mon pid %d still exists after its test ended", pid)
	}
}

// TestMonPortTaken: when the port picked for the monitor is taken by the
// time it binds, StartMon retries on another port.
func TestMonPortTaken(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := uint16(l.Addr().(*net.TCPAddr).Port)
	calls := 0
	pickPorts = func(n int) ([]uint16, error) {
		calls++
		if calls == 1 {
			return []uint16{taken, taken}, nil
		}
		return freePorts(n)
	}
	defer func() { pickPorts = freePorts }()
	m := StartMon(t, MonOptions{})
	if calls != 2 || m.Addr.Port() == taken {
		t.Errorf("%d port picks, mon on %v (taken: %d)", calls, m.Addr, taken)
	}
	if r := m.Ceph(20*time.Second, "mon", "versions"); r.Err != nil {
		t.Errorf("ceph mon versions: %v", r)
	}
}
