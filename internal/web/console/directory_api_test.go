package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// apiCall sends one directory API request with an admin token and decodes the
// JSON answer.
func (e *env) apiCall(method, path, body string) (int, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.base+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		e.t.Fatalf("%s %s: %s, not JSON: %q", method, path, res.Status, b)
	}
	return res.StatusCode, out
}

// The directory API refuses the phone numbers check-config refuses: one only a
// local call could reach ("07700", no area code) is not stored as +4407700.
func TestDirectoryAPIRefusesLocalOnlyPhones(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct{ path, body, quoted string }{
		{"/api/v1/officers/kb", `{"name":"Kim Brown","phone":"07700","school":"bishop-lonsdale"}`, `"07700"`},
		{"/api/v1/schools/oak", `{"name":"Oak Academy","contacts":{"office":[{"name":"Oak office","phone":"0770 12"}]}}`, `"0770 12"`},
	} {
		code, out := e.apiCall("PUT", tc.path, tc.body)
		msg, _ := out["error"].(string)
		if code != http.StatusBadRequest || !strings.Contains(msg, tc.quoted+" is not a phone number") {
			t.Errorf("PUT %s with phone %s: %d %v; want 400 saying it is not a phone number", tc.path, tc.quoted, code, out)
		}
	}
	offs, err := e.store.Officers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range offs {
		if o.ID == "kb" {
			t.Errorf("officer with a local-only phone was stored: %+v", o)
		}
	}
}
