package config

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestMasked(t *testing.T) {
	t.Parallel()
	c := specExample(t)
	c.Twilio.AccountSID = "AC0123"
	c.Twilio.AuthToken = "twilio-auth-secret"
	c.Twilio.From = "+447700900999"
	c.Redis.URL = "redis://:redis-pass-secret@redis:6379/0"
	c.Monitoring.HeartbeatURL = "https://hc-ping.com/ping-uuid-secret?key=q-secret"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	out := c.Masked()
	// Sentinel's passwords, of the servers and of the sentinels.
	s := *c
	s.Redis = Redis{Sentinel: Sentinel{Master: "m", Addrs: []string{"s1:26379"}, Password: "sentinel-pass-secret"},
		Password: "data-pass-secret", KeyPrefix: "vigil:"}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	for _, secret := range []string{"data-pass-secret", "sentinel-pass-secret"} {
		if strings.Contains(s.Masked(), secret) {
			t.Errorf("Masked() of a Sentinel setup shows %q", secret)
		}
	}
	if n := strings.Count(s.Masked(), "password: '****'"); n != 2 {
		t.Errorf("Masked() of a Sentinel setup shows %d masked passwords, want 2:\n%s", n, s.Masked())
	}

	for _, tc := range []struct {
		name string
		text string
		want bool
	}{
		// Secrets never appear.
		{"auth token", "twilio-auth-secret", false},
		{"api token", "office-pc-secret-0123456789", false},
		{"api token 2", "sbm-admin-secret-9876543210", false},
		{"redis password", "redis-pass-secret", false},
		{"duress code", "4321", false},
		{"heartbeat path", "ping-uuid-secret", false},
		{"heartbeat query", "q-secret", false},
		{"heartbeat host", "heartbeat_url: https://hc-ping.com/****", true},
		// What is not secret does, with keys as in the file.
		{"account sid", "account_sid: AC0123", true},
		{"token name", "name: office-pc", true},
		{"officer phone", `phone: "+447700900101"`, true},
		// Durations are written as in the file, not in nanoseconds.
		{"grace", "grace: 5m\n", true},
		{"default duration", "default_duration: 1h\n", true},
		// The derived and normalised values are the effective ones.
		{"public url", "public_url: https://vigil.example.org", true},
		{"insurance date", `insurance_expires: "2027-03-01"`, true},
	} {
		if got := strings.Contains(out, tc.text); got != tc.want {
			t.Errorf("%s: Masked() contains %q = %v, want %v", tc.name, tc.text, got, tc.want)
		}
	}

	// The output is YAML with every top-level key of the file.
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("Masked() is not YAML: %v\n%s", err, out)
	}
	for _, key := range []string{"listen", "public_url", "timezone", "default_region", "redis", "twilio", "visits",
		"escalation", "monitoring", "duties", "retention", "api", "directory"} {
		if _, ok := doc[key]; !ok {
			t.Errorf("Masked() has no %s", key)
		}
	}
	// Masking works on a copy.
	if c.API.Tokens[0].Token != "office-pc-secret-0123456789" || c.Directory.Officers[0].DuressCode != "4321" {
		t.Errorf("Masked() changed the Config")
	}
}
