package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/vigil-safety/vigil/internal/app"
	"github.com/vigil-safety/vigil/internal/config"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/web/console"
)

// userUsage describes the user subcommands.
const userUsage = `usage:
  vigil user add --config FILE --name NAME --role ROLE [--school SCHOOL] [--replace] < password
  vigil user list --config FILE
  vigil user delete --config FILE --name NAME
roles: readonly, office, admin (of one school), trust-admin (every school; no --school)
The password is read from the first line of standard input.
`

// userCmd manages the people who sign in to the office console.
func userCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, userUsage)
		return exitConfig
	}
	switch args[0] {
	case "add":
		return userAdd(args[1:], stdin, stdout, stderr)
	case "list":
		return userList(args[1:], stdout, stderr)
	case "delete":
		return userDelete(args[1:], stdout, stderr)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, userUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "vigil user: unknown command %q\n%s", args[0], userUsage)
	return exitConfig
}

// openUserStore loads the configuration and connects to its Redis. The embedded
// store is refused: a user added there would be gone when this command exits.
func openUserStore(ctx context.Context, path string, stderr io.Writer) (*store.Store, bool) {
	st, _, ok := openUserStoreConfig(ctx, path, stderr)
	return st, ok
}

func openUserStoreConfig(ctx context.Context, path string, stderr io.Writer) (*store.Store, *config.Config, bool) {
	cfg, ok := loadConfig(path, stderr)
	if !ok {
		return nil, nil, false
	}
	if cfg.Redis.URL == "" && cfg.Redis.Sentinel.Master == "" && len(cfg.Redis.ClusterAddrs) == 0 {
		fmt.Fprintln(stderr, "vigil user: redis.url is not set, so users cannot be kept (the embedded store lives only inside a running daemon).")
		fmt.Fprintf(stderr, "In demo mode sign in as %q with the password %q.\n", console.DemoUser, console.DemoPassword)
		return nil, nil, false
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := app.OpenStore(ctx, cfg.Redis, log)
	if err != nil {
		fmt.Fprintf(stderr, "vigil user: %v\n", err)
		return nil, nil, false
	}
	return st, cfg, true
}

func userAdd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML): which Redis")
	name := fs.String("name", "", "the name the person signs in with (and is audited as)")
	role := fs.String("role", "", "readonly, office, admin or trust-admin")
	school := fs.String("school", "", "the school whose pages the user sees (not for trust-admin)")
	replace := fs.Bool("replace", false, "replace an existing user of that name (new password, role, school; ends their sessions)")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	var problems []string
	*name = strings.TrimSpace(*name)
	if *name == "" || len(*name) > 64 {
		problems = append(problems, "--name is required (at most 64 characters)")
	}
	if !console.ValidRole(*role) {
		problems = append(problems, "--role must be one of "+strings.Join(console.Roles, ", "))
	}
	if *role == console.RoleTrustAdmin && *school != "" {
		problems = append(problems, "--school is not for a trust-admin, who sees every school")
	}
	if *role != console.RoleTrustAdmin && *school == "" && console.ValidRole(*role) {
		problems = append(problems, "--school is required for role "+*role)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "vigil user add: %s\n", strings.Join(problems, "; "))
		return exitConfig
	}
	pw, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(stderr, "vigil user add: read the password: %v\n", err)
		return exitConfig
	}
	pw = strings.TrimRight(pw, "\r\n")
	hash, err := console.HashPassword(pw, 0)
	if err != nil {
		fmt.Fprintf(stderr, "vigil user add: %v (give it on standard input)\n", err)
		return exitConfig
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, cfg, ok := openUserStoreConfig(ctx, *path, stderr)
	if !ok {
		return exitConfig
	}
	defer st.Close()
	if *school != "" && !slices.ContainsFunc(cfg.Directory.Schools, func(s config.School) bool { return s.ID == *school }) {
		// Not provisioned by the file: it may have been added in the console.
		if _, err := st.School(ctx, *school); errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(stderr, "vigil user add: school %q is neither in the configuration's directory nor added in the console\n", *school)
			return exitConfig
		} else if err != nil {
			fmt.Fprintf(stderr, "vigil user add: %v\n", err)
			return exitFail
		}
	}
	u := store.User{Name: *name, Role: *role, School: *school, Hash: hash, CreatedAt: time.Now(), CreatedBy: "vigil user add"}
	verb := "added"
	err = st.AddUser(ctx, u)
	if errors.Is(err, store.ErrExists) {
		if !*replace {
			fmt.Fprintf(stderr, "vigil user add: a user called %q exists; give --replace to change their password, role and school\n", *name)
			return exitConfig
		}
		if err = st.PutUser(ctx, u); err == nil {
			err = st.DeleteUserSessions(ctx, *name)
		}
		verb = "replaced"
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil user add: %v\n", err)
		return exitFail
	}
	where := "every school"
	if *school != "" {
		where = "school " + *school
	}
	fmt.Fprintf(stdout, "user %s %s: role %s, %s\n", *name, verb, *role, where)
	return exitOK
}

func userList(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("user list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML): which Redis")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, ok := openUserStore(ctx, *path, stderr)
	if !ok {
		return exitConfig
	}
	defer st.Close()
	users, err := st.Users(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "vigil user list: %v\n", err)
		return exitFail
	}
	for _, u := range users {
		school := u.School
		if school == "" {
			school = "(all)"
		}
		fmt.Fprintf(stdout, "%-24s %-12s %s\n", u.Name, u.Role, school)
	}
	return exitOK
}

func userDelete(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("user delete", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML): which Redis")
	name := fs.String("name", "", "the user to remove")
	if err := fs.Parse(args); err != nil {
		return exitConfig
	}
	if *name == "" {
		fmt.Fprintln(stderr, "vigil user delete: --name is required")
		return exitConfig
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, ok := openUserStore(ctx, *path, stderr)
	if !ok {
		return exitConfig
	}
	defer st.Close()
	if _, err := st.User(ctx, *name); errors.Is(err, store.ErrNotFound) {
		fmt.Fprintf(stderr, "vigil user delete: no user called %q\n", *name)
		return exitConfig
	}
	if err := st.DeleteUser(ctx, *name); err != nil {
		fmt.Fprintf(stderr, "vigil user delete: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "user %s deleted; their sessions have ended\n", *name)
	return exitOK
}
