package app

import (
	"os"
	"runtime/debug"
	"strconv"
)

// GCPercent is the garbage collector's target (GOGC) the daemon runs with unless the
// GOGC environment variable says otherwise. Vigil keeps its state in Redis, so its
// live heap is a few megabytes, and at Go's default of 100 a busy daemon collects
// every ~0.1 s (5,000 webhooks a second); each collection slows the requests under
// way by some milliseconds. At 400 it collects a quarter as often, for a heap of a
// few tens of megabytes: in vigil-load webhooks -daemon, p99 9.1-10.4 ms became
// 7.6-8.5 ms (README "Performance").
const GCPercent = 400

// TuneGC sets GCPercent unless GOGC is set. It returns the value in force.
func TuneGC() string {
	if v := os.Getenv("GOGC"); v != "" {
		return v
	}
	debug.SetGCPercent(GCPercent)
	return strconv.Itoa(GCPercent)
}
