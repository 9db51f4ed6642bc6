package leakcheck

import (
	"os"
	"testing"
	"time"
)

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()                       {}
func (f *fakeT) Errorf(string, ...interface{}) { f.failed = true }

func TestDetectsGoroutineLeak(t *testing.T) {
	s := Take()
	stop := make(chan struct{})
	go func() { <-stop }()
	ft := &fakeT{}
	s.Check(ft)
	close(stop)
	if !ft.failed {
		t.Fatal("leaked goroutine not reported")
	}
	Take().Check(t)
}

func TestDetectsFDLeak(t *testing.T) {
	s := Take()
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	ft := &fakeT{}
	s.Check(ft)
	f.Close()
	if !ft.failed {
		t.Fatal("leaked fd not reported")
	}
}

func TestCleanPasses(t *testing.T) {
	s := Take()
	done := make(chan struct{})
	go func() { time.Sleep(5 * time.Millisecond); close(done) }()
	<-done
	s.Check(t)
}
