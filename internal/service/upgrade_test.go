package service_test

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/service"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// An open visit left by the version before short IDs and the officer-state hash (a
// ULID, the officer's state in a key of its own, the visit in the set of open
// visits), exactly as it wrote them, is listed as open, alerts when it is overdue,
// and is checked in; the officer's state then moves into the hash and the visit
// leaves the old set.
func TestOpenVisitOfEarlierVersionAlerts(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(ctx, store.Options{URL: srv.URL()}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var now atomic.Int64
	now.Store(t0.UnixMilli())
	clock := func() time.Time { return time.UnixMilli(now.Load()).UTC() }
	policy := visit.Policy{DefaultDuration: time.Hour, MaxDuration: 8 * time.Hour, ReminderBefore: 10 * time.Minute, Grace: 5 * time.Minute,
		Levels: []visit.Level{{Name: "office", RepeatEvery: 5 * time.Minute}}, PanicLevels: []string{"office"}, AckHold: 15 * time.Minute}
	svc := service.New(service.Options{Store: st, Policy: policy, Now: clock, Log: log, Metrics: service.NewMetrics(prometheus.NewRegistry())})
	if err := st.SyncDirectory(ctx, []visit.School{schoolWith("School office")}, []visit.Officer{jane}); err != nil {
		t.Fatal(err)
	}

	// What the earlier version wrote for "VISIT 45 14 Elm Road" at t0 (due 09:45).
	id := ulid.MustNew(ulid.Timestamp(t0), ulid.DefaultEntropy()).String()
	rdb := srv.Client()
	for _, c := range [][]any{
		{"SET", "vigil:{s1}:visit:" + id, `~{"o":"jdoe","d":"14 Elm Road","u":2700000,"e":[{"k":"opened","y":"+447700900101","w":"due 09:45"}]}`},
		{"SET", "vigil:{s1}:ostate:jdoe", `~{"v":"` + id + `","t":"VISIT 45 14 Elm Road"}`},
		{"SADD", "vigil:{s1}:visits:open", id},
		{"ZADD", "vigil:{s1}:timers", t0.Add(50 * time.Minute).UnixMilli(), "v:" + id}, // due + grace
	} {
		if err := rdb.Do(ctx, c...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if vs, err := st.OpenVisits(ctx, []string{"s1"}); err != nil || len(vs) != 1 || vs[0].ID != id || !vs[0].DueAt.Equal(t0.Add(45*time.Minute)) {
		t.Fatalf("open visits %+v %v, want the earlier version's", vs, err)
	}
	if n, err := st.CountOpenVisits(ctx, []string{"s1"}); err != nil || n != 1 {
		t.Errorf("CountOpenVisits = %d %v, want 1", n, err)
	}

	// Overdue: the timer raises an alert to the office.
	now.Store(t0.Add(50 * time.Minute).UnixMilli())
	due, err := st.ClaimTimers(ctx, "s1", clock(), 30*time.Second, 10)
	if err != nil || len(due) != 1 || due[0].Member != "v:"+id {
		t.Fatalf("claimed %+v %v, want the visit's timer", due, err)
	}
	if _, fired, err := svc.HandleTimer(ctx, due[0]); err != nil || !fired {
		t.Fatalf("the visit's timer: fired %v, %v", fired, err)
	}
	alerts, err := st.ListAlerts(ctx, []string{"s1"}, true, 10)
	if err != nil || len(alerts) != 1 || alerts[0].VisitID != id || alerts[0].Reason != visit.ReasonOverdue || len(alerts[0].Notified) == 0 {
		t.Fatalf("open alerts %+v %v, want the overdue visit's, notified", alerts, err)
	}

	// IN closes it and resolves the alert, whatever wrote the officer's state.
	now.Store(t0.Add(52 * time.Minute).UnixMilli())
	if _, err := svc.HandleSMS(ctx, service.InboundSMS{From: janePhone, Body: "IN", SID: "SM-in"}); err != nil {
		t.Fatal(err)
	}
	if vs, err := st.OpenVisits(ctx, []string{"s1"}); err != nil || len(vs) != 0 {
		t.Errorf("open visits after IN: %+v %v", vs, err)
	}
	if alerts, err := st.ListAlerts(ctx, []string{"s1"}, true, 10); err != nil || len(alerts) != 0 {
		t.Errorf("open alerts after IN: %+v %v", alerts, err)
	}
	if n := rdb.Exists(ctx, "vigil:{s1}:ostate:jdoe", "vigil:{s1}:visits:open").Val(); n != 0 {
		t.Errorf("%d of the earlier version's keys are left", n)
	}
	if raw := rdb.HGet(ctx, "vigil:{s1}:ostates", "jdoe").Val(); raw == "" {
		t.Errorf("no officer state in the hash")
	}
}
