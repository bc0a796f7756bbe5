package visit

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Verb is what an SMS asks for.
type Verb string

// The verbs of the SMS language (SPEC §5).
const (
	VerbUnknown Verb = "unknown"
	VerbVisit   Verb = "visit"
	VerbNext    Verb = "next"
	VerbIn      Verb = "in"
	VerbExtend  Verb = "extend"
	VerbPanic   Verb = "panic"
	VerbAbort   Verb = "abort"
	VerbStatus  Verb = "status"
	VerbAck     Verb = "ack"
	VerbResolve Verb = "resolve"
)

// Command is one parsed SMS (or an API call expressed in the same words).
type Command struct {
	Verb        Verb
	Duration    time.Duration // 0 when none was given
	Destination string
	// Code is the word after a check-in (a possible duress code) or after ACK.
	Code   string
	Reason string // ABORT reason, RESOLVE note
	// Problem says why a known verb could not be understood ("EXTEND needs a time").
	Problem string
}

var (
	trailing = regexp.MustCompile(`[\s.!?,;:]+$`)
	// glued is a word run into a number: "IN4321", a check-in with the duress code
	// typed without its space (as fast, shaking thumbs may).
	glued = regexp.MustCompile(`^([A-Z]+)([0-9]{3,8})$`)
	// codeRE is an alert's ACK code: short and numeric (IDs.Code).
	codeRE = regexp.MustCompile(`^\d{1,8}$`)
	// 45, 45m, 45min, 1h, 1h30, 1h30m, 90min, 30s, 2hrs, 1hr 30
	durRE = regexp.MustCompile(`^(?:(\d{1,3})\s*(?:h|hr|hrs|hour|hours))?\s*(?:(\d{1,4})\s*(?:m|min|mins|minute|minutes)?)?$`)
	secRE = regexp.MustCompile(`^(\d{1,4})\s*(?:s|sec|secs|second|seconds)$`)
)

// checkinWords are the words that close a visit as safe. The misspellings are the
// ones people type on a phone keyboard in a hurry.
var checkinWords = map[string]bool{
	"IN": true, "CHECKIN": true, "CHECK-IN": true, "CHEKIN": true, "CHECKEDIN": true,
	"SAFE": true, "OK": true, "OKAY": true, "DONE": true, "BACK": true,
}

// ParseDuration reads a duration as officers write it: 45 (minutes), 45m, 1h,
// 1h30, 90min, 30s. It reports false for anything else, including zero.
func ParseDuration(s string) (time.Duration, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return 0, false
	}
	if m := secRE.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		return positive(time.Duration(n) * time.Second)
	}
	m := durRE.FindStringSubmatch(s)
	if m == nil || (m[1] == "" && m[2] == "") {
		return 0, false
	}
	var d time.Duration
	if m[1] != "" {
		h, _ := strconv.Atoi(m[1])
		d += time.Duration(h) * time.Hour
	}
	if m[2] != "" {
		n, _ := strconv.Atoi(m[2])
		d += time.Duration(n) * time.Minute
	}
	return positive(d)
}

func positive(d time.Duration) (time.Duration, bool) { return d, d > 0 }

// zeroDuration reports whether the word is written as a duration ("0", "0m",
// "0h0", "0s") that comes to zero.
func zeroDuration(w string) bool {
	s := strings.ToLower(bare(w))
	if _, ok := ParseDuration(s); ok || s == "" {
		return false
	}
	if secRE.MatchString(s) {
		return true
	}
	m := durRE.FindStringSubmatch(s)
	return m != nil && (m[1] != "" || m[2] != "")
}

// bare is a word without the punctuation typed after it.
func bare(w string) string { return strings.TrimRight(w, punctuation) }

const punctuation = ".!?,;:"

// Parse reads one SMS. Case, extra spaces and trailing punctuation do not matter.
// It never fails: text it does not understand is VerbUnknown.
func Parse(text string) Command {
	// strings.Fields splits on every Unicode space (tabs, newlines, the no-break
	// spaces phones insert), so no word is blank and no space survives inside one.
	s := strings.Join(strings.Fields(text), " ")
	if s == "?" {
		return Command{Verb: VerbStatus}
	}
	s = trailing.ReplaceAllString(s, "")
	if s == "" {
		return Command{Verb: VerbUnknown}
	}
	// Punctuation after a word does not matter either: "OK, back at the car" is a
	// check-in and "IN 4321, thanks" carries the duress code. Nor does punctuation
	// typed in place of the space after the command word: "in,4321" carries it too.
	head, rest := firstWord(strings.Split(s, " "))
	head = strings.ToUpper(head)
	// "CHECK IN" and "CHECKED IN" are two words.
	if head == "CHECK" || head == "CHECKED" {
		if w, more := firstWord(rest); strings.EqualFold(w, "in") {
			head, rest = "CHECKIN", more
		}
	}
	if m := glued.FindStringSubmatch(head); m != nil && checkinWords[m[1]] {
		head, rest = m[1], append([]string{m[2]}, rest...)
	}
	switch {
	case checkinWords[head]:
		code, _ := firstWord(rest)
		return Command{Verb: VerbIn, Code: code}
	case head == "VISIT" || head == "NEXT" || head == "OUT":
		verb := VerbVisit
		if head == "NEXT" {
			verb = VerbNext
		}
		return parseTrip(verb, rest)
	case head == "EXTEND" || head == "MORE":
		c := Command{Verb: VerbExtend}
		d, ok := ParseDuration(strings.Join(rest, " "))
		if !ok {
			c.Problem = "EXTEND needs a time, e.g. EXTEND 15 or EXTEND 1h."
		}
		c.Duration = d
		return c
	case head == "PANIC" || head == "SOS" || head == "999" || head == "HELP":
		// HELP with more words ("help me") is treated as PANIC too: a person in danger
		// may type it, and a false alarm costs far less than a missed one.
		return Command{Verb: VerbPanic}
	case head == "ABORT" || head == "CANCEL":
		// A bare CANCEL is a Twilio opt-out word; with a reason it is ours.
		if len(rest) == 0 {
			if head == "ABORT" {
				return Command{Verb: VerbAbort, Problem: "ABORT needs a reason, e.g. ABORT dog loose."}
			}
			return Command{Verb: VerbUnknown}
		}
		return Command{Verb: VerbAbort, Reason: strings.Join(rest, " ")}
	case head == "STATUS":
		return Command{Verb: VerbStatus}
	case head == "ACK" || head == "ACCEPT":
		// Only a number is a code: "ACK thanks" takes the only open alert rather than
		// looking for an alert called "thanks".
		c := Command{Verb: VerbAck}
		if code, _ := firstWord(rest); codeRE.MatchString(code) {
			c.Code = code
		}
		return c
	case head == "RESOLVE" || head == "RESOLVED":
		// "RESOLVE 123 found at home" or, with one alert open, "RESOLVE found at home".
		c := Command{Verb: VerbResolve}
		if code, more := firstWord(rest); codeRE.MatchString(code) {
			c.Code, rest = code, more
		}
		c.Reason = strings.Join(rest, " ")
		return c
	}
	return Command{Verb: VerbUnknown}
}

// firstWord splits the first word off words, reading punctuation typed in place of
// a space as a space: "in,4321", "in, 4321" and "in , 4321" are all "in" followed
// by "4321". Only the first word is cut, so a destination or a reason after it
// keeps its punctuation as typed.
func firstWord(words []string) (string, []string) {
	for len(words) > 0 && strings.Trim(words[0], punctuation) == "" {
		words = words[1:]
	}
	if len(words) == 0 {
		return "", nil
	}
	w, rest := strings.TrimLeft(words[0], punctuation), words[1:]
	if i := strings.IndexAny(w, punctuation); i >= 0 {
		if after := strings.TrimLeft(w[i:], punctuation); after != "" {
			// A new slice: words belongs to the caller.
			rest = append([]string{after}, rest...)
		}
		w = w[:i]
	}
	return w, rest
}

// parseTrip reads "<duration> <destination>" or "<destination> <duration>".
// A duration with a unit ("45m", "1h 30") is strong and a bare number ("45") weak:
// the canonical form puts the duration first, so a weak duration in front wins over
// one behind, but a strong one behind wins over a weak one in front
// ("VISIT 14 Elm Road 45m" is 45 minutes at 14 Elm Road).
func parseTrip(verb Verb, rest []string) Command {
	c := Command{Verb: verb}
	name := strings.ToUpper(string(verb))
	if len(rest) == 0 {
		c.Problem = name + " needs a time and a place, e.g. " + name + " 45 14 Elm Road."
		return c
	}
	// "VISIT 0 ...": a visit due at once is a typing slip, not a trip. A zero at
	// the end counts only when no time leads: "VISIT 45 Unit 0" is 45 minutes at
	// Unit 0.
	_, leadOK := ParseDuration(bare(rest[0]))
	if zeroDuration(rest[0]) || (!leadOK && len(rest) > 1 && zeroDuration(rest[len(rest)-1])) {
		c.Problem = name + " needs a time above zero, e.g. " + name + " 45 14 Elm Road."
		return c
	}
	pd, pn, pStrong := leadingDuration(rest)
	sd, sn, sStrong := trailingDuration(rest)
	place := func(w []string) string { return strings.TrimRight(strings.Join(w, " "), " "+punctuation) }
	switch {
	case pn > 0 && len(rest) > pn && (pStrong || !sStrong || sn == 0) && place(rest[pn:]) != "":
		c.Duration, c.Destination = pd, place(rest[pn:])
	case sn > 0 && len(rest) > sn && place(rest[:len(rest)-sn]) != "":
		c.Duration, c.Destination = sd, place(rest[:len(rest)-sn])
	case pn > 0:
		c.Duration = pd
		c.Problem = name + " needs a place, e.g. " + name + " 45 14 Elm Road."
	default:
		// No duration: the place alone, due after the default duration.
		c.Destination = strings.Join(rest, " ")
	}
	return c
}

var (
	hourWord = regexp.MustCompile(`^(?i)\d{1,3}(h|hr|hrs|hour|hours)$`)
	minWord  = regexp.MustCompile(`^(?i)\d{1,4}(m|min|mins|minute|minutes)?$`)
	unitWord = regexp.MustCompile(`(?i)[a-z]$`)
)

var (
	digits = regexp.MustCompile(`^\d{1,4}$`)
	// unitAlone is a unit written as a word of its own in a VISIT or NEXT ("45
	// mins"). Single letters are left out: "14 S Street" is an address, not 14
	// seconds. So are the seconds words: "VISIT 45 Second Avenue" is 45 minutes at
	// Second Avenue, not a 45-second visit to "Avenue" (a drill writes 30s).
	unitAlone = regexp.MustCompile(`^(?i)(hr|hrs|hour|hours|min|mins|minute|minutes)$`)
)

// leadingDuration finds a duration in the first one or two words ("1h 30m").
// In front of a place, a bare number after the hours is the house number, as in the
// canonical "VISIT 45 14 Elm Road": "VISIT 1h 14 Elm Road" is an hour at 14 Elm Road,
// not 1h14 at Elm Road (an address without its number is the worse mistake).
func leadingDuration(w []string) (d time.Duration, n int, strong bool) {
	w0 := bare(w[0])
	// "45 mins", "1 hour": the unit as a word of its own.
	if len(w) >= 2 && digits.MatchString(w0) && unitAlone.MatchString(bare(w[1])) {
		if d, ok := ParseDuration(w0 + bare(w[1])); ok {
			return d, 2, true
		}
	}
	if len(w) >= 2 && hourWord.MatchString(w0) && minWord.MatchString(bare(w[1])) &&
		(len(w) == 2 || unitWord.MatchString(bare(w[1]))) {
		if d, ok := ParseDuration(w0 + bare(w[1])); ok {
			return d, 2, true
		}
	}
	if d, ok := ParseDuration(w0); ok {
		return d, 1, unitWord.MatchString(w0)
	}
	return 0, 0, false
}

// trailingDuration finds a duration in the last one or two words.
func trailingDuration(w []string) (d time.Duration, n int, strong bool) {
	l := len(w)
	last := bare(w[l-1])
	if l >= 2 && digits.MatchString(bare(w[l-2])) && unitAlone.MatchString(last) {
		if d, ok := ParseDuration(bare(w[l-2]) + last); ok {
			return d, 2, true
		}
	}
	if l >= 2 && hourWord.MatchString(bare(w[l-2])) && minWord.MatchString(last) {
		if d, ok := ParseDuration(bare(w[l-2]) + last); ok {
			return d, 2, true
		}
	}
	if d, ok := ParseDuration(last); ok {
		return d, 1, unitWord.MatchString(last)
	}
	return 0, 0, false
}
