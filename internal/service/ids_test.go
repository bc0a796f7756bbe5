package service_test

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/service"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

// A new visit that draws the ID of a visit already open in the school is decided
// again with a new ID: the first visit is left as it was, and the second is opened.
func TestIDCollisionIsDecidedAgain(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open(t.Context(), store.Options{URL: srv.URL()}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var mu sync.Mutex
	ids := []string{"0000000000X1", "0000000000A1", "0000000000X1", "0000000000A2", "0000000000Y1"}
	newID := func(now time.Time) string { // the IDs given, then fresh ones
		mu.Lock()
		defer mu.Unlock()
		if len(ids) == 0 {
			return store.NewID(now)
		}
		id := ids[0]
		ids = ids[1:]
		return id
	}
	policy := visit.Policy{DefaultDuration: time.Hour, MaxDuration: 8 * time.Hour, ReminderBefore: 10 * time.Minute, Grace: 5 * time.Minute,
		Levels: []visit.Level{{Name: "office", RepeatEvery: 5 * time.Minute}}, PanicLevels: []string{"office"}, AckHold: 15 * time.Minute}
	svc := service.New(service.Options{Store: st, Policy: policy, Now: func() time.Time { return t0 }, Log: log,
		Metrics: service.NewMetrics(prometheus.NewRegistry()), NewID: newID})
	bob := visit.Officer{ID: "bsmith", Name: "Bob Smith", Phone: newPhone, School: "s1"}
	if err := st.SyncDirectory(t.Context(), []visit.School{schoolWith("School office")}, []visit.Officer{jane, bob}); err != nil {
		t.Fatal(err)
	}
	for _, in := range []service.InboundSMS{
		{From: janePhone, Body: "VISIT 45 14 Elm Road", SID: "SM1"},
		{From: newPhone, Body: "VISIT 30 2 Oak Lane", SID: "SM2"},
	} {
		if _, err := svc.HandleSMS(t.Context(), in); err != nil {
			t.Fatalf("%s: %v", in.Body, err)
		}
	}
	vs, err := st.OpenVisits(t.Context(), []string{"s1"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, v := range vs {
		got[v.ID] = v.Officer + " to " + v.Destination
	}
	want := map[string]string{"0000000000X1": "jdoe to 14 Elm Road", "0000000000Y1": "bsmith to 2 Oak Lane"}
	if len(got) != len(want) || got["0000000000X1"] != want["0000000000X1"] || got["0000000000Y1"] != want["0000000000Y1"] {
		t.Errorf("open visits %v, want %v", got, want)
	}
}
