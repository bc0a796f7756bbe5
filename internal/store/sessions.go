package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file holds the console's sign-in sessions and the counters that rate-limit
// sign-in attempts. Both are global and expire by themselves (Redis TTLs), so a
// forgotten session or an attacker's counter never needs cleaning up.

// session holds one session's JSON. id is the SHA-256 of the cookie's secret, so a
// copy of Redis does not hand out live cookies.
func (k keys) session(id string) string { return k.prefix + "session:" + id }

// userSessions is the set of a user's session ids, so deleting a user or changing
// their password can end every session they hold.
func (k keys) userSessions(name string) string {
	return k.prefix + "sessions:" + strings.ToLower(name)
}

// loginFailures counts failed sign-ins of one kind ("user" or "ip") for who.
func (k keys) loginFailures(kind, who string) string {
	return k.prefix + "login:" + kind + ":" + strings.ToLower(who)
}

// Session is a signed-in browser.
type Session struct {
	User      string    `json:"user"`
	CreatedAt time.Time `json:"created_at"`
	SeenAt    time.Time `json:"seen_at"`
}

// PutSession stores a session for ttl (each request that uses it stores it again, so
// ttl is the idle timeout).
func (s *Store) PutSession(ctx context.Context, id string, sess Session, ttl time.Duration) error {
	b, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.k.session(id), b, ttl)
		p.SAdd(ctx, s.k.userSessions(sess.User), id)
		// The index lives as long as the newest session could.
		p.Expire(ctx, s.k.userSessions(sess.User), ttl+time.Hour)
		return nil
	})
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// Session loads a session; ErrNotFound when it does not exist or has expired.
func (s *Store) Session(ctx context.Context, id string) (*Session, error) {
	b, err := s.rdb.Get(ctx, s.k.session(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	var sess Session
	if err := json.Unmarshal(b, &sess); err != nil {
		return nil, fmt.Errorf("decode session: %w", err)
	}
	return &sess, nil
}

// DeleteSession ends one session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	sess, err := s.Session(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.k.session(id))
		p.SRem(ctx, s.k.userSessions(sess.User), id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every session of a user.
func (s *Store) DeleteUserSessions(ctx context.Context, name string) error {
	ids, err := s.rdb.SMembers(ctx, s.k.userSessions(name)).Result()
	if err != nil {
		return fmt.Errorf("list sessions of %s: %w", name, err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Del(ctx, s.k.session(id))
		}
		p.Del(ctx, s.k.userSessions(name))
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete sessions of %s: %w", name, err)
	}
	return nil
}

// countScript adds one to a counter and, when the counter is new, makes it expire:
// a fixed window that opens at the first failure.
//
// KEYS[1]: the counter. ARGV[1]: the window (ms).
// Returns the count after the increment.
var countScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`)

// AddLoginFailure counts one failed sign-in of kind ("user", "ip") for who, in a
// window that opens at the first failure, and returns the count.
func (s *Store) AddLoginFailure(ctx context.Context, kind, who string, window time.Duration) (int64, error) {
	n, err := countScript.Run(ctx, s.rdb, []string{s.k.loginFailures(kind, who)}, window.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("count login failure: %w", err)
	}
	return n, nil
}

// LoginFailures is how many sign-ins of kind failed for who in the current window,
// and how long until the window closes.
func (s *Store) LoginFailures(ctx context.Context, kind, who string) (int64, time.Duration, error) {
	key := s.k.loginFailures(kind, who)
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, key)
		ttl = p.PTTL(ctx, key)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read login failures: %w", err)
	}
	n, err := get.Int64()
	if err != nil {
		return 0, 0, fmt.Errorf("read login failures: %w", err)
	}
	return n, max(ttl.Val(), 0), nil
}

// ResetLoginFailures forgets the failures of kind for who (after a good sign-in).
func (s *Store) ResetLoginFailures(ctx context.Context, kind, who string) error {
	return s.rdb.Del(ctx, s.k.loginFailures(kind, who)).Err()
}
