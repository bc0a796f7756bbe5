package service

import (
	"sync"

	"github.com/vigil-safety/vigil/internal/visit"
)

// readAhead remembers, for each officer this replica last wrote the state of, which
// visit and alerts that state named, so the next SMS from the officer reads them in
// the same round trip as the state itself (store.Snapshot.ReadAhead) instead of one
// round trip after it. It is only ever a guess: the state read decides what is used,
// and a wrong guess costs a round trip, as if there were none.
type readAhead struct {
	mu sync.Mutex
	m  map[string]officerKeys
}

// maxReadAhead bounds how many officers are remembered (a few hundred bytes each);
// when it is reached they are all forgotten and remembered again as they text.
const maxReadAhead = 20_000

type officerKeys struct {
	visits []string
	alerts []string
}

func (r *readAhead) get(officer string) (officerKeys, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.m[officer]
	return k, ok
}

// remember records what st, just written for officer, names: the open visit (or the
// last, which a PANIC without one quotes) and the open alerts.
func (r *readAhead) remember(officer string, st visit.OfficerState) {
	k := officerKeys{alerts: st.Alerts}
	if v := st.OpenVisit; v != "" {
		k.visits = []string{v}
	} else if v := st.LastVisit; v != "" {
		k.visits = []string{v}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil || len(r.m) >= maxReadAhead {
		r.m = make(map[string]officerKeys)
	}
	r.m[officer] = k
}
