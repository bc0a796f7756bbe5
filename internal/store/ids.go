package store

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// The IDs of visits and alerts. They are opaque strings to everything outside the
// store, but the storage encoding reads the instant a record was made from its ID
// (codec.go: a record's base is left out when it is its ID's instant), and every
// Redis entry that names a record repeats its ID: the record's key, its timer
// member ("v:<id>"), the open-alert set, officer states, message IDs. So new IDs are
// short, and the ones earlier versions made (ULIDs, 26 characters) stay readable:
//
//   - a new ID is 12 characters of Crockford's base32 (the ULID alphabet: digits and
//     capitals without I, L, O, U, safe to type and to put in a URL): 9 for the Unix
//     millisecond it was made at (45 bits, until the year 3084), 3 for 15 random bits;
//   - the commit refuses a new visit or alert whose key exists already, and the event
//     is then decided again with new IDs (service.transact), so an ID never names two
//     records of one school. Two schools may draw the same ID only in the same
//     millisecond with the same 15 bits; the API refuses such an ID as ambiguous
//     rather than guess the school (FindVisit, FindAlert).
//
// At 12 characters a timer member ("v:" and the ID) and an open-set member fit
// Redis' 16-byte allocation, against 32 for a ULID's.

// crockford is the ULID alphabet.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

const (
	idTimeChars = 9
	idRandChars = 3
	idLen       = idTimeChars + idRandChars
)

// NewID makes the ID of a visit or alert created at t.
func NewID(t time.Time) string {
	var r [2]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return newID(t.UnixMilli(), uint64(r[0])<<8|uint64(r[1]))
}

// newID is the ID of instant ms (Unix milliseconds, 0 <= ms < 2^45) with random
// bits rnd (the lowest 15 are used).
func newID(ms int64, rnd uint64) string {
	v := uint64(ms)<<(5*idRandChars) | rnd&(1<<(5*idRandChars)-1)
	var b [idLen]byte
	for i := idLen - 1; i >= 0; i-- {
		b[i] = crockford[v&31]
		v >>= 5
	}
	return string(b[:])
}

// idTime is the instant (Unix ms) an ID was made at, for IDs of both kinds: a short
// ID (NewID) and a ULID (earlier versions). ok is false for any other string.
func idTime(id string) (ms int64, short, ok bool) {
	if len(id) == idLen {
		var v uint64
		for i := 0; i < idLen; i++ {
			d := strings.IndexByte(crockford, id[i]) // upper case only, as NewID writes
			if d < 0 {
				return 0, false, false
			}
			v = v<<5 | uint64(d)
		}
		return int64(v >> (5 * idRandChars)), true, true
	}
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return 0, false, false
	}
	return int64(u.Time()), false, true
}
