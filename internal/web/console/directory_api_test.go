package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-safety/vigil/internal/service"
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

// The directory API's validation errors name each field as the client sent it in
// JSON (phone, not mobile; contacts.office[0].phone, not "office list, contact 1"),
// and never quote a duress code.
func TestDirectoryAPIErrorsNameJSONFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		path, body string
		status     int
		want       []string
	}{
		{"/api/v1/officers/kb", `{"name":" ","phone":"banana","school":"nowhere","duress_code":"12",
			"vehicle":{"make":"Ford","insurance_expires":"March 2027"}}`, http.StatusBadRequest, []string{
			`name: is required`, `phone: "banana" is not a phone number`, `school: "nowhere" does not exist`,
			`duress_code: must be 3 to 8 digits`, `vehicle.insurance_expires: "March 2027" is not a date`}},
		{"/api/v1/officers/Kim", `{"id":"kim","name":"Kim","phone":"07700 900124","school":""}`, http.StatusBadRequest, []string{
			`id: "kim" in the body is not the one in the path ("Kim")`}},
		{"/api/v1/officers/Kim", `{"name":"Kim","phone":"07700 900124","school":""}`, http.StatusBadRequest, []string{
			`id: must be lower-case`, `school: is required`}},
		{"/api/v1/officers/kb", `{"name":"Kim","phone":"07700 900101","school":"bishop-lonsdale"}`, http.StatusConflict, []string{
			`phone: +447700900101 is already the phone of Jane Doe (jdoe)`}},
		{"/api/v1/schools/oak", `{"name":"Oak","timezone":"Mars/Base","contacts":{"office":[{"name":"","phone":"banana"}],"Bad List":[]}}`,
			http.StatusBadRequest, []string{`timezone: "Mars/Base" is not a known IANA time zone`,
				`contacts.office[0].name: is required`, `contacts.office[0].phone: "banana" is not a phone number`,
				`contacts: list name "Bad List"`}},
		{"/api/v1/schools/oak", `{"name":" "}`, http.StatusBadRequest, []string{`name: is required`}},
	} {
		code, out := e.apiCall("PUT", tc.path, tc.body)
		msg, _ := out["error"].(string)
		if code != tc.status {
			t.Errorf("PUT %s: %d %q, want %d", tc.path, code, msg, tc.status)
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("PUT %s: error %q does not say %q", tc.path, msg, w)
			}
		}
		if strings.Contains(msg, "mobile") || strings.Contains(msg, `"12"`) {
			t.Errorf("PUT %s: error %q names mobile or quotes the duress code", tc.path, msg)
		}
	}
}

// An officer with an open alert and no visit (a PANIC between visits) is not removed
// or moved through the API until it is resolved: the alert's rounds name them.
func TestDirectoryAPIKeepsAnOfficerWithAnOpenAlert(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if code, out := e.apiCall("PUT", "/api/v1/schools/oak", `{"name":"Oak Academy","contacts":{"office":[{"name":"Oak office","phone":"+441632960003"}]}}`); code != http.StatusCreated {
		t.Fatalf("PUT school: %d %v", code, out)
	}
	if code, out := e.apiCall("PUT", "/api/v1/officers/kb", `{"name":"Kim Brown","phone":"+447700900555","school":"bishop-lonsdale"}`); code != http.StatusCreated {
		t.Fatalf("PUT officer: %d %v", code, out)
	}
	if _, err := e.app.Service().HandleSMS(t.Context(), service.InboundSMS{From: "+447700900555", Body: "PANIC", SID: "SMpanic"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, body string }{
		{"DELETE", ""},
		{"PUT", `{"name":"Kim Brown","phone":"+447700900555","school":"oak"}`},
	} {
		code, out := e.apiCall(tc.method, "/api/v1/officers/kb", tc.body)
		if msg, _ := out["error"].(string); code != http.StatusConflict || !strings.Contains(msg, "is busy (alert ") {
			t.Errorf("%s officer with a panic open: %d %v, want 409 saying the alert is open", tc.method, code, out)
		}
	}
	if o, err := e.store.Officer(t.Context(), "kb"); err != nil || o.School != "bishop-lonsdale" {
		t.Errorf("officer after the refused requests: %+v %v, want kept in bishop-lonsdale", o, err)
	}
}
