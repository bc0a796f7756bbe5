package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a throwaway redis-server owned by one run: its own random port on
// 127.0.0.1, its own data directory, stopped by its PID at the end.
//
// internal/redistest does the same for tests but needs a testing.TB; this is the
// few lines a command needs (no fallback: a benchmark against miniredis would
// measure the wrong thing).
type redisServer struct {
	cmd    *exec.Cmd
	dir    string
	addr   string
	done   chan struct{}
	forget func() // unregisters the clean-up on interrupt
}

// startRedis runs redis-server with persistence off (the figures are about Vigil,
// not the disk; see README "Performance" for what AOF costs) unless aof names an
// appendfsync policy ("everysec" or "always").
func startRedis(aof string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not on PATH: %w", err)
	}
	dir, err := os.MkdirTemp("", "vigil-load-redis-")
	if err != nil {
		return nil, err
	}
	var errs []error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
			"--daemonize", "no", "--dir", dir, "--save", "", "--logfile", dir + "/redis.log"}
		if aof != "" {
			args = append(args, "--appendonly", "yes", "--appendfsync", aof)
		} else {
			args = append(args, "--appendonly", "no")
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
		r := &redisServer{cmd: cmd, dir: dir, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(r.done) }()
		r.forget = atInterrupt(r.stop)
		if err := r.waitReady(10 * time.Second); err != nil {
			r.stop()
			errs = append(errs, err)
			continue
		}
		return r, nil
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("redis-server did not start: %w", errors.Join(errs...))
}

func (r *redisServer) waitReady(timeout time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-r.done:
			log, _ := os.ReadFile(r.dir + "/redis.log")
			return fmt.Errorf("redis-server exited: %s", lastLines(string(log), 10))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server not ready after %s: %w", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// url is the redis:// URL of database 0.
func (r *redisServer) url() string { return "redis://" + r.addr + "/0" }

// pid is the server's process ID.
func (r *redisServer) pid() int { return r.cmd.Process.Pid }

// stop ends the server by its PID (SIGTERM, then SIGKILL) and removes its directory.
func (r *redisServer) stop() {
	r.forget()
	terminate(r.cmd.Process, r.done, 10*time.Second)
	os.RemoveAll(r.dir)
}

// terminate sends p SIGTERM and waits until done is closed (the process was
// waited for), killing it after grace.
func terminate(p *os.Process, done <-chan struct{}, grace time.Duration) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = p.Kill()
		<-done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// redisInfo reads one field of INFO section.
func redisInfo(ctx context.Context, c *redis.Client, section, field string) (string, error) {
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO %s has no %s", section, field)
}

// cmdStats are Redis's per-command counters (INFO commandstats): calls and µs.
type cmdStats map[string][2]int64

// commandStats reads INFO commandstats (empty if it cannot).
func commandStats(ctx context.Context, c *redis.Client) cmdStats {
	out := cmdStats{}
	s, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return out
	}
	for _, line := range strings.Split(s, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		var v [2]int64
		for _, kv := range strings.Split(rest, ",") {
			k, val, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(val, 10, 64)
			switch k {
			case "calls":
				v[0] = n
			case "usec":
				v[1] = n
			}
		}
		out[name] = v
	}
	return out
}

func (a cmdStats) sub(b cmdStats) cmdStats {
	out := cmdStats{}
	for k, v := range a {
		out[k] = [2]int64{v[0] - b[k][0], v[1] - b[k][1]}
	}
	return out
}

// per lists the top commands by time spent in Redis, per unit of work. There is no
// total: INFO commandstats counts a script's time under evalsha and again, in
// part, under each command it calls.
func (a cmdStats) per(n, top int) string {
	names := make([]string, 0, len(a))
	for k, v := range a {
		if v[0] > 0 {
			names = append(names, k)
		}
	}
	sort.Slice(names, func(i, j int) bool { return a[names[i]][1] > a[names[j]][1] })
	parts := []string{"(evalsha includes the commands its scripts call, listed too)"}
	for _, k := range names[:min(top, len(names))] {
		parts = append(parts, fmt.Sprintf("%s %.1f×/%.0f µs", k, float64(a[k][0])/float64(n), float64(a[k][1])/float64(n)))
	}
	return strings.Join(parts, ", ")
}
