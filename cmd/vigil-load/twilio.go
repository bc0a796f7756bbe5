package main

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// request is one POST to the fake Twilio, stamped on arrival.
type request struct {
	At   time.Time
	Call bool // Calls.json rather than Messages.json
	To   string
	Body string // SMS body; for a call, its TwiML
}

// fakeTwilio is the smallest server that speaks enough of Twilio's REST API for
// Vigil's client: it stamps every POST .../Messages.json and .../Calls.json with the
// time it arrived (before reading the body, so the figure is when the request was
// issued, not when Twilio would have accepted it) and answers 201 with a SID.
//
// internal/sms/smstest is the full fake (faults, callbacks) but needs a testing.TB;
// a load run needs only arrival times, recorded cheaply.
type fakeTwilio struct {
	srv *http.Server
	url string
	seq atomic.Int64

	mu   sync.Mutex
	reqs []request
	cond *sync.Cond
}

func startTwilio() (*fakeTwilio, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &fakeTwilio{url: "http://" + l.Addr().String()}
	f.cond = sync.NewCond(&f.mu)
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 10 * time.Second}
	go f.srv.Serve(l)
	return f, nil
}

func (f *fakeTwilio) serve(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	call := strings.HasSuffix(r.URL.Path, "/Calls.json")
	if r.Method != http.MethodPost || !(call || strings.HasSuffix(r.URL.Path, "/Messages.json")) {
		http.Error(w, `{"code":20404,"message":"not found","status":404}`, http.StatusNotFound)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, `{"code":21100,"message":"bad form","status":400}`, http.StatusBadRequest)
		return
	}
	rq := request{At: at, Call: call, To: r.PostForm.Get("To"), Body: r.PostForm.Get("Body")}
	if call {
		rq.Body = r.PostForm.Get("Twiml")
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, rq)
	f.cond.Broadcast()
	f.mu.Unlock()
	prefix := "SM"
	if call {
		prefix = "CA"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"sid":"%s%032x","status":"queued","to":%q}`, prefix, f.seq.Add(1), rq.To)
}

// requests returns a copy of every request so far, in arrival order.
func (f *fakeTwilio) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

// count is how many requests arrived.
func (f *fakeTwilio) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// reset forgets every request.
func (f *fakeTwilio) reset() {
	f.mu.Lock()
	f.reqs = nil
	f.mu.Unlock()
}

// waitCount waits until at least n requests arrived or the deadline passes, and
// reports whether they did.
func (f *fakeTwilio) waitCount(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	stop := time.AfterFunc(timeout, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	defer stop.Stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.reqs) < n {
		if time.Now().After(deadline) {
			return false
		}
		f.cond.Wait()
	}
	return true
}

func (f *fakeTwilio) close() { f.srv.Close() }
