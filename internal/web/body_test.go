package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A JSON body over the 64 KiB limit is answered 413 with a JSON error, not 400, and
// whether the excess is inside the value or trailing it. A body within the limit is
// taken.
func TestAPIBodyOverTheLimit(t *testing.T) {
	t.Parallel()
	srv := officeServer(t, visitService{})
	const open = `{"officer":"jdoe","destination":"14 Elm Road","duration":"45m"`
	tests := []struct {
		name   string
		body   string
		status int
	}{
		// Within the limit.
		{"small", open + `}`, http.StatusCreated},
		// A destination of 70 KiB.
		{"long value", `{"officer":"jdoe","destination":"` + strings.Repeat("x", 70<<10) + `","duration":"45m"}`, http.StatusRequestEntityTooLarge},
		// A value within the limit, then 70 KiB of spaces.
		{"long tail", open + `}` + strings.Repeat(" ", 70<<10), http.StatusRequestEntityTooLarge},
		// Bad JSON within the limit is still 400.
		{"bad JSON", open, http.StatusBadRequest},
		// Two values are still 400.
		{"two values", open + `}{}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, body := send(t, srv, "POST", "/api/v1/visits", officeToken, tt.body)
			var out map[string]any
			err := json.Unmarshal([]byte(body), &out)
			if res.StatusCode != tt.status || err != nil || (tt.status >= 400 && out["error"] == nil) {
				t.Errorf("%s: %s %.200q, want %d with JSON", tt.name, res.Status, body, tt.status)
			}
		})
	}
}
