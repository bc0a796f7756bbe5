package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones must load the same on every host, even without /usr/share/zoneinfo

	"github.com/nyaruka/phonenumbers"
	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"

	"github.com/vigil-safety/vigil/internal/visit"
)

// Roles a bearer token may have (api.tokens[].role).
const (
	RoleOffice   = "office"   // visits and alerts
	RoleAdmin    = "admin"    // everything, including the directory
	RoleReadonly = "readonly" // GET only
)

// Twilio accepts a ValidityPeriod of 1 to 36,000 whole seconds (error 21624/90007).
const (
	minValidity = time.Second
	maxValidity = 10 * time.Hour
)

// minTokenLen keeps bearer tokens long enough not to be guessed.
const minTokenLen = 16

var (
	idPattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	duressPattern = regexp.MustCompile(`^[0-9]{3,8}$`)
	sha256Pattern = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

// problems gathers every validation error, each starting with its dotted key path.
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// Validate checks the whole configuration and returns every problem found, joined
// with errors.Join, one per line, each starting with the dotted path of its key
// (visits.grace: must be positive). Secrets (tokens, duress codes) are never quoted.
//
// Validate also normalises in place, so the rest of Vigil sees one form: phone
// numbers become E.164 (national numbers read in default_region), default_region is
// upper-cased, token_sha256 lower-cased, trailing slashes are cut from public_url
// and twilio.api_url, and an empty public_url becomes "http://" + listen (with
// "localhost" for an empty or unspecified host), which suits a daemon reached
// directly; behind a proxy, set public_url so Twilio signatures match.
func (c *Config) Validate() error {
	var p problems
	c.validateServer(&p)
	c.validateRedis(&p)
	c.validateTwilio(&p)
	c.validateVisits(&p)
	c.validateEscalation(&p)
	c.validateDuties(&p)
	c.validateAPI(&p)
	c.validateDirectory(&p)
	return errors.Join(p...)
}

func (c *Config) validateServer(p *problems) {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		p.add("listen", "%q is not host:port", c.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.add("listen", "%q is not a port number", port)
	}

	if c.PublicURL == "" {
		switch host {
		case "", "0.0.0.0", "::":
			host = "localhost"
		}
		if err == nil {
			c.PublicURL = "http://" + net.JoinHostPort(host, port)
		} else {
			c.PublicURL = "http://" + c.Listen
		}
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if msg := checkHTTPURL(c.PublicURL); msg != "" {
		p.add("public_url", "%s", msg)
	} else if u, _ := url.Parse(c.PublicURL); u.RawQuery != "" || u.Fragment != "" {
		p.add("public_url", "must not have a query or fragment")
	}

	checkTimezone(p, "timezone", c.Timezone)

	c.DefaultRegion = strings.ToUpper(c.DefaultRegion)
	if !phonenumbers.GetSupportedRegions()[c.DefaultRegion] {
		p.add("default_region", "%q is not a region code known for phone numbers (like GB)", c.DefaultRegion)
	}

	if c.Monitoring.HeartbeatURL != "" {
		if msg := checkHTTPURL(c.Monitoring.HeartbeatURL); msg != "" {
			p.add("monitoring.heartbeat_url", "%s", msg)
		}
	}
	if c.Retention.VisitDays <= 0 {
		p.add("retention.visit_days", "must be positive")
	}
	if c.Retention.AlertDays <= 0 {
		p.add("retention.alert_days", "must be positive")
	}
}

func (c *Config) validateRedis(p *problems) {
	r := c.Redis
	kinds := 0
	if r.URL != "" {
		kinds++
		if !strings.HasPrefix(r.URL, "redis://") && !strings.HasPrefix(r.URL, "rediss://") {
			p.add("redis.url", "must start with redis:// or rediss://")
		} else if _, err := redis.ParseURL(r.URL); err != nil {
			// The error may quote the URL, password included: say only that it is bad.
			p.add("redis.url", "is not a Redis URL (redis://[user:password@]host[:port][/db])")
		}
	}
	if r.Sentinel.Master != "" || len(r.Sentinel.Addrs) > 0 {
		kinds++
		if r.Sentinel.Master == "" {
			p.add("redis.sentinel.master", "must be set when redis.sentinel.addrs is")
		}
		if len(r.Sentinel.Addrs) == 0 {
			p.add("redis.sentinel.addrs", "must list at least one sentinel when redis.sentinel.master is set")
		}
		checkAddrs(p, "redis.sentinel.addrs", r.Sentinel.Addrs)
	}
	if len(r.ClusterAddrs) > 0 {
		kinds++
		checkAddrs(p, "redis.cluster_addrs", r.ClusterAddrs)
	}
	if kinds > 1 {
		p.add("redis", "set only one of url, sentinel and cluster_addrs")
	}
	if r.Sentinel.Master == "" && len(r.ClusterAddrs) == 0 {
		// redis.url carries its own credentials and scheme; the embedded store
		// takes none.
		if r.Username != "" {
			p.add("redis.username", "applies to redis.sentinel and redis.cluster_addrs only; with redis.url write redis://user:password@host")
		}
		if r.Password != "" {
			p.add("redis.password", "applies to redis.sentinel and redis.cluster_addrs only; with redis.url write redis://user:password@host")
		}
		if r.TLS {
			p.add("redis.tls", "applies to redis.sentinel and redis.cluster_addrs only; with redis.url write rediss://")
		}
	}
	if r.Username != "" && r.Password == "" {
		// go-redis authenticates only with a password: the user would be ignored.
		p.add("redis.username", "needs redis.password")
	}
	if r.Sentinel.Password != "" && r.Sentinel.Master == "" {
		p.add("redis.sentinel.password", "is set without redis.sentinel.master")
	}
	if r.TLSCAFile != "" {
		switch {
		case !r.TLS && !strings.HasPrefix(r.URL, "rediss://"):
			p.add("redis.tls_ca_file", "is set but TLS is not on (redis.tls, or a rediss:// redis.url)")
		default:
			if _, err := r.CAPool(); err != nil {
				p.add("redis.tls_ca_file", "%v", err)
			}
		}
	}
	if r.TLSCertFile != "" || r.TLSKeyFile != "" {
		switch {
		case !r.TLS && !strings.HasPrefix(r.URL, "rediss://"):
			p.add("redis.tls_cert_file", "is set but TLS is not on (redis.tls, or a rediss:// redis.url)")
		case r.TLSCertFile == "" || r.TLSKeyFile == "":
			p.add("redis.tls_cert_file", "and redis.tls_key_file go together")
		default:
			if _, err := r.ClientCertificate(); err != nil {
				p.add("redis.tls_cert_file", "with redis.tls_key_file: %v", err)
			}
		}
	}
	// Keys are hash-tagged for Cluster: a brace in the prefix would break the tag.
	if strings.ContainsAny(r.KeyPrefix, "{}") {
		p.add("redis.key_prefix", "must not contain { or }")
	}
}

func checkAddrs(p *problems, path string, addrs []string) {
	for i, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			p.add(fmt.Sprintf("%s[%d]", path, i), "%q is not host:port", a)
		}
	}
}

func (c *Config) validateTwilio(p *problems) {
	t := &c.Twilio
	if t.AccountSID != "" || t.AuthToken != "" {
		if t.AccountSID == "" {
			p.add("twilio.account_sid", "must be set when twilio.auth_token is")
		}
		if t.AuthToken == "" {
			p.add("twilio.auth_token", "must be set when twilio.account_sid is")
		}
		if t.From == "" {
			// SMS may go through a messaging service, but voice calls (alerts that
			// fail by SMS, police and panic alerts) need a number to call from.
			p.add("twilio.from", "must be set: voice calls need a sender number even when SMS go through twilio.messaging_service_sid")
		}
	}
	if t.From != "" {
		if n, err := NormalizePhone(t.From, c.DefaultRegion); err != nil {
			p.add("twilio.from", "%v", err)
		} else {
			t.From = n
		}
	}
	t.APIURL = strings.TrimRight(t.APIURL, "/")
	if msg := checkHTTPURL(t.APIURL); msg != "" {
		p.add("twilio.api_url", "%s", msg)
	}
	if t.MaxSendsPerSecond <= 0 {
		p.add("twilio.max_sends_per_second", "must be positive")
	}
	switch {
	case t.ValidityPeriod < minValidity || t.ValidityPeriod > maxValidity:
		p.add("twilio.validity_period", "must be between %s and %s (Twilio's limits)",
			formatDuration(minValidity), formatDuration(maxValidity))
	case t.ValidityPeriod%time.Second != 0:
		p.add("twilio.validity_period", "must be whole seconds")
	}
}

func (c *Config) validateVisits(p *problems) {
	v := c.Visits
	for _, d := range []struct {
		key string
		d   time.Duration
	}{
		{"visits.default_duration", v.DefaultDuration},
		{"visits.max_duration", v.MaxDuration},
		{"visits.reminder_before", v.ReminderBefore},
		{"visits.grace", v.Grace},
	} {
		if d.d <= 0 {
			p.add(d.key, "must be positive")
		}
	}
	if v.DefaultDuration > v.MaxDuration {
		p.add("visits.default_duration", "%s is longer than visits.max_duration (%s)",
			formatDuration(v.DefaultDuration), formatDuration(v.MaxDuration))
	}
	if v.ReminderBefore >= v.MaxDuration {
		p.add("visits.reminder_before", "must be shorter than visits.max_duration (%s)", formatDuration(v.MaxDuration))
	}
}

func (c *Config) validateEscalation(p *problems) {
	e := c.Escalation
	if len(e.Levels) == 0 {
		p.add("escalation.levels", "at least one level is needed")
	}
	levels := map[string]int{}
	for i, l := range e.Levels {
		path := fmt.Sprintf("escalation.levels[%d]", i)
		switch j, dup := levels[l.Name]; {
		case l.Name == "":
			p.add(path+".name", "must be set")
		case dup:
			p.add(path+".name", "%q is already escalation.levels[%d]", l.Name, j)
		default:
			levels[l.Name] = i
		}
		if i == 0 && l.After < 0 {
			p.add(path+".after", "must not be negative")
		}
		if i > 0 && l.After < e.Levels[i-1].After {
			p.add(path+".after", "must not be earlier than escalation.levels[%d].after (%s)",
				i-1, formatDuration(e.Levels[i-1].After))
		}
		if l.RepeatEvery <= 0 {
			p.add(path+".repeat_every", "must be positive")
		}
	}

	// A panic level names an escalation level or any contact list a school has.
	lists := map[string]bool{
		visit.ListOffice: true, visit.ListManagers: true, visit.ListPolice: true, visit.ListHeadteacher: true,
	}
	for _, s := range c.Directory.Schools {
		for name := range s.Contacts {
			lists[name] = true
		}
	}
	// An escalation level names a contact list: a misspelt one would reach nobody
	// while the audit trail said the level was notified. Lists other than the four
	// standard ones are only known from the provisioned schools, so without any a
	// name cannot be checked.
	for i, l := range e.Levels {
		if l.Name != "" && !lists[l.Name] && len(c.Directory.Schools) > 0 {
			p.add(fmt.Sprintf("escalation.levels[%d].name", i),
				"%q is not a contact list: neither office, managers, police nor headteacher, nor a list of a school in directory.schools", l.Name)
		}
	}
	if len(e.PanicLevels) == 0 {
		p.add("escalation.panic_levels", "at least one is needed, or PANIC would reach nobody")
	}
	for i, name := range e.PanicLevels {
		path := fmt.Sprintf("escalation.panic_levels[%d]", i)
		_, isLevel := levels[name]
		switch {
		case name == "":
			p.add(path, "must be set")
		case !isLevel && !lists[name]:
			p.add(path, "%q is neither an escalation level nor a contact list", name)
		}
	}
	if e.AckHold <= 0 {
		p.add("escalation.ack_hold", "must be positive")
	}
}

func (c *Config) validateDuties(p *problems) {
	for _, d := range []struct{ key, spec string }{
		{"duties.expiry_check", c.Duties.ExpiryCheck},
		{"duties.monthly_report", c.Duties.MonthlyReport},
	} {
		if d.spec == "" {
			continue // an empty spec turns the duty off
		}
		upper := strings.ToUpper(d.spec)
		if strings.HasPrefix(upper, "TZ=") || strings.HasPrefix(upper, "CRON_TZ=") {
			p.add(d.key, "must not name a time zone: duties run in each school's time zone")
			continue
		}
		if _, err := cron.ParseStandard(d.spec); err != nil {
			p.add(d.key, "%q is not a cron spec: %v", d.spec, err)
		}
	}
}

func (c *Config) validateAPI(p *problems) {
	names := map[string]int{}
	digests := map[string]int{}
	for i := range c.API.Tokens {
		t := &c.API.Tokens[i]
		path := fmt.Sprintf("api.tokens[%d]", i)
		switch j, dup := names[t.Name]; {
		case t.Name == "":
			p.add(path+".name", "must be set")
		case dup:
			p.add(path+".name", "%q is already api.tokens[%d]", t.Name, j)
		default:
			names[t.Name] = i
		}
		switch t.Role {
		case RoleOffice, RoleAdmin, RoleReadonly:
		default:
			p.add(path+".role", "%q is not one of %s, %s, %s", t.Role, RoleOffice, RoleAdmin, RoleReadonly)
		}

		var digest string
		switch {
		case t.Token == "" && t.TokenSHA256 == "":
			p.add(path, "set token or token_sha256")
		case t.Token != "" && t.TokenSHA256 != "":
			p.add(path, "set only one of token and token_sha256")
		case t.Token != "":
			if len(t.Token) < minTokenLen {
				p.add(path+".token", "must be at least %d characters", minTokenLen)
			}
			if strings.ContainsFunc(t.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				p.add(path+".token", "must not contain spaces or control characters")
			}
			sum := sha256.Sum256([]byte(t.Token))
			digest = hex.EncodeToString(sum[:])
		default:
			if !sha256Pattern.MatchString(t.TokenSHA256) {
				p.add(path+".token_sha256", "must be 64 hexadecimal digits")
			}
			t.TokenSHA256 = strings.ToLower(t.TokenSHA256)
			digest = t.TokenSHA256
		}
		if j, dup := digests[digest]; dup && digest != "" {
			p.add(path, "has the same token as api.tokens[%d]", j)
		} else if digest != "" {
			digests[digest] = i
		}
	}
}

func (c *Config) validateDirectory(p *problems) {
	schools := map[string]int{}
	for i := range c.Directory.Schools {
		s := &c.Directory.Schools[i]
		path := fmt.Sprintf("directory.schools[%d]", i)
		checkID(p, path+".id", s.ID, "directory.schools", schools, i)
		if strings.TrimSpace(s.Name) == "" {
			p.add(path+".name", "must be set")
		}
		if s.Timezone != "" {
			checkTimezone(p, path+".timezone", s.Timezone)
		}
		reachable := false
		for _, list := range slices.Sorted(maps.Keys(s.Contacts)) {
			if list == "" {
				p.add(path+".contacts", "a list name must not be empty")
			}
			for j := range s.Contacts[list] {
				ct := &s.Contacts[list][j]
				cpath := fmt.Sprintf("%s.contacts.%s[%d]", path, list, j)
				if strings.TrimSpace(ct.Name) == "" {
					p.add(cpath+".name", "must be set")
				}
				c.normalizePhone(p, cpath+".phone", &ct.Phone)
			}
			isLevel := slices.ContainsFunc(c.Escalation.Levels, func(l Level) bool { return l.Name == list })
			if len(s.Contacts[list]) > 0 && isLevel {
				reachable = true
			}
			if list != "" && !isLevel && list != visit.ListHeadteacher && len(c.Escalation.Levels) > 0 {
				// Nothing is ever sent to it: a misspelt list (manager for
				// managers) would leave its level empty without a word.
				p.add(fmt.Sprintf("%s.contacts.%s", path, list), "no escalation level (%s) and no notice (%s) uses this list: is it misspelt?",
					levelNames(c.Escalation.Levels), visit.ListHeadteacher)
			}
		}
		if !reachable && len(c.Escalation.Levels) > 0 {
			p.add(path+".contacts", "no contact on any escalation level's list, so an alert would reach nobody")
		}
	}

	officers := map[string]int{}
	phones := map[string]int{}
	for i := range c.Directory.Officers {
		o := &c.Directory.Officers[i]
		path := fmt.Sprintf("directory.officers[%d]", i)
		checkID(p, path+".id", o.ID, "directory.officers", officers, i)
		if strings.TrimSpace(o.Name) == "" {
			p.add(path+".name", "must be set")
		}
		if c.normalizePhone(p, path+".phone", &o.Phone) {
			if j, dup := phones[o.Phone]; dup {
				p.add(path+".phone", "%s is already the phone of directory.officers[%d]", o.Phone, j)
			} else {
				phones[o.Phone] = i
			}
		}
		if _, ok := schools[o.School]; !ok {
			if o.School == "" {
				p.add(path+".school", "must be set")
			} else {
				p.add(path+".school", "%q is not in directory.schools", o.School)
			}
		}
		if o.DuressCode != "" && !duressPattern.MatchString(o.DuressCode) {
			p.add(path+".duress_code", "must be 3 to 8 digits") // never quote a duress code
		}
		if o.Vehicle != nil && o.Vehicle.InsuranceExpires != "" {
			if _, err := time.Parse(time.DateOnly, o.Vehicle.InsuranceExpires); err != nil {
				p.add(path+".vehicle.insurance_expires", "%q is not a date (YYYY-MM-DD)", o.Vehicle.InsuranceExpires)
			}
		}
	}
}

// checkID checks one school or officer id and records it in seen.
func checkID(p *problems, path, id, list string, seen map[string]int, i int) {
	j, dup := seen[id]
	switch {
	case id == "":
		p.add(path, "must be set")
	case !idPattern.MatchString(id):
		p.add(path, "%q must be lower-case letters, digits and dashes, at most 63, not starting with a dash", id)
	case dup:
		p.add(path, "%q is already %s[%d]", id, list, j)
	default:
		seen[id] = i
	}
}

// normalizePhone rewrites *phone in E.164 and reports whether it could.
func (c *Config) normalizePhone(p *problems, path string, phone *string) bool {
	if *phone == "" {
		p.add(path, "must be set")
		return false
	}
	n, err := NormalizePhone(*phone, c.DefaultRegion)
	if err != nil {
		p.add(path, "%v", err)
		return false
	}
	*phone = n
	return true
}

// NormalizePhone returns raw in E.164 (+447700900101). A number without a leading +
// is read as a national number of region (an ISO 3166 code like GB). Letters,
// extensions and numbers of impossible length are refused, and so are numbers that
// could only be dialled locally, within their area ("07700" read as a local number
// without its area code): Twilio dials the E.164 form, which would reach nobody.
// "Possible" (the length fits the country's plan) rather than "valid" (the number is
// in a range allocated today) is checked: validity depends on allocation tables that
// lag the regulators, so a real new number could be refused at start-up, and it
// refuses the reserved drama numbers (+447700900101, +441632960001) that drills,
// training and the examples use. A possible number that reaches nobody shows up on
// its first message (undelivered: re-routed, counted, and the test SMS finds it).
func NormalizePhone(raw, region string) (string, error) {
	bad := func(why string) error {
		if why == "" {
			return fmt.Errorf("%q is not a phone number", raw)
		}
		return fmt.Errorf("%q is not a phone number (%s)", raw, why)
	}
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", bad("empty")
	}
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9', r == ' ', r == '-', r == '(', r == ')', r == '.':
		case r == '+' && i == 0:
		default:
			// phonenumbers would read letters as a vanity number (0800 FLOWERS).
			return "", bad("")
		}
	}
	if !strings.HasPrefix(s, "+") && !phonenumbers.GetSupportedRegions()[strings.ToUpper(region)] {
		return "", bad(fmt.Sprintf("no country code, and region %q is unknown", region))
	}
	num, err := phonenumbers.Parse(s, strings.ToUpper(region))
	if err != nil {
		return "", bad("")
	}
	switch phonenumbers.IsPossibleNumberWithReason(num) {
	case phonenumbers.IS_POSSIBLE:
	case phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
		return "", bad("too short: the area code is missing")
	case phonenumbers.TOO_SHORT:
		return "", bad("too short")
	case phonenumbers.TOO_LONG:
		return "", bad("too long")
	case phonenumbers.INVALID_COUNTRY_CODE:
		return "", bad("unknown country code")
	default:
		return "", bad("wrong length")
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

func checkTimezone(p *problems, path, name string) {
	if name == "" || name == "Local" {
		p.add(path, "must be an IANA time zone name like Europe/London")
		return
	}
	if _, err := time.LoadLocation(name); err != nil {
		p.add(path, "%q is not a known time zone", name)
	}
}

// checkHTTPURL returns why u is not an absolute http(s) URL, or "".
func checkHTTPURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return fmt.Sprintf("%q is not an absolute http(s) URL", u)
	}
	return ""
}

// formatDuration writes d as a person would: 1h, 10m, 1h30m, 0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// levelNames lists the levels' names, comma-separated.
func levelNames(levels []Level) string {
	names := make([]string, len(levels))
	for i, l := range levels {
		names[i] = l.Name
	}
	return strings.Join(names, ", ")
}
