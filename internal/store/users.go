package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// This file holds the office console's users: people who sign in to the web pages,
// each with a role, a school (none for a trust administrator) and a password hash.
// Users are global (not hash-tagged): a trust administrator spans schools.

// userKey holds one user's JSON; the name is folded to lower case so that sign-in
// does not depend on how the name was typed.
func (k keys) user(name string) string { return k.prefix + "user:" + strings.ToLower(name) }

// userNames is the set of every user's (lower-case) name, for listing.
func (k keys) userNames() string { return k.prefix + "users" }

// User is a person who may sign in to the console.
type User struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// School is the school whose pages the user sees; empty for a trust administrator.
	School string `json:"school,omitempty"`
	// Hash is the bcrypt hash of the password. It never leaves the store and the
	// console except to be compared.
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// PutUser creates or replaces a user.
func (s *Store) PutUser(ctx context.Context, u User) error {
	if strings.TrimSpace(u.Name) == "" {
		return errors.New("save user: name is empty")
	}
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.k.user(u.Name), b, 0)
		p.SAdd(ctx, s.k.userNames(), strings.ToLower(u.Name))
		return nil
	})
	if err != nil {
		return fmt.Errorf("save user %s: %w", u.Name, err)
	}
	return nil
}

// AddUser creates a user unless one of that name exists (ErrExists then).
func (s *Store) AddUser(ctx context.Context, u User) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	ok, err := s.rdb.SetNX(ctx, s.k.user(u.Name), b, 0).Result()
	if err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	if !ok {
		return ErrExists
	}
	if err := s.rdb.SAdd(ctx, s.k.userNames(), strings.ToLower(u.Name)).Err(); err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	return nil
}

// ErrExists means the entity to create already exists.
var ErrExists = errors.New("store: already exists")

// User loads one user by name (any case); ErrNotFound when there is none.
func (s *Store) User(ctx context.Context, name string) (*User, error) {
	b, err := s.rdb.Get(ctx, s.k.user(name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load user %s: %w", name, err)
	}
	var u User
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, fmt.Errorf("decode user %s: %w", name, err)
	}
	return &u, nil
}

// Users lists every user, by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	names, err := s.rdb.SMembers(ctx, s.k.userNames()).Result()
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out := make([]User, 0, len(names))
	for _, n := range names {
		u, err := s.User(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out, nil
}

// DeleteUser removes a user and every session they hold.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.k.user(name))
		p.SRem(ctx, s.k.userNames(), strings.ToLower(name))
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete user %s: %w", name, err)
	}
	return s.DeleteUserSessions(ctx, name)
}
