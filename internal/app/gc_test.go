package app_test

import (
	"runtime/debug"
	"testing"

	"github.com/vigil-safety/vigil/internal/app"
)

// The daemon collects garbage at GOGC=400 unless GOGC says otherwise, and an
// operator's GOGC is left as it is.
func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	t.Setenv("GOGC", "")
	if got := app.TuneGC(); got != "400" {
		t.Errorf("TuneGC without GOGC = %q, want 400", got)
	}
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("GC percent without GOGC = %d, want 400", got)
	}

	t.Setenv("GOGC", "150")
	if got := app.TuneGC(); got != "150" {
		t.Errorf("TuneGC with GOGC=150 = %q, want 150", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent with GOGC set = %d, want it left alone (100)", got)
	}
}
