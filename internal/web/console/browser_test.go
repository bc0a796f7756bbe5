package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigil-safety/vigil/internal/sms/smstest"
	"github.com/vigil-safety/vigil/internal/web/console"
)

// findChromium is Debian's chromium (never a downloaded browser).
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newChrome starts a headless chromium with a fresh profile. Without chromium the
// test fails in CI (which installs it) and is skipped, loudly, elsewhere.
func newChrome(t *testing.T, width, height int) context.Context {
	t.Helper()
	path := findChromium()
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed, and CI requires the browser tests: .ci/run installs it (apt-get install chromium)")
		}
		t.Skip("!!! SKIPPING THE BROWSER TEST: chromium is not installed (apt-get install chromium); CI runs it !!!")
	}
	// Chromium's helper processes can still write to its profile for a moment
	// after the browser has exited, and t.TempDir's cleanup fails the test when
	// a file appears while it removes the directory: remove it here, trying
	// again until those writes stop. Registered first, so it runs after the
	// browser is stopped.
	profile, err := os.MkdirTemp("", "vigil-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if err = os.RemoveAll(profile); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("chromium profile %s left behind: %v", profile, err)
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(width, height),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// screenshot saves the page under docs/ when VIGIL_SCREENSHOTS is set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("VIGIL_SCREENSHOTS") == "" {
		return
	}
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join("..", "..", "..", "docs", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s", path)
}

// run runs browser actions, failing the test with what was being done.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var text string
		_ = chromedp.Run(ctx, chromedp.Text("body", &text, chromedp.ByQuery))
		t.Fatalf("%s: %v\npage:\n%s", what, err, text)
	}
}

// flash waits for the page to say text in its confirmation (a new page after a form:
// the old page's message does not count).
func flash(text string) chromedp.Action {
	js := fmt.Sprintf(`(function(){var f=document.querySelector(".flash-ok");return !!f && f.textContent.indexOf(%q) >= 0;})()`, text)
	return chromedp.ActionFunc(func(ctx context.Context) error {
		deadline := time.Now().Add(10 * time.Second)
		for {
			// The page is navigating: an evaluation may fail until the new one is in.
			var ok bool
			if err := chromedp.Evaluate(js, &ok).Do(ctx); err == nil && ok {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the page never said %q", text)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// within bounds one step that waits for the page.
func within(ctx context.Context, d time.Duration, actions ...chromedp.Action) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		c, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return chromedp.Run(c, actions...)
	})
}

// A person in the office, in a real browser: sign in, start a visit for an officer,
// watch it go overdue on the board without reloading, take charge, resolve; then the
// business manager adds an officer with a vehicle, and the vehicle is in that
// officer's next alert.
func TestBrowserOfficeDay(t *testing.T) {
	e := newEnv(t)
	e.addUser("Sam Office", console.RoleAdmin, "bishop-lonsdale")
	ctx := newChrome(t, 1100, 900)
	q := chromedp.ByQuery

	run(t, ctx, "sign in",
		chromedp.Navigate(e.base+"/"),
		chromedp.WaitVisible("#name", chromedp.ByID),
		chromedp.SendKeys("#name", "Sam Office", chromedp.ByID),
		chromedp.SendKeys("#password", password, chromedp.ByID),
		chromedp.Click(`form[action="/login"] button[type=submit]`, q),
		chromedp.WaitVisible("#live", chromedp.ByID),
	)

	var board string
	run(t, ctx, "start a visit",
		chromedp.SetValue("#officer", "jdoe", chromedp.ByID),
		chromedp.SendKeys("#destination", "14 Elm Road", chromedp.ByID),
		chromedp.SetValue("#duration", "45", chromedp.ByID),
		chromedp.SetValue("#kind", "safe_and_well", chromedp.ByID),
		chromedp.Click(`form[action="/visits"] button[type=submit]`, q),
		flash("Visit started for Jane Doe"),
		liveText(&board),
	)
	contains(t, "board", board, "Jane Doe", "14 Elm Road", "due 10:45", "due in 45 min", "No open alerts.")

	// Mark the page: a reload would lose the mark.
	var mark bool
	run(t, ctx, "mark the page", chromedp.Evaluate(`window.vigilMark = true`, &mark))

	e.advance(51 * time.Minute) // past due + grace: the scheduler raises the alert
	started := time.Now()
	run(t, ctx, "see the alert appear without reloading",
		within(ctx, 10*time.Second, chromedp.WaitVisible("#live article.alert", q)),
		chromedp.WaitVisible("#new-alert", q),
		liveText(&board),
		chromedp.Evaluate(`window.vigilMark === true`, &mark),
	)
	t.Logf("alert on the board %s after the clock moved", time.Since(started).Round(100*time.Millisecond))
	if !mark {
		t.Fatalf("the page reloaded to show the alert")
	}
	contains(t, "board with an alert", board, "OVERDUE", "Jane Doe", "14 Elm Road", "Blue Ford Fiesta AB12 CDE",
		"overdue", "nobody has taken charge", "School office (office)")
	var cls string
	run(t, ctx, "read the visit's colour", chromedp.AttributeValue("#live li.visit", "class", &cls, nil, q))
	if !strings.Contains(cls, "red") {
		t.Errorf("overdue visit has class %q, want red", cls)
	}
	screenshot(t, ctx, "board.png")

	run(t, ctx, "take charge",
		chromedp.Click(`#live form[action$="/ack"] button`, q),
		flash("You have taken charge"),
		liveText(&board),
	)
	contains(t, "board after ACK", board, "Sam Office since")

	run(t, ctx, "resolve",
		chromedp.SendKeys(`#live input[name="note"]`, "Phoned Jane: safe, her phone had died", q),
		chromedp.Click(`#live form[action$="/resolve"] button`, q),
		flash("resolved"),
		liveText(&board),
	)
	// Resolving the alert closes its visit as safe.
	contains(t, "board after resolve", board, "No open alerts.", "Nobody is out on a visit.")

	// The business manager adds an officer with a vehicle.
	var page string
	run(t, ctx, "add an officer",
		chromedp.Navigate(e.base+"/admin/officers/new"),
		chromedp.WaitVisible("#o-name", chromedp.ByID),
		chromedp.SendKeys("#o-name", "Priya Patel", chromedp.ByID),
		chromedp.SendKeys("#o-phone", "07700 900123", chromedp.ByID),
		chromedp.SendKeys("#v-make", "Vauxhall", chromedp.ByID),
		chromedp.SendKeys("#v-model", "Corsa", chromedp.ByID),
		chromedp.SendKeys("#v-colour", "Red", chromedp.ByID),
		chromedp.SendKeys("#v-reg", "XY21 ABC", chromedp.ByID),
		chromedp.SetValue("#v-ins", "2027-01-31", chromedp.ByID),
		chromedp.SendKeys("#o-duress", "9876", chromedp.ByID),
		chromedp.Click(`form[action="/admin/officers"] button[type=submit]`, q),
		flash("Priya Patel ("),
		chromedp.Text("main", &page, q),
	)
	contains(t, "officers page", page, "Priya Patel (+447700900123) added", "Red Vauxhall Corsa XY21 ABC", "2027-01-31")
	screenshot(t, ctx, "officers.png")

	// Her next visit goes overdue: the alert names her vehicle, on the board and by SMS.
	run(t, ctx, "start Priya's visit",
		chromedp.Navigate(e.base+"/"),
		chromedp.WaitVisible("#officer", chromedp.ByID),
		chromedp.SetValue("#officer", "priya-patel", chromedp.ByID),
		chromedp.SendKeys("#destination", "3 Ash Close", chromedp.ByID),
		chromedp.SetValue("#duration", "20", chromedp.ByID),
		chromedp.Click(`form[action="/visits"] button[type=submit]`, q),
		flash("Visit started for Priya Patel"),
	)
	e.advance(26 * time.Minute)
	run(t, ctx, "see Priya's alert",
		within(ctx, 10*time.Second, chromedp.WaitVisible("#live article.alert", q)),
		liveText(&board),
	)
	contains(t, "Priya's alert", board, "OVERDUE", "Priya Patel", "Red Vauxhall Corsa XY21 ABC")
	msgs := e.twilio.WaitSent(10*time.Second, func(ms []smstest.Message) bool {
		for _, m := range ms {
			if strings.Contains(m.Body, "Priya Patel") && strings.Contains(m.Body, "OVERDUE") {
				return true
			}
		}
		return false
	})
	for _, m := range msgs {
		if strings.Contains(m.Body, "Priya Patel") && strings.Contains(m.Body, "OVERDUE") {
			contains(t, "alert SMS", m.Body, "Red Vauxhall Corsa XY21 ABC")
		}
	}
}

// The board on a phone-sized screen, for the README.
func TestBrowserPhoneWidth(t *testing.T) {
	e := newEnv(t)
	e.addUser("Sam Office", console.RoleOffice, "bishop-lonsdale")
	ctx := newChrome(t, 390, 844)
	if _, err := e.app.Service().OpenVisit(t.Context(), "office-pc", serviceReq("asmith")); err != nil {
		t.Fatal(err)
	}
	var overflow bool
	run(t, ctx, "sign in and read the board at phone width",
		chromedp.Navigate(e.base+"/login"),
		chromedp.WaitVisible("#name", chromedp.ByID),
		chromedp.SendKeys("#name", "Sam Office", chromedp.ByID),
		chromedp.SendKeys("#password", password, chromedp.ByID),
		chromedp.Click(`form[action="/login"] button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible("#live li.visit", chromedp.ByQuery),
		chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth`, &overflow),
	)
	if overflow {
		t.Errorf("the board scrolls sideways at 390 px")
	}
	screenshot(t, ctx, "board-phone.png")
}

// liveText reads the board's text in one step inside the page. The board is
// redrawn every 2 seconds, and chromedp.Text, which finds the node and then asks
// for its text, fails when a redraw replaces the node in between ("No node with
// given id found"), as it did once under a loaded machine.
func liveText(out *string) chromedp.Action {
	return chromedp.Evaluate(`document.querySelector("#live").innerText`, out)
}
