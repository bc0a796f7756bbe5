// Package notify drains the outbox: it claims queued messages (highest priority
// first), sends each through a Sender with retries and backoff, and records every
// attempt before and after the send so that a crash re-sends at most once and no
// other replica sends the same message again.
package notify

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// Sender sends SMS and places calls (sms.Client, or sms.Console without
// credentials).
type Sender interface {
	SendSMS(ctx context.Context, m sms.Outbound) (sid string, err error)
	PlaceCall(ctx context.Context, c sms.Call) (sid string, err error)
}

// Checker asks Twilio whether a message or call was created (sms.Client; the
// sms.Console finds nothing). found false with a nil error means Twilio has no
// such message or call.
type Checker interface {
	FindSent(ctx context.Context, to, body string, since time.Time) (sid string, found bool, err error)
	FindCall(ctx context.Context, to string, since time.Time) (sid string, found bool, err error)
}

// Failure is a message that could not be sent, for the service to re-route.
type Failure struct {
	School  string
	Message visit.Message
	Code    int    // Twilio's error code, 0 when none
	Reason  string // short label (sms.Error.Reason)
}

// Store is what the dispatcher needs of the store.
type Store interface {
	SchoolIDs(ctx context.Context) ([]string, error)
	LookOutbox(ctx context.Context, schools []string, now time.Time) (store.OutboxLook, error)
	ClaimQuotas(ctx context.Context, quotas []store.Quota, now time.Time, lease time.Duration) ([]store.Outgoing, error)
	ReleaseMessages(ctx context.Context, held []store.Outgoing, now time.Time) error
	StartSend(ctx context.Context, o store.Outgoing, now time.Time, lease time.Duration) (store.Outgoing, error)
	AbandonSend(ctx context.Context, o, prev store.Outgoing, now time.Time) error
	RecordSent(ctx context.Context, o store.Outgoing, sid string, now time.Time) (*store.EarlyReceipt, error)
	RecordRetry(ctx context.Context, o store.Outgoing, at time.Time, reason string) error
	RecordFailed(ctx context.Context, o store.Outgoing, reason string) error
}

// Metrics are the dispatcher's metrics (SPEC §7).
type Metrics struct {
	Notifications *prometheus.CounterVec
	SendSeconds   prometheus.Histogram
}

// NewMetrics registers the dispatcher's own metrics with reg; notifications is the
// vigil_notifications_total counter the service registered (it counts replies and
// receipts in the same series).
func NewMetrics(reg prometheus.Registerer, notifications *prometheus.CounterVec) *Metrics {
	m := &Metrics{
		Notifications: notifications,
		SendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_send_seconds", Help: "How long Twilio took to accept (or refuse) a send.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
	}
	reg.MustRegister(m.SendSeconds)
	return m
}

// Options configure a Dispatcher.
type Options struct {
	Store   Store
	Sender  Sender
	Now     func() time.Time
	Log     *slog.Logger
	Metrics *Metrics
	// Lease is how long a claimed message is held; it is renewed when the send
	// begins, and must be longer than SendTimeout.
	Lease time.Duration
	// SendTimeout is the longest a request to Twilio takes (the HTTP timeout).
	SendTimeout time.Duration
	// Batch is how many messages one claim takes (default 64); keep it to what the
	// rate limit sends in well under a lease.
	Batch int
	// Poll is the longest the dispatcher sleeps without a wake-up.
	Poll time.Duration
	// Workers send in parallel.
	Workers int
	// MaxAttempts bounds retries of a message whose sends fail transiently.
	MaxAttempts int
	// CallTwiML writes the TwiML of a voice message.
	CallTwiML func(m visit.Message) string
	// OnFailure is told of every message that failed for good, after it is
	// recorded, so the service can re-route it. It must not block for long.
	OnFailure func(ctx context.Context, f Failure)
	// OnSent is told of every send once it is recorded under its Twilio SID.
	OnSent func(ctx context.Context, sid string)
	// OnEarlyReceipt is given a delivery receipt that reached Vigil before its
	// send was recorded, once the send is recorded under the receipt's SID.
	OnEarlyReceipt func(ctx context.Context, sid string, r store.EarlyReceipt)
	// Limiter, when set, spaces all sends (twilio.max_sends_per_second, shared by
	// every replica). Sends take their turn in priority order. A Limiter that is
	// also a TurnStarter (store.SendLimiter) takes the turn and begins the send
	// in one step.
	Limiter interface {
		Wait(ctx context.Context) error
	}
	// AlertResolved, when set, is asked before an alert message (SMS or call)
	// that Twilio refused for a while is tried again: a retry of an alert that
	// has been resolved since is dropped, not sent after its ALL CLEAR. An error
	// sends it anyway. Nothing else is asked about: not a first try, not a send
	// whose outcome is unknown (settle), not any other kind of message.
	AlertResolved func(ctx context.Context, school, alertID string) (bool, error)
	// ContactLimit, when set, caps the repeats of overdue alerts per phone and
	// channel (visit.Throttled: nothing else is held back or counted). Allow
	// gives a message a place (one per message, however often it is tried);
	// Release gives back the place of one Twilio did not accept.
	ContactLimit interface {
		Allow(ctx context.Context, phone, channel, id string, now time.Time) (bool, time.Time, error)
		Release(ctx context.Context, phone, channel, id string, now time.Time) error
	}
	// Checker, when set, is asked before a message is sent again after a send
	// whose outcome is unknown (Twilio's answer never came, or a replica died
	// mid-send): if Twilio has it, it is recorded as sent under Twilio's SID
	// instead of going out twice. Without a Checker such a message is sent once
	// more, blindly.
	Checker Checker
}

// TurnStarter takes a turn under the send limit and begins the send of o (as
// Store.StartSend) in one step. When the limit says wait it returns how long, and
// has changed nothing.
type TurnStarter interface {
	StartSend(ctx context.Context, o store.Outgoing, now time.Time, lease time.Duration) (store.Outgoing, time.Duration, error)
}

// Dispatcher is the outbox loop.
type Dispatcher struct {
	o     Options
	wake  chan struct{}
	freed chan struct{} // a send finished: a worker is free
	// look asks for a look at every school's outbox (Wake); mine are messages
	// this replica has just queued already claimed for itself (Queued).
	look atomic.Bool
	room atomic.Bool
	mu   sync.Mutex
	mine []store.Outgoing
}

// New builds a Dispatcher.
func New(o Options) *Dispatcher {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Lease <= 0 {
		o.Lease = 60 * time.Second
	}
	if o.SendTimeout <= 0 || o.SendTimeout >= o.Lease {
		o.SendTimeout = o.Lease * 3 / 4
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.CallTwiML == nil {
		o.CallTwiML = func(m visit.Message) string { return sms.SayTwiML(m.Body) }
	}
	o.Log = o.Log.With("component", "notify")
	return &Dispatcher{o: o, wake: make(chan struct{}, 1), freed: make(chan struct{}, 1)}
}

// Wake makes the dispatcher look at every school's outbox now.
func (d *Dispatcher) Wake() {
	d.look.Store(true)
	d.signal()
}

// Queued hands the dispatcher messages this replica has just committed already
// claimed for it (store.Change.ClaimFor): it sends them without a look at every
// school's outbox or a claim (three round trips, and most of the dispatcher's
// cost at a thousand alerts a second). If this replica dies first, they go back
// to every replica when their claims run out. A message whose commit did not go
// through, or that was queued before (and is someone else's), is dropped when
// its send is begun: the claim it names is not held.
func (d *Dispatcher) Queued(msgs []store.Outgoing) {
	if len(msgs) == 0 {
		return
	}
	d.mu.Lock()
	d.mine = append(d.mine, msgs...)
	d.mu.Unlock()
	d.signal()
}

// HasRoom reports whether the dispatcher would claim and send messages queued
// now at once (it is not backed up: a worker is free and it holds few claimed
// messages), so the replica that queues them need not wake the others. When it
// is backed up, the others are woken and share the work.
func (d *Dispatcher) HasRoom() bool { return d.room.Load() }

func (d *Dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// takeMine returns the messages queued here already claimed, most urgent first.
func (d *Dispatcher) takeMine() []store.Outgoing {
	d.mu.Lock()
	m := d.mine
	d.mine = nil
	d.mu.Unlock()
	slices.SortStableFunc(m, func(a, b store.Outgoing) int { return a.Msg.Priority - b.Msg.Priority })
	return m
}

// Run sends until ctx ends. It looks at every school's outbox at once and claims
// a few messages ahead of its workers, most urgent first across schools; each
// message goes to a worker as soon as one is free and it has its turn under the
// send limit, without waiting for the others claimed with it. It claims again
// when what it holds runs low, so a storm costs a look per several messages, and
// whatever it claims is sorted in ahead of the less urgent messages it holds, so
// a panic waits behind at most a few sends. On shutdown it hands back what it
// holds and has not started, and finishes the sends under way.
func (d *Dispatcher) Run(ctx context.Context) error {
	var (
		busy     atomic.Int64
		inflight sync.WaitGroup
		held     []store.Outgoing // claimed, not yet started: most urgent first
		next     time.Time        // when the next unclaimed message is ready
		want     = true           // something may be ready to claim
		// sending are the messages this dispatcher's workers are sending
		// (key: school NUL id).
		sending sync.Map
		// mine names, for each queue, the messages held or being sent here:
		// claims leave them alone, though their leases may have run out (a
		// stall, or a test's clock jumping), so this dispatcher never claims
		// what it is already sending, nor sends it twice.
		mine = func(qs []store.Quota) []store.Quota {
			for i := range qs {
				q := &qs[i]
				for _, o := range held {
					if o.School == q.School && o.Msg.Priority == q.Priority {
						q.Skip = append(q.Skip, o.Member)
					}
				}
				sending.Range(func(_, v any) bool {
					if o := v.(store.Outgoing); o.School == q.School && o.Msg.Priority == q.Priority {
						q.Skip = append(q.Skip, o.Member)
					}
					return true
				})
			}
			return qs
		}
	)
	defer func() {
		// Messages handed over by commits while it stopped (a failed send's
		// re-routing, say) go back with the rest once the sends under way are
		// done: nothing is left waiting out its claim.
		inflight.Wait()
		d.release(d.takeMine())
	}()
	capacity := max(1, min(d.o.Batch, 4*d.o.Workers))
	low := capacity / 2 // claim again when holding no more than this
	for ctx.Err() == nil {
		// Not backed up: a message queued now would be claimed and sent at once.
		d.room.Store(len(held) <= low && int(busy.Load()) < d.o.Workers)
		if d.look.Swap(false) {
			want = true
		}
		held = mergeByPriority(held, d.takeMine())
		// Claims are made when little is held: in a storm, a claim per several
		// messages, not per message.
		if len(held) <= low && want {
			ask := capacity - len(held)
			claimed, at, err := d.claim(ctx, ask, mine)
			if err != nil && ctx.Err() == nil {
				d.o.Log.Error("outbox pass failed", "err", err)
			}
			next = at
			// A full claim may have left more behind; a short one emptied
			// what was ready.
			want = err == nil && len(claimed) == ask
			held = mergeByPriority(held, claimed)
		}
		if len(held) > 0 && int(busy.Load()) < d.o.Workers {
			o := held[0]
			held = held[1:]
			id := o.School + "\x00" + o.Member
			// Turns under the send limit are taken in this order, so a panic
			// never waits behind a reminder.
			o, prev, ok := d.mayGo(ctx, o)
			if !ok {
				if ctx.Err() != nil {
					held = append([]store.Outgoing{o}, held...)
					break
				}
				continue
			}
			busy.Add(1)
			inflight.Add(1)
			sending.Store(id, o)
			go func() {
				defer func() {
					sending.Delete(id)
					busy.Add(-1)
					inflight.Done()
					select {
					case d.freed <- struct{}{}:
					default:
					}
				}()
				d.deliver(context.WithoutCancel(ctx), o, prev)
			}()
			continue
		}
		// Wait for a worker, a wake-up, or the next message to be ready. While
		// it holds more than it claims at, a freed worker wakes it: the next
		// message's time matters only when it would claim.
		wait := d.o.Poll
		if len(held) <= low && !next.IsZero() {
			until := next.Sub(d.o.Now())
			if until <= 0 {
				// Ready, yet left by the last claim (another replica took it
				// first, or it is this one's own): look again soon, not in a
				// spin.
				until = retryLook
			}
			wait = min(wait, until+time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-d.freed:
		case <-t.C:
			want = true
		}
		t.Stop()
	}
	// A dispatcher that has stopped takes nothing: commits wake the others.
	d.room.Store(false)
	d.release(mergeByPriority(held, d.takeMine()))
	return nil
}

// retryLook is how soon the dispatcher looks again at a message the last look
// found ready and the claim did not get.
const retryLook = 2 * time.Millisecond

// mergeByPriority adds claimed messages (most urgent first) to held ones (the
// same), keeping the order: by priority, and within one, first claimed first.
func mergeByPriority(held, claimed []store.Outgoing) []store.Outgoing {
	if len(held) == 0 {
		return claimed
	}
	out := make([]store.Outgoing, 0, len(held)+len(claimed))
	i, j := 0, 0
	for i < len(held) || j < len(claimed) {
		if j == len(claimed) || (i < len(held) && held[i].Msg.Priority <= claimed[j].Msg.Priority) {
			out = append(out, held[i])
			i++
		} else {
			out = append(out, claimed[j])
			j++
		}
	}
	return out
}

// claim looks at every school's outbox and claims up to max ready messages, the
// most urgent across all schools first: every panic before any alert, every
// alert before any reminder, oldest first within a queue. It costs two round
// trips however many schools there are. next is when the next message not
// claimed now will be ready (zero: none queued).
func (d *Dispatcher) claim(ctx context.Context, max int, mine func([]store.Quota) []store.Quota) ([]store.Outgoing, time.Time, error) {
	schools, err := d.o.Store.SchoolIDs(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	now := d.o.Now()
	look, err := d.o.Store.LookOutbox(ctx, schools, now)
	if err != nil {
		return nil, time.Time{}, err
	}
	quotas := Allocate(schools, look.Ready, max)
	if len(quotas) == 0 {
		return nil, look.Next, nil
	}
	claimed, err := d.o.Store.ClaimQuotas(ctx, mine(quotas), now, d.o.Lease)
	return claimed, look.Next, err
}

// Allocate shares max claims among the ready queues, by priority first (the
// priorities of ready[i] are visit.PriorityPanic, PriorityAlert, PriorityNormal,
// as store.LookOutbox counts them), then evenly across schools, so that one
// school's backlog does not starve another's messages of the same priority.
func Allocate(schools []string, ready [][]int64, max int) []store.Quota {
	var out []store.Quota
	for p := range 3 {
		if max <= 0 {
			break
		}
		// Round-robin one at a time over the schools with messages of this
		// priority, until max is spent or every queue is empty.
		left := make([]int64, len(schools))
		some := false
		for i := range schools {
			if p < len(ready[i]) {
				left[i] = ready[i][p]
				some = some || left[i] > 0
			}
		}
		if !some {
			continue
		}
		got := make([]int, len(schools))
		for max > 0 {
			progress := false
			for i := range schools {
				if max > 0 && left[i] > 0 {
					left[i]--
					got[i]++
					max--
					progress = true
				}
			}
			if !progress {
				break
			}
		}
		for i, n := range got {
			if n > 0 {
				out = append(out, store.Quota{School: schools[i], Priority: p, Max: n})
			}
		}
	}
	return out
}

// stale reports whether o is a retry of an alert message that Twilio refused
// and whose alert has been resolved since: everyone the alert reached is sent
// an ALL CLEAR on resolution, so the retry would arrive after it, asking for
// help no one needs. When the alert cannot be read, the retry goes.
func (d *Dispatcher) stale(ctx context.Context, o store.Outgoing) bool {
	if d.o.AlertResolved == nil || o.State != "retry" || o.Msg.Kind != visit.KindAlert || o.Msg.AlertID == "" {
		return false
	}
	resolved, err := d.o.AlertResolved(ctx, o.School, o.Msg.AlertID)
	log := msgLog{d.o.Log, o}
	if err != nil {
		log.Warn("could not read whether the alert is resolved; retrying its send anyway", "err", err)
		return false
	}
	if resolved {
		log.Info("alert resolved since its send was refused; the retry is dropped", "alert", o.Msg.AlertID)
	}
	return resolved
}

// release hands claimed messages that were not started back to the queue, so
// another replica sends them now rather than when their claims run out.
func (d *Dispatcher) release(held []store.Outgoing) {
	if len(held) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.o.SendTimeout)
	defer cancel()
	if err := d.o.Store.ReleaseMessages(ctx, held, d.o.Now()); err != nil {
		d.o.Log.Warn("handing back claimed messages failed; they return when their claims run out", "n", len(held), "err", err)
	}
}

// mayGo applies the throttles to a claimed message: a repeat of an overdue alert
// to a phone over its limit is skipped; otherwise the message waits for its turn
// under the global rate. It reports whether to send now. With a TurnStarter the
// turn and the start of the send are one step: it then returns the message
// begun, and prev, the message as it was before (see deliver).
func (d *Dispatcher) mayGo(ctx context.Context, o store.Outgoing) (begun store.Outgoing, prev *store.Outgoing, ok bool) {
	m := o.Msg
	if d.stale(ctx, o) {
		if err := d.o.Store.RecordFailed(ctx, o, store.SkippedAlertResolved); err != nil {
			d.lost(d.o.Log, err)
		}
		return o, nil, false
	}
	if d.o.ContactLimit != nil && visit.Throttled(m) {
		ok, until, err := d.o.ContactLimit.Allow(ctx, limitedAs(m), m.Channel, m.ID, d.o.Now())
		if err != nil {
			d.o.Log.Warn("contact limit unavailable; sending anyway", "err", err)
		} else if !ok {
			// Skipped, not put off: the alert comes round again every
			// repeat_every, and a copy held to the end of the window would
			// come late, next to a newer round.
			msgLog{d.o.Log, o}.Info("contact limit reached; this repeat is skipped", "window_ends", until)
			if err := d.o.Store.RecordFailed(ctx, o, store.SkippedByContactLimit); err != nil {
				d.lost(d.o.Log, err)
			}
			return o, nil, false
		}
	}
	if d.o.Limiter == nil {
		return o, nil, true
	}
	// A message found "sending" is asked about first (settle), before it
	// begins again: its turn is taken now and the send begun after.
	if ts, one := d.o.Limiter.(TurnStarter); one && o.State != "sending" {
		for {
			begun, wait, err := ts.StartSend(ctx, o, d.o.Now(), d.o.Lease)
			if err != nil {
				if errors.Is(err, store.ErrFenced) {
					d.lost(msgLog{d.o.Log, o}, err)
				} else {
					// Redis unreachable: the message goes back when its
					// lease ends.
					d.o.Log.Warn("rate limiter unavailable", "err", err)
				}
				return o, nil, false
			}
			if wait == 0 {
				return begun, &o, true
			}
			if !sleepCtx(ctx, wait) {
				return o, nil, false
			}
		}
	}
	if err := d.o.Limiter.Wait(ctx); err != nil {
		// Shutting down, or Redis unreachable: the message goes back when its
		// lease ends.
		d.o.Log.Warn("rate limiter unavailable", "err", err)
		return o, nil, false
	}
	return o, nil, true
}

// deliver sends one claimed message and records the outcome. prev is nil when
// the send is still to begin (StartSend); otherwise o was begun by mayGo and prev
// is the message as it was before.
func (d *Dispatcher) deliver(ctx context.Context, o store.Outgoing, prev *store.Outgoing) {
	log := msgLog{d.o.Log, o}
	if prev == nil {
		now := d.o.Now()
		if o.State == "sending" && !d.settle(ctx, log, o, now) {
			return
		}
		before := o
		var err error
		o, err = d.o.Store.StartSend(ctx, o, now, d.o.Lease)
		if err != nil {
			d.lost(log, err)
			return
		}
		prev = &before
	}
	if late := d.o.Now(); late.Add(d.o.SendTimeout).After(time.UnixMilli(o.Lease)) {
		// This replica stalled since it renewed the claim (a pause, a long GC): a
		// request now could outlive the claim and race the replica that takes it
		// over. No send was made: put the message back as it was, for whichever
		// replica claims it next.
		log.Warn("claim too close to its end to send; the message goes back to the queue")
		d.givePlaceBack(ctx, log, o)
		if err := d.o.Store.AbandonSend(ctx, o, *prev, late); err != nil {
			d.lost(log, err)
		}
		return
	}
	start := time.Now()
	var sid string
	var err error
	if o.Msg.Channel == visit.ChannelCall {
		sid, err = d.o.Sender.PlaceCall(ctx, sms.Call{To: o.Msg.To, TwiML: d.o.CallTwiML(o.Msg)})
	} else {
		sid, err = d.o.Sender.SendSMS(ctx, sms.Outbound{To: o.Msg.To, Body: o.Msg.Body, ValidityPeriod: o.Msg.Validity})
	}
	if d.o.Metrics != nil {
		d.o.Metrics.SendSeconds.Observe(time.Since(start).Seconds())
	}
	if err == nil {
		d.recordSent(ctx, log, o, sid)
		d.count(o.Msg, "sent")
		return
	}
	var se *sms.Error
	if errors.As(err, &se) && se.Uncertain {
		// Twilio may have it. The message stays in state "sending" until its lease
		// ends; then whichever replica claims it asks Twilio before sending again
		// (settle). Waiting out the lease also lets Twilio finish a request whose
		// answer was lost, so that the question finds it.
		log.Warn("send outcome unknown; Twilio will be asked when the lease ends", "attempt", o.Attempts+1,
			"check_at", time.UnixMilli(o.Lease), "err", err)
		return
	}
	// Twilio did not accept it: it does not use up the phone's allowance.
	d.givePlaceBack(ctx, log, o)
	retryable := errors.As(err, &se) && se.Retryable
	if !errors.As(err, &se) {
		retryable = true // an unclassified failure is treated as transient
	}
	reason := "error"
	if se != nil {
		reason = se.Reason()
	}
	if !retryable || o.Attempts+1 >= d.o.MaxAttempts {
		code := 0
		if se != nil {
			code = se.Code
		}
		d.fail(ctx, log, o, code, reason, err.Error())
		return
	}
	at := d.o.Now().Add(backoff(o.Attempts))
	log.Warn("send failed; will retry", "attempt", o.Attempts+1, "retry_at", at, "err", err)
	if err := d.o.Store.RecordRetry(ctx, o, at, reason); err != nil {
		d.lost(log, err)
	}
}

// givePlaceBack returns the place under the per-contact limit of a message Twilio
// did not accept (a message whose send may have reached Twilio keeps it).
func (d *Dispatcher) givePlaceBack(ctx context.Context, log msgLog, o store.Outgoing) {
	if d.o.ContactLimit == nil || !visit.Throttled(o.Msg) {
		return
	}
	if err := d.o.ContactLimit.Release(ctx, limitedAs(o.Msg), o.Msg.Channel, o.Msg.ID, d.o.Now()); err != nil {
		log.Warn("contact limit: a place was not given back", "err", err)
	}
}

// limitedAs is what the per-contact limit counts a message under: its phone
// within its alert. Each alert's repeats are capped on their own, so one alert's
// repeats (or a closed alert's) never use up what another may send the same
// phone: several officers overdue at once must each still reach the office.
func limitedAs(m visit.Message) string {
	if m.AlertID == "" {
		return m.To
	}
	return m.To + "/" + m.AlertID
}

// sleepCtx waits for d, or reports false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// A record of a send that failed is tried again after recordRetryFrom, then
// twice as long each time up to recordRetryUpTo, while the claim lasts.
const (
	recordRetryFrom = 25 * time.Millisecond
	recordRetryUpTo = time.Second
)

// Settling a send whose outcome is unknown.
const (
	// checkSkew widens the window asked about, for the difference between our
	// clock (when the attempt began) and Twilio's (when it created the message).
	checkSkew = time.Minute
	// checkFor is how long a message other than an alert waits for Twilio to
	// answer the question before it is given up.
	checkFor = 10 * time.Minute
)

// settle handles a claimed message found in state "sending": a send began and
// its outcome was never recorded (a replica died mid-send, or Twilio's answer
// never came), so Twilio may have it. It reports whether to send it (again) now;
// if not, it has recorded what happened, or left the message to come back when
// its lease ends.
//
// With a Checker, Twilio is asked first: a message it has is recorded as sent
// under its SID. One that it does not have is sent again, at most once more (as
// without a Checker: after two sends that may both have gone out, the message is
// given up and re-routed rather than risk a third copy). When Twilio cannot be
// asked, an alert or panic goes out again, since a missing alert is worse than a
// duplicate; anything else is asked about again later.
func (d *Dispatcher) settle(ctx context.Context, log msgLog, o store.Outgoing, now time.Time) bool {
	const gaveUp = "gave up: earlier sends may have gone out"
	if d.o.Checker == nil {
		if o.Attempts >= 2 {
			d.fail(ctx, log, o, 0, "uncertain", gaveUp)
			return false
		}
		return true
	}
	since := o.AttemptAt.Add(-checkSkew)
	if o.AttemptAt.IsZero() {
		since = now.Add(-checkFor)
	}
	// The question may take half of what is left of the lease, leaving the rest
	// for a send; one that takes longer counts as Twilio not answering.
	cctx, cancel := context.WithTimeout(ctx, time.UnixMilli(o.Lease).Sub(now)/2)
	var sid string
	var found bool
	var err error
	if o.Msg.Channel == visit.ChannelCall {
		sid, found, err = d.o.Checker.FindCall(cctx, o.Msg.To, since)
	} else {
		sid, found, err = d.o.Checker.FindSent(cctx, o.Msg.To, o.Msg.Body, since)
	}
	cancel()
	urgent := o.Msg.Kind == visit.KindAlert || o.Msg.Priority == visit.PriorityPanic
	switch {
	case err == nil && found:
		log.Info("an earlier send reached Twilio: recorded, not sent again", "sid", sid, "attempts", o.Attempts)
		if d.recordSent(ctx, log, o, sid) {
			d.count(o.Msg, "sent")
		}
		return false
	case o.Attempts >= 2:
		if err != nil {
			d.fail(ctx, log, o, 0, "uncertain", gaveUp+" (Twilio could not be asked: "+err.Error()+")")
		} else {
			d.fail(ctx, log, o, 0, "uncertain", "gave up: Twilio has none of "+strconv.Itoa(o.Attempts)+" sends")
		}
		return false
	case err == nil:
		log.Info("Twilio does not have the earlier send; sending again", "attempts", o.Attempts)
		return true
	case urgent:
		log.Warn("Twilio could not be asked about an earlier send; sending an alert again rather than risk none", "err", err)
		return true
	case !o.AttemptAt.IsZero() && now.Sub(o.AttemptAt) < checkFor:
		log.Warn("Twilio could not be asked about an earlier send; will ask again when the lease ends",
			"check_at", time.UnixMilli(o.Lease), "err", err)
		return false
	default:
		d.fail(ctx, log, o, 0, "uncertain", gaveUp+" (Twilio could not be asked since "+o.AttemptAt.Format(time.RFC3339)+": "+err.Error()+")")
		return false
	}
}

// recordSent records a send Twilio accepted under sid and hands on a delivery
// receipt that came first. It reports false when the record failed.
//
// A record that fails for a reason other than a lost claim (Redis restarting,
// a dropped connection) is tried again while the claim lasts: the record is
// fenced and idempotent, and a send left unrecorded would wait for its lease to
// run out and Twilio to be asked before anything that follows from it (a call
// after a failed SMS, the delivery check) could happen.
func (d *Dispatcher) recordSent(ctx context.Context, log msgLog, o store.Outgoing, sid string) bool {
	wait := recordRetryFrom
	for {
		early, err := d.o.Store.RecordSent(ctx, o, sid, d.o.Now())
		if early != nil && d.o.OnEarlyReceipt != nil {
			// The SID is indexed even when the claim was lost: the receipt is its.
			d.o.OnEarlyReceipt(ctx, sid, *early)
		}
		if err == nil {
			break
		}
		if errors.Is(err, store.ErrFenced) || d.o.Now().Add(wait).After(time.UnixMilli(o.Lease)) || !sleepCtx(ctx, wait) {
			d.lost(log, err)
			return false
		}
		log.Warn("recording a send failed; trying again", "sid", sid, "in", wait, "err", err)
		wait = min(2*wait, recordRetryUpTo)
	}
	if d.o.OnSent != nil {
		d.o.OnSent(ctx, sid)
	}
	return true
}

// fail records a message as failed for good and hands it to OnFailure, which
// re-routes it (a call instead of an SMS, the next level after a failed call).
func (d *Dispatcher) fail(ctx context.Context, log msgLog, o store.Outgoing, code int, reason, detail string) {
	log.Error("send failed for good", "reason", reason, "code", code, "err", detail)
	if err := d.o.Store.RecordFailed(ctx, o, reason); err != nil {
		d.lost(log, err)
		return // another replica holds the message and decides
	}
	d.count(o.Msg, "failed")
	if d.o.OnFailure != nil {
		d.o.OnFailure(ctx, Failure{School: o.School, Message: o.Msg, Code: code, Reason: reason})
	}
}

func (d *Dispatcher) lost(log logger, err error) {
	if errors.Is(err, store.ErrFenced) {
		// The claim is gone: its lease ran out and another replica took the
		// message, or the message was settled meanwhile (a receipt re-routed it,
		// its alert was resolved). Whoever holds it now decides.
		log.Warn("message no longer held by this replica (taken by another after its lease, or settled meanwhile); left to its holder")
		return
	}
	log.Error("recording a send failed", "err", err)
}

func (d *Dispatcher) count(m visit.Message, result string) {
	if d.o.Metrics != nil {
		d.o.Metrics.Notifications.WithLabelValues(m.Channel, m.Kind, result).Inc()
	}
}

// logger is what the dispatcher logs through: a *slog.Logger, or a msgLog.
type logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

// msgLog logs about one message, naming it; the logger is only built when
// something is logged (a send that goes well logs nothing).
type msgLog struct {
	log *slog.Logger
	o   store.Outgoing
}

func (l msgLog) with() *slog.Logger {
	return l.log.With("msg", l.o.Msg.ID, "kind", l.o.Msg.Kind, "school", l.o.School)
}
func (l msgLog) Info(msg string, args ...any)  { l.with().Info(msg, args...) }
func (l msgLog) Warn(msg string, args ...any)  { l.with().Warn(msg, args...) }
func (l msgLog) Error(msg string, args ...any) { l.with().Error(msg, args...) }

// backoff is exponential from 1 s, capped at 60 s, with full jitter in its upper half.
func backoff(attempt int) time.Duration {
	d := time.Second << min(attempt, 6)
	d = min(d, 60*time.Second)
	return d/2 + rand.N(d/2+1)
}
