package store

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-safety/vigil/internal/visit"
)

// The directory cache keeps what the directory reads return (a school, an officer,
// the roles of a phone, the list of school IDs) in memory, so that an inbound SMS
// does not read them from Redis every time. The directory changes rarely (a reload,
// an admin's edit) and is read on every event.
//
// Alerts must go to the current contacts, so the cache is only ever a copy that is
// known to be current:
//
//   - Every directory write (SyncDirectory, PutSchool, PutOfficer, DeleteOfficer, the
//     phone index) clears this replica's cache at once and then publishes on the
//     dirChanged channel; every replica's subscription clears its cache when the
//     message arrives. A write is therefore seen by every replica once Redis has
//     delivered the message: in practice well under a millisecond.
//   - The cache is used only while this replica's subscription is known to be up
//     (subscribed, and answering a ping within dirPingEvery). When it is lost, or
//     re-made, the cache is cleared and reads go to Redis until the subscription is
//     back, so a message missed while it was down never leaves a stale entry behind.
//   - A read from Redis is kept only if no invalidation came while it was in flight
//     (a generation counter), so a read racing a write never caches the old value.
//   - An entry older than dirMaxAge is read again, whatever pub/sub says: the bound
//     on staleness if a message is lost without the subscription noticing (a writer
//     that crashed between its write and its publish, an older version writing).
//   - "Not found" is never cached: a phone or officer just added works at once.
//
// Cached values are private copies: a caller gets its own copy and may change it.

const (
	// dirMaxAge is the longest a cached directory entry is used: the bound on
	// staleness when an announcement is lost while the subscription stays up. Each
	// entry is read again this often, whatever its use (2,000 officers mean about
	// 400 reads a second at 15 s).
	dirMaxAge = 15 * time.Second
	// dirPingEvery is how long the subscription may stay silent before it is pinged;
	// with no answer by the next period the subscription counts as lost.
	dirPingEvery = 2 * time.Second
	// dirRetryMax caps the wait between attempts to re-make a lost subscription.
	dirRetryMax = 5 * time.Second
)

// dirKind says which directory read an entry answers.
type dirKind byte

const (
	dirSchool dirKind = iota + 1
	dirOfficer
	dirPhone
	dirSchoolIDs
)

type dirKey struct {
	kind dirKind
	id   string
}

type dirEntry struct {
	val any
	// until is when the entry is read again: dirMaxAge after the read that filled it
	// began, less up to half of it at random, so that entries filled together (a
	// replica starting under load) are not all read again in the same second.
	until time.Time
}

// dirRead is a read from Redis in progress: the generation it began in, and when.
type dirRead struct {
	gen uint64
	at  time.Time
}

type dirCache struct {
	mu      sync.RWMutex
	gen     uint64 // bumped by every invalidation
	live    bool   // the subscription is up: the cache may be used and filled
	entries map[dirKey]dirEntry
	now     func() time.Time
	// events, when set (tests), hears of every invalidation, without blocking.
	events chan struct{}

	// The watcher: cancel stops it, done is closed when it has.
	cancel context.CancelFunc
	done   chan struct{}
	subMu  sync.Mutex
	sub    *redis.PubSub
}

func newDirCache() *dirCache {
	return &dirCache{entries: map[dirKey]dirEntry{}, now: time.Now}
}

// get returns a cached value, if the cache is in use and the entry is fresh. A nil
// cache (a store without one) never has anything.
func (c *dirCache) get(k dirKey) (any, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.live {
		return nil, false
	}
	e, ok := c.entries[k]
	if !ok || c.now().After(e.until) {
		return nil, false
	}
	return e.val, true
}

// begin marks the start of a read from Redis whose result may be cached.
func (c *dirCache) begin() dirRead {
	if c == nil {
		return dirRead{}
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return dirRead{gen: c.gen, at: c.now()}
}

// put caches what the read r found, unless the directory may have changed since r
// began (an invalidation came) or the subscription is not up.
func (c *dirCache) put(r dirRead, k dirKey, v any) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live && c.gen == r.gen {
		c.entries[k] = dirEntry{val: v, until: r.at.Add(dirMaxAge - rand.N(dirMaxAge/2))}
	}
}

// invalidate drops every entry and every read in flight; live says whether the
// cache may be used from now on.
func (c *dirCache) invalidate(live bool) { c.reset(&live) }

// changed clears the cache after this replica wrote the directory, keeping it in use:
// the replica's next read sees its own write even before the message comes back.
func (c *dirCache) changed() { c.reset(nil) }

// reset clears the entries (a read begun before them cannot put its value back) and,
// when live is given, whether the cache may be used.
func (c *dirCache) reset(live *bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if live != nil {
		c.live = *live
	}
	clear(c.entries)
	c.signal()
}

func (c *dirCache) signal() {
	select {
	case c.events <- struct{}{}:
	default:
	}
}

// start runs the watcher until stop: it subscribes to channel and keeps the cache in
// use only while the subscription is up.
func (c *dirCache) start(rdb redis.UniversalClient, channel string, log *slog.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		c.run(ctx, rdb, channel, log)
	}()
}

// stop ends the watcher and waits for it; the cache is not used afterwards.
func (c *dirCache) stop() {
	if c == nil || c.cancel == nil {
		return
	}
	c.cancel()
	c.subMu.Lock()
	if c.sub != nil {
		_ = c.sub.Close() // unblocks a receive in progress
	}
	c.subMu.Unlock()
	<-c.done
	c.invalidate(false)
}

func (c *dirCache) run(ctx context.Context, rdb redis.UniversalClient, channel string, log *slog.Logger) {
	retry := 100 * time.Millisecond
	down := false // logged as lost and not back yet: the attempts that fail meanwhile are not logged
	up := func() {
		if down {
			log.Info("directory cache on again: its subscription is back")
			down = false
		}
	}
	for {
		heard, err := c.watch(ctx, rdb, channel, up)
		c.invalidate(false)
		if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
			return
		}
		if heard {
			retry = 100 * time.Millisecond
		}
		if !down {
			log.Warn("directory cache off until its subscription is back: the directory is read from Redis", "err", err)
			down = true
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		retry = min(2*retry, dirRetryMax)
	}
}

// watch subscribes and handles what arrives until the subscription fails, calling up
// each time it is confirmed. heard reports whether it ever was.
func (c *dirCache) watch(ctx context.Context, rdb redis.UniversalClient, channel string, up func()) (heard bool, err error) {
	sub := rdb.Subscribe(ctx, channel)
	c.subMu.Lock()
	if ctx.Err() != nil { // stop ran before the subscription was recorded
		c.subMu.Unlock()
		sub.Close()
		return false, ctx.Err()
	}
	c.sub = sub
	c.subMu.Unlock()
	defer func() {
		c.subMu.Lock()
		c.sub = nil
		c.subMu.Unlock()
		sub.Close()
	}()
	pinged := false
	for {
		m, err := sub.ReceiveTimeout(ctx, dirPingEvery)
		if err != nil {
			if ctx.Err() != nil {
				return heard, ctx.Err()
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return heard, err
			}
			if pinged {
				return heard, errors.New("the subscription did not answer a ping")
			}
			if err := sub.Ping(ctx); err != nil {
				return heard, err
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == channel {
				// Up (again): whatever was cached before may have missed messages.
				heard = true
				c.invalidate(true)
				up()
			}
		case *redis.Message:
			c.invalidate(true)
		}
	}
}

// dirChanged announces a directory write to every replica's cache, this one first.
func (s *Store) dirChanged(ctx context.Context) error {
	s.dir.changed()
	return s.rdb.Publish(ctx, s.k.dirChanged(), "").Err()
}

// dirChanged is the pub/sub channel on which directory writes are announced.
func (k keys) dirChanged() string { return k.prefix + "dir:changed" }

// Private copies, so that no caller can change what the cache holds.

func cloneSchool(sc *visit.School) *visit.School {
	c := *sc
	if sc.Contacts != nil {
		c.Contacts = make(map[string][]visit.Contact, len(sc.Contacts))
		for l, cs := range sc.Contacts {
			c.Contacts[l] = slices.Clone(cs)
		}
	}
	return &c
}

func cloneOfficer(o *visit.Officer) *visit.Officer {
	c := *o
	if o.Vehicle != nil {
		v := *o.Vehicle
		c.Vehicle = &v
	}
	return &c
}
