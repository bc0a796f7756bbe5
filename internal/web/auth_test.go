package web_test

import (
	"net/http"
	"testing"
)

// The scheme word of an Authorization header is not case-sensitive (RFC 7235): any
// spelling of Bearer lets a valid token in; a wrong token or scheme does not.
func TestBearerSchemeAnyCase(t *testing.T) {
	t.Parallel()
	srv := officeServer(t, visitService{})
	tests := []struct {
		name   string
		header string
		status int
	}{
		// The usual spelling.
		{"Bearer", "Bearer " + officeToken, http.StatusOK},
		// Lower case.
		{"bearer", "bearer " + officeToken, http.StatusOK},
		// Upper case.
		{"BEARER", "BEARER " + officeToken, http.StatusOK},
		// More than one space after the scheme.
		{"two spaces", "Bearer  " + officeToken, http.StatusOK},
		// A wrong token in any case is refused.
		{"wrong token", "bearer not-the-office-token-0001", http.StatusUnauthorized},
		// Another scheme is refused.
		{"basic", "Basic " + officeToken, http.StatusUnauthorized},
		// The scheme with no token is refused.
		{"no token", "bearer", http.StatusUnauthorized},
		// The token with no scheme is refused.
		{"no scheme", officeToken, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/api/v1/visits", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", tt.header)
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Errorf("Authorization %q: %s, want %d", tt.header, res.Status, tt.status)
			}
		})
	}
}
