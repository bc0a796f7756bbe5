package web_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vigil-safety/vigil/internal/web"
)

// consolePage stands in for the office console: an HTML page for every path.
var consolePage = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.URL.Path != "/" {
		w.WriteHeader(http.StatusNotFound)
	}
	io.WriteString(w, "<!doctype html><title>Not Found</title>")
})

// stubDirectory only makes the directory routes exist; no test here calls it.
type stubDirectory struct{ web.Directory }

// send makes one request (with a bearer token, when one is given) and returns the
// answer and its body.
func send(t *testing.T, srv *httptest.Server, method, path, token, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// A path under /api that no endpoint has, or an endpoint asked with a method it does
// not take, is answered in JSON like every API error (404; 405 with Allow), not by
// the console's HTML page, which still serves the paths outside /api.
func TestUnknownAPIRoutesAnswerJSON(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(web.New(web.Options{
		Log: slog.New(slog.DiscardHandler), Directory: stubDirectory{}, Console: consolePage,
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/api/v1/nothing", http.StatusNotFound, ""},
		{"GET", "/api/v1/visits/x/nothing", http.StatusNotFound, ""},
		{"GET", "/api/", http.StatusNotFound, ""},
		{"GET", "/api", http.StatusNotFound, ""},
		{"POST", "/api/v2/visits", http.StatusNotFound, ""},
		{"DELETE", "/api/v1/visits", http.StatusMethodNotAllowed, "GET, HEAD, POST"},
		{"GET", "/api/v1/officers/cnew", http.StatusMethodNotAllowed, "DELETE, PUT"},
		{"PUT", "/api/v1/alerts/a1/ack", http.StatusMethodNotAllowed, "POST"},
		{"GET", "/api/v1/visits/v1/checkin", http.StatusMethodNotAllowed, "POST"},
	} {
		res, body := send(t, srv, tc.method, tc.path, "", "")
		var out map[string]string
		err := json.Unmarshal([]byte(body), &out)
		if res.StatusCode != tc.status || err != nil || out["error"] == "" ||
			!strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %s %q (%s); want %d with a JSON error", tc.method, tc.path, res.Status, body, res.Header.Get("Content-Type"), tc.status)
		}
		if got := res.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}

	// Endpoints still answer as themselves (here: 401 without a token).
	if res, body := send(t, srv, "GET", "/api/v1/visits", "", ""); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/visits without a token: %s %q, want 401", res.Status, body)
	}
	// The console keeps its pages, its own Not Found included.
	for _, p := range []string{"/", "/admin/nothing", "/apiary"} {
		res, body := send(t, srv, "GET", p, "", "")
		if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "<title>") {
			t.Errorf("GET %s: %s %q, want the console's HTML", p, res.Status, body)
		}
	}
}
