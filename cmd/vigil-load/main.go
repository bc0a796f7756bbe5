// Command vigil-load measures Vigil under load: timer lateness with many open visits,
// a storm of timers falling due at once, inbound webhook throughput, and memory per
// open visit. Each run starts its own redis-server (random port, temporary
// directory, stopped by PID at the end) and an in-process fake Twilio that stamps
// every request with its arrival time, and runs the daemons in this process as
// app.App instances sharing that Redis. See README "Performance" for the method and
// the figures.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"

	"github.com/vigil-safety/vigil/internal/app"
)

const usage = `usage: vigil-load <command> [flags]

commands:
  lateness   -visits N -replicas 3 -rate R -window 30s   due+grace -> Twilio request, per alert
  storm      -timers 10000 -replicas 3 -max-sends 100    10k timers due at one instant, panics during it
  webhooks   -rate 5000 -duration 30s [-closed]           signed VISIT/IN webhooks against one daemon
  memory     -visits N                                     Redis and daemon memory per open visit

Every command takes -runs K (repeat with a fresh Redis; the summary shows each run
and the median) and -h for its flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cleanUpOnInterrupt()
	// The daemons in this process run with the collector vigil serve sets.
	gogc := app.TuneGC()
	fmt.Printf("machine: %s/%s, %d CPUs, GOMAXPROCS=%d, GOGC=%s, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), gogc, runtime.Version())
	var err error
	switch os.Args[1] {
	case "lateness":
		err = runLateness(os.Args[2:])
	case "storm":
		err = runStorm(os.Args[2:])
	case "webhooks":
		err = runWebhooks(os.Args[2:])
	case "memory":
		err = runMemory(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil-load:", err)
		os.Exit(1)
	}
}

// command is a command's flag set with the flags every command has: -runs,
// -cpuprofile and -trace.
type command struct {
	*flag.FlagSet
	runs       *int
	cpuprofile *string
	trace      *string
}

func newCommand(name string) *command {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	return &command{
		FlagSet:    fs,
		runs:       fs.Int("runs", 3, "repeat the whole measurement (fresh Redis each time)"),
		cpuprofile: fs.String("cpuprofile", "", "write a CPU profile of the whole run (daemons included) to this file"),
		trace: fs.String("trace", "", "write an execution trace of the whole run to this file "+
			"(go tool trace -pprof=sched FILE: where goroutines waited to run)"),
	}
}

// seedWorkers registers -seed-workers, for the commands that seed visits.
func (c *command) seedWorkers() *int {
	return c.Int("seed-workers", 64, "concurrent commits while seeding")
}

// aof registers -aof, for the commands that may run Redis with persistence.
func (c *command) aof() *string {
	return c.String("aof", "", `Redis appendfsync ("everysec", "always"); empty = no persistence`)
}

// parse parses args and starts the CPU profile and the execution trace (when
// asked for); the returned function stops them.
func (c *command) parse(args []string) func() {
	c.Parse(args)
	stopProfile := start("cpuprofile", *c.cpuprofile, pprof.StartCPUProfile, pprof.StopCPUProfile)
	stopTrace := start("trace", *c.trace, trace.Start, trace.Stop)
	return func() { stopProfile(); stopTrace() }
}

// start writes a profile or trace to path (nothing when path is empty) and
// returns what ends it.
func start(what, path string, begin func(io.Writer) error, end func()) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, what+":", err)
		return func() {}
	}
	if err := begin(f); err != nil {
		fmt.Fprintln(os.Stderr, what+":", err)
		f.Close()
		return func() {}
	}
	return func() { end(); f.Close() }
}

// repeat calls once -runs times, each under a "--- run N" line, then prints every
// run's figures and their medians, the rows in the order of names.
func (c *command) repeat(once func() (map[string]float64, error), names ...string) error {
	var figs figures
	for run := range *c.runs {
		fmt.Printf("--- run %d\n", run+1)
		f, err := once()
		if err != nil {
			return err
		}
		figs.add(f, names...)
	}
	fmt.Printf("\n%s", figs.String())
	return nil
}
