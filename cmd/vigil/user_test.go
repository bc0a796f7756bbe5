package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/vigil-safety/vigil/internal/redistest"
)

func userConfig(t *testing.T, redisURL string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	body := fmt.Sprintf(`
redis: { url: %q }
directory:
  schools:
    - id: bishop-lonsdale
      name: "Bishop Lonsdale"
      contacts: { office: [{ name: "Office", phone: "+441632960001" }] }
`, redisURL)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runUser(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := userCmd(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// vigil user add reads the password from standard input, stores a bcrypt hash,
// checks role and school, refuses a second add without --replace; list and
// delete work on the same Redis.
func TestUserCommand(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	cfg := userConfig(t, srv.URL())

	code, out, errs := runUser("a long enough password\n", "add", "--config", cfg, "--name", "Sam Office", "--role", "office", "--school", "bishop-lonsdale")
	if code != exitOK || !strings.Contains(out, "user Sam Office added: role office, school bishop-lonsdale") {
		t.Fatalf("user add: %d %q %q", code, out, errs)
	}
	raw, err := srv.Client().Get(t.Context(), "vigil:user:sam office").Result()
	if err != nil || strings.Contains(raw, "a long enough password") {
		t.Fatalf("stored user %q, %v: the password must be hashed", raw, err)
	}
	var hash string
	if i := strings.Index(raw, `"hash":"`); i >= 0 {
		hash = raw[i+8:]
		hash = hash[:strings.Index(hash, `"`)]
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("a long enough password")) != nil {
		t.Errorf("stored hash does not match the password")
	}

	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		// The same name again, without --replace.
		{"exists", "another long password\n", []string{"--name", "sam office", "--role", "office", "--school", "bishop-lonsdale"}, "--replace"},
		// A short password.
		{"short", "short\n", []string{"--name", "x", "--role", "office", "--school", "bishop-lonsdale"}, "at least 10"},
		// An unknown role.
		{"role", "a long enough password\n", []string{"--name", "x", "--role", "boss", "--school", "bishop-lonsdale"}, "--role must be one of"},
		// A school nobody knows.
		{"school", "a long enough password\n", []string{"--name", "x", "--role", "admin", "--school", "nowhere"}, `school "nowhere"`},
		// A school-less office user.
		{"no school", "a long enough password\n", []string{"--name", "x", "--role", "office"}, "--school is required"},
	} {
		code, _, errs := runUser(tc.stdin, append([]string{"add", "--config", cfg}, tc.args...)...)
		if code != exitConfig || !strings.Contains(errs, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 saying %q", tc.name, code, errs, tc.want)
		}
	}
	if code, out, errs := runUser("new long password!\n", "add", "--config", cfg, "--name", "Sam Office", "--role", "admin", "--school", "bishop-lonsdale", "--replace"); code != exitOK || !strings.Contains(out, "replaced") {
		t.Errorf("replace: %d %q %q", code, out, errs)
	}
	runUser("trust admin password\n", "add", "--config", cfg, "--name", "trust", "--role", "trust-admin")
	code, out, _ = runUser("", "list", "--config", cfg)
	if code != exitOK || !strings.Contains(out, "Sam Office") || !strings.Contains(out, "admin") || !strings.Contains(out, "(all)") {
		t.Errorf("list: %d %q", code, out)
	}
	if code, out, _ := runUser("", "delete", "--config", cfg, "--name", "trust"); code != exitOK || !strings.Contains(out, "deleted") {
		t.Errorf("delete: %d %q", code, out)
	}
}

// Without redis.url there is nowhere to keep a user: say so, and name the demo sign-in.
func TestUserCommandNeedsRedis(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(p, []byte("listen: \"127.0.0.1:0\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runUser("a long enough password\n", "add", "--config", p, "--name", "x", "--role", "trust-admin")
	if code != exitConfig || !strings.Contains(errs, "redis.url is not set") || !strings.Contains(errs, "demo-password") {
		t.Errorf("user add without Redis: %d %q", code, errs)
	}
}
