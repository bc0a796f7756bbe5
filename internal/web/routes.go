package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/vigil-safety/vigil/internal/service"
	"github.com/vigil-safety/vigil/internal/visit"
)

// routes is the whole HTTP surface of Vigil.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()

	// Twilio webhooks (form-encoded, signed).
	mux.HandleFunc("POST /twilio/sms", s.handleSMS)
	mux.HandleFunc("POST /twilio/status", s.handleStatus)
	mux.HandleFunc("POST /twilio/voice/gather", s.handleGather)

	// Office API.
	mux.HandleFunc("GET /api/v1/visits", s.api(RoleReadonly, s.listVisits))
	mux.HandleFunc("POST /api/v1/visits", s.api(RoleOffice, s.openVisit))
	mux.HandleFunc("GET /api/v1/visits/{id}", s.api(RoleReadonly, s.getVisit))
	mux.HandleFunc("POST /api/v1/visits/{id}/checkin", s.api(RoleOffice, s.checkin))
	mux.HandleFunc("POST /api/v1/visits/{id}/extend", s.api(RoleOffice, s.extend))
	mux.HandleFunc("POST /api/v1/visits/{id}/abort", s.api(RoleOffice, s.abort))
	mux.HandleFunc("GET /api/v1/alerts", s.api(RoleReadonly, s.listAlerts))
	mux.HandleFunc("POST /api/v1/alerts/{id}/ack", s.api(RoleOffice, s.ack))
	mux.HandleFunc("POST /api/v1/alerts/{id}/resolve", s.api(RoleOffice, s.resolve))
	if s.o.MonthlyReport != nil {
		mux.HandleFunc("GET /api/v1/reports/monthly", s.api(RoleReadonly, s.monthlyReport))
	}

	// Health and metrics.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.ready)
	if s.o.Metrics != nil {
		mux.Handle("GET /metrics", s.o.Metrics)
	}

	// Directory API and the office console (directory.go).
	s.directoryRoutes(mux)
	s.consoleRoute(mux)

	// Whatever else is asked of the API gets a JSON error, not the console's page.
	unknown := s.unknownAPI(mux)
	mux.HandleFunc("/api", unknown)
	mux.HandleFunc("/api/", unknown)
	return mux
}

// apiMethods are the methods tried when telling an unknown path (404) from a known
// path asked with a method it does not take (405, with Allow listing those it does).
var apiMethods = []string{http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodPatch, http.MethodPost, http.MethodPut}

// unknownAPI answers a request under /api that no API route takes: 405 with an Allow
// header when the path is an endpoint's and the method is not one it takes, else
// 404; both with a JSON {"error": ...} as every API error is (SPEC §4).
func (s *Server) unknownAPI(mux *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range apiMethods {
			other := r.WithContext(r.Context()) // a shallow copy, to ask the mux
			other.Method = m
			if _, pattern := mux.Handler(other); pattern != "" && pattern != "/api" && pattern != "/api/" {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			writeJSON(w, http.StatusNotFound, errorBody("no API endpoint at "+r.URL.Path))
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, errorBody(r.Method+" is not allowed on "+r.URL.Path+"; it takes "+strings.Join(allow, ", ")))
	}
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.o.Ready != nil {
		if err := s.o.Ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.Write([]byte("ready\n"))
}

// apiVisit is a visit as the API shows it. Kind is always there, as SPEC §4 lists it
// among a visit's fields: null for a visit opened without one (SPEC gives no
// default kind, and "" is not a kind).
type apiVisit struct {
	*visit.Visit
	Kind     *string    `json:"kind"`      // shadows visit.Visit's, which is left out when empty
	ClosedAt *time.Time `json:"closed_at"` // likewise: null while the visit is open
}

// visitJSON is a visit as the API shows it; events only in the single-visit view.
func visitJSON(v *visit.Visit, withEvents bool) apiVisit {
	c := *v
	if withEvents {
		if c.Events == nil {
			c.Events = []visit.Event{}
		}
	} else {
		c.Events = nil
	}
	return apiVisit{Visit: &c, Kind: orNullString(c.Kind), ClosedAt: orNull(c.ClosedAt)}
}

// apiAlert is an alert as the API shows it: the fields SPEC §4 lists for every
// alert are always there, null until the alert is acknowledged or resolved.
type apiAlert struct {
	*visit.Alert
	VisitID    *string    `json:"visit_id"` // null for a PANIC with no visit open
	AckedBy    *string    `json:"acked_by"`
	AckedAt    *time.Time `json:"acked_at"`
	ResolvedAt *time.Time `json:"resolved_at"`
	Resolution *string    `json:"resolution"`
}

func alertJSON(a *visit.Alert) apiAlert {
	return apiAlert{Alert: a, VisitID: orNullString(a.VisitID), AckedBy: orNullString(a.AckedBy), AckedAt: orNull(a.AckedAt),
		ResolvedAt: orNull(a.ResolvedAt), Resolution: orNullString(a.Resolution)}
}

// orNullString is s, or nil (JSON null) for "".
func orNullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// orNull is t, or nil (JSON null) for the zero time.
func orNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *Server) listVisits(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	vs, err := s.o.Service.Visits(r.Context(), r.URL.Query().Get("state"))
	if err != nil {
		return nil, 0, err
	}
	out := make([]apiVisit, 0, len(vs))
	for _, v := range vs {
		out = append(out, visitJSON(v, false))
	}
	return map[string]any{"visits": out}, http.StatusOK, nil
}

func (s *Server) getVisit(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	v, err := s.o.Service.Visit(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, 0, err
	}
	return visitJSON(v, true), http.StatusOK, nil
}

type openVisitBody struct {
	Officer     string   `json:"officer"`
	Destination string   `json:"destination"`
	Duration    string   `json:"duration"`
	DueAt       string   `json:"due_at"`
	Kind        string   `json:"kind"`
	PupilRef    string   `json:"pupil_ref"`
	Companions  []string `json:"companions"`
}

func (s *Server) openVisit(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	var b openVisitBody
	if err := decode(r, &b); err != nil {
		return nil, 0, err
	}
	var problems []string
	if strings.TrimSpace(b.Officer) == "" {
		problems = append(problems, "officer is required")
	}
	if strings.TrimSpace(b.Destination) == "" {
		problems = append(problems, "destination is required")
	}
	if b.Duration != "" && b.DueAt != "" {
		problems = append(problems, "give duration or due_at, not both")
	}
	req := service.OpenVisitRequest{Officer: b.Officer, Destination: b.Destination, Kind: b.Kind, PupilRef: b.PupilRef, Companions: b.Companions}
	if b.Duration != "" {
		d, err := parseDuration("duration", b.Duration)
		if err != nil {
			problems = append(problems, err.Error())
		}
		req.Duration = d
	}
	if b.DueAt != "" {
		t, err := time.Parse(time.RFC3339, b.DueAt)
		if err != nil {
			problems = append(problems, `due_at: "`+b.DueAt+`" is not an RFC 3339 time`)
		}
		req.DueAt = t
	}
	if !visit.ValidKind(b.Kind) {
		problems = append(problems, "kind must be one of safe_and_well, absence_check, planned, reactive")
	}
	if len(problems) > 0 {
		return nil, 0, badRequest(strings.Join(problems, "; "))
	}
	v, err := s.o.Service.OpenVisit(r.Context(), who, req)
	if err != nil {
		return nil, 0, err
	}
	return visitJSON(v, false), http.StatusCreated, nil
}

func (s *Server) checkin(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	if err := optionalEmptyBody(r); err != nil {
		return nil, 0, err
	}
	return s.visitCommand(r, who, visit.Command{Verb: visit.VerbIn})
}

func (s *Server) extend(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	var b struct {
		Duration string `json:"duration"`
	}
	if err := decode(r, &b); err != nil {
		return nil, 0, err
	}
	d, err := parseDuration("duration", b.Duration)
	if err != nil {
		return nil, 0, err
	}
	return s.visitCommand(r, who, visit.Command{Verb: visit.VerbExtend, Duration: d})
}

func (s *Server) abort(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	var b struct {
		Reason string `json:"reason"`
	}
	if err := decode(r, &b); err != nil {
		return nil, 0, err
	}
	if strings.TrimSpace(b.Reason) == "" {
		return nil, 0, badRequest("reason is required")
	}
	return s.visitCommand(r, who, visit.Command{Verb: visit.VerbAbort, Reason: b.Reason})
}

func (s *Server) visitCommand(r *http.Request, who string, cmd visit.Command) (any, int, error) {
	v, err := s.o.Service.VisitCommand(r.Context(), who, r.PathValue("id"), cmd)
	if err != nil {
		return nil, 0, err
	}
	return visitJSON(v, false), http.StatusOK, nil
}

func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	as, err := s.o.Service.Alerts(r.Context(), r.URL.Query().Get("state"))
	if err != nil {
		return nil, 0, err
	}
	out := make([]apiAlert, 0, len(as))
	for _, a := range as {
		out = append(out, alertJSON(a))
	}
	return map[string]any{"alerts": out}, http.StatusOK, nil
}

func (s *Server) ack(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	if err := optionalEmptyBody(r); err != nil {
		return nil, 0, err
	}
	a, err := s.o.Service.AckAlert(r.Context(), who, r.PathValue("id"))
	if err != nil {
		return nil, 0, err
	}
	return alertJSON(a), http.StatusOK, nil
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	var b struct {
		Note string `json:"note"`
	}
	if err := decode(r, &b); err != nil {
		return nil, 0, err
	}
	a, err := s.o.Service.ResolveAlert(r.Context(), who, r.PathValue("id"), b.Note)
	if err != nil {
		return nil, 0, err
	}
	return alertJSON(a), http.StatusOK, nil
}

// optionalEmptyBody accepts no body, or an empty JSON object.
func optionalEmptyBody(r *http.Request) error {
	if r.ContentLength == 0 {
		return nil
	}
	var b struct{}
	return decode(r, &b)
}

func (s *Server) monthlyReport(w http.ResponseWriter, r *http.Request, who string) (any, int, error) {
	q := r.URL.Query()
	if q.Get("school") == "" || q.Get("month") == "" {
		return nil, 0, badRequest("school and month (YYYY-MM) are required")
	}
	rep, err := s.o.MonthlyReport(r.Context(), q.Get("school"), q.Get("month"))
	if err != nil {
		return nil, 0, err
	}
	return rep, http.StatusOK, nil
}
