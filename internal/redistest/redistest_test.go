package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStartServesSetAndGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := Start(t)

	if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	got, err := s.Client().Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("GET k = %q, %v; want \"v\"", got, err)
	}

	// The URL must reach the same server as Addr.
	if want := "redis://" + s.Addr() + "/0"; s.URL() != want {
		t.Fatalf("URL() = %q, want %q", s.URL(), want)
	}
	opt, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", s.URL(), err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET k via URL = %q, %v; want \"v\"", got, err)
	}
}

func TestRestartWithAOFKeepsKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := Start(t, WithAOF())

	if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	s.Restart()
	got, err := s.Client().Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("GET k after Restart = %q, %v; want \"v\"", got, err)
	}
}

func TestKillWithAOFKeepsAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := Start(t, WithAOF())

	if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	// appendfsync always: an acknowledged write is on disk before the
	// crash, so SIGKILL must not lose it.
	s.Kill()
	s.Restart()
	got, err := s.Client().Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("GET k after Kill and Restart = %q, %v; want \"v\"", got, err)
	}
}

func TestRestartWithoutAOFLosesData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := Start(t)
	if s.Embedded() {
		t.Skip("miniredis keeps its data across Restart")
	}

	if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	// Without AOF and with --save "" nothing reaches disk, which is what
	// makes the AOF tests above mean something.
	s.Restart()
	if got, err := s.Client().Get(ctx, "k").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET k after Restart = %q, %v; want redis.Nil", got, err)
	}
}

func TestKillStopsAnswering(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := Start(t)
	if err := s.Client().Ping(ctx).Err(); err != nil {
		t.Fatalf("PING before Kill: %v", err)
	}

	s.Kill()
	// Kill waits for the process, so the port is closed by now.
	if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatalf("dial %s after Kill succeeded; want refused", s.Addr())
	}
}

func TestParallelServersGetDifferentPorts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := Start(t), Start(t)

	if a.Addr() == b.Addr() {
		t.Fatalf("both servers on %s", a.Addr())
	}
	if err := a.Client().Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatalf("SET on a: %v", err)
	}
	if got, err := b.Client().Get(ctx, "k").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET k on b = %q, %v; want redis.Nil", got, err)
	}
}

func TestPauseAndResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := Start(t)
	if s.Embedded() {
		t.Skip("miniredis cannot be paused")
	}
	c := redis.NewClient(&redis.Options{
		Addr:        s.Addr(),
		ReadTimeout: 200 * time.Millisecond,
		MaxRetries:  -1,
	})
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING before Pause: %v", err)
	}

	s.Pause()
	// A stopped process accepts nothing and answers nothing, so the read
	// timeout is the only way the PING ends.
	var nerr net.Error
	if err := c.Ping(ctx).Err(); !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Fatalf("PING while paused: %v; want a timeout", err)
	}

	s.Resume()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}
}

func TestCleanupStopsPausedServer(t *testing.T) {
	t.Parallel()
	var addr string
	t.Run("paused", func(t *testing.T) {
		s := Start(t)
		if s.Embedded() {
			t.Skip("miniredis cannot be paused")
		}
		addr = s.Addr()
		s.Pause()
	})
	if addr == "" {
		t.Skip("subtest skipped")
	}
	// The subtest's cleanups have run: the server, left stopped by
	// SIGSTOP, must have been continued, terminated and reaped.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("dial %s after cleanup succeeded; want refused", addr)
	}
}

// The fallback cannot be tested in parallel: it needs PATH without
// redis-server, and t.Setenv forbids t.Parallel.
func TestFallbackToMiniredisOutsideCI(t *testing.T) {
	ctx := context.Background()
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", "")

	s := Start(t)
	if !s.Embedded() {
		t.Fatalf("Embedded() = false with no redis-server on PATH")
	}
	if err := s.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	addr := s.Addr()
	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("Addr after Restart = %s, want %s", s.Addr(), addr)
	}
	if got, err := s.Client().Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET k after Restart = %q, %v; want \"v\"", got, err)
	}
}

func TestMissingBinaryFailsInCI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", "true")

	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	// Fatalf ends the goroutine it runs on, so Start runs on its own.
	go func() {
		defer close(done)
		Start(rec)
	}()
	<-done

	if !rec.failed {
		t.Fatalf("Start with CI set and no redis-server did not fail the test")
	}
	if !strings.Contains(rec.msg, "CI requires it") {
		t.Fatalf("Fatalf message = %q; want it to say CI requires redis-server", rec.msg)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the failure instead
// of failing the real test.
type fatalRecorder struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
