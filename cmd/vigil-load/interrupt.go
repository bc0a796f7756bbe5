package main

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// undo holds what an interrupted run must clean up: the redis-servers it started
// and its temporary directories. Without it, a Ctrl-C or a SIGTERM left each run's
// redis-server running (it is not in the process group's foreground job when the
// command runs in the background) and its directory behind.
var undo struct {
	sync.Mutex
	next int
	fns  map[int]func()
}

// atInterrupt registers f to run if the command is interrupted; forget unregisters
// it (call it once f's work has been done the normal way).
func atInterrupt(f func()) (forget func()) {
	undo.Lock()
	defer undo.Unlock()
	if undo.fns == nil {
		undo.fns = map[int]func(){}
	}
	id := undo.next
	undo.next++
	undo.fns[id] = f
	return func() {
		undo.Lock()
		delete(undo.fns, id)
		undo.Unlock()
	}
}

// cleanUpOnInterrupt makes SIGINT and SIGTERM run every registered clean-up, then
// exit with status 1.
func cleanUpOnInterrupt() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "vigil-load: %s: stopping the redis-servers it started and removing their directories\n", s)
		undo.Lock()
		fns := undo.fns
		undo.fns = nil
		undo.Unlock()
		var wg sync.WaitGroup
		for _, f := range fns {
			wg.Go(f)
		}
		wg.Wait()
		os.Exit(1)
	}()
}
