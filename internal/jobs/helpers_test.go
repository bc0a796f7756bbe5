package jobs

import (
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func london(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// env is one test's Redis and store.
type env struct {
	t   *testing.T
	ctx context.Context
	rdb *redis.Client
	st  *store.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client()
	return &env{t: t, ctx: t.Context(), rdb: rdb, st: store.NewWithClient(rdb, "vigil:", slog.New(slog.DiscardHandler))}
}

const school = "bishop-lonsdale"

// school puts the test school in the directory, with two managers (one also on the
// office list, to show lists are not mixed up).
func (e *env) school() visit.School {
	sc := visit.School{ID: school, Name: "Bishop Lonsdale CE Primary School", Contacts: map[string][]visit.Contact{
		visit.ListOffice:   {{Name: "School office", Phone: "+441332000001"}},
		visit.ListManagers: {{Name: "Head of School", Phone: "+447700900201"}, {Name: "Business Manager", Phone: "+447700900202"}, {Name: "Head again", Phone: "+447700900201"}},
	}}
	if err := e.st.PutSchool(e.ctx, sc); err != nil {
		e.t.Fatal(err)
	}
	return sc
}

func (e *env) officer(o visit.Officer) {
	e.t.Helper()
	if err := e.st.PutOfficer(e.ctx, o); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) runner() *Runner {
	return New(Options{Store: e.st, Location: london(e.t), Now: time.Now,
		ExpiryCheck: "0 8 * * *", MonthlyReport: "0 7 1 * *", VisitDays: 30, AlertDays: 400})
}

// commit writes entities through the store's own commit path.
func (e *env) commit(now time.Time, r visit.Result, states map[string]visit.OfficerState) {
	e.t.Helper()
	if err := e.st.Begin(school).Commit(e.ctx, store.Change{Result: r, Now: now, OfficerStates: states}); err != nil {
		e.t.Fatal(err)
	}
}

// closedVisit commits a visit that opened an hour before it closed.
func (e *env) closedVisit(id, outcome string, closed time.Time, alertID string) *visit.Visit {
	e.t.Helper()
	v := &visit.Visit{ID: id, School: school, Officer: "jdoe", Companions: []string{}, Destination: "14 Elm Road " + id,
		PupilRef: "UPN-" + id, State: visit.StateClosed, Outcome: outcome, StartedAt: closed.Add(-time.Hour),
		DueAt: closed.Add(-10 * time.Minute), ClosedAt: closed, AlertID: alertID,
		Events: []visit.Event{{At: closed.Add(-time.Hour), Type: "opened", By: "jdoe", Detail: "to 14 Elm Road " + id}}}
	e.commit(closed, visit.Result{Visits: []*visit.Visit{v}}, nil)
	return v
}

// alert commits an alert raised at raised (open, as the decision that raised it
// would), then acks and resolves it as asked, each a commit of its own.
func (e *env) alert(id, reason, visitID string, raised time.Time, ackAfter time.Duration, resolved time.Time, resolution string) {
	e.t.Helper()
	a := &visit.Alert{ID: id, Code: "", School: school, Officer: "jdoe", VisitID: visitID, Reason: reason,
		State: visit.AlertOpen, RaisedAt: raised, Notified: []visit.Recipient{}, Destination: "14 Elm Road " + visitID}
	e.commit(raised, visit.Result{Alerts: []*visit.Alert{a}}, nil)
	change := func(now time.Time, f func(a *visit.Alert)) {
		sn := e.st.Begin(school)
		a, err := sn.Alert(e.ctx, id)
		if err != nil || a == nil {
			e.t.Fatalf("load alert %s: %v", id, err)
		}
		f(a)
		if err := sn.Commit(e.ctx, store.Change{Result: visit.Result{Alerts: []*visit.Alert{a}}, Now: now}); err != nil {
			e.t.Fatal(err)
		}
	}
	if ackAfter > 0 {
		change(raised.Add(ackAfter), func(a *visit.Alert) {
			a.State, a.AckedBy, a.AckedAt = visit.AlertAcked, "Head of School", raised.Add(ackAfter)
		})
	}
	if !resolved.IsZero() {
		change(resolved, func(a *visit.Alert) {
			a.State, a.ResolvedAt, a.Resolution = visit.AlertResolved, resolved, resolution
		})
	}
}

// outbox lists the messages queued for a school at normal priority, by ID.
func (e *env) outbox() []visit.Message {
	e.t.Helper()
	ids, err := e.rdb.ZRange(e.ctx, "vigil:{"+school+"}:outbox:2", 0, -1).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	sort.Strings(ids)
	var out []visit.Message
	for _, id := range ids {
		raw, err := e.rdb.HGet(e.ctx, "vigil:{"+school+"}:msg:"+id, "json").Result()
		if err != nil {
			e.t.Fatal(err)
		}
		var m visit.Message
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// grep lists every key of Redis whose name or content holds needle.
func (e *env) grep(needle string) []string {
	e.t.Helper()
	var hits []string
	it := e.rdb.Scan(e.ctx, 0, "*", 1000).Iterator()
	for it.Next(e.ctx) {
		key := it.Val()
		var content []string
		switch typ := e.rdb.Type(e.ctx, key).Val(); typ {
		case "string":
			content = []string{e.rdb.Get(e.ctx, key).Val()}
		case "hash":
			for f, v := range e.rdb.HGetAll(e.ctx, key).Val() {
				content = append(content, f, v)
			}
		case "set":
			content = e.rdb.SMembers(e.ctx, key).Val()
		case "zset":
			content = e.rdb.ZRange(e.ctx, key, 0, -1).Val()
		case "stream":
			for _, x := range e.rdb.XRange(e.ctx, key, "-", "+").Val() {
				for f, v := range x.Values {
					content = append(content, f, v.(string))
				}
			}
		default:
			e.t.Fatalf("key %s has unexpected type %s", key, typ)
		}
		if strings.Contains(key, needle) || strings.Contains(strings.Join(content, "\x00"), needle) {
			hits = append(hits, key)
		}
	}
	if err := it.Err(); err != nil {
		e.t.Fatal(err)
	}
	sort.Strings(hits)
	return hits
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}
