package service_test

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/service"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

const (
	janePhone    = "+447700900101"
	officePhone  = "+441632960001"
	newPhone     = "+447700900109"
	unknownReply = "This number is not registered with Vigil"
)

var t0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// replica is one daemon's store and service on a shared Redis, as app.New wires them
// (store.Open, so with the directory cache).
type replica struct {
	st      *store.Store
	svc     *service.Service
	metrics *service.Metrics
}

func newReplica(t *testing.T, srv *redistest.Server) *replica {
	t.Helper()
	return newReplicaAt(t, srv, t0)
}

// newReplicaAt is newReplica with its clock standing at now.
func newReplicaAt(t *testing.T, srv *redistest.Server, now time.Time) *replica {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(t.Context(), store.Options{URL: srv.URL()}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := service.NewMetrics(prometheus.NewRegistry())
	policy := visit.Policy{
		DefaultDuration: time.Hour, MaxDuration: 8 * time.Hour, ReminderBefore: 10 * time.Minute, Grace: 5 * time.Minute,
		Levels:      []visit.Level{{Name: "office", RepeatEvery: 5 * time.Minute}},
		PanicLevels: []string{"office"}, AckHold: 15 * time.Minute,
	}
	svc := service.New(service.Options{Store: st, Policy: policy, Now: func() time.Time { return now }, Log: log, Metrics: m})
	return &replica{st: st, svc: svc, metrics: m}
}

func schoolWith(office string) visit.School {
	return visit.School{ID: "s1", Name: "Demo Primary", Contacts: map[string][]visit.Contact{"office": {{Name: office, Phone: officePhone}}}}
}

var jane = visit.Officer{ID: "jdoe", Name: "Jane Doe", Phone: janePhone, School: "s1"}

func (r *replica) sms(t *testing.T, from, body, sid string) string {
	t.Helper()
	reply, err := r.svc.HandleSMS(t.Context(), service.InboundSMS{From: from, Body: body, SID: sid})
	if err != nil {
		t.Fatalf("%s from %s: %v", body, from, err)
	}
	return reply
}

func openVisits(t *testing.T, r *replica) int {
	t.Helper()
	vs, err := r.st.OpenVisits(t.Context(), []string{"s1"})
	if err != nil {
		t.Fatal(err)
	}
	return len(vs)
}

// A MessageSid handled before gets the reply it got the first time, counted as a
// duplicate, and changes nothing: whether the first answer opened a visit, refused,
// or took charge of an alert, and when the repeats arrive all at once.
func TestRepeatedMessageSid(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newReplica(t, srv)
	ctx := t.Context()
	if err := r.st.SyncDirectory(ctx, []visit.School{schoolWith("School office")}, []visit.Officer{jane}); err != nil {
		t.Fatal(err)
	}
	dups := func() float64 {
		n := 0.0
		for _, v := range []visit.Verb{visit.VerbVisit, visit.VerbExtend, visit.VerbAck} {
			var m dto.Metric
			if err := r.metrics.InboundSMS.WithLabelValues(string(v), "duplicate").Write(&m); err != nil {
				t.Fatal(err)
			}
			n += m.GetCounter().GetValue()
		}
		return n
	}

	// A refusal (nothing open to extend) is answered the same way again.
	refused := r.sms(t, janePhone, "EXTEND 15", "SM-extend")
	if again := r.sms(t, janePhone, "EXTEND 15", "SM-extend"); again != refused {
		t.Errorf("repeated refusal: %q, first %q", again, refused)
	}

	// A VISIT repeated eight times at once opens one visit; every answer is the first.
	first := r.sms(t, janePhone, "VISIT 45 14 Elm Road", "SM-visit")
	var wg sync.WaitGroup
	replies := make([]string, 8)
	for i := range replies {
		wg.Go(func() { replies[i] = r.sms(t, janePhone, "VISIT 45 14 Elm Road", "SM-visit") })
	}
	wg.Wait()
	for _, got := range replies {
		if got != first {
			t.Errorf("repeated VISIT: %q, first %q", got, first)
		}
	}
	if n := openVisits(t, r); n != 1 {
		t.Errorf("%d open visits, want 1", n)
	}

	// A contact's ACK, repeated.
	r.sms(t, janePhone, "PANIC", "SM-panic")
	ack := r.sms(t, officePhone, "ACK", "SM-ack")
	if !strings.Contains(ack, "Jane Doe") {
		t.Fatalf("ACK reply: %q", ack)
	}
	if again := r.sms(t, officePhone, "ACK", "SM-ack"); again != ack {
		t.Errorf("repeated ACK: %q, first %q", again, ack)
	}
	if got := dups(); got != 10 {
		t.Errorf("%v answers counted as duplicates, want 10", got)
	}
}

// The directory an SMS is decided with is the current one: a contact list changed
// through this replica is the one a PANIC goes to at once, and a number added
// through another replica works there at once.
func TestSMSSeesDirectoryChanges(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	a, b := newReplica(t, srv), newReplica(t, srv)
	ctx := t.Context()
	if err := a.st.SyncDirectory(ctx, []visit.School{schoolWith("Old office")}, []visit.Officer{jane}); err != nil {
		t.Fatal(err)
	}
	// The school, the officer and her phone are read (and cached) by both.
	for _, r := range []*replica{a, b} {
		if got := r.sms(t, janePhone, "STATUS", ""); strings.Contains(got, unknownReply) {
			t.Fatalf("STATUS: %q", got)
		}
	}
	if got := b.sms(t, newPhone, "STATUS", ""); !strings.Contains(got, unknownReply) {
		t.Fatalf("an unknown number: %q", got)
	}

	if err := a.st.PutSchool(ctx, schoolWith("New office")); err != nil {
		t.Fatal(err)
	}
	if err := a.st.ReindexPhones(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.sms(t, janePhone, "PANIC", "SM-panic"); !strings.Contains(got, "New office") || strings.Contains(got, "Old office") {
		t.Errorf("PANIC after the office list changed: %q", got)
	}

	if err := a.st.PutOfficer(ctx, visit.Officer{ID: "asmith", Name: "Alex Smith", Phone: newPhone, School: "s1"}); err != nil {
		t.Fatal(err)
	}
	if got := b.sms(t, newPhone, "VISIT 30 22 Oak Lane", "SM-new"); !strings.Contains(got, "22 Oak Lane") {
		t.Errorf("VISIT from a number just added, on the other replica: %q", got)
	}
}

// A contact on two schools repeats (Twilio retrying) a code-less RESOLVE after the
// other school has raised an alert: the repeat is answered as the first time and
// does not resolve the new alert (choosing the school again, from the alerts open
// now, would have).
func TestRepeatedResolveFromContactOfTwoSchools(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newReplica(t, srv)
	ctx := t.Context()
	other := schoolWith("School office")
	other.ID, other.Name = "s2", "Other Primary"
	bob := visit.Officer{ID: "bob", Name: "Bob Roe", Phone: "+447700900102", School: "s2"}
	if err := r.st.SyncDirectory(ctx, []visit.School{schoolWith("School office"), other}, []visit.Officer{jane, bob}); err != nil {
		t.Fatal(err)
	}
	r.sms(t, janePhone, "PANIC", "SM-panic-1")
	first := r.sms(t, officePhone, "RESOLVE found safe", "SM-resolve")
	if open, _ := r.st.ListAlerts(ctx, []string{"s1"}, true, 0); len(open) != 0 {
		t.Fatalf("RESOLVE answered %q and left %+v open", first, open)
	}
	r.sms(t, bob.Phone, "PANIC", "SM-panic-2")
	if again := r.sms(t, officePhone, "RESOLVE found safe", "SM-resolve"); again != first {
		t.Errorf("repeated RESOLVE answered %q, first %q", again, first)
	}
	if open, err := r.st.ListAlerts(ctx, []string{"s2"}, true, 0); err != nil || len(open) != 1 {
		t.Errorf("the repeat resolved the other school's alert: open %+v, %v", open, err)
	}
}

// A bare ACK from a contact of two schools that both have an open alert is as
// ambiguous as one in a school with two: SPEC §5, "the code picks one when several
// are open". The reply lists them with their codes and nothing changes; the code
// then picks the school.
func TestBareAckFromContactOfTwoSchoolsWithOpenAlerts(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newReplica(t, srv)
	ctx := t.Context()
	// The same phone is "School office" at s1 and "Other office" at s2.
	other := schoolWith("Other office")
	other.ID, other.Name = "s2", "Other Primary"
	bob := visit.Officer{ID: "bob", Name: "Bob Roe", Phone: "+447700900102", School: "s2"}
	if err := r.st.SyncDirectory(ctx, []visit.School{schoolWith("School office"), other}, []visit.Officer{jane, bob}); err != nil {
		t.Fatal(err)
	}
	r.sms(t, janePhone, "PANIC", "SM-panic-1")
	r.sms(t, bob.Phone, "PANIC", "SM-panic-2")
	a1, err := r.st.ListAlerts(ctx, []string{"s1"}, true, 0)
	if err != nil || len(a1) != 1 {
		t.Fatalf("s1 open alerts %+v, %v", a1, err)
	}
	a2, err := r.st.ListAlerts(ctx, []string{"s2"}, true, 0)
	if err != nil || len(a2) != 1 {
		t.Fatalf("s2 open alerts %+v, %v", a2, err)
	}
	reply := r.sms(t, officePhone, "ACK", "SM-ack-bare")
	for _, want := range []string{"Several alerts are open", "ACK " + a1[0].Code + " (Jane Doe)", "ACK " + a2[0].Code + " (Bob Roe)", "Nothing changed"} {
		if !strings.Contains(reply, want) {
			t.Errorf("bare ACK answered %q, want it to say %q", reply, want)
		}
	}
	for _, sc := range []string{"s1", "s2"} {
		if open, err := r.st.ListAlerts(ctx, []string{sc}, true, 0); err != nil || len(open) != 1 || open[0].State != visit.AlertOpen {
			t.Errorf("school %s after a bare ACK: %+v, %v; want its alert still open, not acked", sc, open, err)
		}
	}
	if reply := r.sms(t, officePhone, "ACK "+a2[0].Code, "SM-ack-code"); !strings.Contains(reply, "taken charge") {
		t.Errorf("ACK %s answered %q", a2[0].Code, reply)
	}
	if open, _ := r.st.ListAlerts(ctx, []string{"s2"}, true, 0); len(open) != 1 || open[0].State != visit.AlertAcked {
		t.Errorf("s2 after ACK with its code: %+v, want acked", open)
	} else if open[0].AckedBy != "Other office ("+officePhone+")" {
		t.Errorf("s2's alert acked by %q, want the name s2's lists give the phone", open[0].AckedBy)
	}
}

// START (Twilio's opt-in word, which it acts on before passing it on) is not a
// command of Vigil's: the officer is told what it did, and the commands, rather
// than that it was not understood.
func TestStartFromAnOfficerSaysTextsComeAgain(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newReplica(t, srv)
	if err := r.st.SyncDirectory(t.Context(), []visit.School{schoolWith("School office")}, []visit.Officer{jane}); err != nil {
		t.Fatal(err)
	}
	reply := r.sms(t, janePhone, "Start", "SM-start")
	if !strings.HasPrefix(reply, "Vigil texts will reach this phone again.") || !strings.Contains(reply, "VISIT 45 14 Elm Road") {
		t.Errorf("START answered %q", reply)
	}
	if n := visit.Septets(reply); n > 160 {
		t.Errorf("START's reply is %d septets, more than one segment", n)
	}
	if openVisits(t, r) != 0 {
		t.Error("START opened a visit")
	}
}

// Twilio repeating a bare ACK that took charge at one school (its answer lost)
// gets the first answer, though by then another school has an open alert too:
// a repeat is never answered "Several alerts are open ... Nothing changed".
func TestRepeatedBareAckAfterAnotherSchoolsAlert(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	r := newReplica(t, srv)
	ctx := t.Context()
	other := schoolWith("Other office")
	other.ID, other.Name = "s2", "Other Primary"
	bob := visit.Officer{ID: "bob", Name: "Bob Roe", Phone: "+447700900102", School: "s2"}
	if err := r.st.SyncDirectory(ctx, []visit.School{schoolWith("School office"), other}, []visit.Officer{jane, bob}); err != nil {
		t.Fatal(err)
	}
	r.sms(t, janePhone, "PANIC", "SM-panic-1")
	first := r.sms(t, officePhone, "ACK", "SM-ack")
	if !strings.Contains(first, "taken charge") {
		t.Fatalf("ACK answered %q", first)
	}
	r.sms(t, bob.Phone, "PANIC", "SM-panic-2")
	if again := r.sms(t, officePhone, "ACK", "SM-ack"); again != first {
		t.Errorf("repeated ACK answered %q, the first %q", again, first)
	}
	if open, err := r.st.ListAlerts(ctx, []string{"s2"}, true, 0); err != nil || len(open) != 1 || open[0].State != visit.AlertOpen {
		t.Errorf("the repeat changed the other school's alert: %+v, %v", open, err)
	}
}

// The visit an API call answers with shows the instants a later read of it
// shows: Redis keeps milliseconds, so the service decides with them, whatever
// finer clock it is given.
func TestOpenVisitAnswerMatchesALaterRead(t *testing.T) {
	t.Parallel()
	r := newReplicaAt(t, redistest.Start(t), t0.Add(123456789*time.Nanosecond))
	if err := r.st.PutSchool(t.Context(), schoolWith("Office")); err != nil {
		t.Fatal(err)
	}
	if err := r.st.PutOfficer(t.Context(), jane); err != nil {
		t.Fatal(err)
	}
	v, err := r.svc.OpenVisit(t.Context(), "office-pc", service.OpenVisitRequest{Officer: "jdoe", Destination: "14 Elm Road", Duration: 45 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	read, err := r.svc.Visit(t.Context(), v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !v.StartedAt.Equal(read.StartedAt) || !v.DueAt.Equal(read.DueAt) {
		t.Errorf("answered started_at %s due_at %s; read back %s, %s", v.StartedAt, v.DueAt, read.StartedAt, read.DueAt)
	}
	if want := t0.Add(123 * time.Millisecond); !v.StartedAt.Equal(want) {
		t.Errorf("started_at %s, want %s", v.StartedAt, want)
	}
}
