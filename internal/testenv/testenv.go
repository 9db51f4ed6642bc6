// Package testenv runs real Ceph daemons and tools for interop tests: a
// single ceph-mon on loopback (StartMon) and the ceph command-line tool
// pointed at any address (RunCeph, ClientConf).
//
// Everything a test starts is stopped by t.Cleanup. When the Ceph binaries
// are missing and cannot be installed (scripts/ensure-deps.sh ceph, which
// needs root and apt-get), the test is skipped with the reason; that is the
// only skip. See /work/shared/msgr2/ceph-on-loopback.md for the recipe.
//
// testenv is test-only support and imports nothing from the module (it sits
// at layer 0), so addresses are netip values and strings; build a msg.Addr
// from Mon.Addr with msg.AddrMsgr2.
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binaries the helpers run.
var cephBinaries = []string{"ceph-mon", "monmaptool", "ceph"}

var (
	installOnce sync.Once
	installErr  error
)

// RequireCeph skips t unless ceph-mon, monmaptool and ceph are in PATH. If
// they are missing it first tries scripts/ensure-deps.sh ceph once per
// process (only as root: it uses apt-get).
func RequireCeph(t testing.TB) {
	t.Helper()
	if missing := missingBinaries(); len(missing) == 0 {
		return
	}
	installOnce.Do(func() { installErr = installCeph() })
	if missing := missingBinaries(); len(missing) > 0 {
		t.Skipf("testenv: Ceph binaries %v not found in PATH and could not be installed: %v", missing, installErr)
	}
}

func missingBinaries() []string {
	var missing []string
	for _, b := range cephBinaries {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	return missing
}

// installCeph runs scripts/ensure-deps.sh ceph from the module root.
func installCeph() error {
	if os.Geteuid() != 0 {
		return errors.New("not root: run scripts/ensure-deps.sh ceph as root")
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "ensure-deps.sh"), "ceph")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scripts/ensure-deps.sh ceph: %v: %s", err, tail(out, 800))
	}
	return nil
}

// moduleRoot walks up from the working directory to the go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// MonOptions configures StartMon. The zero value is a msgr2-only monitor
// named "a" with a random fsid, auth none.
type MonOptions struct {
	// Name is the monitor id (default "a").
	Name string
	// Fsid is the cluster fsid (default: random).
	Fsid string
	// Msgr1 also binds a msgr1 (v1) address (ms bind msgr1 = true); the
	// monitor then has the addrvec [v2:..., v1:...].
	Msgr1 bool
	// Conf lines are appended to [global], e.g.
	// "ms inject socket failures = 500".
	Conf []string
	// DebugMS sets "debug ms" in the monitor's log (Mon.LogPath); 20 shows
	// every frame, 30 their bytes.
	DebugMS int
	// StartTimeout bounds the start-up (default 30 s).
	StartTimeout time.Duration
}

// Mon is a running ceph-mon. It is stopped (and waited for) by t.Cleanup,
// or earlier by Stop.
type Mon struct {
	Name string
	// Addr is the monitor's msgr2 address (v2, nonce 0).
	Addr netip.AddrPort
	// AddrV1 is its msgr1 address when MonOptions.Msgr1, else invalid.
	AddrV1 netip.AddrPort
	// Fsid is the cluster fsid as printed ("1111...-5555...").
	Fsid string
	// ConfPath is the ceph.conf the monitor runs with; the ceph CLI can
	// use it as is (RunCeph).
	ConfPath string
	// Dir holds the conf, the monitor's data, and its logs.
	Dir string
	// LogPath is the monitor's log file.
	LogPath string
	// StartupTime is how long the start took (monmaptool and mkfs to a
	// leader that serves clients).
	StartupTime time.Duration

	runDir  string
	cmd     *exec.Cmd
	stopMu  sync.Mutex
	stopped bool
	waitErr error
}

// AddrString returns the msgr2 address in Ceph's syntax,
// "v2:127.0.0.1:PORT/0".
func (m *Mon) AddrString() string { return "v2:" + m.Addr.String() + "/0" }

// MonHost returns the "mon host" value for the monitor: its v2 address,
// or "[v2:...,v1:...]" with msgr1.
func (m *Mon) MonHost() string {
	if m.AddrV1.IsValid() {
		return "[v2:" + m.Addr.String() + ",v1:" + m.AddrV1.String() + "]"
	}
	return "v2:" + m.Addr.String()
}

// FsidBytes returns the fsid as 16 raw bytes (Ceph's uuid_d encoding).
func (m *Mon) FsidBytes() [16]byte {
	u, err := ParseUUID(m.Fsid)
	if err != nil {
		panic("testenv: bad fsid " + m.Fsid) // StartMon checked it
	}
	return u
}

// StartMon creates and starts a single monitor on a free loopback port and
// waits until it is leader of its one-mon quorum and accepts connections.
// t.Cleanup stops it. Failures are fatal; missing binaries skip t.
func StartMon(t testing.TB, opts MonOptions) *Mon {
	t.Helper()
	RequireCeph(t)
	if opts.Name == "" {
		opts.Name = "a"
	}
	if opts.Fsid == "" {
		opts.Fsid = NewUUID()
	}
	if _, err := ParseUUID(opts.Fsid); err != nil {
		t.Fatalf("testenv: MonOptions.Fsid: %v", err)
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	base := t.TempDir() // registered before the stop below: removed after it
	// A port picked by the kernel may be taken again before the monitor
	// binds it; retry with a new one (bounded).
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		m, err := startMon(t, opts, filepath.Join(base, "try"+strconv.Itoa(attempt)))
		if err == nil {
			return m
		}
		lastErr = err
		if !errors.Is(err, errBind) {
			break
		}
	}
	t.Fatalf("testenv: starting ceph-mon: %v", lastErr)
	return nil
}

var errBind = errors.New("address in use")

func startMon(t testing.TB, opts MonOptions, dir string) (*Mon, error) {
	t0 := time.Now()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The admin socket path must fit sockaddr_un (108 bytes); test temp
	// dirs can be longer, so sockets and the pid file go in a short dir.
	runDir, err := os.MkdirTemp("", "cephrun")
	if err != nil {
		return nil, err
	}
	m := &Mon{
		Name:     opts.Name,
		Fsid:     opts.Fsid,
		Dir:      dir,
		ConfPath: filepath.Join(dir, "ceph.conf"),
		LogPath:  filepath.Join(dir, "mon."+opts.Name+".log"),
		runDir:   runDir,
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("testenv: stopping mon.%s: %v", m.Name, err)
		}
		if t.Failed() {
			if log, err := os.ReadFile(m.LogPath); err == nil {
				t.Logf("testenv: last lines of %s:\n%s", m.LogPath, tail(log, 6000))
			}
		}
		os.RemoveAll(runDir)
	})
	ports, err := pickPorts(2)
	if err != nil {
		return nil, err
	}
	m.Addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ports[0])
	if opts.Msgr1 {
		m.AddrV1 = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ports[1])
	}
	if err := os.WriteFile(m.ConfPath, []byte(m.conf(opts)), 0o644); err != nil {
		return nil, err
	}
	monmap := filepath.Join(dir, "monmap")
	if out, err := run(dir, 30*time.Second, "monmaptool", "--create", "--fsid", m.Fsid,
		"--addv", m.Name, m.monmapAddrs(), monmap); err != nil {
		return nil, fmt.Errorf("monmaptool: %v: %s", err, tail(out, 2000))
	}
	if out, err := run(dir, 30*time.Second, "ceph-mon", "-c", m.ConfPath, "-i", m.Name,
		"--mkfs", "--monmap", monmap); err != nil {
		return nil, fmt.Errorf("ceph-mon --mkfs: %v: %s", err, tail(out, 2000))
	}
	stderr, err := os.Create(filepath.Join(dir, "mon.stderr"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ceph-mon", "-f", "-c", m.ConfPath, "-i", m.Name)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.Env = cephEnv()
	// Pdeathsig: the daemon dies with the test binary even if the
	// cleanup never runs (a killed test).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	stderr.Close() // the child has its own copy
	if err != nil {
		return nil, fmt.Errorf("starting ceph-mon: %v", err)
	}
	m.cmd = cmd
	if err := m.waitReady(t0.Add(opts.StartTimeout)); err != nil {
		m.Stop()
		log, _ := os.ReadFile(m.LogPath)
		se, _ := os.ReadFile(filepath.Join(dir, "mon.stderr"))
		if bytes.Contains(log, []byte("Address already in use")) || bytes.Contains(se, []byte("Address already in use")) {
			return nil, fmt.Errorf("%w: %v", errBind, err)
		}
		return nil, fmt.Errorf("%v\nstderr: %s\nlog tail: %s", err, tail(se, 2000), tail(log, 3000))
	}
	m.StartupTime = time.Since(t0)
	return m, nil
}

func (m *Mon) monmapAddrs() string {
	if m.AddrV1.IsValid() {
		return "[v2:" + m.Addr.String() + ",v1:" + m.AddrV1.String() + "]"
	}
	return "[v2:" + m.Addr.String() + "]"
}

// conf renders the monitor's ceph.conf.
func (m *Mon) conf(opts MonOptions) string {
	var b strings.Builder
	w := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	b.WriteString("[global]\n")
	w("fsid", m.Fsid)
	w("mon host", m.MonHost())
	w("public addr", "127.0.0.1")
	w("auth cluster required", "none")
	w("auth service required", "none")
	w("auth client required", "none")
	w("auth allow insecure global id reclaim", "true")
	w("mon warn on insecure global id reclaim allowed", "false")
	w("ms bind msgr1", strconv.FormatBool(opts.Msgr1))
	w("ms bind msgr2", "true")
	w("ms bind ipv6", "false")
	// A taken port fails at once (StartMon retries with a new one) instead
	// of after Ceph's default 3 retries 5 s apart.
	w("ms bind retry count", "1")
	w("ms bind retry delay", "1")
	w("mon data", m.Dir+"/mon.$id")
	w("log file", m.Dir+"/$name.log")
	w("mon cluster log file", m.Dir+"/cluster.log")
	w("crash dir", m.Dir+"/crash")
	w("run dir", m.runDir)
	w("keyring", "/dev/null")
	// Map commits in ~0.1 s instead of up to 1 s (ceph-on-loopback.md).
	w("paxos propose interval", "0.1")
	w("paxos min wait", "0.01")
	w("mon data avail warn", "1")
	w("mon data avail crit", "0")
	if opts.DebugMS > 0 {
		w("debug ms", strconv.Itoa(opts.DebugMS))
	}
	for _, l := range opts.Conf {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	// Only the daemon gets an admin socket and a pid file: ceph CLI runs
	// with this conf must not fight over them.
	b.WriteString("[mon]\n")
	w("admin socket", m.runDir+"/$name.asok")
	w("pid file", m.runDir+"/$name.pid")
	return b.String()
}

// waitReady polls until the monitor is the leader of its quorum (admin
// socket mon_status), sends its msgr2 banner on a new connection, and
// serves a client (ceph health).
func (m *Mon) waitReady(deadline time.Time) error {
	asok := m.AdminSocketPath()
	var last error
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, 50*time.Millisecond) {
		if !m.Running() {
			return fmt.Errorf("ceph-mon exited during start-up (%v)", m.exitStatus())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ceph-mon not ready before the deadline: %v", last)
		}
		time.Sleep(delay)
		out, err := AdminSocket(asok, `{"prefix":"mon_status"}`, time.Second)
		if err != nil {
			last = err
			continue
		}
		var st struct {
			State string `json:"state"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			last = fmt.Errorf("mon_status: %v", err)
			continue
		}
		if st.State != "leader" {
			last = fmt.Errorf("mon_status state %q", st.State)
			continue
		}
		if err := checkBanner(m.Addr, time.Second); err != nil {
			last = err
			continue
		}
		break
	}
	// A new leader still refuses clients ("failed to assign global_id")
	// until its auth service has committed its first map: wait until a
	// real client gets through.
	left := time.Until(deadline)
	if left < time.Second {
		left = time.Second
	}
	r := RunCeph(m.ConfPath, left, "health")
	if r.Err != nil {
		return fmt.Errorf("ceph health: %v", r)
	}
	return nil
}

// checkBanner connects to addr and reads the 8-byte msgr2 banner prefix.
func checkBanner(addr netip.AddrPort, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr.String(), timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	var b [8]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return fmt.Errorf("reading banner: %v", err)
	}
	if string(b[:]) != "ceph v2\n" {
		return fmt.Errorf("unexpected banner %q", b[:])
	}
	return nil
}

// AdminSocketPath returns the path of the monitor's admin socket.
func (m *Mon) AdminSocketPath() string { return filepath.Join(m.runDir, "mon."+m.Name+".asok") }

// AdminSocket sends one JSON command (e.g. {"prefix":"mon_status"}) to a
// Ceph admin socket and returns the reply (a u32 big-endian length and
// that many bytes on the wire).
func AdminSocket(path, command string, timeout time.Duration) ([]byte, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(append([]byte(command), 0)); err != nil {
		return nil, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, fmt.Errorf("admin socket reply: %v", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > 64<<20 {
		return nil, fmt.Errorf("admin socket reply of %d bytes", n)
	}
	out := make([]byte, n)
	if _, err := io.ReadFull(c, out); err != nil {
		return nil, fmt.Errorf("admin socket reply: %v", err)
	}
	return out, nil
}

// Running reports whether the monitor process is alive (not exited, not a
// zombie). It does not reap the process.
func (m *Mon) Running() bool {
	m.stopMu.Lock()
	defer m.stopMu.Unlock()
	return m.runningLocked()
}

func (m *Mon) runningLocked() bool {
	if m.cmd == nil || m.cmd.Process == nil || m.stopped {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(m.cmd.Process.Pid) + "/stat")
	if err != nil {
		return false
	}
	// Field 3, after "(comm)", is the state; Z and X are dead.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	return stat[i+2] != 'Z' && stat[i+2] != 'X'
}

func (m *Mon) exitStatus() string {
	if m.Running() {
		return "running"
	}
	return "see " + m.LogPath + " and mon.stderr"
}

// Stop stops the monitor (SIGTERM, then SIGKILL after 3 s) and waits for
// it. It is idempotent; t.Cleanup calls it. It returns an error only if
// the process could not be stopped.
func (m *Mon) Stop() error {
	m.stopMu.Lock()
	defer m.stopMu.Unlock()
	if m.cmd == nil || m.stopped {
		return nil
	}
	p := m.cmd.Process
	if m.runningLocked() {
		p.Signal(syscall.SIGTERM)
		deadline := time.Now().Add(3 * time.Second)
		for m.runningLocked() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Kill the whole process group: the mon and anything it started.
	syscall.Kill(-p.Pid, syscall.SIGKILL)
	m.waitErr = m.cmd.Wait()
	m.stopped = true
	if m.runningProc(p.Pid) {
		return fmt.Errorf("ceph-mon pid %d still alive", p.Pid)
	}
	return nil
}

func (m *Mon) runningProc(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// Log returns the monitor's log file.
func (m *Mon) Log() string {
	b, _ := os.ReadFile(m.LogPath)
	return string(b)
}

// LogLines returns the log lines containing every one of the substrings.
func (m *Mon) LogLines(substrs ...string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(m.Log()))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
lines:
	for sc.Scan() {
		for _, s := range substrs {
			if !strings.Contains(sc.Text(), s) {
				continue lines
			}
		}
		out = append(out, sc.Text())
	}
	return out
}

// Ceph runs the ceph CLI against this monitor with its conf (see RunCeph).
func (m *Mon) Ceph(timeout time.Duration, args ...string) CLIResult {
	return RunCeph(m.ConfPath, timeout, args...)
}

// ClientConf writes a ceph.conf for the ceph CLI in dir whose mon host is
// monHost (e.g. "v2:127.0.0.1:3300" or "[v2:...,v1:...]"), with auth none
// and the CLI's log in dir; extra lines are appended to [global]. It
// returns the conf's path. fsid may be "" (the CLI learns it from the
// monitor).
func ClientConf(dir, monHost, fsid string, extra ...string) (string, error) {
	var b strings.Builder
	b.WriteString("[global]\n")
	if fsid != "" {
		fmt.Fprintf(&b, "fsid = %s\n", fsid)
	}
	fmt.Fprintf(&b, "mon host = %s\n", monHost)
	b.WriteString("auth cluster required = none\nauth service required = none\nauth client required = none\n")
	b.WriteString("keyring = /dev/null\n")
	fmt.Fprintf(&b, "log file = %s/$name.$pid.log\n", dir)
	fmt.Fprintf(&b, "admin socket = \n")
	for _, l := range extra {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	p := filepath.Join(dir, "client.conf")
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}

// CLIResult is the outcome of a ceph CLI run.
type CLIResult struct {
	Stdout, Stderr []byte
	// Err is nil on exit status 0; an *exec.ExitError or the start error
	// otherwise.
	Err error
	// TimedOut: the CLI was killed at the timeout.
	TimedOut bool
	Elapsed  time.Duration
}

// String summarises the run for test messages.
func (r CLIResult) String() string {
	return fmt.Sprintf("err=%v timedout=%v elapsed=%v\nstdout: %s\nstderr: %s",
		r.Err, r.TimedOut, r.Elapsed.Round(time.Millisecond), tail(r.Stdout, 4000), tail(r.Stderr, 4000))
}

// RunCeph runs `ceph -c conf args...` (the real CLI), killing it (and its
// process group) after timeout. --connect-timeout bounds the CLI's own
// wait for a monitor to the same timeout.
func RunCeph(conf string, timeout time.Duration, args ...string) CLIResult {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	secs := max(1, int(timeout/time.Second))
	full := append([]string{"-c", conf, "--connect-timeout", strconv.Itoa(secs)}, args...)
	cmd := exec.CommandContext(ctx, "ceph", full...)
	cmd.Env = cephEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	r := CLIResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Err: err, Elapsed: time.Since(t0)}
	r.TimedOut = ctx.Err() != nil
	return r
}

// cephEnv is the environment for Ceph tools: CEPH_ARGS and CEPH_CONF
// from the caller's environment would change what they do.
func cephEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CEPH_ARGS=") || strings.HasPrefix(kv, "CEPH_CONF=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// run runs a short tool to completion with a timeout.
func run(dir string, timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = cephEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd.CombinedOutput()
}

// pickPorts chooses the monitor's ports (a variable for the port-clash
// test).
var pickPorts = freePorts

// freePorts returns n distinct loopback TCP ports that were free a moment
// ago (the kernel picked them).
func freePorts(n int) ([]uint16, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []uint16
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, uint16(l.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}

// NewUUID returns a random (version 4) UUID in the printed form.
func NewUUID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return FormatUUID(u)
}

// FormatUUID prints 16 bytes as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func FormatUUID(u [16]byte) string {
	const hex = "0123456789abcdef"
	var b []byte
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[c>>4], hex[c&15])
	}
	return string(b)
}

// ParseUUID parses the printed form of a UUID.
func ParseUUID(s string) ([16]byte, error) {
	var u [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(s) != 36 || len(h) != 32 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("bad uuid %q", s)
	}
	for i := range u {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return u, fmt.Errorf("bad uuid %q", s)
		}
		u[i] = byte(v)
	}
	return u, nil
}

// tail returns the last n bytes of b as a string.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
