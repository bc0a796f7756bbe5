package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-safety/vigil/internal/app"
	"github.com/vigil-safety/vigil/internal/config"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI("version")
	if code != 0 || !strings.HasPrefix(out, "vigil ") {
		t.Errorf("version: %d %q", code, out)
	}
}

// check-config prints the effective configuration with secrets masked, or exits 2
// naming every bad key.
func TestCheckConfig(t *testing.T) {
	t.Parallel()
	code, out, errs := runCLI("check-config", "--config", "../../config/vigil.demo.yaml")
	if code != 0 || !strings.Contains(out, "demo-primary") || strings.Contains(out, "demo-office-token-0001") {
		t.Errorf("demo config: exit %d, stderr %q, secrets masked: %v", code, errs, !strings.Contains(out, "demo-office-token-0001"))
	}
	bad := writeFile(t, "visits:\n  grace: 300\n  graze: 5m\ntwilio:\n  validity_period: forever\n")
	code, _, errs = runCLI("check-config", "--config", bad)
	if code != 2 {
		t.Fatalf("bad config: exit %d, want 2", code)
	}
	for _, key := range []string{"visits.grace", "visits.graze", "twilio.validity_period"} {
		if !strings.Contains(errs, key) {
			t.Errorf("bad config error does not name %s:\n%s", key, errs)
		}
	}
	if code, _, _ := runCLI("check-config"); code != 2 {
		t.Errorf("check-config without --config: exit %d, want 2", code)
	}
}

// serve refuses a bad configuration with exit 2, before it listens.
func TestServeRefusesBadConfig(t *testing.T) {
	t.Parallel()
	bad := writeFile(t, "listen: \"127.0.0.1:0\"\nvisits: { grace: 5 }\n")
	code, _, errs := runCLI("serve", "--config", bad)
	if code != 2 || !strings.Contains(errs, "visits.grace") {
		t.Errorf("serve with a bad config: exit %d, stderr %q; want 2 naming visits.grace", code, errs)
	}
	if code, _, _ := runCLI("frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

// vigil sms signs a webhook as Twilio would and prints the daemon's reply.
func TestSMSCommand(t *testing.T) {
	t.Parallel()
	cfgText := `
listen: "127.0.0.1:0"
public_url: "https://vigil.test"
twilio: { auth_token: "` + strings.Repeat("a", 32) + `", account_sid: "AC` + strings.Repeat("0", 32) + `", from: "+441632960999", api_url: "http://127.0.0.1:9" }
directory:
  schools:
    - id: s1
      name: "Test School"
      contacts: { office: [{ name: "Office", phone: "+441632960001" }] }
  officers:
    - { id: jdoe, name: "Jane Doe", phone: "+447700900101", school: s1 }
`
	path := writeFile(t, cfgText)
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(t.Context(), cfg, app.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	code, out, errs := runCLI("sms", "--config", path, "--url", "http://"+a.Addr(), "--from", "07700 900101", "VISIT 45 14 Elm Road")
	if code != 0 || !strings.Contains(out, "Visit to 14 Elm Road logged") {
		t.Errorf("vigil sms: exit %d, out %q, err %q", code, out, errs)
	}
	// A wrong token makes a signature the daemon refuses: the command says so.
	wrong := writeFile(t, strings.Replace(cfgText, strings.Repeat("a", 32), strings.Repeat("b", 32), 1))
	code, _, errs = runCLI("sms", "--config", wrong, "--url", "http://"+a.Addr(), "--from", "+447700900101", "STATUS")
	if code != 1 || !strings.Contains(errs, "403") {
		t.Errorf("badly signed: exit %d, stderr %q; want 1 and the 403", code, errs)
	}
}
