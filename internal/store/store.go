// Package store keeps all of Vigil's state in Redis: the directory, visits, alerts,
// officer states, durable timers, the outbox, inbound SMS de-duplication and the
// audit stream. Every change one event makes is written by one Lua script
// (Snapshot.Commit) that first checks nothing it read has changed.
package store

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/visit"
)

// Errors a commit can end with.
var (
	// ErrConflict means something the event read changed before it committed: load
	// and decide again.
	ErrConflict = errors.New("store: state changed since it was read")
	// ErrFenced means the timer or message claim was lost (its lease ran out and
	// another replica holds it): drop the work, the other replica does it.
	ErrFenced = errors.New("store: claim lost to another replica")
	// ErrNotFound means the entity does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrAmbiguous means a visit or alert ID looked up across schools names a record
	// in more than one (IDs are unique within a school only: ids.go).
	ErrAmbiguous = errors.New("store: the id names records in more than one school")
)

// Options says which Redis to use.
type Options struct {
	URL            string
	SentinelMaster string
	SentinelAddrs  []string
	ClusterAddrs   []string
	KeyPrefix      string
	// Username and Password authenticate to the servers of a Sentinel or Cluster
	// setup (a URL carries its own); SentinelPassword to the sentinels. TLS, for
	// Sentinel or Cluster, turns TLS on with that configuration; for a rediss://
	// URL, its RootCAs (when set) replace the system's and its Certificates are
	// presented.
	Username         string
	Password         string
	SentinelPassword string
	TLS              *tls.Config
}

// Store is Vigil's Redis adapter.
type Store struct {
	rdb  redis.UniversalClient
	k    keys
	mini *miniredis.Miniredis
	log  *slog.Logger
	// dir caches the directory (dircache.go); nil in a store made by NewWithClient.
	dir *dirCache
	// receiptCheck is how long after an alert message is sent its receipt check
	// falls due (a time.Duration; CheckReceiptsAfter).
	receiptCheck atomic.Int64
}

// Open connects to Redis as opts say. With no URL, sentinel or cluster it starts an
// embedded in-memory Redis (miniredis) and says loudly that nothing survives a
// restart. The store caches the directory (dircache.go) until Close.
//
// It speaks RESP2 unless the URL asks for another protocol: Vigil uses no RESP3
// push notifications, and with RESP3 go-redis looks for them on the socket before
// every command.
func Open(ctx context.Context, opts Options, log *slog.Logger) (*Store, error) {
	return open(ctx, opts, log, newDirCache())
}

func open(ctx context.Context, opts Options, log *slog.Logger, dir *dirCache) (*Store, error) {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "vigil:"
	}
	s := &Store{k: keys{prefix: opts.KeyPrefix}, log: log.With("component", "store")}
	s.receiptCheck.Store(int64(DefaultReceiptCheck))
	// ContextTimeoutEnabled: a context's deadline also bounds the wait for Redis
	// (otherwise only the client's own 5 s timeouts and retries do), so a webhook that
	// must answer Twilio in time, or a health check, is not held past its deadline by
	// a Redis that stopped answering.
	switch {
	case len(opts.ClusterAddrs) > 0:
		s.rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: opts.ClusterAddrs, Protocol: 2, ContextTimeoutEnabled: true,
			Username: opts.Username, Password: opts.Password, TLSConfig: opts.TLS})
	case opts.SentinelMaster != "":
		s.rdb = redis.NewFailoverClient(&redis.FailoverOptions{MasterName: opts.SentinelMaster, SentinelAddrs: opts.SentinelAddrs, Protocol: 2, ContextTimeoutEnabled: true,
			Username: opts.Username, Password: opts.Password, SentinelPassword: opts.SentinelPassword, TLSConfig: opts.TLS})
	case opts.URL != "":
		o, err := redis.ParseURL(opts.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url: %w", err)
		}
		if o.Protocol == 0 {
			o.Protocol = 2
		}
		if o.TLSConfig != nil && opts.TLS != nil {
			if opts.TLS.RootCAs != nil {
				o.TLSConfig.RootCAs = opts.TLS.RootCAs
			}
			o.TLSConfig.Certificates = opts.TLS.Certificates
		}
		o.ContextTimeoutEnabled = true
		s.rdb = redis.NewClient(o)
	default:
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			return nil, fmt.Errorf("start embedded store: %w", err)
		}
		s.mini = m
		s.rdb = redis.NewClient(&redis.Options{Addr: m.Addr(), Protocol: 2})
		s.log.Warn("NO REDIS CONFIGURED: using an embedded in-memory store. NOTHING SURVIVES A RESTART: open visits and alerts are lost when Vigil stops. Set redis.url for real use.")
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		s.Close()
		return nil, fmt.Errorf("connect to redis: %w", err)
	}
	s.dir = dir
	s.dir.start(s.rdb, s.k.dirChanged(), s.log)
	return s, nil
}

// NewWithClient wraps an existing client (tests, benchmarks). It does not cache the
// directory: every read goes to Redis.
func NewWithClient(rdb redis.UniversalClient, prefix string, log *slog.Logger) *Store {
	if prefix == "" {
		prefix = "vigil:"
	}
	s := &Store{rdb: rdb, k: keys{prefix: prefix}, log: log.With("component", "store")}
	s.receiptCheck.Store(int64(DefaultReceiptCheck))
	return s
}

// Close releases the connection (and stops the embedded store).
func (s *Store) Close() error {
	s.dir.stop()
	err := s.rdb.Close()
	if s.mini != nil {
		s.mini.Close()
	}
	return err
}

// Embedded reports whether the store is the in-memory one.
func (s *Store) Embedded() bool { return s.mini != nil }

// Ping checks Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// CheckWrite writes a key of its own, so that a Redis that answers but refuses writes
// (NOREPLICAS under min-replicas-to-write, OOM under noeviction, MISCONF after a
// failed save, READONLY on a demoted primary) is known: nothing can be committed or
// claimed then, and a PING alone would not say so. On a Cluster it checks the one
// master that holds the key.
func (s *Store) CheckWrite(ctx context.Context) error {
	return s.rdb.Set(ctx, s.k.writeCheck(), time.Now().UnixMilli(), time.Minute).Err()
}

// Client is the underlying client (for subscriptions and tests).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// WakeChannel is the pub/sub channel on which commits announce a timer due
// sooner than any other, so every replica's scheduler wakes without polling.
func (s *Store) WakeChannel() string { return s.k.wake() }

// OutboxChannel is the pub/sub channel on which commits that queue messages wake
// the dispatchers.
func (s *Store) OutboxChannel() string { return s.k.wakeOutbox() }

// ---- directory ----

// PhoneRole is what a phone number is to Vigil: an officer, or a contact on a list.
type PhoneRole struct {
	Kind    string `json:"kind"` // "officer" or "contact"
	School  string `json:"school"`
	Officer string `json:"officer,omitempty"`
	Name    string `json:"name"`
	List    string `json:"list,omitempty"`
}

// SyncDirectory upserts the provisioned schools and officers, drops provisioned
// entries that left the file, and rebuilds the phone index from the whole directory.
//
// What is under way is never cut off by an edit of the file: an officer on an open
// visit (as its officer or a companion) or with an open alert is not dropped and not
// moved to another school until it is closed, and a school that still has officers,
// open visits or open alerts is not dropped. Each is logged as a warning and applied
// at the next start or SIGHUP after it closes. (Dropping them did: the officer's
// PANIC and IN were answered as from an unknown number, and the open alert's
// next rounds said neither their name nor their phone.)
func (s *Store) SyncDirectory(ctx context.Context, schools []visit.School, officers []visit.Officer) error {
	return s.reindexAfter(ctx, s.syncEntries(ctx, schools, officers))
}

func (s *Store) syncEntries(ctx context.Context, schools []visit.School, officers []visit.Officer) error {
	offs, err := s.Officers(ctx)
	if err != nil {
		return err
	}
	stored := map[string]visit.Officer{}
	for _, o := range offs {
		stored[o.ID] = o
	}
	busy := busyOfficers{s: s, of: map[string]map[string]string{}}
	for _, sc := range schools {
		if err := s.putSchool(ctx, sc); err != nil {
			return err
		}
	}
	// The officers that stay though the file does not list them: those made through
	// the API, and those the file dropped who have work under way. A file officer
	// may not take one of their phones: the phone stays theirs (an officer renamed
	// in the file while on a visit would otherwise check in as the new ID and find
	// no visit, and the old visit would go overdue).
	listed := map[string]bool{}
	for _, o := range officers {
		listed[o.ID] = true
	}
	// schoolOf is where each officer is once the sync is done.
	schoolOf := map[string]string{}
	phoneOf := map[string]string{} // phone -> the officer who stays with it
	for _, o := range offs {
		if listed[o.ID] {
			continue
		}
		if o.Provisioned {
			why, err := busy.get(ctx, o.School, o.ID)
			if err != nil {
				return err
			}
			if why == "" {
				if err := s.rdb.HDel(ctx, s.k.officers(), o.ID).Err(); err != nil {
					return err
				}
				continue
			}
			s.log.Warn("officer left the configuration but is kept: "+why+"; they are removed at the next reload after it closes",
				"officer", o.ID, "school", o.School)
		}
		schoolOf[o.ID] = o.School // kept, or made through the API
		phoneOf[o.Phone] = o.ID
	}
	for _, o := range officers {
		old, existed := stored[o.ID]
		if holder, ok := phoneOf[o.Phone]; ok {
			s.log.Warn("officer not added or changed: their phone is still "+holder+"'s, who is not in the file; it is applied at the next reload after "+holder+" is gone",
				"officer", o.ID, "phone", o.Phone, "holder", holder)
			if existed {
				schoolOf[o.ID] = old.School
			}
			continue
		}
		if existed && old.School != o.School {
			why, err := busy.get(ctx, old.School, o.ID)
			if err != nil {
				return err
			}
			if why != "" {
				s.log.Warn("officer not moved to another school: "+why+"; the move is made at the next reload after it closes",
					"officer", o.ID, "school", old.School, "new_school", o.School)
				o.School = old.School
			}
		}
		if err := s.putOfficer(ctx, o); err != nil {
			return err
		}
		schoolOf[o.ID] = o.School
	}
	inFile := map[string]bool{}
	for _, sc := range schools {
		inFile[sc.ID] = true
	}
	officersIn := map[string]int{}
	for _, school := range schoolOf {
		officersIn[school]++
	}
	all, err := s.Schools(ctx)
	if err != nil {
		return err
	}
	for _, sc := range all {
		if !sc.Provisioned || inFile[sc.ID] {
			continue
		}
		open, err := busy.school(ctx, sc.ID)
		if err != nil {
			return err
		}
		n := officersIn[sc.ID]
		if n > 0 || open {
			s.log.Warn("school left the configuration but is kept: it still has officers, open visits or open alerts; it is removed at the next reload after they are gone",
				"school", sc.ID, "officers", n)
			continue
		}
		if err := s.rdb.HDel(ctx, s.k.schools(), sc.ID).Err(); err != nil {
			return err
		}
	}
	return nil
}

// busyOfficers says, school by school (read once each), which officers have work
// under way: an open visit, as its officer or a companion, or an open alert.
type busyOfficers struct {
	s  *Store
	of map[string]map[string]string // school -> officer -> why
}

func (b busyOfficers) read(ctx context.Context, school string) (map[string]string, error) {
	if m, ok := b.of[school]; ok {
		return m, nil
	}
	m := map[string]string{}
	vs, err := b.s.OpenVisits(ctx, []string{school})
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		m[v.Officer] = "on visit " + v.ID
		for _, c := range v.Companions {
			m[c] = "companion on visit " + v.ID
		}
	}
	as, err := b.s.ListAlerts(ctx, []string{school}, true, 0)
	if err != nil {
		return nil, err
	}
	for _, a := range as {
		if _, ok := m[a.Officer]; !ok {
			m[a.Officer] = "alert " + a.Code + " open"
		}
	}
	b.of[school] = m
	return m, nil
}

// get is why officer (of school) may not leave it now, "" when nothing is under way.
func (b busyOfficers) get(ctx context.Context, school, officer string) (string, error) {
	m, err := b.read(ctx, school)
	return m[officer], err
}

// OfficerBusy says why officer, of school, may not be removed or moved to another
// school now — "on visit <id>", "companion on visit <id>", "alert <code> open" — or
// "" when nothing of theirs is under way.
func (s *Store) OfficerBusy(ctx context.Context, school, officer string) (string, error) {
	return busyOfficers{s: s, of: map[string]map[string]string{}}.get(ctx, school, officer)
}

// school reports whether school has open visits or alerts.
func (b busyOfficers) school(ctx context.Context, school string) (bool, error) {
	m, err := b.read(ctx, school)
	return len(m) > 0, err
}

// PutSchool creates or replaces a school. The phone index is left alone: call
// ReindexPhones after it.
func (s *Store) PutSchool(ctx context.Context, sc visit.School) (err error) {
	defer s.announceDir(ctx, &err)
	return s.putSchool(ctx, sc)
}

func (s *Store) putSchool(ctx context.Context, sc visit.School) error {
	b, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	if err := s.rdb.HSet(ctx, s.k.schools(), sc.ID, b).Err(); err != nil {
		return fmt.Errorf("save school %s: %w", sc.ID, err)
	}
	return nil
}

// PutOfficer creates or replaces an officer and refreshes the phone index.
func (s *Store) PutOfficer(ctx context.Context, o visit.Officer) error {
	return s.reindexAfter(ctx, s.putOfficer(ctx, o))
}

func (s *Store) putOfficer(ctx context.Context, o visit.Officer) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := s.rdb.HSet(ctx, s.k.officers(), o.ID, b).Err(); err != nil {
		return fmt.Errorf("save officer %s: %w", o.ID, err)
	}
	return nil
}

// DeleteOfficer removes an officer.
func (s *Store) DeleteOfficer(ctx context.Context, id string) error {
	err := s.rdb.HDel(ctx, s.k.officers(), id).Err()
	if err != nil {
		err = fmt.Errorf("delete officer %s: %w", id, err)
	}
	return s.reindexAfter(ctx, err)
}

// reindexAfter ends a write of officers or schools: the phone index is rebuilt,
// which announces the change to every replica's directory cache. A write that failed
// is announced all the same: part of it may have been written.
func (s *Store) reindexAfter(ctx context.Context, err error) error {
	if err != nil {
		s.announceDir(ctx, &err)
		return err
	}
	return s.reindexPhones(ctx)
}

// School loads one school (from the directory cache when it holds it).
func (s *Store) School(ctx context.Context, id string) (*visit.School, error) {
	k := dirKey{dirSchool, id}
	if v, ok := s.dir.get(k); ok {
		return cloneSchool(v.(*visit.School)), nil
	}
	r := s.dir.begin()
	var sc visit.School
	if err := s.hget(ctx, s.k.schools(), id, &sc); err != nil {
		return nil, fmt.Errorf("load school %s: %w", id, err)
	}
	s.dir.put(r, k, cloneSchool(&sc))
	return &sc, nil
}

// Officer loads one officer (from the directory cache when it holds it).
func (s *Store) Officer(ctx context.Context, id string) (*visit.Officer, error) {
	k := dirKey{dirOfficer, id}
	if v, ok := s.dir.get(k); ok {
		return cloneOfficer(v.(*visit.Officer)), nil
	}
	r := s.dir.begin()
	var o visit.Officer
	if err := s.hget(ctx, s.k.officers(), id, &o); err != nil {
		return nil, fmt.Errorf("load officer %s: %w", id, err)
	}
	s.dir.put(r, k, cloneOfficer(&o))
	return &o, nil
}

// Schools lists every school, by ID.
func (s *Store) Schools(ctx context.Context) ([]visit.School, error) {
	return hvals[visit.School](ctx, s.rdb, s.k.schools(), func(x visit.School) string { return x.ID })
}

// SchoolIDs lists the IDs of every school (from the directory cache when it holds
// them).
func (s *Store) SchoolIDs(ctx context.Context) ([]string, error) {
	k := dirKey{kind: dirSchoolIDs}
	if v, ok := s.dir.get(k); ok {
		return slices.Clone(v.([]string)), nil
	}
	r := s.dir.begin()
	ids, err := s.rdb.HKeys(ctx, s.k.schools()).Result()
	if err != nil {
		return nil, err
	}
	sort.Strings(ids)
	s.dir.put(r, k, slices.Clone(ids))
	return ids, nil
}

// Officers lists every officer, by ID.
func (s *Store) Officers(ctx context.Context) ([]visit.Officer, error) {
	return hvals[visit.Officer](ctx, s.rdb, s.k.officers(), func(x visit.Officer) string { return x.ID })
}

// PhoneRoles says who a phone number belongs to; empty for an unknown number. The
// roles of a known number come from the directory cache when it holds them; an
// unknown number is always looked up, so a number just added works at once.
func (s *Store) PhoneRoles(ctx context.Context, phone string) ([]PhoneRole, error) {
	k := dirKey{dirPhone, phone}
	if v, ok := s.dir.get(k); ok {
		return slices.Clone(v.([]PhoneRole)), nil
	}
	r := s.dir.begin()
	var roles []PhoneRole
	err := s.hget(ctx, s.k.phones(), phone, &roles)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.dir.put(r, k, slices.Clone(roles))
	return roles, nil
}

// reindexPhones rebuilds the phone index and announces the change (the directory
// writes all end here), whether or not it succeeded.
func (s *Store) reindexPhones(ctx context.Context) (err error) {
	defer s.announceDir(ctx, &err)
	schools, err := s.Schools(ctx)
	if err != nil {
		return err
	}
	officers, err := s.Officers(ctx)
	if err != nil {
		return err
	}
	idx := map[string][]PhoneRole{}
	for _, o := range officers {
		idx[o.Phone] = append(idx[o.Phone], PhoneRole{Kind: "officer", School: o.School, Officer: o.ID, Name: o.Name})
	}
	for _, sc := range schools {
		lists := make([]string, 0, len(sc.Contacts))
		for l := range sc.Contacts {
			lists = append(lists, l)
		}
		sort.Strings(lists)
		for _, l := range lists {
			for _, c := range sc.Contacts[l] {
				idx[c.Phone] = append(idx[c.Phone], PhoneRole{Kind: "contact", School: sc.ID, Name: c.Name, List: l})
			}
		}
	}
	// Replace the index in one transaction so a lookup never sees it half-built.
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.k.phones())
		for ph, roles := range idx {
			b, _ := json.Marshal(roles)
			p.HSet(ctx, s.k.phones(), ph, b)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index phones: %w", err)
	}
	return nil
}

// announceDir tells every replica's directory cache that the directory changed
// (dircache.go), after a write that may have changed it, whether or not the write
// succeeded. A failed announcement is the write's error when it had none: the
// other replicas then see the change only when their entries age out.
func (s *Store) announceDir(ctx context.Context, err *error) {
	if perr := s.dirChanged(ctx); perr != nil && *err == nil {
		*err = fmt.Errorf("announce directory change: %w", perr)
	}
}

func (s *Store) hget(ctx context.Context, key, field string, v any) error {
	return decodeField(s.rdb.HGet(ctx, key, field), v)
}

// decodeField decodes the JSON of a hash field read by c; ErrNotFound when the
// field is absent.
func decodeField(c *redis.StringCmd, v any) error {
	b, err := c.Bytes()
	if errors.Is(err, redis.Nil) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func hvals[T any](ctx context.Context, rdb redis.UniversalClient, key string, id func(T) string) ([]T, error) {
	m, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(m))
	for _, raw := range m {
		var x T
		if err := json.Unmarshal([]byte(raw), &x); err != nil {
			return nil, fmt.Errorf("decode %s: %w", key, err)
		}
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return id(out[i]) < id(out[j]) })
	return out, nil
}

// ReadAhead reads, in one round trip, an officer's state and the visits and alerts
// named (those it is expected to name), and keeps them in the snapshot: reading any of
// them through the snapshot afterwards costs no round trip and gives the same value.
// A key named wrongly costs nothing but its part of the read.
func (sn *Snapshot) ReadAhead(ctx context.Context, officer string, visits, alerts []string) error {
	if err := sn.readStates(ctx, []string{officer}, sn.aheadKeys(visits, alerts), nil); err != nil {
		return fmt.Errorf("read officer %s: %w", officer, err)
	}
	return nil
}

// ReadOfficer is ReadAhead that also reads the officer from the directory (unless
// the directory cache holds them) in the same round trip. An officer not in the
// directory is ErrNotFound; what ReadAhead reads is kept all the same.
func (sn *Snapshot) ReadOfficer(ctx context.Context, officer string, visits, alerts []string) (*visit.Officer, error) {
	k := dirKey{dirOfficer, officer}
	if v, ok := sn.s.dir.get(k); ok {
		return cloneOfficer(v.(*visit.Officer)), sn.ReadAhead(ctx, officer, visits, alerts)
	}
	r := sn.s.dir.begin()
	var dir *redis.StringCmd
	err := sn.readStates(ctx, []string{officer}, sn.aheadKeys(visits, alerts), func(p redis.Pipeliner) {
		dir = p.HGet(ctx, sn.s.k.officers(), officer)
	})
	if err != nil {
		return nil, fmt.Errorf("read officer %s: %w", officer, err)
	}
	var o visit.Officer
	if err := decodeField(dir, &o); err != nil {
		return nil, fmt.Errorf("load officer %s: %w", officer, err)
	}
	sn.s.dir.put(r, k, cloneOfficer(&o))
	return &o, nil
}

// aheadKeys are the keys of the visits and alerts named.
func (sn *Snapshot) aheadKeys(visits, alerts []string) []string {
	keys := make([]string, 0, len(visits)+len(alerts))
	for _, id := range visits {
		keys = append(keys, sn.s.k.visit(sn.school, id))
	}
	for _, id := range alerts {
		keys = append(keys, sn.s.k.alert(sn.school, id))
	}
	return keys
}

// rawOf is a value the snapshot has seen, as its get returns it.
func rawOf(r *string) ([]byte, bool, error) {
	if r == nil {
		return nil, false, nil
	}
	return []byte(*r), true, nil
}

// UnknownReplyAllowed reports whether an unknown number may get a reply now (at most
// one a day), and records that it got one.
func (s *Store) UnknownReplyAllowed(ctx context.Context, phone string, now time.Time) (bool, error) {
	return s.rdb.SetNX(ctx, s.k.unknownReply(phone), now.UnixMilli(), 24*time.Hour).Result()
}

// InboundReply returns the reply already given to a Twilio MessageSid, if any.
func (s *Store) InboundReply(ctx context.Context, school, sid string) (string, bool, error) {
	r, err := s.rdb.Get(ctx, s.k.inbound(school, sid)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	return r, err == nil, err
}

// PinInboundSchool records school as the one that handles inbound message sid,
// unless a school was recorded for it first, and returns the school to use. A
// contact on several schools chooses the school from the alerts open now; a
// repeat of the SMS (Twilio retrying, perhaps while the first is still being
// handled) must not choose again, or a code-less ACK or RESOLVE could take effect
// on two schools' alerts. Pinned, both are handled in one school, whose commit
// lets the message take effect once.
func (s *Store) PinInboundSchool(ctx context.Context, sid, school string) (string, error) {
	key := s.k.inboundSchool(sid)
	set, err := s.rdb.SetNX(ctx, key, school, inboundTTL).Result()
	if err != nil {
		return "", fmt.Errorf("pin school of %s: %w", sid, err)
	}
	if set {
		return school, nil
	}
	first, err := s.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) { // gone since (6 hours on): this choice stands
		return school, nil
	}
	if err != nil {
		return "", fmt.Errorf("pin school of %s: %w", sid, err)
	}
	return first, nil
}

// PinnedInboundSchool is the school PinInboundSchool pinned for sid, "" when none
// is (a first delivery, or one whose answer did not depend on a school).
func (s *Store) PinnedInboundSchool(ctx context.Context, sid string) (string, error) {
	school, err := s.rdb.Get(ctx, s.k.inboundSchool(sid)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the school of %s: %w", sid, err)
	}
	return school, nil
}

// Subscribe calls timers each time a commit announces a timer sooner than any
// other on the wake channel, and outbox each time one queues messages on the
// outbox channel, until ctx ends. A lost subscription is re-made by go-redis; the
// callers' safety polls cover the gap.
func (s *Store) Subscribe(ctx context.Context, timers, outbox func()) {
	sub := s.rdb.Subscribe(ctx, s.k.wake(), s.k.wakeOutbox())
	defer sub.Close()
	ch := sub.Channel()
	box := s.k.wakeOutbox()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			if m.Channel == box {
				outbox()
			} else {
				timers()
			}
		}
	}
}
