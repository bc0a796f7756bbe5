package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// external is a daemon run as users run it: the vigil binary in a process of its
// own, on the world's configuration (its listen address moved to a free port). Its
// garbage collector then sees only its own heap: in this process, the load
// generator's allocations set off the daemon's collections too, and each stalls
// the requests under way for about 10 ms (see README "Performance").
type external struct {
	cmd    *exec.Cmd
	base   string
	log    string // its standard output and error
	done   chan struct{}
	forget func()
}

// startExternal runs bin serve on a copy of the world's configuration and waits
// until it is ready.
func (w *world) startExternal(bin string) (*external, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	src := filepath.Join(w.dir, "vigil.yaml")
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, err
	}
	text := strings.Replace(string(b), `listen: "127.0.0.1:0"`, fmt.Sprintf("listen: %q", addr), 1)
	cfg, err := os.CreateTemp(w.dir, "external-*.yaml")
	if err != nil {
		return nil, err
	}
	path := cfg.Name()
	_, err = cfg.WriteString(text)
	if cerr := cfg.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(strings.TrimSuffix(path, ".yaml") + ".log")
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve", "--config", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	x := &external{cmd: cmd, base: "http://" + addr, log: logf.Name(), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(x.done) }()
	x.forget = atInterrupt(x.stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-x.done:
			log, _ := os.ReadFile(x.log)
			return nil, fmt.Errorf("%s exited: %s", bin, lastLines(string(log), 10))
		default:
		}
		res, err := http.Get(x.base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return x, nil
			}
		}
		if time.Now().After(deadline) {
			x.stop()
			return nil, fmt.Errorf("%s not ready after 15 s", bin)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startExternals starts n daemons (startExternal), stopping those started when one
// fails.
func (w *world) startExternals(bin string, n int) ([]*external, error) {
	var out []*external
	for range n {
		x, err := w.startExternal(bin)
		if err != nil {
			stopExternals(out)
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

func stopExternals(xs []*external) {
	for _, x := range xs {
		x.stop()
	}
}

// errors counts the error lines the daemon has logged.
func (x *external) errors() int {
	b, _ := os.ReadFile(x.log)
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, `"level":"ERROR"`) {
			n++
		}
	}
	return n
}

// pids are the daemons' process IDs.
func pids(xs []*external) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = x.cmd.Process.Pid
	}
	return out
}

// stop ends the daemon by its PID (SIGTERM, then SIGKILL).
func (x *external) stop() {
	x.forget()
	terminate(x.cmd.Process, x.done, 15*time.Second)
}

// Gather reads the daemon's /metrics, for counter.
func (x *external) Gather() ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, x.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", strconv.Itoa(res.StatusCode))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		return nil, err
	}
	out := make([]*dto.MetricFamily, 0, len(mfs))
	for _, mf := range mfs {
		out = append(out, mf)
	}
	return out, nil
}
