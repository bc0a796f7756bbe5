// Package redistest starts a throwaway redis-server for a test: its own
// random port on 127.0.0.1, its own data directory under t.TempDir(), and a
// t.Cleanup that stops it by PID. Tests of any package import it so that none
// of them ever touches a shared Redis.
//
// When no redis-server binary is on PATH and the CI environment variable is
// unset, Start falls back to an in-process miniredis and says so in the test
// log; with CI set, a missing binary fails the test instead, so CI cannot go
// green on the fallback without anyone noticing.
package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

const (
	// readyTimeout bounds how long a redis-server may take to log that it
	// accepts connections, AOF loading included.
	readyTimeout = 15 * time.Second
	// stopTimeout is how long SIGTERM is given before SIGKILL follows.
	stopTimeout = 10 * time.Second
	// portAttempts is how many random ports Start tries: the port is free
	// when picked but another process may take it before redis binds it.
	portAttempts = 5
	// readyLine is what redis-server logs once it serves clients (after
	// loading any AOF), which is the signal Start waits for.
	readyLine = "Ready to accept connections"
	// logTailLines is how many lines of server output are kept to explain
	// a failed start.
	logTailLines = 40
)

// Option changes how Start runs the server.
type Option func(*options)

type options struct {
	aof  bool
	args []string
	// conf, when set, is a configuration file passed first on the command
	// line (a sentinel needs one it can rewrite); sentinel runs the server in
	// sentinel mode. ready replaces readyLine (a sentinel logs another line).
	conf     string
	sentinel bool
	ready    string
	// password, sentinelPassword, tls and clientAuth: secure.go.
	password         string
	sentinelPassword string
	tls              *TLSFiles
	clientAuth       bool
}

// WithAOF turns on the append-only file with appendfsync always, so that
// every acknowledged write survives Stop, Kill and Restart.
func WithAOF() Option {
	return func(o *options) { o.aof = true }
}

// WithArgs appends raw redis-server arguments (for example
// "--maxmemory", "10mb") after the defaults; later arguments win. They are
// ignored by the miniredis fallback. Do not pass --logfile or --daemonize:
// Start waits for the readiness line on the server's stdout.
func WithArgs(args ...string) Option {
	return func(o *options) { o.args = append(o.args, args...) }
}

// Server is one redis-server (or the miniredis fallback) owned by a test.
//
// Start, Stop, Restart and, on the fallback, Pause and Resume may stop the
// test, so they must be called from the goroutine running it. Kill, Pause
// and Resume on a real server only report errors and are safe to call from
// any goroutine, which chaos tests need.
type Server struct {
	t      testing.TB
	opts   options
	bin    string
	dir    string
	port   int
	client *redis.Client

	mu     sync.Mutex
	proc   *process             // nil when the real server is not running
	paused bool                 // SIGSTOP sent and not yet SIGCONT
	mini   *miniredis.Miniredis // non-nil on the fallback
}

// Start runs a fresh server for t and registers its shutdown with
// t.Cleanup. It fails the test if the server cannot be started.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{t: t}
	for _, o := range opts {
		o(&s.opts)
	}

	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not installed; CI requires it: %v", err)
		}
		s.startMini()
	} else {
		s.bin = bin
		s.dir = t.TempDir()
		s.startReal()
	}

	s.client = redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.opts.password, TLSConfig: s.clientTLS()})
	// Cleanups run last-in first-out: the client closes before the server
	// goes away.
	t.Cleanup(func() {
		if err := s.client.Close(); err != nil {
			t.Logf("redistest: close client: %v", err)
		}
	})
	return s
}

func (s *Server) startMini() {
	s.t.Helper()
	s.t.Logf("redistest: WARNING: redis-server not found on PATH; falling back to miniredis. " +
		"Results may differ from real Redis (no AOF, no Lua edge cases, no chaos). " +
		"Install redis-server to run the real thing.")
	m := miniredis.NewMiniRedis()
	var err error
	if f := s.opts.tls; f != nil {
		cert, cerr := tls.LoadX509KeyPair(f.Cert, f.Key)
		if cerr != nil {
			s.t.Fatalf("redistest: load TLS certificate: %v", cerr)
		}
		err = m.StartTLS(&tls.Config{Certificates: []tls.Certificate{cert}})
	} else {
		err = m.Start()
	}
	if err != nil {
		s.t.Fatalf("redistest: start miniredis: %v", err)
	}
	if s.opts.password != "" {
		m.RequireAuth(s.opts.password)
	}
	s.mini = m
	port, err := strconv.Atoi(m.Port())
	if err != nil {
		m.Close()
		s.t.Fatalf("redistest: miniredis port %q: %v", m.Port(), err)
	}
	s.port = port
	s.t.Cleanup(m.Close)
}

func (s *Server) startReal() {
	s.t.Helper()
	var errs []error
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			s.t.Fatalf("redistest: pick a port: %v", err)
		}
		p, err := s.spawn(port)
		if err == nil {
			s.port = port
			s.proc = p
			s.t.Cleanup(s.cleanup)
			return
		}
		errs = append(errs, err)
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	s.t.Fatalf("redistest: start redis-server: %v", errors.Join(errs...))
}

// cleanup stops the server at the end of the test whatever state the test
// left it in.
func (s *Server) cleanup() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	if err := s.stopLocked(); err != nil {
		s.t.Logf("redistest: cleanup: %v", err)
	}
}

// Addr returns the server's host:port. It stays the same across Restart.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL returns a redis:// URL for database 0 of the server (rediss:// with
// WithTLS), with the password of WithPassword.
func (s *Server) URL() string {
	u := url.URL{Scheme: "redis", Host: s.Addr(), Path: "/0"}
	if s.opts.tls != nil {
		u.Scheme = "rediss"
	}
	if s.opts.password != "" {
		u.User = url.UserPassword("", s.opts.password)
	}
	return u.String()
}

// Client returns a client connected to the server. It is closed at cleanup;
// callers must not close it. It reconnects by itself after Restart.
func (s *Server) Client() *redis.Client {
	return s.client
}

// Embedded reports whether the server is the in-process miniredis fallback
// rather than a redis-server process.
func (s *Server) Embedded() bool {
	return s.mini != nil
}

// Stop shuts the server down gracefully (SIGTERM, then wait) and keeps its
// data directory, so that Restart brings back what the AOF holds. It falls
// back to SIGKILL, and fails the test, if the server does not exit in time.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.t.Helper()
	if s.mini != nil {
		s.mini.Close()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	if err := s.stopLocked(); err != nil {
		s.t.Errorf("redistest: stop: %v", err)
	}
}

// Kill ends the server with SIGKILL and waits for it, as a crash would.
// With WithAOF every acknowledged write is on disk and Restart restores it.
// On the fallback it closes miniredis, which keeps its data in memory.
func (s *Server) Kill() {
	s.t.Helper()
	if s.mini != nil {
		s.mini.Close()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	if err := s.proc.signal(syscall.SIGKILL); err != nil {
		s.t.Errorf("redistest: kill pid %d: %v", s.proc.pid(), err)
	}
	<-s.proc.exited
	s.proc, s.paused = nil, false
}

// Restart stops the server gracefully if it is running and starts it again
// on the same port with the same data directory. On the fallback, miniredis
// restarts with its in-memory data intact, AOF or not.
func (s *Server) Restart() {
	s.t.Helper()
	if s.mini != nil {
		s.mini.Close()
		if err := s.mini.Restart(); err != nil {
			s.t.Fatalf("redistest: restart miniredis: %v", err)
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		if err := s.stopLocked(); err != nil {
			s.t.Errorf("redistest: restart: %v", err)
		}
	}
	p, err := s.spawn(s.port)
	if err != nil {
		s.t.Fatalf("redistest: restart redis-server on port %d: %v", s.port, err)
	}
	s.proc = p
}

// Pause freezes the server with SIGSTOP: connections stay open but nothing
// is answered until Resume. The fallback cannot be paused, so there Pause
// skips the test.
func (s *Server) Pause() {
	s.t.Helper()
	if s.mini != nil {
		s.t.Skip("redistest: Pause needs a real redis-server; running on the miniredis fallback")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Errorf("redistest: pause: server is not running")
		return
	}
	if err := s.proc.signal(syscall.SIGSTOP); err != nil {
		s.t.Errorf("redistest: pause pid %d: %v", s.proc.pid(), err)
		return
	}
	s.paused = true
}

// Resume lets a paused server run again (SIGCONT).
func (s *Server) Resume() {
	s.t.Helper()
	if s.mini != nil {
		s.t.Skip("redistest: Resume needs a real redis-server; running on the miniredis fallback")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Errorf("redistest: resume: server is not running")
		return
	}
	if err := s.proc.signal(syscall.SIGCONT); err != nil {
		s.t.Errorf("redistest: resume pid %d: %v", s.proc.pid(), err)
		return
	}
	s.paused = false
}

// stopLocked sends SIGTERM and waits, escalating to SIGKILL after
// stopTimeout. The caller holds s.mu and s.proc is non-nil. The error says
// whether the server had to be killed, which may have lost writes.
func (s *Server) stopLocked() error {
	p := s.proc
	s.proc = nil
	defer func() { s.paused = false }()

	if err := p.signal(syscall.SIGTERM); err != nil {
		// It may have exited on its own already; exited tells.
		select {
		case <-p.exited:
			return nil
		default:
			return fmt.Errorf("SIGTERM pid %d: %w", p.pid(), err)
		}
	}
	// A stopped process only acts on SIGTERM once continued.
	if s.paused {
		_ = p.signal(syscall.SIGCONT)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
		return nil
	case <-timer.C:
	}
	_ = p.signal(syscall.SIGKILL)
	<-p.exited
	return fmt.Errorf("pid %d ignored SIGTERM for %s and was killed; last output:\n%s",
		p.pid(), stopTimeout, p.log.String())
}

// errPortTaken marks a start that failed only because the port was in use.
var errPortTaken = errors.New("port already in use")

// spawn runs redis-server on port and returns once it logs readiness. On
// failure the process has been reaped.
func (s *Server) spawn(port int) (*process, error) {
	var args []string
	if s.opts.conf != "" {
		args = append(args, s.opts.conf)
	}
	if s.opts.sentinel {
		args = append(args, "--sentinel")
	}
	args = append(args,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--save", "",
	)
	if s.opts.aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, s.opts.secureArgs(strconv.Itoa(port))...)
	args = append(args, s.opts.args...)

	// Output goes through an os.Pipe rather than cmd.StdoutPipe so that
	// reaping the process never waits on reading it: redis' forked
	// children may hold the pipe open after the parent exits.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create output pipe: %w", err)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout = w
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("exec %s: %w", s.bin, err)
	}
	w.Close()

	p := &process{
		cmd:     cmd,
		ready:   make(chan struct{}),
		drained: make(chan struct{}),
		exited:  make(chan struct{}),
		log:     &logTail{max: logTailLines},
	}
	ready := readyLine
	if s.opts.ready != "" {
		ready = s.opts.ready
	}
	go p.readOutput(r, ready)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()

	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case <-p.ready:
		return p, nil
	case <-p.exited:
		// Give the reader a moment to take in the last lines, which
		// say why redis gave up; no forked child holds the pipe yet.
		drain := time.NewTimer(time.Second)
		defer drain.Stop()
		select {
		case <-p.drained:
		case <-drain.C:
		}
		out := p.log.String()
		if strings.Contains(out, "Address already in use") {
			return nil, fmt.Errorf("port %d: %w", port, errPortTaken)
		}
		return nil, fmt.Errorf("redis-server exited before ready (%v); last output:\n%s", p.waitErr, out)
	case <-timer.C:
		_ = p.signal(syscall.SIGKILL)
		<-p.exited
		return nil, fmt.Errorf("redis-server not ready after %s; last output:\n%s", readyTimeout, p.log.String())
	}
}

// process is one run of redis-server.
type process struct {
	cmd     *exec.Cmd
	ready   chan struct{} // closed when readyLine is seen
	drained chan struct{} // closed when the output pipe reaches EOF
	exited  chan struct{} // closed once the process is reaped
	waitErr error         // set before exited is closed
	log     *logTail
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// signal sends sig to this process only, by PID.
func (p *process) signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

func (p *process) readOutput(r *os.File, readyLine string) {
	defer close(p.drained)
	defer r.Close()
	sc := bufio.NewScanner(r)
	seen := false
	for sc.Scan() {
		line := sc.Text()
		p.log.add(line)
		if !seen && strings.Contains(line, readyLine) {
			seen = true
			close(p.ready)
		}
	}
}

// logTail keeps the last max lines of server output.
type logTail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (l *logTail) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if len(l.lines) > l.max {
		l.lines = l.lines[len(l.lines)-l.max:]
	}
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// freePort asks the kernel for an unused port on 127.0.0.1. The port is
// released before redis binds it, hence the retries in startReal.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
