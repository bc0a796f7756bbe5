package visit

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		want Command
	}{
		// The canonical VISIT: minutes first, then the place.
		{"visit minutes", "VISIT 45 14 Elm Road", Command{Verb: VerbVisit, Duration: 45 * time.Minute, Destination: "14 Elm Road"}},
		// Lower case, extra spaces and a trailing full stop do not matter.
		{"visit case and spacing", "  visit   45m   14 Elm Road. ", Command{Verb: VerbVisit, Duration: 45 * time.Minute, Destination: "14 Elm Road"}},
		// Tabs, newlines and no-break spaces are spaces too.
		{"visit unicode spacing", "Visit\t1h\u00a014\nElm\u3000Road!", Command{Verb: VerbVisit, Duration: time.Hour, Destination: "14 Elm Road"}},
		// A duration with a unit behind the place wins over a house number in front.
		{"visit duration behind", "VISIT 14 Elm Road 45m", Command{Verb: VerbVisit, Duration: 45 * time.Minute, Destination: "14 Elm Road"}},
		// A bare number in front is the duration, the number behind it the house.
		{"visit bare number in front", "VISIT 45 14 Elm Road", Command{Verb: VerbVisit, Duration: 45 * time.Minute, Destination: "14 Elm Road"}},
		// The unit may be a word of its own, in front or behind.
		{"visit 45 mins", "VISIT 45 mins 14 Elm Road", Command{Verb: VerbVisit, Duration: 45 * time.Minute, Destination: "14 Elm Road"}},
		{"visit 1 hour", "visit 1 hour 14 Elm Road", Command{Verb: VerbVisit, Duration: time.Hour, Destination: "14 Elm Road"}},
		{"visit trailing mins", "VISIT 14 Elm Road 45 mins", Command{Verb: VerbVisit, Duration: 45 * time.Minute, Destination: "14 Elm Road"}},
		// A seconds word after the number is a street, not a unit.
		{"visit second avenue", "VISIT 45 Second Avenue", Command{Verb: VerbVisit, Duration: 45 * time.Minute, Destination: "Second Avenue"}},
		{"next second place", "NEXT 45 Second Place", Command{Verb: VerbNext, Duration: 45 * time.Minute, Destination: "Second Place"}},
		{"visit place then 2 hours", "VISIT 14 Elm Road 2 hours", Command{Verb: VerbVisit, Duration: 2 * time.Hour, Destination: "14 Elm Road"}},
		// A single letter after a number is part of an address, not a unit.
		{"visit S street", "VISIT 30 14 S Street", Command{Verb: VerbVisit, Duration: 30 * time.Minute, Destination: "14 S Street"}},
		// A lone question mark asks for the status.
		{"question mark", "?", Command{Verb: VerbStatus}},
		// Hours and minutes written as two words in front need a unit on the minutes.
		{"visit 1h 30m in front", "VISIT 1h 30m Elm Road", Command{Verb: VerbVisit, Duration: 90 * time.Minute, Destination: "Elm Road"}},
		// Otherwise the bare number after the hours is the house number.
		{"visit 1h then house number", "VISIT 1h 14 Elm Road", Command{Verb: VerbVisit, Duration: time.Hour, Destination: "14 Elm Road"}},
		// Hours and minutes written as two words, behind.
		{"visit 1h 30 behind", "VISIT 14 Elm Road 1h 30", Command{Verb: VerbVisit, Duration: 90 * time.Minute, Destination: "14 Elm Road"}},
		// 1h30 as one word.
		{"visit 1h30", "VISIT 1h30 Elm Road", Command{Verb: VerbVisit, Duration: 90 * time.Minute, Destination: "Elm Road"}},
		// 90min as one word.
		{"visit 90min", "VISIT 90min Elm Road", Command{Verb: VerbVisit, Duration: 90 * time.Minute, Destination: "Elm Road"}},
		// Seconds, for drills and tests.
		{"visit 30s", "VISIT 30s Elm Road", Command{Verb: VerbVisit, Duration: 30 * time.Second, Destination: "Elm Road"}},
		// A place with no time: the default duration applies later.
		{"visit no time", "VISIT Elm Road", Command{Verb: VerbVisit, Destination: "Elm Road"}},
		// OUT is an alias of VISIT.
		{"out alias", "out 20 the library", Command{Verb: VerbVisit, Duration: 20 * time.Minute, Destination: "the library"}},
		// A time with no place is a problem.
		{"visit no place", "VISIT 45m", Command{Verb: VerbVisit, Duration: 45 * time.Minute, Problem: "VISIT needs a place, e.g. VISIT 45 14 Elm Road."}},
		// Nothing at all after VISIT is a problem.
		{"visit nothing", "VISIT", Command{Verb: VerbVisit, Problem: "VISIT needs a time and a place, e.g. VISIT 45 14 Elm Road."}},
		// Trailing punctuation alone leaves nothing for a place.
		{"visit time and punctuation", "VISIT 1h 30 ...", Command{Verb: VerbVisit, Duration: 90 * time.Minute, Problem: "VISIT needs a place, e.g. VISIT 45 14 Elm Road."}},
		// A comma after the duration in front.
		{"visit comma in front", "VISIT 45, 14 Elm Road", Command{Verb: VerbVisit, Duration: 45 * time.Minute, Destination: "14 Elm Road"}},
		// A comma before the duration behind.
		{"visit comma behind", "VISIT 14 Elm Road, 45m", Command{Verb: VerbVisit, Duration: 45 * time.Minute, Destination: "14 Elm Road"}},
		// NEXT reads like VISIT.
		{"next", "NEXT 30 22 Oak Lane", Command{Verb: VerbNext, Duration: 30 * time.Minute, Destination: "22 Oak Lane"}},
		// NEXT with the duration behind.
		{"next duration behind", "next 22 Oak Lane 1h", Command{Verb: VerbNext, Duration: time.Hour, Destination: "22 Oak Lane"}},
		// NEXT with nothing is a problem.
		{"next nothing", "NEXT", Command{Verb: VerbNext, Problem: "NEXT needs a time and a place, e.g. NEXT 45 14 Elm Road."}},
		// IN closes the visit.
		{"in", "IN", Command{Verb: VerbIn}},
		// Check-in words in any case, with punctuation.
		{"in lower punct", "in!", Command{Verb: VerbIn}},
		// CHECKIN as one word.
		{"checkin", "Checkin", Command{Verb: VerbIn}},
		// CHECK IN as two words.
		{"check in", "check  in.", Command{Verb: VerbIn}},
		// CHECKED IN as two words.
		{"checked in", "Checked in", Command{Verb: VerbIn}},
		// The hyphenated spelling.
		{"check-in", "check-in", Command{Verb: VerbIn}},
		// The hurried misspelling.
		{"chekin", "chekin", Command{Verb: VerbIn}},
		// SAFE.
		{"safe", "Safe", Command{Verb: VerbIn}},
		// OK.
		{"ok", "ok.", Command{Verb: VerbIn}},
		// DONE.
		{"done", "DONE", Command{Verb: VerbIn}},
		// The word after a check-in is a possible duress code.
		{"in with code", "IN 4321", Command{Verb: VerbIn, Code: "4321"}},
		// CHECK IN with a code.
		{"check in with code", "check in 4321.", Command{Verb: VerbIn, Code: "4321"}},
		// SAFE with a code.
		{"safe with code", "safe 4321", Command{Verb: VerbIn, Code: "4321"}},
		// Punctuation after the check-in word.
		{"ok comma", "OK, back at the car", Command{Verb: VerbIn, Code: "back"}},
		// Punctuation after the duress code still carries it.
		{"code comma", "In 4321, thanks", Command{Verb: VerbIn, Code: "4321"}},
		// Punctuation after CHECK IN.
		{"check in comma", "check in, 4321", Command{Verb: VerbIn, Code: "4321"}},
		// A comma in place of the space still carries the duress code.
		{"in comma code", "in,4321", Command{Verb: VerbIn, Code: "4321"}},
		{"in glued code", "IN4321", Command{Verb: VerbIn, Code: "4321"}},
		{"safe glued code", "safe4321 thanks", Command{Verb: VerbIn, Code: "4321"}},
		{"in glued short number", "in12", Command{Verb: VerbUnknown}},
		// A comma and a space, or a space before the comma, do too.
		{"in comma space code", "in, 4321", Command{Verb: VerbIn, Code: "4321"}},
		{"in space comma code", "SAFE ,4321", Command{Verb: VerbIn, Code: "4321"}},
		// So do a semicolon or a colon, and words after the code.
		{"in semicolon code", "ok;4321;thanks", Command{Verb: VerbIn, Code: "4321"}},
		{"check in colon code", "check in:4321", Command{Verb: VerbIn, Code: "4321"}},
		// EXTEND with a comma in place of the space.
		{"extend comma", "extend,15", Command{Verb: VerbExtend, Duration: 15 * time.Minute}},
		// ACK with a comma in place of the space.
		{"ack comma code", "ack,1234", Command{Verb: VerbAck, Code: "1234"}},
		// RESOLVE with commas: the note keeps its text.
		{"resolve comma code", "resolve,123,found safe, at home", Command{Verb: VerbResolve, Code: "123", Reason: "found safe, at home"}},
		// VISIT with a comma in place of the space: the place keeps its commas.
		{"visit comma", "VISIT,45 Flat 2, 14 Elm Road", Command{Verb: VerbVisit, Duration: 45 * time.Minute, Destination: "Flat 2, 14 Elm Road"}},
		// ABORT with a comma in place of the space: the reason keeps its text.
		{"abort comma", "abort,dog loose, in garden", Command{Verb: VerbAbort, Reason: "dog loose, in garden"}},
		// EXTEND in minutes.
		{"extend", "EXTEND 15", Command{Verb: VerbExtend, Duration: 15 * time.Minute}},
		// MORE is an alias, with hours and minutes apart.
		{"more 1h 30", "more 1h 30", Command{Verb: VerbExtend, Duration: 90 * time.Minute}},
		// EXTEND with a unit word.
		{"extend mins", "Extend 20 mins", Command{Verb: VerbExtend, Duration: 20 * time.Minute}},
		// EXTEND has no destination to mistake a seconds word for.
		{"extend seconds", "EXTEND 30 seconds", Command{Verb: VerbExtend, Duration: 30 * time.Second}},
		// EXTEND with no time is a problem.
		{"extend no time", "EXTEND", Command{Verb: VerbExtend, Problem: "EXTEND needs a time, e.g. EXTEND 15 or EXTEND 1h."}},
		// EXTEND with words for a time is a problem.
		{"extend bad time", "EXTEND a bit", Command{Verb: VerbExtend, Problem: "EXTEND needs a time, e.g. EXTEND 15 or EXTEND 1h."}},
		// A visit of zero minutes is a problem, in front or behind.
		{"visit zero", "VISIT 0 Zero Road", Command{Verb: VerbVisit, Problem: "VISIT needs a time above zero, e.g. VISIT 45 14 Elm Road."}},
		{"visit zero behind", "VISIT Zero Road 0m", Command{Verb: VerbVisit, Problem: "VISIT needs a time above zero, e.g. VISIT 45 14 Elm Road."}},
		{"next zero", "NEXT 0h0 Zero Road", Command{Verb: VerbNext, Problem: "NEXT needs a time above zero, e.g. NEXT 45 14 Elm Road."}},
		// A zero at the end of the place, after a time, is part of the place.
		{"visit zero at the end", "VISIT 45 Unit 0", Command{Verb: VerbVisit, Duration: 45 * time.Minute, Destination: "Unit 0"}},
		// A zero inside the place is part of it.
		{"visit zero inside", "VISIT 45 Flat 0 Elm Road", Command{Verb: VerbVisit, Duration: 45 * time.Minute, Destination: "Flat 0 Elm Road"}},
		// EXTEND 0 is a problem.
		{"extend zero", "EXTEND 0", Command{Verb: VerbExtend, Problem: "EXTEND needs a time, e.g. EXTEND 15 or EXTEND 1h."}},
		// PANIC.
		{"panic", "PANIC", Command{Verb: VerbPanic}},
		// SOS.
		{"sos", "sos!!!", Command{Verb: VerbPanic}},
		// 999.
		{"999", "999", Command{Verb: VerbPanic}},
		// A bare HELP is a PANIC: a person in danger may type it.
		{"bare help", "help", Command{Verb: VerbPanic}},
		// HELP with more words is a PANIC too (a false alarm costs less than a missed one).
		{"help me", "Help me", Command{Verb: VerbPanic}},
		// ABORT with a reason.
		{"abort", "ABORT dog loose in garden", Command{Verb: VerbAbort, Reason: "dog loose in garden"}},
		// CANCEL with a reason is ABORT.
		{"cancel reason", "cancel  aggressive  parent.", Command{Verb: VerbAbort, Reason: "aggressive parent"}},
		// ABORT with no reason is a problem.
		{"abort no reason", "abort", Command{Verb: VerbAbort, Problem: "ABORT needs a reason, e.g. ABORT dog loose."}},
		// A bare CANCEL is Twilio's opt-out word, never ours.
		{"bare cancel", "CANCEL", Command{Verb: VerbUnknown}},
		// A bare CANCEL with punctuation is still bare.
		{"bare cancel punct", "Cancel.", Command{Verb: VerbUnknown}},
		// STATUS.
		{"status", "status?", Command{Verb: VerbStatus}},
		// ACK alone.
		{"ack", "ACK", Command{Verb: VerbAck}},
		// ACK with a code.
		{"ack code", "ack 123", Command{Verb: VerbAck, Code: "123"}},
		// ACK with a code and words after it.
		{"ack code comma", "ACK 123, on it", Command{Verb: VerbAck, Code: "123"}},
		// ACK with a word that is not a code takes the only alert.
		{"ack word", "ACK thanks", Command{Verb: VerbAck}},
		// RESOLVE with a code and a note.
		{"resolve code note", "RESOLVE 123 found safe at home", Command{Verb: VerbResolve, Code: "123", Reason: "found safe at home"}},
		// RESOLVE with a note and no code.
		{"resolve note", "resolve she is fine", Command{Verb: VerbResolve, Reason: "she is fine"}},
		// Unknown words.
		{"unknown", "where is the car park", Command{Verb: VerbUnknown}},
		// STOP is Twilio's, never ours.
		{"stop", "STOP", Command{Verb: VerbUnknown}},
		// Empty text.
		{"empty", "", Command{Verb: VerbUnknown}},
		// Punctuation only.
		{"punctuation", " ?! ", Command{Verb: VerbUnknown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Parse(tt.text); got != tt.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.text, got, tt.want)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		text   string
		want   time.Duration
		wantOK bool
	}{
		// A bare number is minutes.
		{"minutes", "45", 45 * time.Minute, true},
		// m.
		{"m", "45m", 45 * time.Minute, true},
		// h.
		{"h", "1h", time.Hour, true},
		// Hours and minutes in one word.
		{"1h30", "1h30", 90 * time.Minute, true},
		// Hours and minutes with units.
		{"1h30m", "1H30M", 90 * time.Minute, true},
		// Hours and minutes apart.
		{"1h 30", "1h 30", 90 * time.Minute, true},
		// min.
		{"min", "90min", 90 * time.Minute, true},
		// mins with a space.
		{"mins spaced", "20 mins", 20 * time.Minute, true},
		// hrs.
		{"hrs", "2hrs", 2 * time.Hour, true},
		// Seconds, for drills.
		{"seconds", "30s", 30 * time.Second, true},
		// Zero is no duration.
		{"zero", "0", 0, false},
		// Zero hours and zero minutes is no duration.
		{"zero h", "0h0", 0, false},
		// Zero seconds is no duration.
		{"zero s", "0s", 0, false},
		// Empty.
		{"empty", "", 0, false},
		// Words.
		{"word", "soon", 0, false},
		// A unit alone.
		{"unit alone", "m", 0, false},
		// Seconds mixed with minutes are not a form we read.
		{"mixed seconds", "1m30s", 0, false},
		// A negative number.
		{"negative", "-5", 0, false},
		// A time of day is not a duration.
		{"time of day", "3pm", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseDuration(tt.text)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseDuration(%q) = %v, %v, want %v, %v", tt.text, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"VISIT 45 14 Elm Road", "visit 14 Elm Road 45m", "VISIT 1h 30 Flat 2, 7 High St",
		"NEXT 30 22 Oak Lane", "IN", "check in 4321", "chekin", "EXTEND 15", "more 1h30",
		"PANIC", "help", "999", "ABORT dog loose", "CANCEL", "cancel aggressive parent",
		"STATUS?", "ACK", "ACK 123", "RESOLVE 123 found safe", "in,4321", ", ,in ,", "30s", "VISIT 999h 9999 x",
		"VISIT\u00a045\u3000x", "visit 1h 30", "  ", "?", "VISIT 45 \U0001F600 Elm", "VISIT \xff 45",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c := Parse(text)
		if (c.Verb == VerbVisit || c.Verb == VerbNext) && c.Problem == "" && strings.TrimSpace(c.Destination) == "" {
			t.Errorf("Parse(%q) = %+v: a trip with no problem and no destination", text, c)
		}
		if c.Duration < 0 {
			t.Errorf("Parse(%q) = %+v: negative duration", text, c)
		}
		if d, ok := ParseDuration(text); ok && d <= 0 {
			t.Errorf("ParseDuration(%q) = %v, true", text, d)
		}
	})
}
