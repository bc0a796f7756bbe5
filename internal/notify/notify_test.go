package notify_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/notify"
	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// sender is a hand-written fake Twilio: it records every send in order and can
// refuse numbers.
type sender struct {
	mu     sync.Mutex
	sent   []string // message bodies, in send order
	refuse map[string]*sms.Error
	// unavailable counts the next sends to a number that get HTTP 503.
	unavailable map[string]int
	signal      chan struct{}
}

func newSender() *sender {
	return &sender{refuse: map[string]*sms.Error{}, unavailable: map[string]int{}, signal: make(chan struct{}, 1000)}
}

func (s *sender) SendSMS(ctx context.Context, m sms.Outbound) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unavailable[m.To] > 0 {
		s.unavailable[m.To]--
		s.signal <- struct{}{}
		return "", &sms.Error{HTTPStatus: 503, Retryable: true}
	}
	if e := s.refuse[m.To]; e != nil {
		s.signal <- struct{}{}
		return "", e
	}
	s.sent = append(s.sent, m.Body)
	s.signal <- struct{}{}
	return fmt.Sprintf("SM%d", len(s.sent)), nil
}

func (s *sender) PlaceCall(ctx context.Context, c sms.Call) (string, error) {
	return s.SendSMS(ctx, sms.Outbound{To: c.To, Body: "CALL " + c.TwiML})
}

func (s *sender) bodies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sent...)
}

// waitSends waits for n send attempts (accepted or refused).
func (s *sender) waitSends(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-s.signal:
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for sends; got %q", s.bodies())
		}
	}
}

var t0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func queue(t *testing.T, st *store.Store, now time.Time, ms ...visit.Message) {
	t.Helper()
	for i := range ms {
		ms[i].School = "s1"
		if ms[i].Channel == "" {
			ms[i].Channel = visit.ChannelSMS
		}
	}
	if err := st.Begin("s1").Commit(t.Context(), store.Change{Result: visit.Result{Messages: ms}, Now: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutSchool(t.Context(), visit.School{ID: "s1"}); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, d interface{ Run(context.Context) error }) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// Under the shared rate limit, a panic queued after a backlog of overdue alerts
// and reminders still goes first.
func TestPanicGoesBeforeTheBacklog(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	var backlog []visit.Message
	for i := range 20 {
		backlog = append(backlog,
			visit.Message{ID: fmt.Sprintf("over%d", i), Kind: visit.KindAlert, To: "+447700900201", Body: fmt.Sprintf("OVERDUE %d", i), Priority: visit.PriorityAlert, First: true},
			visit.Message{ID: fmt.Sprintf("rem%d", i), Kind: visit.KindReminder, To: "+447700900101", Body: fmt.Sprintf("reminder %d", i), Priority: visit.PriorityNormal})
	}
	queue(t, st, t0, backlog...)
	queue(t, st, t0.Add(time.Second), visit.Message{ID: "panic", Kind: visit.KindAlert, To: "+447700900301", Body: "PANIC", Priority: visit.PriorityPanic})
	snd := newSender()
	run(t, notify.New(notify.Options{Store: st, Sender: snd, Log: quiet(), Now: func() time.Time { return t0.Add(time.Minute) },
		Limiter: st.NewSendLimiter(200), Workers: 1}))
	snd.waitSends(t, 41)
	got := snd.bodies()
	if got[0] != "PANIC" {
		t.Fatalf("first send %q, want the PANIC", got[0])
	}
	for i, b := range got[1:21] {
		if b[:7] != "OVERDUE" {
			t.Fatalf("send %d is %q: every overdue alert goes before any reminder", i+1, b)
		}
	}
}

// A replica that crashed after a send began (the attempt is recorded, the outcome
// is not) makes the next one send again — once; after a second such crash Vigil
// gives up on that message rather than risk a third copy, and hands it on to be
// re-routed.
func TestCrashDuringSendResendsAtMostOnce(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	ctx := t.Context()
	queue(t, st, t0, visit.Message{ID: "m1", Kind: visit.KindAlert, To: "+447700900201", Body: "OVERDUE", Priority: visit.PriorityAlert})
	// Two replicas in turn claim it, record the attempt, "send" and die.
	now := t0
	for range 2 {
		claimed, err := st.ClaimMessages(ctx, "s1", now, 4*time.Second, 10)
		if err != nil || len(claimed) != 1 {
			t.Fatalf("claim: %v %v", claimed, err)
		}
		if err := st.RecordAttempt(ctx, claimed[0], now); err != nil {
			t.Fatal(err)
		}
		now = now.Add(5 * time.Second) // the lease runs out
	}
	snd := newSender()
	var failed []notify.Failure
	var mu sync.Mutex
	gotFailure := make(chan struct{})
	run(t, notify.New(notify.Options{Store: st, Sender: snd, Log: quiet(), Now: func() time.Time { return now },
		OnFailure: func(ctx context.Context, f notify.Failure) {
			mu.Lock()
			failed = append(failed, f)
			mu.Unlock()
			close(gotFailure)
		}}))
	select {
	case <-gotFailure:
	case <-time.After(10 * time.Second):
		t.Fatal("the message was neither sent nor given up")
	}
	if got := snd.bodies(); len(got) != 0 {
		t.Errorf("sent %q after two uncertain attempts, want no third copy", got)
	}
	if failed[0].Message.ID != "m1" || failed[0].Reason != "uncertain" {
		t.Errorf("failure = %+v, want m1 handed on as uncertain", failed[0])
	}
}

// After one crash mid-send the message is sent again, once.
func TestOneCrashResendsOnce(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	ctx := t.Context()
	queue(t, st, t0, visit.Message{ID: "m1", Kind: visit.KindAlert, To: "+447700900201", Body: "OVERDUE", Priority: visit.PriorityAlert})
	claimed, _ := st.ClaimMessages(ctx, "s1", t0, 4*time.Second, 10)
	if err := st.RecordAttempt(ctx, claimed[0], t0); err != nil {
		t.Fatal(err)
	}
	snd := newSender()
	run(t, notify.New(notify.Options{Store: st, Sender: snd, Log: quiet(), Now: func() time.Time { return t0.Add(5 * time.Second) }}))
	snd.waitSends(t, 1)
	waitDepth(t, st, 0)
	if got := snd.bodies(); len(got) != 1 {
		t.Errorf("sent %d copies after one crash, want 1 more", len(got))
	}
}

// A permanent refusal is not retried by SMS and is handed on for re-routing; a
// contact over its limit does not get the rest of an alert's repeats (the alert
// comes round again), but nothing else is held back: not an alert's first
// notification, a panic, a reminder, a notice or an ALL CLEAR.
func TestRefusalsAndContactLimits(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	snd := newSender()
	snd.refuse["+447700900999"] = &sms.Error{Code: 21610, HTTPStatus: 400}
	var mu sync.Mutex
	var failed []string
	handedOn := make(chan struct{}, 10)
	var msgs []visit.Message
	for i := range 7 {
		msgs = append(msgs, visit.Message{ID: fmt.Sprintf("rep%d", i), Kind: visit.KindAlert, To: "+447700900201", Body: fmt.Sprintf("repeat %d", i), Priority: visit.PriorityAlert})
	}
	const phone = "+447700900201"
	msgs = append(msgs,
		visit.Message{ID: "first", Kind: visit.KindAlert, To: phone, Body: "first", Priority: visit.PriorityAlert, First: true},
		visit.Message{ID: "panic", Kind: visit.KindAlert, To: phone, Body: "panic", Priority: visit.PriorityPanic},
		visit.Message{ID: "reminder", Kind: visit.KindReminder, To: phone, Body: "reminder", Priority: visit.PriorityNormal},
		visit.Message{ID: "notice", Kind: visit.KindNotice, To: phone, Body: "notice", Priority: visit.PriorityNormal},
		visit.Message{ID: "clear", Kind: visit.KindAllClear, To: phone, Body: "clear", Priority: visit.PriorityAlert},
		visit.Message{ID: "optout", Kind: visit.KindAlert, To: "+447700900999", Body: "to an opted-out phone", Priority: visit.PriorityAlert, First: true})
	queue(t, st, t0, msgs...)
	run(t, notify.New(notify.Options{Store: st, Sender: snd, Log: quiet(), Now: func() time.Time { return t0 },
		ContactLimit: st.NewContactLimiter(15*time.Minute, map[string]int64{visit.ChannelSMS: 5}),
		OnFailure: func(ctx context.Context, f notify.Failure) {
			mu.Lock()
			failed = append(failed, fmt.Sprintf("%s %d", f.Message.ID, f.Code))
			mu.Unlock()
			handedOn <- struct{}{}
		}}))
	snd.waitSends(t, 11) // 5 repeats, the five exempt messages, the refused one
	select {
	case <-handedOn:
	case <-time.After(10 * time.Second):
		t.Fatal("the refused message was never handed on for re-routing")
	}
	waitDepth(t, st, 0) // the 2 repeats over the limit are skipped, not put off
	got := map[string]bool{}
	repeats := 0
	for _, b := range snd.bodies() {
		got[b] = true
		if strings.HasPrefix(b, "repeat") {
			repeats++
		}
	}
	if repeats != 5 || !got["first"] || !got["panic"] || !got["reminder"] || !got["notice"] || !got["clear"] {
		t.Errorf("sent %q, want 5 repeats and every message that is not a repeat", snd.bodies())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 1 || failed[0] != "optout 21610" {
		t.Errorf("failures handed on: %v, want the opted-out one (a skipped repeat is not re-routed)", failed)
	}
}

// The per-contact limit counts what Twilio accepted, once per message: a repeat
// retried after 503s takes one place, and one Twilio refused takes none.
func TestContactLimitCountsAcceptedMessages(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	snd := newSender()
	const phone = "+447700900201"
	snd.unavailable[phone] = 2
	var mu sync.Mutex
	now := t0
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	d := notify.New(notify.Options{Store: st, Sender: snd, Log: quiet(), Now: clock, Poll: 10 * time.Millisecond,
		ContactLimit: st.NewContactLimiter(15*time.Minute, map[string]int64{visit.ChannelSMS: 2})})
	run(t, d)
	repeat := func(id string) visit.Message {
		return visit.Message{ID: id, Kind: visit.KindAlert, To: phone, Body: id, Priority: visit.PriorityAlert}
	}
	queue(t, st, now, repeat("A"))
	// Two 503s, then accepted. Each retry is due a backoff (at most 2 s) after its
	// failure is recorded, which nothing announces: move the clock on until the
	// next try comes (three seconds a step: well inside the 15-minute window).
	deadline := time.Now().Add(10 * time.Second)
	for tries := 0; tries < 3; {
		select {
		case <-snd.signal:
			tries++
			continue
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("A was tried %d times, want 3 (sent %q)", tries, snd.bodies())
		}
		mu.Lock()
		now = now.Add(3 * time.Second)
		mu.Unlock()
		d.Wake()
	}
	waitDepth(t, st, 0)
	// Refused for good: no place taken.
	snd.mu.Lock()
	snd.refuse[phone] = &sms.Error{Code: 21211, HTTPStatus: 400}
	snd.mu.Unlock()
	queue(t, st, clock(), repeat("R"))
	snd.waitSends(t, 1)
	waitDepth(t, st, 0)
	snd.mu.Lock()
	delete(snd.refuse, phone)
	snd.mu.Unlock()
	// A holds one place of two: B goes, C is one too many.
	queue(t, st, clock(), repeat("B"), repeat("C"))
	snd.waitSends(t, 1)
	waitDepth(t, st, 0)
	if got := snd.bodies(); len(got) != 2 || got[0] != "A" || got[1] != "B" {
		t.Errorf("sent %q, want A (once, after its retries) and B", got)
	}
}

// waitDepth waits until the outbox holds want messages. A send is recorded just
// after the fake sender answers and nothing announces it, so this polls the
// queue (bounded) instead of sleeping a guessed time.
func waitDepth(t *testing.T, st *store.Store, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := st.OutboxDepth(t.Context(), []string{"s1"})
		if err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox depth %d, want %d", n, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Priority holds across schools: a panic queued in one school goes before a backlog
// of overdue alerts queued earlier in another.
func TestPanicGoesFirstAcrossSchools(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	ctx := t.Context()
	var backlog []visit.Message
	for i := range 30 {
		backlog = append(backlog, visit.Message{ID: fmt.Sprintf("over%d", i), School: "a-school", Channel: visit.ChannelSMS,
			Kind: visit.KindAlert, To: "+447700900201", Body: fmt.Sprintf("OVERDUE %d", i), Priority: visit.PriorityAlert, First: true})
	}
	for _, sc := range []string{"a-school", "b-school"} {
		if err := st.PutSchool(ctx, visit.School{ID: sc}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Begin("a-school").Commit(ctx, store.Change{Result: visit.Result{Messages: backlog}, Now: t0}); err != nil {
		t.Fatal(err)
	}
	panicMsg := visit.Message{ID: "panic", School: "b-school", Channel: visit.ChannelSMS, Kind: visit.KindAlert,
		To: "+447700900301", Body: "PANIC", Priority: visit.PriorityPanic}
	if err := st.Begin("b-school").Commit(ctx, store.Change{Result: visit.Result{Messages: []visit.Message{panicMsg}}, Now: t0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	snd := newSender()
	run(t, notify.New(notify.Options{Store: st, Sender: snd, Log: quiet(), Now: func() time.Time { return t0.Add(time.Minute) }, Workers: 1}))
	snd.waitSends(t, 31)
	if got := snd.bodies(); got[0] != "PANIC" {
		t.Fatalf("first send %q, want the other school's PANIC before this school's backlog", got[0])
	}
}

// blockingSender holds every send until released, so a test can stop a
// dispatcher while it has a send under way and more messages claimed.
type blockingSender struct {
	*sender
	started chan string
	release chan struct{}
}

func (b *blockingSender) SendSMS(ctx context.Context, m sms.Outbound) (string, error) {
	b.started <- m.Body
	<-b.release
	return b.sender.SendSMS(ctx, m)
}

// A dispatcher that stops hands back the messages it claimed and never started:
// another replica sends them at once, not when the claims run out. The send under
// way finishes, and nothing goes out twice.
func TestShutdownHandsBackClaimedMessages(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	queue(t, st, t0,
		visit.Message{ID: "a1", Kind: visit.KindAlert, To: "+447700900201", Body: "OVERDUE 1", Priority: visit.PriorityAlert},
		visit.Message{ID: "a2", Kind: visit.KindAlert, To: "+447700900202", Body: "OVERDUE 2", Priority: visit.PriorityAlert})
	// Both replicas' clocks stand still: a claim never runs out during the test,
	// so the second replica can only send what the first handed back.
	now := func() time.Time { return t0.Add(time.Minute) }
	first := &blockingSender{sender: newSender(), started: make(chan string, 2), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- notify.New(notify.Options{Store: st, Sender: first, Log: quiet(), Now: now, Workers: 1, Lease: 4 * time.Second}).Run(ctx)
	}()
	var underWay string
	select {
	case underWay = <-first.started: // one send under way, the other message held
	case <-time.After(10 * time.Second):
		t.Fatal("the first replica sent nothing")
	}
	cancel()
	// Stopping waits for the send under way; let it finish once the hand-back
	// has had its chance (Run hands back before it waits for its workers).
	second := newSender()
	run(t, notify.New(notify.Options{Store: st, Sender: second, Log: quiet(), Now: now}))
	second.waitSends(t, 1)
	close(first.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := append(first.bodies(), second.bodies()...)
	if len(got) != 2 || got[0] != underWay || got[0] == got[1] {
		t.Fatalf("sent %q (first replica %q, second %q), want each message once", got, first.bodies(), second.bodies())
	}
}

// Messages a commit hands over (Queued, already claimed for this dispatcher)
// while it is stopping are handed back with the rest, ready at once, instead of
// waiting out their claim: a failed send's re-routing committed during a
// shutdown is not held up by it.
func TestShutdownHandsBackWhatCommitsHandOver(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	ctx := t.Context()
	queue(t, st, t0, visit.Message{ID: "a1", Kind: visit.KindAlert, To: "+447700900201", Body: "OVERDUE 1", Priority: visit.PriorityAlert})
	now := t0.Add(time.Minute) // the clock stands still: no claim runs out
	first := &blockingSender{sender: newSender(), started: make(chan string, 1), release: make(chan struct{})}
	stop, cancel := context.WithCancel(context.Background())
	d := notify.New(notify.Options{Store: st, Sender: first, Log: quiet(), Now: func() time.Time { return now }, Workers: 1, Lease: 4 * time.Second})
	done := make(chan error, 1)
	go func() { done <- d.Run(stop) }()
	select {
	case <-first.started: // a send under way: stopping waits for it
	case <-time.After(10 * time.Second):
		t.Fatal("nothing was sent")
	}
	cancel()
	m := visit.Message{ID: "call1", School: "s1", Channel: visit.ChannelCall, Kind: visit.KindAlert, To: "+447700900202", Body: "OVERDUE 1", Priority: visit.PriorityAlert}
	ch := store.Change{Result: visit.Result{Messages: []visit.Message{m}}, Now: now, ClaimFor: 4 * time.Second}
	if err := st.Begin("s1").Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	d.Queued(ch.Claimed("s1"))
	close(first.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := st.ClaimQuotas(ctx, []store.Quota{{School: "s1", Priority: visit.PriorityAlert, Max: 10}}, now, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Msg.ID != "call1" || got[0].Attempts != 0 {
		t.Fatalf("claimable after the stop: %+v, want the message handed over, never begun", got)
	}
}

// Allocate fills a claim by priority across every school, then shares each
// priority evenly between the schools that have it.
func TestAllocate(t *testing.T) {
	schools := []string{"a", "b", "c"}
	ready := [][]int64{
		{0, 10, 5}, // a: 10 alerts, 5 reminders
		{1, 1, 0},  // b: a panic, an alert
		{0, 3, 0},  // c: 3 alerts
	}
	for _, tt := range []struct {
		max  int
		want []store.Quota
	}{
		{6, []store.Quota{
			{School: "b", Priority: visit.PriorityPanic, Max: 1},
			{School: "a", Priority: visit.PriorityAlert, Max: 2},
			{School: "b", Priority: visit.PriorityAlert, Max: 1},
			{School: "c", Priority: visit.PriorityAlert, Max: 2},
		}},
		// Enough room for everything: every ready message, reminders last.
		{100, []store.Quota{
			{School: "b", Priority: visit.PriorityPanic, Max: 1},
			{School: "a", Priority: visit.PriorityAlert, Max: 10},
			{School: "b", Priority: visit.PriorityAlert, Max: 1},
			{School: "c", Priority: visit.PriorityAlert, Max: 3},
			{School: "a", Priority: visit.PriorityNormal, Max: 5},
		}},
	} {
		if got := notify.Allocate(schools, ready, tt.max); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("Allocate(%d) = %v, want %v", tt.max, got, tt.want)
		}
	}
	if got := notify.Allocate(schools, [][]int64{{0, 0, 0}, {0, 0, 0}, {0, 0, 0}}, 8); len(got) != 0 {
		t.Errorf("nothing ready: Allocate = %v, want none", got)
	}
}

// stallingStore stalls the replica once, right after a send is begun: the fake
// clock jumps past the point where a request could finish inside the claim.
type stallingStore struct {
	*store.Store
	now     *atomic.Int64 // fake clock, Unix ms
	stalled atomic.Bool
}

func (s *stallingStore) StartSend(ctx context.Context, o store.Outgoing, now time.Time, lease time.Duration) (store.Outgoing, error) {
	o, err := s.Store.StartSend(ctx, o, now, lease)
	if err == nil && s.stalled.CompareAndSwap(false, true) {
		s.now.Add(2000)
	}
	return o, err
}

// A send begun too close to the end of its claim is not made, and not counted
// either: the message goes straight back to the queue as it was, and is sent at
// once — not left looking like a send that may have gone out, to be asked about
// when the claim runs out.
func TestSendTooCloseToTheLeaseEndGoesBack(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	queue(t, st, t0, visit.Message{ID: "a1", Kind: visit.KindAlert, To: "+447700900201", Body: "OVERDUE", Priority: visit.PriorityAlert})
	var clock atomic.Int64
	clock.Store(t0.UnixMilli())
	ss := &stallingStore{Store: st, now: &clock}
	snd := newSender()
	// Lease 4 s, requests up to 3 s: after a 2 s stall only 2 s of the claim are
	// left. The clock then stands still, so the claim never runs out.
	run(t, notify.New(notify.Options{Store: ss, Sender: snd, Log: quiet(), Lease: 4 * time.Second, SendTimeout: 3 * time.Second,
		Now: func() time.Time { return time.UnixMilli(clock.Load()) }}))
	snd.waitSends(t, 1)
	waitDepth(t, st, 0)
	if !ss.stalled.Load() {
		t.Fatal("the stall never happened")
	}
	h := srv.Client().HGetAll(t.Context(), "vigil:{s1}:msg:a1").Val()
	if h["state"] != "sent" || h["attempts"] != "1" {
		t.Errorf("message = %v, want sent after 1 attempt (the abandoned one not counted)", h)
	}
	if got := snd.bodies(); len(got) != 1 {
		t.Errorf("sent %q, want once", got)
	}
}

// Messages this replica queues are sent as soon as the dispatcher is told of
// them (Queued), with no look at the outbox or claim and no wake-up through
// Redis: the commit that queued them already claimed for this replica
// (ClaimFor) woke no one.
func TestQueuedMessagesGoWithoutALook(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	ctx := t.Context()
	queue(t, st, t0, visit.Message{ID: "m1", Kind: visit.KindAlert, To: "+447700900201", Body: "first", Priority: visit.PriorityAlert})
	snd := newSender()
	// An hour between safety polls: only the first look, at start, finds m1.
	d := notify.New(notify.Options{Store: st, Sender: snd, Log: quiet(), Now: func() time.Time { return t0.Add(time.Minute) }, Poll: time.Hour})
	run(t, d)
	snd.waitSends(t, 1)
	sub := srv.Client().Subscribe(ctx, st.OutboxChannel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	m2 := visit.Message{ID: "m2", School: "s1", Channel: visit.ChannelSMS, Kind: visit.KindAlert, To: "+447700900202", Body: "second", Priority: visit.PriorityPanic}
	ch := store.Change{Result: visit.Result{Messages: []visit.Message{m2}}, Now: t0.Add(time.Minute), ClaimFor: time.Minute}
	if err := st.Begin("s1").Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	d.Queued(ch.Claimed("s1"))
	snd.waitSends(t, 1)
	if got := snd.bodies(); len(got) != 2 || got[1] != "second" {
		t.Fatalf("sent %q, want the queued message second", got)
	}
	// Redis delivers a channel's messages in order: the first one after the
	// commit must be this marker, published after it.
	if err := srv.Client().Publish(ctx, st.OutboxChannel(), "marker").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-sub.Channel():
		if m.Payload != "marker" {
			t.Errorf("a local commit woke the other dispatchers: %q", m.Payload)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the marker never came")
	}
}

// blippingStore fails the first record of a send, as a Redis that restarts or
// drops the connection right after Twilio accepted the message would.
type blippingStore struct {
	*store.Store
	failed atomic.Bool
}

func (s *blippingStore) RecordSent(ctx context.Context, o store.Outgoing, sid string, now time.Time) (*store.EarlyReceipt, error) {
	if s.failed.CompareAndSwap(false, true) {
		return nil, errors.New("EOF")
	}
	return s.Store.RecordSent(ctx, o, sid, now)
}

// A send Twilio accepted whose record failed once is recorded on another try
// while the claim lasts, not left looking unsent until the claim runs out: the
// clock here stands still, so nothing but that retry could record it.
func TestAFailedRecordOfASendIsTriedAgain(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	queue(t, st, t0, visit.Message{ID: "a1", Kind: visit.KindAlert, To: "+447700900201", Body: "OVERDUE", Priority: visit.PriorityAlert})
	bs := &blippingStore{Store: st}
	snd := newSender()
	run(t, notify.New(notify.Options{Store: bs, Sender: snd, Log: quiet(), Now: func() time.Time { return t0 }}))
	snd.waitSends(t, 1)
	waitDepth(t, st, 0)
	if !bs.failed.Load() {
		t.Fatal("the record never failed")
	}
	h := srv.Client().HGetAll(t.Context(), "vigil:{s1}:msg:a1").Val()
	if h["state"] != "sent" || h["sid"] != "SM1" {
		t.Errorf("message = %v, want sent under SM1", h)
	}
	if got := snd.bodies(); len(got) != 1 {
		t.Errorf("sent %q, want once", got)
	}
}

// An alert message Twilio refused for a while is not retried once its alert has
// been resolved: it would reach the contact after the ALL CLEAR, asking for help
// no one needs. The retry of an alert still open goes, and only retries are
// asked about (not a first try).
func TestRetryOfAResolvedAlertIsDropped(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	snd := newSender()
	const resolvedPhone, openPhone = "+447700900201", "+447700900202"
	snd.unavailable[resolvedPhone] = 1
	snd.unavailable[openPhone] = 1
	var mu sync.Mutex
	now := t0
	var asked []string
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	d := notify.New(notify.Options{Store: st, Sender: snd, Log: quiet(), Now: clock, Poll: 10 * time.Millisecond,
		AlertResolved: func(ctx context.Context, school, id string) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, id)
			return id == "resolved", nil
		}})
	run(t, d)
	queue(t, st, t0,
		visit.Message{ID: "r1", Kind: visit.KindAlert, AlertID: "resolved", To: resolvedPhone, Body: "OVERDUE resolved", Priority: visit.PriorityAlert, First: true},
		visit.Message{ID: "o1", Kind: visit.KindAlert, AlertID: "open", To: openPhone, Body: "OVERDUE open", Priority: visit.PriorityAlert, First: true})
	snd.waitSends(t, 2) // both refused with a 503 once
	// The retries are due a backoff (at most 2 s) after the refusals are recorded,
	// which nothing announces: move the clock on until the open alert's retry comes.
	deadline := time.Now().Add(10 * time.Second)
	for sent := false; !sent; {
		select {
		case <-snd.signal:
			sent = true
			continue
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the open alert's retry never came (sent %q)", snd.bodies())
		}
		mu.Lock()
		now = now.Add(3 * time.Second)
		mu.Unlock()
		d.Wake()
	}
	waitDepth(t, st, 0)
	if got := snd.bodies(); len(got) != 1 || got[0] != "OVERDUE open" {
		t.Errorf("sent %q, want only the open alert's retry", got)
	}
	h := srv.Client().HGetAll(t.Context(), "vigil:{s1}:msg:r1").Val()
	if h["state"] != "failed" || h["last_error"] != store.SkippedAlertResolved {
		t.Errorf("resolved alert's message = %v, want failed with %q", h, store.SkippedAlertResolved)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(asked)
	if !slices.Equal(asked, []string{"open", "resolved"}) {
		t.Errorf("asked about %q, want each alert once (its retry; not the first tries)", asked)
	}
}

// The per-contact limit counts each alert's repeats on their own: two officers
// overdue at once each still reach the same office phone, though one alert's
// repeats over the limit are skipped.
func TestContactLimitIsPerAlert(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	st := store.NewWithClient(srv.Client(), "vigil:", quiet())
	snd := newSender()
	const phone = "+447700900201"
	repeat := func(alert string, n int) visit.Message {
		id := fmt.Sprintf("%s-%d", alert, n)
		return visit.Message{ID: id, Kind: visit.KindAlert, AlertID: alert, To: phone, Body: id, Priority: visit.PriorityAlert}
	}
	queue(t, st, t0, repeat("a", 1), repeat("a", 2), repeat("a", 3), repeat("b", 1), repeat("b", 2))
	run(t, notify.New(notify.Options{Store: st, Sender: snd, Log: quiet(), Now: func() time.Time { return t0 },
		ContactLimit: st.NewContactLimiter(15*time.Minute, map[string]int64{visit.ChannelSMS: 2})}))
	snd.waitSends(t, 4)
	waitDepth(t, st, 0)
	per := map[string]int{}
	for _, b := range snd.bodies() {
		per[b[:1]]++
	}
	if per["a"] != 2 || per["b"] != 2 {
		t.Errorf("sent %q, want two repeats of each alert (a's third over its limit)", snd.bodies())
	}
}
