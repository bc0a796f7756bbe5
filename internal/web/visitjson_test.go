package web_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/vigil-safety/vigil/internal/service"
	"github.com/vigil-safety/vigil/internal/visit"
	"github.com/vigil-safety/vigil/internal/web"
)

const officeToken = "office-token-for-tests-0001"

// visitService holds two open visits, one without a kind; the rest of web.Service
// is not used.
type visitService struct{ web.Service }

var (
	noKind   = visit.Visit{ID: "v1", School: "s1", Officer: "jdoe", Destination: "14 Elm Road", State: visit.StateActive}
	withKind = visit.Visit{ID: "v2", School: "s1", Officer: "asmith", Destination: "2 Oak Lane", Kind: visit.KindPlanned, State: visit.StateActive}
)

func (visitService) Visits(context.Context, string) ([]*visit.Visit, error) {
	a, b := noKind, withKind
	return []*visit.Visit{&a, &b}, nil
}

func (visitService) Visit(_ context.Context, id string) (*visit.Visit, error) {
	v := noKind
	if id == withKind.ID {
		v = withKind
	}
	return &v, nil
}

func (visitService) OpenVisit(_ context.Context, _ string, req service.OpenVisitRequest) (*visit.Visit, error) {
	v := noKind
	v.Kind = req.Kind
	return &v, nil
}

func (visitService) VisitCommand(context.Context, string, string, visit.Command) (*visit.Visit, error) {
	v := noKind
	return &v, nil
}

// officeServer serves the API over svc to one token, officeToken, of the office
// role.
func officeServer(t *testing.T, svc web.Service) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(web.New(web.Options{
		Service: svc, Log: slog.New(slog.DiscardHandler),
		Tokens: []web.Token{{Name: "office-pc", Role: web.RoleOffice, SHA256: web.HashToken(officeToken)}},
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Every visit the API shows has its kind (SPEC §4): null when it was opened without
// one, the kind when it was.
func TestVisitJSONAlwaysHasKind(t *testing.T) {
	t.Parallel()
	srv := officeServer(t, visitService{})
	call := func(method, path, body string) []byte {
		t.Helper()
		res, b := send(t, srv, method, path, officeToken, body)
		if res.StatusCode >= 300 {
			t.Fatalf("%s %s: %s %s", method, path, res.Status, b)
		}
		return []byte(b)
	}
	kind := func(what string, b []byte) any {
		t.Helper()
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v in %s", what, err, b)
		}
		k, ok := v["kind"]
		if !ok {
			t.Errorf("%s has no kind: %s", what, b)
		}
		return k
	}

	if k := kind("GET /api/v1/visits/v1", call("GET", "/api/v1/visits/v1", "")); k != nil {
		t.Errorf("visit opened without a kind shows kind %v, want null", k)
	}
	if k := kind("GET /api/v1/visits/v2", call("GET", "/api/v1/visits/v2", "")); k != visit.KindPlanned {
		t.Errorf("planned visit shows kind %v", k)
	}
	var list struct{ Visits []json.RawMessage }
	if err := json.Unmarshal(call("GET", "/api/v1/visits", ""), &list); err != nil || len(list.Visits) != 2 {
		t.Fatalf("GET /api/v1/visits: %v, %d visits", err, len(list.Visits))
	}
	if k0, k1 := kind("listed v1", list.Visits[0]), kind("listed v2", list.Visits[1]); k0 != nil || k1 != visit.KindPlanned {
		t.Errorf("listed kinds %v, %v; want null, planned", k0, k1)
	}
	if k := kind("POST /api/v1/visits", call("POST", "/api/v1/visits", `{"officer":"jdoe","destination":"14 Elm Road","duration":"45m"}`)); k != nil {
		t.Errorf("visit opened without a kind answered kind %v, want null", k)
	}
	if k := kind("POST /api/v1/visits with a kind", call("POST", "/api/v1/visits", `{"officer":"jdoe","destination":"x","duration":"45m","kind":"reactive"}`)); k != visit.KindReactive {
		t.Errorf("visit opened as reactive answered kind %v", k)
	}
	if k := kind("POST checkin", call("POST", "/api/v1/visits/v1/checkin", "")); k != nil {
		t.Errorf("checked-in visit shows kind %v, want null", k)
	}
}
