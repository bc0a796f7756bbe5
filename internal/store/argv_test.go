package store

import (
	"strings"
	"testing"
)

// The commit script writes nothing when a check fails only because every check
// comes before every write in its ARGV: a conflict or a lost claim must leave
// Redis as it was.
func TestCommitArgvChecksBeforeWrites(t *testing.T) {
	tx := tx{
		E:    [][]any{{1, "old"}, {2}},
		HE:   [][]any{{3, "jdoe", "st"}, {3, "ann"}},
		F:    []any{4, "v:1", 123},
		Set:  [][]any{{1, "new", 0}},
		HSet: [][]any{{3, "jdoe", "st2"}},
		Del:  []int{5},
		SAdd: [][]any{{6, "a1"}}, SRem: [][]any{{6, "a0"}},
		ZAdd: [][]any{{4, "a:1", 456}}, ZRem: [][]any{{4, "v:1"}},
		Msg:  [][]any{{7, 8, "m1", "{}", 789}},
		XAdd: [][]any{{9, "ev", 1000}},
		Pub:  []string{"wake", "s1 456"}, WT: []any{4},
		PubM: []string{"wake:outbox", "s1"},
	}
	arity := map[string]int{"wt": 1, "f": 3, "e": 2, "n": 1, "he": 3, "hn": 2, "set": 3, "hset": 3, "del": 1,
		"sadd": 2, "srem": 2, "zadd": 3, "zrem": 2, "msg": 5, "xadd": 3, "pub": 2, "pubm": 2}
	checks := map[string]bool{"wt": true, "f": true, "e": true, "n": true, "he": true, "hn": true}
	argv := tx.argv()
	var seen []string
	wrote := false
	for i := 0; i < len(argv); {
		op, ok := argv[i].(string)
		n, known := arity[op]
		if !ok || !known {
			t.Fatalf("argv[%d] = %v, want an operation (so far %v)", i, argv[i], seen)
		}
		if checks[op] && wrote {
			t.Errorf("check %q after a write (%v)", op, seen)
		}
		wrote = wrote || !checks[op]
		seen = append(seen, op)
		i += 1 + n
	}
	want := "wt f e n he hn set hset del sadd srem zadd zrem msg xadd pub pubm"
	if got := strings.Join(seen, " "); got != want {
		t.Errorf("operations %q, want %q", got, want)
	}
}
