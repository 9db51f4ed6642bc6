package main

import (
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// MSGR_DEBUG_STACKS=1 in the environment makes SIGUSR1 print every
// goroutine's stack to stderr: the way to see where a C program using the
// library hangs (a c-shared Go runtime leaves SIGQUIT to the host).
func init() {
	if os.Getenv("MSGR_DEBUG_STACKS") == "" {
		return
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	go func() {
		buf := make([]byte, 1<<20)
		for range ch {
			n := runtime.Stack(buf, true)
			os.Stderr.Write(buf[:n])
		}
	}()
}
