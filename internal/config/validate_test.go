package config

import (
	"strings"
	"testing"
	"time"
)

// specExample loads the SPEC §3 example, which is valid, for a test to break.
func specExample(t *testing.T) *Config {
	t.Helper()
	c, err := Load("testdata/spec-example.yaml", nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestValidate(t *testing.T) {
	t.Parallel()
	officer := func(c *Config) *Officer { return &c.Directory.Officers[0] }
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   []string
		secret string // must not appear in the error
	}{
		// Listen must be host:port.
		{"listen", func(c *Config) { c.Listen = "8080" }, []string{`listen: "8080" is not host:port`}, ""},
		// Twilio calls public_url, so it must be an absolute http(s) URL.
		{"public_url", func(c *Config) { c.PublicURL = "ftp://x" }, []string{`public_url: "ftp://x" is not an absolute http(s) URL`}, ""},
		// Timezone must load; Local would depend on the host.
		{"timezone", func(c *Config) { c.Timezone = "Local" }, []string{"timezone: must be an IANA time zone name"}, ""},
		// default_region must be a region phonenumbers knows.
		{"default_region", func(c *Config) { c.DefaultRegion = "XX" }, []string{`default_region: "XX" is not a region code`}, ""},
		// A Redis URL needs the redis scheme; its text (maybe a password) is not quoted.
		{"redis url scheme", func(c *Config) { c.Redis.URL = "http://:pw-secret@x" }, []string{"redis.url: must start with redis://"}, "pw-secret"},
		// A Redis URL that does not parse.
		{"redis url", func(c *Config) { c.Redis.URL = "redis://x/notadb" }, []string{"redis.url: is not a Redis URL"}, ""},
		// A sentinel master needs sentinels.
		{"sentinel", func(c *Config) { c.Redis.Sentinel.Master = "mymaster" }, []string{"redis.sentinel.addrs: must list at least one"}, ""},
		// Only one kind of Redis at once.
		{"redis kinds", func(c *Config) { c.Redis.URL = "redis://x:6379"; c.Redis.ClusterAddrs = []string{"a:1"} }, []string{"redis: set only one of"}, ""},
		// Cluster addresses are host:port.
		{"cluster addr", func(c *Config) { c.Redis.ClusterAddrs = []string{"a"} }, []string{`redis.cluster_addrs[0]: "a" is not host:port`}, ""},
		// redis.url carries its own credentials and scheme; the password is not quoted.
		{"redis password with url", func(c *Config) { c.Redis.URL = "redis://x:6379"; c.Redis.Password = "pw-secret" }, []string{
			"redis.password: applies to redis.sentinel and redis.cluster_addrs only"}, "pw-secret"},
		{"redis tls with url", func(c *Config) { c.Redis.URL = "redis://x:6379"; c.Redis.TLS = true }, []string{
			"redis.tls: applies to redis.sentinel and redis.cluster_addrs only; with redis.url write rediss://"}, ""},
		{"redis username alone", func(c *Config) { c.Redis.ClusterAddrs = []string{"a:1"}; c.Redis.Username = "vigil" }, []string{
			"redis.username: needs redis.password"}, ""},
		{"sentinel password alone", func(c *Config) { c.Redis.ClusterAddrs = []string{"a:1"}; c.Redis.Sentinel.Password = "pw-secret" }, []string{
			"redis.sentinel.password: is set without redis.sentinel.master"}, "pw-secret"},
		// A CA file needs TLS, and must hold a certificate.
		{"ca without tls", func(c *Config) { c.Redis.URL = "redis://x:6379"; c.Redis.TLSCAFile = "/etc/ssl/ca.pem" }, []string{
			"redis.tls_ca_file: is set but TLS is not on"}, ""},
		{"ca unreadable", func(c *Config) { c.Redis.URL = "rediss://x:6379"; c.Redis.TLSCAFile = "/nonexistent/ca.pem" }, []string{
			"redis.tls_ca_file: cannot read it"}, ""},
		{"ca not pem", func(c *Config) {
			c.Redis.ClusterAddrs = []string{"a:1"}
			c.Redis.TLS = true
			c.Redis.TLSCAFile = "validate_test.go"
		}, []string{
			"redis.tls_ca_file: validate_test.go holds no PEM certificate"}, ""},
		// A client certificate needs TLS and its key, and both must load.
		{"client cert without tls", func(c *Config) {
			c.Redis.URL = "redis://x:6379"
			c.Redis.TLSCertFile, c.Redis.TLSKeyFile = "/etc/vigil/redis.pem", "/etc/vigil/redis-key.pem"
		}, []string{"redis.tls_cert_file: is set but TLS is not on"}, ""},
		{"client cert without key", func(c *Config) { c.Redis.URL = "rediss://x:6379"; c.Redis.TLSCertFile = "/etc/vigil/redis.pem" }, []string{
			"redis.tls_cert_file: and redis.tls_key_file go together"}, ""},
		{"client key without cert", func(c *Config) { c.Redis.URL = "rediss://x:6379"; c.Redis.TLSKeyFile = "/etc/vigil/redis-key.pem" }, []string{
			"redis.tls_cert_file: and redis.tls_key_file go together"}, ""},
		{"client cert unreadable", func(c *Config) {
			c.Redis.ClusterAddrs = []string{"a:1"}
			c.Redis.TLS = true
			c.Redis.TLSCertFile, c.Redis.TLSKeyFile = "/nonexistent/redis.pem", "/nonexistent/redis-key.pem"
		}, []string{"redis.tls_cert_file: with redis.tls_key_file: open /nonexistent/redis.pem"}, ""},
		// A brace would break Cluster hash tags.
		{"key prefix", func(c *Config) { c.Redis.KeyPrefix = "{v}" }, []string{"redis.key_prefix: must not contain"}, ""},
		// An auth token without an account SID, and nothing to send from; the token is not quoted.
		{"twilio half", func(c *Config) { c.Twilio.AuthToken = "tok-secret" }, []string{
			"twilio.account_sid: must be set when twilio.auth_token is",
			"twilio.from: must be set: voice calls need a sender number"}, "tok-secret"},
		// A sender that is not a phone number.
		{"twilio from", func(c *Config) { c.Twilio.From = "VIGIL" }, []string{`twilio.from: "VIGIL" is not a phone number`}, ""},
		// api_url must be absolute.
		{"api_url", func(c *Config) { c.Twilio.APIURL = "/twilio" }, []string{"twilio.api_url:"}, ""},
		// The send rate must be positive.
		{"max sends", func(c *Config) { c.Twilio.MaxSendsPerSecond = 0 }, []string{"twilio.max_sends_per_second: must be positive"}, ""},
		// Twilio refuses a validity period beyond 10h.
		{"validity long", func(c *Config) { c.Twilio.ValidityPeriod = 11 * time.Hour }, []string{"twilio.validity_period: must be between 1s and 10h"}, ""},
		// Twilio refuses a validity period under 1s.
		{"validity zero", func(c *Config) { c.Twilio.ValidityPeriod = 0 }, []string{"twilio.validity_period: must be between 1s and 10h"}, ""},
		// Twilio takes whole seconds.
		{"validity fraction", func(c *Config) { c.Twilio.ValidityPeriod = 1500 * time.Millisecond }, []string{"twilio.validity_period: must be whole seconds"}, ""},
		// Visit durations must be positive.
		{"grace", func(c *Config) { c.Visits.Grace = 0 }, []string{"visits.grace: must be positive"}, ""},
		// The default visit may not be longer than the longest.
		{"default over max", func(c *Config) { c.Visits.DefaultDuration = 9 * time.Hour }, []string{"visits.default_duration: 9h is longer than visits.max_duration (8h)"}, ""},
		// An escalation needs a level.
		{"no levels", func(c *Config) { c.Escalation.Levels = nil }, []string{"escalation.levels: at least one level is needed"}, ""},
		// Level names are unique and set.
		{"level names", func(c *Config) { c.Escalation.Levels[1].Name = "office"; c.Escalation.Levels[2].Name = "" }, []string{
			`escalation.levels[1].name: "office" is already escalation.levels[0]`,
			"escalation.levels[2].name: must be set"}, ""},
		// Levels come in order of after.
		{"after order", func(c *Config) { c.Escalation.Levels[2].After = 5 * time.Minute }, []string{
			"escalation.levels[2].after: must not be earlier than escalation.levels[1].after (10m)"}, ""},
		// The first level cannot come before the alert.
		{"after negative", func(c *Config) { c.Escalation.Levels[0].After = -time.Second }, []string{"escalation.levels[0].after: must not be negative"}, ""},
		// Repeats need an interval.
		{"repeat", func(c *Config) { c.Escalation.Levels[0].RepeatEvery = 0 }, []string{"escalation.levels[0].repeat_every: must be positive"}, ""},
		// A level names a contact list: a misspelt one would reach nobody.
		{"level list", func(c *Config) { c.Escalation.Levels[2].Name = "polcie" }, []string{
			`escalation.levels[2].name: "polcie" is not a contact list`}, ""},
		// A panic level names a level or a list.
		{"panic level", func(c *Config) { c.Escalation.PanicLevels = []string{"office", "", "nobody"} }, []string{
			"escalation.panic_levels[1]: must be set",
			`escalation.panic_levels[2]: "nobody" is neither an escalation level nor a contact list`}, ""},
		// A contact list that is not a level may still be a panic level.
		{"panic list ok", func(c *Config) { c.Escalation.PanicLevels = []string{"headteacher"} }, nil, ""},
		// PANIC must reach someone.
		{"no panic levels", func(c *Config) { c.Escalation.PanicLevels = nil }, []string{"escalation.panic_levels: at least one is needed"}, ""},
		// An ACK holds for a while.
		{"ack hold", func(c *Config) { c.Escalation.AckHold = 0 }, []string{"escalation.ack_hold: must be positive"}, ""},
		// Cron specs must parse.
		{"cron", func(c *Config) { c.Duties.ExpiryCheck = "0 25 * * *" }, []string{`duties.expiry_check: "0 25 * * *" is not a cron spec`}, ""},
		// Duties run in each school's zone, so a spec may not name one.
		{"cron tz", func(c *Config) { c.Duties.MonthlyReport = "CRON_TZ=UTC 0 7 1 * *" }, []string{"duties.monthly_report: must not name a time zone"}, ""},
		// An empty spec turns a duty off.
		{"cron off", func(c *Config) { c.Duties.MonthlyReport = "" }, nil, ""},
		// Retention is positive.
		{"retention", func(c *Config) { c.Retention.AlertDays = 0 }, []string{"retention.alert_days: must be positive"}, ""},
		// The heartbeat is an http(s) URL.
		{"heartbeat", func(c *Config) { c.Monitoring.HeartbeatURL = "hc-ping.com/x" }, []string{"monitoring.heartbeat_url:"}, ""},
		// A short token is refused without quoting it.
		{"short token", func(c *Config) { c.API.Tokens[0].Token = "tiny-secret" }, []string{"api.tokens[0].token: must be at least 16 characters"}, "tiny-secret"},
		// A token has exactly one of token and token_sha256.
		{"token both", func(c *Config) { c.API.Tokens[0].TokenSHA256 = strings.Repeat("a", 64) }, []string{"api.tokens[0]: set only one of token and token_sha256"}, ""},
		{"token neither", func(c *Config) { c.API.Tokens[0].Token = "" }, []string{"api.tokens[0]: set token or token_sha256"}, ""},
		// token_sha256 is 64 hex digits.
		{"token sha", func(c *Config) { c.API.Tokens[0].Token = ""; c.API.Tokens[0].TokenSHA256 = "abc" }, []string{"api.tokens[0].token_sha256: must be 64 hexadecimal digits"}, ""},
		// Roles are office, admin or readonly.
		{"token role", func(c *Config) { c.API.Tokens[1].Role = "root" }, []string{`api.tokens[1].role: "root" is not one of office, admin, readonly`}, ""},
		// Token names are unique, and so are tokens.
		{"token dup", func(c *Config) { c.API.Tokens[1].Name = "office-pc"; c.API.Tokens[1].Token = c.API.Tokens[0].Token }, []string{
			`api.tokens[1].name: "office-pc" is already api.tokens[0]`,
			"api.tokens[1]: has the same token as api.tokens[0]"}, "office-pc-secret"},
		// A school id is a slug.
		{"school id", func(c *Config) { c.Directory.Schools[0].ID = "Bishop Lonsdale" }, []string{`directory.schools[0].id: "Bishop Lonsdale" must be lower-case`}, ""},
		// Two schools with one id.
		{"school dup", func(c *Config) { c.Directory.Schools = append(c.Directory.Schools, c.Directory.Schools[0]) }, []string{
			`directory.schools[1].id: "bishop-lonsdale" is already directory.schools[0]`}, ""},
		// A school's own time zone must load.
		{"school tz", func(c *Config) { c.Directory.Schools[0].Timezone = "Europe/Londn" }, []string{`directory.schools[0].timezone: "Europe/Londn" is not a known time zone`}, ""},
		// A contact has a name and a phone.
		{"contact", func(c *Config) { c.Directory.Schools[0].Contacts["police"][0] = Contact{} }, []string{
			"directory.schools[0].contacts.police[0].name: must be set",
			"directory.schools[0].contacts.police[0].phone: must be set"}, ""},
		// A school whose lists reach no level would alert nobody.
		{"unreachable school", func(c *Config) {
			c.Directory.Schools[0].Contacts = map[string][]Contact{"headteacher": {{Name: "H", Phone: "+447700900201"}}}
		}, []string{
			"directory.schools[0].contacts: no contact on any escalation level's list"}, ""},
		// Officer phones are unique.
		{"officer phone dup", func(c *Config) {
			o := *officer(c)
			o.ID = "other"
			o.Phone = "07700 900101"
			c.Directory.Officers = append(c.Directory.Officers, o)
		}, []string{"directory.officers[1].phone: +447700900101 is already the phone of directory.officers[0]"}, ""},
		// A bad officer phone names the officer by index.
		{"officer phone", func(c *Config) { officer(c).Phone = "12x" }, []string{`directory.officers[0].phone: "12x" is not a phone number`}, ""},
		// A number only a local call could reach (as check-config reads it).
		{"officer phone local only", func(c *Config) { officer(c).Phone = "07700" }, []string{
			`directory.officers[0].phone: "07700" is not a phone number (too short: the area code is missing)`}, ""},
		// An officer's school must exist.
		{"officer school", func(c *Config) { officer(c).School = "elsewhere" }, []string{`directory.officers[0].school: "elsewhere" is not in directory.schools`}, ""},
		// A duress code is 3 to 8 digits, and is never quoted.
		{"duress", func(c *Config) { officer(c).DuressCode = "98a76" }, []string{"directory.officers[0].duress_code: must be 3 to 8 digits"}, "98a76"},
		// An officer without a vehicle is fine.
		{"no vehicle", func(c *Config) { officer(c).Vehicle = nil }, nil, ""},
		// Every problem is named at once.
		{"several", func(c *Config) {
			c.Visits.Grace = 0
			c.Twilio.MaxSendsPerSecond = -1
			officer(c).Name = ""
			c.Directory.Schools[0].Name = ""
		}, []string{
			"visits.grace: must be positive",
			"twilio.max_sends_per_second: must be positive",
			"directory.officers[0].name: must be set",
			"directory.schools[0].name: must be set",
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := specExample(t)
			tc.change(c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded; want errors %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q gives away a secret", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !keyLine.MatchString(line) {
					t.Errorf("error line %q does not start with a key path", line)
				}
			}
		})
	}
}

func TestValidateNormalises(t *testing.T) {
	t.Parallel()
	c := specExample(t)
	c.PublicURL = ""
	c.Listen = ":8080"
	c.DefaultRegion = "gb"
	c.Twilio.APIURL = "http://127.0.0.1:9999/"
	c.API.Tokens[0].Token = ""
	c.API.Tokens[0].TokenSHA256 = strings.Repeat("AB", 32)
	c.Directory.Officers[0].Phone = "07700 900101"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		// An empty public_url is derived from listen, with localhost for any address.
		{"public_url", c.PublicURL, "http://localhost:8080"},
		// Region codes are upper case.
		{"default_region", c.DefaultRegion, "GB"},
		// No trailing slash, so paths join cleanly.
		{"api_url", c.Twilio.APIURL, "http://127.0.0.1:9999"},
		// Hashes compare in lower case.
		{"token_sha256", c.API.Tokens[0].TokenSHA256, strings.Repeat("ab", 32)},
		// Phones become E.164.
		{"phone", c.Directory.Officers[0].Phone, "+447700900101"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestNormalizePhone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		raw    string
		region string
		want   string // "" means an error is expected
	}{
		// A national mobile number with a space.
		{"national mobile", "07700 900101", "GB", "+447700900101"},
		// International form with spaces.
		{"international spaced", "+44 1332 000001", "GB", "+441332000001"},
		// E.164 already: the region does not matter.
		{"e164 other region", "+447700900101", "US", "+447700900101"},
		// Dashes, dots and brackets are punctuation.
		{"punctuation", "(01332) 000-001", "gb", "+441332000001"},
		// Another region's national number.
		{"us national", "(201) 555-0123", "US", "+12015550123"},
		// Letters are a typo, not a vanity number.
		{"letters", "12x", "GB", ""},
		{"vanity", "0800 FLOWERS", "GB", ""},
		// Too short to be anyone's phone.
		{"too short", "999", "GB", ""},
		// Long enough only for a local call within an area (no area code): Twilio
		// would dial +4407700, which reaches nobody.
		{"local only", "07700", "GB", ""},
		{"local only spaced", "0770 12", "GB", ""},
		{"local only international", "+44 7700 12", "GB", ""},
		// Ofcom's drama numbers are possible though not valid (unallocated): they stay.
		{"drama mobile", "+447700900999", "GB", "+447700900999"},
		{"drama geographic", "01632 960001", "GB", "+441632960001"},
		// A country code alone.
		{"country code only", "+44", "GB", ""},
		// Too long.
		{"too long", "+44 7700 900101 12345", "GB", ""},
		// A national number needs a known region.
		{"unknown region", "07700 900101", "XX", ""},
		// Nothing.
		{"empty", " ", "GB", ""},
		// A + in the middle.
		{"inner plus", "0770+0900101", "GB", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := NormalizePhone(tc.raw, tc.region)
			if tc.want == "" {
				if err == nil {
					t.Errorf("NormalizePhone(%q, %q) = %q, want an error", tc.raw, tc.region, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("NormalizePhone(%q, %q) = %q, %v; want %q", tc.raw, tc.region, got, err, tc.want)
			}
		})
	}
}
