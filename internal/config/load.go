package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// EnvPrefix starts the name of every environment variable that overrides a key:
// VIGIL_ + the key path in upper case joined by _ (VIGIL_TWILIO_AUTH_TOKEN).
const EnvPrefix = "VIGIL_"

// setting is one key of SPEC §3 with its default. env is false for lists of
// mappings (escalation.levels, api.tokens, directory.*), which one variable cannot
// express: those come from the file only.
type setting struct {
	key string
	def any
	env bool
}

// settings lists every key with its default, as in the SPEC §3 example. It is a
// function, not a package variable, because viper keeps (and lower-cases in place)
// the maps it is given: each Load needs its own.
func settings() []setting {
	level := func(name, after, repeat string) map[string]any {
		return map[string]any{"name": name, "after": after, "repeat_every": repeat}
	}
	return []setting{
		{"listen", "127.0.0.1:8080", true},
		{"public_url", "", true},
		{"timezone", "Europe/London", true},
		{"default_region", "GB", true},

		{"redis.url", "", true},
		{"redis.sentinel.master", "", true},
		{"redis.sentinel.addrs", []string{}, true},
		{"redis.sentinel.password", "", true},
		{"redis.cluster_addrs", []string{}, true},
		{"redis.key_prefix", "vigil:", true},
		{"redis.username", "", true},
		{"redis.password", "", true},
		{"redis.tls", false, true},
		{"redis.tls_ca_file", "", true},
		{"redis.tls_cert_file", "", true},
		{"redis.tls_key_file", "", true},

		{"twilio.account_sid", "", true},
		{"twilio.auth_token", "", true},
		{"twilio.from", "", true},
		{"twilio.messaging_service_sid", "", true},
		{"twilio.api_url", "https://api.twilio.com", true},
		{"twilio.validate_signatures", true, true},
		{"twilio.max_sends_per_second", 10, true},
		{"twilio.validity_period", "10m", true},

		{"visits.default_duration", "60m", true},
		{"visits.max_duration", "8h", true},
		{"visits.reminder_before", "10m", true},
		{"visits.grace", "5m", true},

		{"escalation.levels", []any{
			level("office", "0s", "5m"),
			level("managers", "10m", "5m"),
			level("police", "20m", "10m"),
		}, false},
		{"escalation.panic_levels", []string{"office", "managers", "police"}, true},
		{"escalation.ack_hold", "15m", true},

		{"monitoring.heartbeat_url", "", true},

		{"duties.expiry_check", "0 8 * * *", true},
		{"duties.monthly_report", "0 7 1 * *", true},

		{"retention.visit_days", 30, true},
		{"retention.alert_days", 400, true},

		{"api.tokens", []any{}, false},

		{"directory.schools", []any{}, false},
		{"directory.officers", []any{}, false},
	}
}

// EnvName is the environment variable that overrides key ("visits.grace" →
// "VIGIL_VISITS_GRACE").
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Load reads the YAML file at path (none when path is empty), applies the VIGIL_*
// variables found in env (KEY=VALUE pairs, as from os.Environ), fills defaults,
// then validates and normalises the result (see Validate). Any problem is an error
// naming each bad key by its dotted path, one per line; a nil Config comes with it.
//
// Environment variables are taken from env, never from the process, so callers and
// tests choose what is seen. Only variables naming a known scalar or string-list
// key are applied (lists are comma-separated: VIGIL_ESCALATION_PANIC_LEVELS=office,police);
// an empty value counts as unset, as in viper. One naming a list of mappings
// (VIGIL_API_TOKENS) is an error; other VIGIL_* variables are ignored.
func Load(path string, env []string) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	known := map[string]string{}    // env name → key
	fileOnly := map[string]string{} // env name → key that one variable cannot express
	for _, s := range settings() {
		v.SetDefault(s.key, s.def)
		if s.env {
			known[EnvName(s.key)] = s.key
		} else {
			fileOnly[EnvName(s.key)] = s.key
		}
	}

	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := v.ReadConfig(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("parse config %s: %w", path, err)
		}
	}

	// A variable set for a key that comes from the file only is refused, not
	// ignored: a deployment that meant to set its tokens or ladder that way would
	// otherwise run on the file's (or the defaults) without a word.
	var envProblems []error
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if key, fo := fileOnly[name]; ok && fo && value != "" {
			envProblems = append(envProblems, fmt.Errorf("%s: cannot be set by an environment variable (%s is set): a list of mappings comes from the file only", key, name))
			continue
		}
		key, isKnown := known[name]
		if !ok || !isKnown || value == "" {
			continue
		}
		v.Set(key, value)
	}

	var c Config
	err := v.UnmarshalExact(&c, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			stringToListHook,
			durationHook,
			stringHook,
			intHook,
		)
	})
	if err != nil {
		return nil, errors.Join(append(envProblems, withValidation(&c, decodeProblems(err))...)...)
	}
	if err := c.Validate(); err != nil || len(envProblems) > 0 {
		return nil, errors.Join(append(envProblems, err)...)
	}
	return &c, nil
}

// withValidation adds to the problems of a file that did not decode the ones
// Validate finds in the rest of it, so that one run names every bad key. A key
// that did not decode was left at its zero value: what Validate says of it, of
// another key by comparison with it, or of a key holding it (a school's contacts,
// one of which did not decode) is left out.
func withValidation(c *Config, decoded []error) []error {
	var bad []string
	for _, e := range decoded {
		path, _, _ := strings.Cut(e.Error(), ": ")
		bad = append(bad, path)
	}
	joined, ok := c.Validate().(interface{ Unwrap() []error }) // errors.Join's; nil when valid
	if !ok {
		return decoded
	}
	all := decoded
	for _, e := range joined.Unwrap() {
		at, _, _ := strings.Cut(e.Error(), ": ")
		if !slices.ContainsFunc(bad, func(path string) bool { return mentions(e.Error(), path) || holds(at, path) }) {
			all = append(all, e)
		}
	}
	return all
}

// holds reports whether the key at outer holds the key path (outer.x, outer[0]).
func holds(outer, path string) bool {
	return strings.HasPrefix(path, outer+".") || strings.HasPrefix(path, outer+"[")
}

// mentions reports whether line names the key path, or a key inside it: path
// not run together with more of a key's letters on either side.
func mentions(line, path string) bool {
	return regexp.MustCompile(`(^|\W)` + regexp.QuoteMeta(path) + `(\W|$)`).MatchString(line)
}

var durationType = reflect.TypeFor[time.Duration]()

// durationHook accepts only strings in Go syntax for a time.Duration. Without it a
// bare number (grace: 300) would silently become 300 nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType || from == durationType {
		return data, nil
	}
	const how = "write a duration with a unit, like 90s, 10m or 1h30m"
	switch from.Kind() {
	case reflect.String:
		d, err := time.ParseDuration(data.(string))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration: %s", data, how)
		}
		return d, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return nil, fmt.Errorf("%v has no unit: %s", data, how)
	}
	return nil, errors.New(how)
}

var timeType = reflect.TypeFor[time.Time]()

// stringHook refuses anything but a string (or a YAML date) for a string key.
// Weak typing would otherwise turn duress_code: 0123 into "83" (YAML reads a leading
// 0 as octal), phone: +447700900101 into "447700900101" and true into "1".
// A YAML date (insurance_expires: 2027-03-01) arrives as a time.Time and becomes
// "2027-03-01" again.
func stringHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.String || from.Kind() == reflect.String {
		return data, nil
	}
	if from == timeType {
		t := data.(time.Time)
		if t.Equal(t.Truncate(24 * time.Hour)) {
			return t.Format(time.DateOnly), nil
		}
		return t.Format(time.RFC3339), nil
	}
	switch from.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return nil, fmt.Errorf("must be a string: put %v in quotes, as YAML may have changed it", data)
	}
	return nil, errors.New("must be a string")
}

// intHook refuses what weak typing would otherwise truncate or invent: 2.5 becoming
// 2, true becoming 1.
func intHook(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.Int || to == durationType {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Float32, reflect.Float64:
		f := reflect.ValueOf(data).Float()
		if f != math.Trunc(f) {
			return nil, fmt.Errorf("%v is not a whole number", data)
		}
	case reflect.Bool:
		return nil, fmt.Errorf("%v is not a whole number", data)
	}
	return data, nil
}

// stringToListHook lets one environment variable set a list: "office, police".
func stringToListHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice || to.Elem().Kind() != reflect.String {
		return data, nil
	}
	list := []string{}
	for s := range strings.SplitSeq(data.(string), ",") {
		if s = strings.TrimSpace(s); s != "" {
			list = append(list, s)
		}
	}
	return list, nil
}

// mapIndex is mapstructure's name for a map entry (contacts[office]); SPEC paths
// write it as a key (contacts.office).
var mapIndex = regexp.MustCompile(`\[([^\]]*[^\]0-9][^\]]*)\]`)

// decodeProblems turns mapstructure's errors into one "dotted.path: problem" error
// per bad key, sorted so that the message does not depend on map order.
func decodeProblems(err error) []error {
	var lines []string
	var walk func(error)
	walk = func(err error) {
		var de *mapstructure.DecodeError
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, err := range e.Unwrap() {
				walk(err)
			}
			return
		case *mapstructure.DecodeError:
			de = e
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
			return
		default:
			lines = append(lines, err.Error())
			return
		}
		path := mapIndex.ReplaceAllString(de.Name(), ".$1")
		inner := de.Unwrap()
		if keys, ok := strings.CutPrefix(inner.Error(), "has invalid keys: "); ok {
			for _, k := range strings.Split(keys, ", ") {
				lines = append(lines, join(path, k)+": unknown key")
			}
			return
		}
		if path == "" {
			path = "(top level)"
		}
		lines = append(lines, path+": "+typeProblem(inner))
	}
	walk(err)
	slices.Sort(lines)
	errs := make([]error, len(lines))
	for i, l := range lines {
		errs[i] = errors.New(l)
	}
	return errs
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// typeProblem words a mapstructure type error for a person editing YAML.
func typeProblem(err error) string {
	var expected reflect.Value
	var value any
	var pe *mapstructure.ParseError
	var ue *mapstructure.UnconvertibleTypeError
	switch {
	case errors.As(err, &pe):
		expected, value = pe.Expected, pe.Value
	case errors.As(err, &ue):
		expected, value = ue.Expected, ue.Value
	default:
		msg := err.Error()
		switch {
		case strings.HasPrefix(msg, "expected a map or struct"):
			return "must be a mapping of keys to values"
		case strings.HasPrefix(msg, "source data must be an array or slice"):
			return "must be a list"
		}
		return msg
	}
	switch expected.Kind() {
	case reflect.Bool:
		return fmt.Sprintf("%v is not true or false", value)
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
		return fmt.Sprintf("%v is not a whole number", value)
	case reflect.Slice:
		return "must be a list"
	case reflect.Struct, reflect.Map:
		return "must be a mapping of keys to values"
	}
	return err.Error()
}
