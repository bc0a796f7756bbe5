package app_test

import (
	"os"
	"strings"
	"testing"

	"github.com/vigil-safety/vigil/internal/config"
)

// A SIGHUP whose file no longer lists an officer who is out on a visit does not cut
// them off: their PANIC is still raised with their name and phone, and they are
// removed at the first reload after the visit closes. An officer with nothing open
// is removed at once. (Before, the reload dropped her: her PANIC was answered as
// from an unknown number, and the open alert's next round lost her name and phone.)
func TestReloadKeepsAnOfficerOnAVisit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	contains(t, "VISIT reply", e.sms(d, janePhone, "VISIT 45 14 Elm Road"), "14 Elm Road")

	b, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	yaml := string(b)
	i := strings.Index(yaml, "    - id: jdoe")
	j := strings.Index(yaml, "    - id: asmith")
	if i < 0 || j < i {
		t.Fatal("test config does not list jdoe then asmith")
	}
	withoutBoth := yaml[:i]
	reload := func(text string) {
		t.Helper()
		if err := os.WriteFile(e.cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(e.cfg, nil)
		if err != nil {
			t.Fatalf("config: %v", err)
		}
		if err := d.Reload(t.Context(), cfg); err != nil {
			t.Fatalf("reload: %v", err)
		}
	}
	reload(withoutBoth)

	contains(t, "STATUS after the reload", e.sms(d, janePhone, "STATUS"), "14 Elm Road")
	contains(t, "PANIC after the reload", e.sms(d, janePhone, "PANIC"), "School office")
	msgs := e.waitFor(1)
	contains(t, "panic alert to the office", msgs[0].Body, "PANIC", "Jane Doe", janePhone, "14 Elm Road")
	contains(t, "Alex, removed with nothing open", e.sms(d, alexPhone, "STATUS"), "not registered")

	contains(t, "IN", e.sms(d, janePhone, "IN"), "Checked in")
	reload(withoutBoth)
	contains(t, "Jane after the visit closed and a reload", e.sms(d, janePhone, "STATUS"), "not registered")
}
