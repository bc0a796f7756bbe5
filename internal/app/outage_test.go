package app_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/service"
	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// answer is a webhook's answer, posted from another goroutine.
type answer struct {
	status int
	body   string
	err    error
}

// postInBackground posts a signed webhook from a goroutine, so that the test can
// restart Redis while the daemon holds the request.
func (e *env) postInBackground(d *daemon, path string, form url.Values) <-chan answer {
	out := make(chan answer, 1)
	go func() {
		req, err := http.NewRequestWithContext(e.t.Context(), http.MethodPost, d.base+path, strings.NewReader(form.Encode()))
		if err != nil {
			out <- answer{err: err}
			return
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(sms.SignatureHeader, sms.Sign(smstest.DefaultAuthToken, publicURL+path, form))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- answer{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		out <- answer{status: res.StatusCode, body: string(b), err: err}
	}()
	return out
}

// signalRetries makes a daemon option that reports each webhook retry on the
// returned channel (without blocking the daemon).
func signalRetries() (func(*daemonOptions), <-chan string) {
	retried := make(chan string, 64)
	return func(o *daemonOptions) {
		o.onRetry = func(path string, _ error) {
			select {
			case retried <- path:
			default:
			}
		}
	}, retried
}

func waitAnswer(t *testing.T, what string, ch <-chan answer) answer {
	t.Helper()
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatalf("%s: %v", what, a.err)
		}
		return a
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no answer within 20 s", what)
		return answer{}
	}
}

// Twilio does not repeat an SMS webhook that fails. A PANIC that arrives while Redis
// restarts is held and retried until Redis is back, then raised as usual, and the
// officer gets the usual answer.
func TestPanicDuringARedisRestartIsRaised(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.WithAOF())
	opt, retried := signalRetries()
	d := e.startDaemonWith(opt)

	e.redis.Kill()
	ans := e.postInBackground(d, "/twilio/sms", e.twilio.InboundSMS(janePhone, twilioNumber, "PANIC"))
	select {
	case <-retried: // the first attempt failed on the dead Redis
	case a := <-ans:
		t.Fatalf("answered while Redis was down: %d %q", a.status, a.body)
	}
	e.redis.Restart()
	e.panicRaised(d, ans)
}

// panicRaised checks that Jane's PANIC, posted in the background while the store was
// away, got the usual answer once it was back (not NOT CONFIRMED) and reached every
// panic level.
func (e *env) panicRaised(d *daemon, ans <-chan answer) {
	t := e.t
	t.Helper()
	a := waitAnswer(t, "PANIC webhook", ans)
	if a.status != http.StatusOK {
		t.Fatalf("PANIC webhook: %d %s", a.status, a.body)
	}
	reply := twimlText(t, []byte(a.body))
	if strings.Contains(reply, "NOT CONFIRMED") {
		t.Fatalf("PANIC reply %q, though the store came back within the patience", reply)
	}
	contains(t, "PANIC reply", reply, headName)
	got := oneEach(t, "panic once the store is back", (&timeline{env: e, d: d}).expect(4), everyContact...)
	eachSays(t, "PANIC", got, "PANIC ALERT", "Jane Doe", janePhone)
}

// When Redis stays down for longer than the webhook can wait, the officer is told
// plainly that the text may be lost and to call 999 (not a silent 500 Twilio would
// drop), and no attempt carries on after that answer to raise it behind their back.
func TestSMSNotConfirmedWhileRedisStaysDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.WithAOF())
	d := e.startDaemonWith(func(o *daemonOptions) { o.patience = 300 * time.Millisecond })

	e.redis.Kill()
	reply := e.sms(d, janePhone, "PANIC")
	if reply != service.NotConfirmedReply {
		t.Fatalf("reply while Redis is down = %q, want %q", reply, service.NotConfirmedReply)
	}
	contains(t, "not-confirmed reply", reply, "NOT CONFIRMED", "999")

	// Redis comes back: no alert was raised from the PANIC answered NOT CONFIRMED,
	// and a new PANIC is.
	e.redis.Restart()
	if alerts := (&timeline{env: e, d: d}).alerts("open"); len(alerts) != 0 {
		t.Fatalf("open alerts after a NOT CONFIRMED answer: %+v", alerts)
	}
	contains(t, "PANIC reply once Redis is back", e.sms(d, janePhone, "PANIC"), headName)
	oneEach(t, "panic once Redis is back", (&timeline{env: e, d: d}).expect(4), everyContact...)
}

// A Redis that stops answering (paused, as a hung primary or a partition looks)
// rather than refusing connections does not hold the webhook past its patience:
// each attempt ends at the deadline, so Twilio gets the answer in time.
func TestSMSAnsweredInTimeWhileRedisHangs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemonWith(func(o *daemonOptions) { o.patience = 500 * time.Millisecond })
	e.redis.Pause()
	defer e.redis.Resume()
	began := time.Now()
	ans := waitAnswer(t, "PANIC webhook", e.postInBackground(d, "/twilio/sms", e.twilio.InboundSMS(janePhone, twilioNumber, "PANIC")))
	took := time.Since(began)
	if ans.status != http.StatusOK || twimlText(t, []byte(ans.body)) != service.NotConfirmedReply {
		t.Fatalf("answer while Redis hangs: %d %q, want 200 and the NOT CONFIRMED reply", ans.status, ans.body)
	}
	// go-redis on its own waits 5 s for a reply, and retries: the patience must cut
	// that short. (A bound far above the patience: this is not a timing test.)
	if took > 4*time.Second {
		t.Fatalf("answered after %v with a patience of 500 ms", took)
	}
}

// A delivery receipt that arrives while Redis restarts is held and retried too: an
// alert SMS reported undelivered in that moment is still re-routed as a call.
func TestUndeliveredReceiptDuringARedisRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, redistest.WithAOF())
	opt, retried := signalRetries()
	d := e.startDaemonWith(opt)
	e.overdue(d)
	e.waitFor(3) // the reminder and the alert to both office contacts
	office := e.twilio.SentTo(officePhone)
	if len(office) != 1 {
		t.Fatalf("office got %d messages, want the alert", len(office))
	}

	e.redis.Kill()
	ans := e.postInBackground(d, "/twilio/status", e.twilio.MessageStatus(office[0], "undelivered", 30003))
	select {
	case <-retried:
	case a := <-ans:
		t.Fatalf("answered while Redis was down: %d %q", a.status, a.body)
	}
	e.redis.Restart()

	if a := waitAnswer(t, "status callback", ans); a.status != http.StatusNoContent {
		t.Fatalf("status callback: %d %s", a.status, a.body)
	}
	calls := e.twilio.WaitCalls(10*time.Second, smstest.AtLeast[smstest.CallRecord](1))
	if calls[0].To != officePhone {
		t.Fatalf("call went to %s, want the office whose SMS was undelivered", calls[0].To)
	}
}

// A receipt whose first try recorded its status and then lost Redis before the
// failure was handled (so Twilio's or the webhook's next try finds the status
// already there) is handled on that next try: the undelivered alert SMS still
// becomes a call, once, and a later repeat of the receipt changes nothing.
func TestUndeliveredReceiptRetriedAfterAHalfFinishedTry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.startDaemon()
	e.overdue(d)
	e.waitFor(3) // the reminder and the alert to both office contacts
	office := e.twilio.SentTo(officePhone)
	if len(office) != 1 {
		t.Fatalf("office got %d messages, want the alert", len(office))
	}
	// The first try: the status is recorded, and then nothing more happened. (The
	// dispatcher records the send under its SID once Twilio has answered.)
	var school string
	var msg *visit.Message
	if !pollUntil(5*time.Second, func() bool {
		var err error
		school, msg, _, err = d.Store().MessageBySID(t.Context(), office[0].SID)
		return err == nil
	}) {
		t.Fatal("the alert's send was not recorded under its SID")
	}
	// It began HandleFor ago, so its hold on the handling has lapsed (a hold
	// still running would be another copy of the receipt at work, left alone).
	begun := e.clock.Now().Add(-store.HandleFor)
	if _, _, err := d.Store().RecordDelivery(t.Context(), school, msg.ID, "undelivered", 30003, false, "first-try", begun); err != nil {
		t.Fatal(err)
	}

	receipt := e.twilio.MessageStatus(office[0], "undelivered", 30003)
	e.postStatus(d, receipt)
	calls := e.twilio.WaitCalls(10*time.Second, smstest.AtLeast[smstest.CallRecord](1))
	if calls[0].To != officePhone {
		t.Fatalf("call went to %s, want the office whose SMS was undelivered", calls[0].To)
	}
	// Handled now, a repeat of the receipt adds nothing to the alert's history.
	e.postStatus(d, receipt)
	events, err := d.Store().AuditEvents(t.Context(), school, 1000)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, ev := range events {
		if ev.Type == "delivery_failed" {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d delivery_failed events after the receipt came again, want 1", failed)
	}
}
