package notify

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// StatusFetcher asks Twilio for the current status of a message or call it created
// (sms.Client; the sms.Console reports its own as delivered).
type StatusFetcher interface {
	FetchStatus(ctx context.Context, sid string) (sms.Status, error)
}

// ReceiptStore is what the receipt checker needs of the store (store.Store).
type ReceiptStore interface {
	SchoolIDs(ctx context.Context) ([]string, error)
	ClaimReceiptChecks(ctx context.Context, schools []string, now time.Time, lease time.Duration, max int) ([]store.Due, error)
	SentMessageFor(ctx context.Context, d store.Due) (store.MessageRecord, error)
	EndReceiptCheck(ctx context.Context, d store.Due) error
	DeferReceiptCheck(ctx context.Context, d store.Due, at time.Time) error
}

// ReceiptCheckOptions configure a ReceiptChecker.
type ReceiptCheckOptions struct {
	Store   ReceiptStore
	Twilio  StatusFetcher
	Now     func() time.Time
	Log     *slog.Logger
	Metrics *prometheus.CounterVec // vigil_receipt_checks_total{result}; may be nil
	// Handle handles a final status of the message m of school found by asking
	// Twilio exactly as a status callback carrying it would be handled
	// (service.HandleMessageStatus).
	Handle func(ctx context.Context, school string, m visit.Message, status string, code int) error
	// Every is how often due checks are claimed (default 15 s).
	Every time.Duration
	// Lease is how long a claimed check is held (default 1 min).
	Lease time.Duration
	// Again is the shortest wait before Twilio is asked again about a message that
	// has no final status yet, or when asking failed (default 1 min). The wait
	// grows with the message's age, up to 5 minutes.
	Again time.Duration
	// GiveUp is how long after the send Twilio stops being asked (default 1 h).
	// Keep it past an alert SMS's validity period (twilio.validity_period): after
	// it Twilio fails a message it could not send, and that failure is final.
	GiveUp time.Duration
	// Batch is the most checks one claim takes from each school (default 64), and
	// Parallel how many are asked about at once (default 8).
	Batch    int
	Parallel int
}

// ReceiptChecker recovers lost delivery receipts. Twilio sends each status callback
// once; one that does not reach Vigil (every replica down, Redis unreachable for
// longer than the webhook waits, a network fault) would leave an undelivered alert
// SMS never re-routed as a call, or a failed alert call never counted against its
// level. So every alert message sent is listed for a check (store.RecordSent), a
// final receipt handled takes it off, and the checker asks Twilio for the status of
// those still listed when their check falls due, handling a final status as its
// callback would have been handled. A check is claimed with a lease, like a timer,
// so one replica asks at a time and a replica that dies mid-check leaves it to the
// others.
type ReceiptChecker struct {
	o    ReceiptCheckOptions
	wake chan struct{}
}

// Results counted in vigil_receipt_checks_total.
const (
	CheckFinal    = "final"     // Twilio had a final status; handled as a receipt
	CheckNotFinal = "not_final" // no final status yet; asked again later
	CheckGaveUp   = "gave_up"   // still none GiveUp after the send
	CheckError    = "error"     // Twilio or Redis failed; the check stays due
)

// NewReceiptMetrics registers vigil_receipt_checks_total with reg.
func NewReceiptMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_receipt_checks_total",
		Help: "Alert and ALL CLEAR messages whose final delivery receipt had not come when expected, so Twilio was asked; by result " +
			"(final: Twilio had one, handled as a receipt; not_final: asked again later; gave_up; error).",
	}, []string{"result"})
	for _, r := range []string{CheckFinal, CheckNotFinal, CheckGaveUp, CheckError} {
		c.WithLabelValues(r)
	}
	reg.MustRegister(c)
	return c
}

// NewReceiptChecker builds a ReceiptChecker; Run starts it.
func NewReceiptChecker(o ReceiptCheckOptions) *ReceiptChecker {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Log = o.Log.With("component", "receipts")
	if o.Every <= 0 {
		o.Every = 15 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = time.Minute
	}
	if o.Again <= 0 {
		o.Again = time.Minute
	}
	if o.GiveUp <= 0 {
		o.GiveUp = time.Hour
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	return &ReceiptChecker{o: o, wake: make(chan struct{}, 1)}
}

// Wake makes Run look for due checks now rather than at its next tick (tests
// that move the clock).
func (c *ReceiptChecker) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// maxAgain is the longest wait between two questions about one message.
const maxAgain = 5 * time.Minute

// Run checks due receipts every Every until ctx ends. A sweep that took a whole
// batch (a backlog after an outage) is followed by another at once.
func (c *ReceiptChecker) Run(ctx context.Context) error {
	t := time.NewTicker(c.o.Every)
	defer t.Stop()
	for {
		for _, full := c.Sweep(ctx); full && ctx.Err() == nil; _, full = c.Sweep(ctx) {
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.wake:
		}
	}
}

// Sweep claims the checks due now and does them. It returns how many it claimed,
// and whether some school's claim took a whole batch (more may be due).
func (c *ReceiptChecker) Sweep(ctx context.Context) (claimed int, full bool) {
	schools, err := c.o.Store.SchoolIDs(ctx)
	if err != nil {
		c.o.Log.Error("receipt checks: list schools", "err", err)
		return 0, false
	}
	due, err := c.o.Store.ClaimReceiptChecks(ctx, schools, c.o.Now(), c.o.Lease, c.o.Batch)
	if err != nil {
		// What the other schools' claims took is still checked below.
		c.o.Log.Error("receipt checks: claim", "err", err)
	}
	perSchool := map[string]int{}
	sem := make(chan struct{}, c.o.Parallel)
	var wg sync.WaitGroup
	for _, d := range due {
		perSchool[d.School]++
		full = full || perSchool[d.School] >= c.o.Batch
		sem <- struct{}{}
		// A check whose claim is nearly out by the time its turn comes (a long
		// backlog) is left: another replica may take it when the claim ends, and
		// two must not ask and handle at once. It is claimed again then.
		if time.UnixMilli(d.Lease).Sub(c.o.Now()) < c.o.Lease/4 {
			<-sem
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c.count(c.check(ctx, d))
		}()
	}
	wg.Wait()
	return len(due), full
}

func (c *ReceiptChecker) count(result string) {
	if c.o.Metrics != nil && result != "" {
		c.o.Metrics.WithLabelValues(result).Inc()
	}
}

// check does one claimed check and says what it found ("" when there was nothing
// to ask Twilio). A check that fails is left claimed: its lease runs out and it is
// done again.
func (c *ReceiptChecker) check(ctx context.Context, d store.Due) string {
	m, err := c.o.Store.SentMessageFor(ctx, d)
	if errors.Is(err, store.ErrNotFound) {
		c.end(ctx, d) // deleted by retention, or never sent under a SID
		return ""
	}
	if err != nil {
		c.o.Log.Error("receipt check: read message", "msg", d.Member, "err", err)
		return CheckError
	}
	if visit.FinalStatus(m.Delivery) {
		if !m.Handled {
			// A receipt recorded it and its handling did not finish (Redis went
			// away in between): finish it now.
			if err := c.o.Handle(ctx, d.School, m.Msg, m.Delivery, m.ErrorCode); err != nil {
				c.o.Log.Error("receipt check: handle a recorded status", "msg", d.Member, "status", m.Delivery, "err", err)
				return CheckError
			}
			c.settle(ctx, d)
			return ""
		}
		c.end(ctx, d)
		return ""
	}
	now := c.o.Now()
	age := now.Sub(m.SentAt)
	st, err := c.o.Twilio.FetchStatus(ctx, m.SID)
	switch {
	case sms.IsNotFound(err):
		// Twilio answered, and has no such message: asking again cannot help.
		c.o.Log.Warn("receipt check: Twilio has no such message; no longer asking", "msg", d.Member, "sid", m.SID)
		c.end(ctx, d)
		return CheckGaveUp
	case err != nil && age >= c.o.GiveUp:
		c.o.Log.Warn("receipt check: Twilio gave no status; no longer asking", "msg", d.Member, "sid", m.SID, "err", err)
		c.end(ctx, d)
		return CheckGaveUp
	case err != nil:
		c.o.Log.Warn("receipt check: asking Twilio failed; will ask again", "msg", d.Member, "sid", m.SID, "err", err)
		c.deferCheck(ctx, d, now.Add(c.wait(age)))
		return CheckError
	case visit.FinalStatus(st.Status):
		c.o.Log.Warn("delivery receipt never came; Twilio reports a final status", "msg", d.Member, "kind", m.Msg.Kind,
			"channel", m.Msg.Channel, "sid", m.SID, "status", st.Status, "error_code", st.ErrorCode)
		if err := c.o.Handle(ctx, d.School, m.Msg, st.Status, st.ErrorCode); err != nil {
			c.o.Log.Error("receipt check: handle the status Twilio reported", "msg", d.Member, "status", st.Status, "err", err)
			return CheckError
		}
		c.settle(ctx, d)
		return CheckFinal
	case age >= c.o.GiveUp:
		c.o.Log.Warn("receipt check: no final status; no longer asking", "msg", d.Member, "sid", m.SID, "status", st.Status, "age", age)
		c.end(ctx, d)
		return CheckGaveUp
	default:
		c.deferCheck(ctx, d, now.Add(c.wait(age)))
		return CheckNotFinal
	}
}

// wait is how long to wait before asking again about a message sent age ago: the
// age itself (so the questions thin out as the message gets older), at least
// Again and at most maxAgain.
func (c *ReceiptChecker) wait(age time.Duration) time.Duration {
	return min(max(age, c.o.Again), maxAgain)
}

// settle ends the check once the message's final status has been handled. When it
// has not (another handler holds it: the receipt itself came meanwhile), the check
// looks again when that handling would have lapsed, so a handler that dies
// leaves nothing undone.
func (c *ReceiptChecker) settle(ctx context.Context, d store.Due) {
	m, err := c.o.Store.SentMessageFor(ctx, d)
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && visit.FinalStatus(m.Delivery) && m.Handled:
		c.end(ctx, d)
	case err == nil:
		c.deferCheck(ctx, d, c.o.Now().Add(store.HandleFor+time.Second))
	default:
		// Left claimed: done again when the claim ends.
		c.o.Log.Error("receipt check: read message", "msg", d.Member, "err", err)
	}
}

// end takes the check off; a check already gone (the handled receipt took it off,
// or another replica holds it after this one's lease ran out) is fine.
func (c *ReceiptChecker) end(ctx context.Context, d store.Due) {
	if err := c.o.Store.EndReceiptCheck(ctx, d); err != nil && !errors.Is(err, store.ErrFenced) {
		c.o.Log.Error("receipt check: end", "msg", d.Member, "err", err)
	}
}

func (c *ReceiptChecker) deferCheck(ctx context.Context, d store.Due, at time.Time) {
	if err := c.o.Store.DeferReceiptCheck(ctx, d, at); err != nil && !errors.Is(err, store.ErrFenced) {
		c.o.Log.Error("receipt check: defer", "msg", d.Member, "err", err)
	}
}
