package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// writeConfig writes text to a file of its own and returns the path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// directoryYAML is a small valid directory with national phone numbers.
const directoryYAML = `
directory:
  schools:
    - id: s1
      name: School One
      contacts:
        office: [{ name: Office, phone: "01332 000001" }]
  officers:
    - id: jdoe
      name: Jane Doe
      phone: "07700 900101"
      school: s1
      duress_code: "0123"
      vehicle: { make: Ford, insurance_expires: 2027-03-01 }
`

func TestLoadSpecExample(t *testing.T) {
	t.Parallel()
	c, err := Load("testdata/spec-example.yaml", nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"public_url", c.PublicURL, "https://vigil.example.org"},
		{"validity_period", c.Twilio.ValidityPeriod, 10 * time.Minute},
		{"default_duration", c.Visits.DefaultDuration, time.Hour},
		{"levels", len(c.Escalation.Levels), 3},
		{"police after", c.Escalation.Levels[2].After, 20 * time.Minute},
		{"police repeat", c.Escalation.Levels[2].RepeatEvery, 10 * time.Minute},
		{"tokens", len(c.API.Tokens), 2},
		{"office contact", c.Directory.Schools[0].Contacts["office"][0].Phone, "+441332000001"},
		{"officer phone", c.Directory.Officers[0].Phone, "+447700900101"},
		{"duress code", c.Directory.Officers[0].DuressCode, "4321"},
		{"insurance date", c.Directory.Officers[0].Vehicle.InsuranceExpires, "2027-03-01"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		path string
	}{
		// No file at all: defaults only.
		{"no file", ""},
		// An empty file is the same as none.
		{"empty file", writeConfig(t, "")},
		// Sections present but empty keep their defaults.
		{"empty sections", writeConfig(t, "visits:\ndirectory:\nescalation: {}\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(tc.path, nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			for _, f := range []struct {
				key       string
				got, want any
			}{
				{"listen", c.Listen, "127.0.0.1:8080"},
				{"public_url", c.PublicURL, "http://127.0.0.1:8080"},
				{"timezone", c.Timezone, "Europe/London"},
				{"default_region", c.DefaultRegion, "GB"},
				{"redis.url", c.Redis.URL, ""},
				{"redis.key_prefix", c.Redis.KeyPrefix, "vigil:"},
				{"twilio.api_url", c.Twilio.APIURL, "https://api.twilio.com"},
				{"twilio.validate_signatures", c.Twilio.ValidateSignatures, true},
				{"twilio.max_sends_per_second", c.Twilio.MaxSendsPerSecond, 10},
				{"twilio.validity_period", c.Twilio.ValidityPeriod, 10 * time.Minute},
				{"visits.default_duration", c.Visits.DefaultDuration, 60 * time.Minute},
				{"visits.max_duration", c.Visits.MaxDuration, 8 * time.Hour},
				{"visits.reminder_before", c.Visits.ReminderBefore, 10 * time.Minute},
				{"visits.grace", c.Visits.Grace, 5 * time.Minute},
				{"escalation.levels", levelString(c.Escalation.Levels), "office 0s 5m managers 10m 5m police 20m 10m"},
				{"escalation.panic_levels", strings.Join(c.Escalation.PanicLevels, ","), "office,managers,police"},
				{"escalation.ack_hold", c.Escalation.AckHold, 15 * time.Minute},
				{"duties.expiry_check", c.Duties.ExpiryCheck, "0 8 * * *"},
				{"duties.monthly_report", c.Duties.MonthlyReport, "0 7 1 * *"},
				{"retention.visit_days", c.Retention.VisitDays, 30},
				{"retention.alert_days", c.Retention.AlertDays, 400},
				{"api.tokens", len(c.API.Tokens), 0},
				{"directory.schools", len(c.Directory.Schools), 0},
				{"console", c.Twilio.Console(), true},
				{"embedded", c.Redis.Embedded(), true},
			} {
				if f.got != f.want {
					t.Errorf("%s = %v, want %v", f.key, f.got, f.want)
				}
			}
		})
	}
}

func levelString(levels []Level) string {
	var parts []string
	for _, l := range levels {
		parts = append(parts, l.Name, formatDuration(l.After), formatDuration(l.RepeatEvery))
	}
	return strings.Join(parts, " ")
}

func TestLoadEnv(t *testing.T) {
	t.Parallel()
	file := writeConfig(t, "visits:\n  grace: 5m\nlisten: 127.0.0.1:9000\n")
	for _, tc := range []struct {
		name string
		env  []string
		got  func(*Config) any
		want any
	}{
		// A Sentinel password comes from the environment, not the file.
		{"redis password", []string{"VIGIL_REDIS_SENTINEL_MASTER=m", "VIGIL_REDIS_SENTINEL_ADDRS=s1:26379", "VIGIL_REDIS_PASSWORD=pw", "VIGIL_REDIS_SENTINEL_PASSWORD=spw"},
			func(c *Config) any { return c.Redis.Password + "/" + c.Redis.Sentinel.Password }, "pw/spw"},
		// VIGIL_REDIS_URL reaches redis.url.
		{"redis url", []string{"VIGIL_REDIS_URL=redis://localhost:6379/0"},
			func(c *Config) any { return c.Redis.URL }, "redis://localhost:6379/0"},
		// VIGIL_TWILIO_AUTH_TOKEN reaches twilio.auth_token (with the keys it needs).
		{"auth token", []string{"VIGIL_TWILIO_AUTH_TOKEN=s3cret", "VIGIL_TWILIO_ACCOUNT_SID=AC123", "VIGIL_TWILIO_FROM=+447700900999"},
			func(c *Config) any { return c.Twilio.AuthToken }, "s3cret"},
		// The environment wins over the file.
		{"grace over file", []string{"VIGIL_VISITS_GRACE=2m"},
			func(c *Config) any { return c.Visits.Grace }, 2 * time.Minute},
		// A list is comma-separated.
		{"panic levels", []string{"VIGIL_ESCALATION_PANIC_LEVELS=office, police"},
			func(c *Config) any { return strings.Join(c.Escalation.PanicLevels, ",") }, "office,police"},
		// Booleans and numbers are read from their text.
		{"validate signatures", []string{"VIGIL_TWILIO_VALIDATE_SIGNATURES=false"},
			func(c *Config) any { return c.Twilio.ValidateSignatures }, false},
		{"max sends", []string{"VIGIL_TWILIO_MAX_SENDS_PER_SECOND=3"},
			func(c *Config) any { return c.Twilio.MaxSendsPerSecond }, 3},
		// A phone number from the environment is normalised like one from the file.
		{"from national", []string{"VIGIL_TWILIO_FROM=07700 900999"},
			func(c *Config) any { return c.Twilio.From }, "+447700900999"},
		// An empty value counts as unset, so the file's value stays.
		{"empty ignored", []string{"VIGIL_LISTEN="},
			func(c *Config) any { return c.Listen }, "127.0.0.1:9000"},
		// Unknown VIGIL_* variables and others are ignored.
		{"unknown ignored", []string{"VIGIL_NOPE=1", "REDIS_URL=redis://x", "VIGIL_REDIS_URL"},
			func(c *Config) any { return c.Redis.URL }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(file, tc.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tc.got(c); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// keyLine is how every line of a configuration error starts: a dotted key path.
var keyLine = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\[\d+\])*(\.[a-z0-9_-]+(\[\d+\])*)*: `)

func TestLoadRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		yaml string
		env  []string
		want []string
	}{
		// A misspelt top-level key.
		{"unknown top level", "listn: 127.0.0.1:8080\n", nil,
			[]string{"listn: unknown key"}},
		// A misspelt key in a section.
		{"unknown nested", "visits:\n  graze: 5m\n", nil,
			[]string{"visits.graze: unknown key"}},
		// A misspelt key inside a list entry.
		{"unknown in officer", strings.Replace(directoryYAML, "vehicle:", "vehicel:", 1), nil,
			[]string{"directory.officers[0].vehicel: unknown key"}},
		// A misspelt key inside a contact of a named list.
		{"unknown in contact", strings.Replace(directoryYAML, "name: Office, phone", "name: Office, phon", 1), nil,
			[]string{"directory.schools[0].contacts.office[0].phon: unknown key"}},
		// A misspelt key inside a vehicle.
		{"unknown in vehicle", strings.Replace(directoryYAML, "make:", "maker:", 1), nil,
			[]string{"directory.officers[0].vehicle.maker: unknown key"}},
		// A misspelt key in an escalation level.
		{"unknown in level", "escalation:\n  levels:\n    - { name: office, after: 0s, repeat: 5m }\n", nil,
			[]string{"escalation.levels[0].repeat: unknown key"}},
		// A misspelt key in a token.
		{"unknown in token", "api:\n  tokens:\n    - { name: a, role: admin, tokn: abcdefghijklmnopq }\n", nil,
			[]string{"api.tokens[0].tokn: unknown key"}},
		// A duration without a unit is not nanoseconds.
		{"bare number", "visits:\n  grace: 300\n", nil,
			[]string{"visits.grace: 300 has no unit"}},
		// A float is no better.
		{"bare float", "visits:\n  grace: 1.5\n", nil,
			[]string{"visits.grace: 1.5 has no unit"}},
		// An unknown unit.
		{"bad unit", "visits:\n  grace: 5x\n", nil,
			[]string{`visits.grace: "5x" is not a duration`}},
		// A number without a unit from the environment too.
		{"bare number from env", "", []string{"VIGIL_VISITS_GRACE=300"},
			[]string{`visits.grace: "300" is not a duration`}},
		// A list of mappings cannot come from one variable: refused, not ignored,
		// with the rest of the file checked in the same run.
		{"file-only keys from env", "visits:\n  grace: 5x\n", []string{"VIGIL_API_TOKENS=office:secret", "VIGIL_ESCALATION_LEVELS=office", "VIGIL_DIRECTORY_OFFICERS=x"},
			[]string{"api.tokens: cannot be set by an environment variable (VIGIL_API_TOKENS is set)",
				"escalation.levels: cannot be set by an environment variable",
				"directory.officers: cannot be set by an environment variable",
				`visits.grace: "5x" is not a duration`}},
		{"file-only key from env, file valid", "", []string{"VIGIL_DIRECTORY_SCHOOLS=x"},
			[]string{"directory.schools: cannot be set by an environment variable"}},
		// A list no level and no notice uses is a misspelt one: its level is
		// left empty without a word.
		{"unused contact list", strings.Replace(directoryYAML, `office: [{ name: Office, phone: "01332 000001" }]`,
			`office: [{ name: Office, phone: "01332 000001" }]
        manager: [{ name: Head, phone: "07700 900201" }]`, 1), nil,
			[]string{"directory.schools[0].contacts.manager: no escalation level (office, managers, police) and no notice (headteacher) uses this list: is it misspelt?"}},
		// An unquoted number where a string is meant: YAML reads 0123 as octal.
		{"unquoted duress code", strings.Replace(directoryYAML, `"0123"`, "0123", 1), nil,
			[]string{"directory.officers[0].duress_code: must be a string"}},
		// An unquoted + number would lose its +.
		{"unquoted phone", strings.Replace(directoryYAML, `"07700 900101"`, "+447700900101", 1), nil,
			[]string{"directory.officers[0].phone: must be a string"}},
		// A number that is not whole.
		{"fractional int", "twilio:\n  max_sends_per_second: 2.5\n", nil,
			[]string{"twilio.max_sends_per_second: 2.5 is not a whole number"}},
		// A word where a number is meant.
		{"word for int", "retention:\n  visit_days: thirty\n", nil,
			[]string{"retention.visit_days: thirty is not a whole number"}},
		// A scalar where a section is meant.
		{"scalar section", "visits: 5m\n", nil,
			[]string{"visits: must be a mapping"}},
		// A bad phone names its list entry.
		{"bad phone", strings.Replace(directoryYAML, `"07700 900101"`, `"12x"`, 1), nil,
			[]string{`directory.officers[0].phone: "12x" is not a phone number`}},
		// A malformed date.
		{"bad insurance date", strings.Replace(directoryYAML, "2027-03-01", "2027-13-01", 1), nil,
			[]string{`directory.officers[0].vehicle.insurance_expires: "2027-13-01" is not a date`}},
		// Several problems are all named at once.
		{"several", "visits:\n  grace: 0s\n  reminder_before: 9h\ntimezone: Mars/Olympus\n" +
			strings.Replace(directoryYAML, "school: s1", "school: s2", 1), nil,
			[]string{
				"visits.grace: must be positive",
				"visits.reminder_before: must be shorter than visits.max_duration (8h)",
				`timezone: "Mars/Olympus" is not a known time zone`,
				`directory.officers[0].school: "s2" is not in directory.schools`,
			}},
		// Several unknown keys are each named.
		{"several unknown", "visits:\n  graze: 5m\n  gracee: 5m\nfoo: 1\n", nil,
			[]string{"foo: unknown key", "visits.gracee: unknown key", "visits.graze: unknown key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(writeConfig(t, tc.yaml), tc.env)
			if err == nil {
				t.Fatalf("Load succeeded with %+v; want errors %q", c, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !keyLine.MatchString(line) {
					t.Errorf("error line %q does not start with a key path", line)
				}
			}
		})
	}
}

// A file with keys that do not decode and keys that are wrong in other ways has
// them all named in one run, and nothing is said of a key that did not decode
// beyond that (not "must be positive" of its zero value, nor a comparison with it).
func TestLoadNamesDecodeAndValidationProblemsAtOnce(t *testing.T) {
	t.Parallel()
	yaml := "visits:\n  grace: 5 minutes\n  max_duration: 1x\ntimezone: Mars/Olympus\n" +
		strings.Replace(directoryYAML, `"07700 900101"`, `"12x"`, 1)
	_, err := Load(writeConfig(t, yaml), nil)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, w := range []string{
		`visits.grace: "5 minutes" is not a duration`,
		`visits.max_duration: "1x" is not a duration`,
		`timezone: "Mars/Olympus" is not a known time zone`,
		`directory.officers[0].phone: "12x" is not a phone number`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if strings.Contains(line, "must be positive") || strings.Contains(line, "max_duration (0s)") {
			t.Errorf("error line %q is about a key that did not decode", line)
		}
		if !keyLine.MatchString(line) {
			t.Errorf("error line %q does not start with a key path", line)
		}
	}
}

// A misspelt key inside a contact is named, and the school is not also said to have
// no contact (its list did not decode, so what it holds is unknown).
func TestLoadSaysNothingOfTheContainerOfAKeyThatDidNotDecode(t *testing.T) {
	t.Parallel()
	yaml := strings.Replace(directoryYAML, `office: [{ name: Office, phone: "01332 000001" }]`,
		`office: [{ name: Office, phone: "01332 000001", phnoe: 1 }]`, 1)
	_, err := Load(writeConfig(t, yaml), nil)
	if err == nil || err.Error() != "directory.schools[0].contacts.office[0].phnoe: unknown key" {
		t.Errorf("error %v, want only the unknown key named", err)
	}
}

func TestLoadFileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		path string
		want string
	}{
		// A missing file is an error, not an empty configuration.
		{"missing", filepath.Join(t.TempDir(), "nope.yaml"), "read config"},
		// YAML that does not parse.
		{"bad yaml", writeConfig(t, "visits: [\n"), "parse config"},
		// Duplicate keys are refused by the YAML parser.
		{"duplicate key", writeConfig(t, "listen: a:1\nlisten: b:2\n"), "already defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(tc.path, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load error = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestLoadNormalises(t *testing.T) {
	t.Parallel()
	c, err := Load(writeConfig(t, directoryYAML), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		// National numbers become E.164 in the region of default_region.
		{"officer phone", c.Directory.Officers[0].Phone, "+447700900101"},
		{"contact phone", c.Directory.Schools[0].Contacts["office"][0].Phone, "+441332000001"},
		// A quoted duress code keeps its leading zero.
		{"duress code", c.Directory.Officers[0].DuressCode, "0123"},
		// A YAML date becomes YYYY-MM-DD again.
		{"insurance date", c.Directory.Officers[0].Vehicle.InsuranceExpires, "2027-03-01"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
