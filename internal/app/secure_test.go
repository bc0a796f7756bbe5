package app_test

// Redis behind passwords and TLS: the daemon on a password-protected Sentinel
// setup (the sentinels with a password of their own) and Cluster, and on a
// single server that speaks TLS only, with a private certificate authority.

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/app"
	"github.com/vigil-safety/vigil/internal/config"
	"github.com/vigil-safety/vigil/internal/redistest"
)

// visitAndReminder opens a visit for Jane and sees its reminder go out: the
// daemon reads, commits and fires timers on the store it was given.
func visitAndReminder(t *testing.T, e *env, d *daemon) {
	t.Helper()
	waitReady(t, d, 10*time.Second)
	contains(t, "VISIT reply", e.sms(d, janePhone, "VISIT 45 14 Elm Road"), "14 Elm Road", "10:45")
	e.advance(35*time.Minute, d)
	contains(t, "reminder", e.waitFor(1)[0].Body, "14 Elm Road")
}

// refused says that the daemon does not start on the configuration file e.cfg
// with edit applied, and that the error contains want.
func refused(t *testing.T, e *env, edit func(string) string, want string) {
	t.Helper()
	b, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := e.cfg + ".bad.yaml"
	if err := os.WriteFile(path, []byte(edit(string(b))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if _, err = app.New(t.Context(), cfg, app.Options{}); err == nil {
		t.Fatalf("vigil started with %s; want it refused", path)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("vigil refused with %q, want it to say %q", err, want)
	}
}

func TestSentinelWithPasswords(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t, redistest.WithPassword("data-secret"), redistest.WithSentinelPassword("sentinel-secret"))
	e := newTopologyEnv(t, fmt.Sprintf("sentinel: { master: %s, addrs: %s, password: sentinel-secret }, password: data-secret",
		s.MasterName, yamlList(s.Addrs())))
	visitAndReminder(t, e, e.startDaemon())
	refused(t, e, func(y string) string { return replaceOnce(t, y, "password: data-secret", "password: wrong") }, "WRONGPASS")
}

func TestClusterWithPassword(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, redistest.WithPassword("cluster-secret"))
	e := newTopologyEnv(t, "cluster_addrs: "+yamlList(c.Addrs())+", password: cluster-secret")
	visitAndReminder(t, e, e.startDaemon())
	refused(t, e, func(y string) string { return replaceOnce(t, y, "password: cluster-secret", "password: wrong") }, "WRONGPASS")
}

func TestRedisOverTLSWithAPrivateAuthority(t *testing.T) {
	t.Parallel()
	files := redistest.MakeTLSFiles(t)
	e := newEnv(t, redistest.WithTLS(files), redistest.WithPassword("tls-secret"))
	if !strings.HasPrefix(e.redis.URL(), "rediss://") {
		t.Fatalf("redis URL %s, want rediss://", e.redis.URL())
	}
	noCA, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("url: %q", e.redis.URL())
	withCA := replaceOnce(t, string(noCA), url, url+fmt.Sprintf(", tls_ca_file: %q", files.CA))
	if err := os.WriteFile(e.cfg, []byte(withCA), 0o600); err != nil {
		t.Fatal(err)
	}
	visitAndReminder(t, e, e.startDaemon())
	// Without the authority, the server's certificate is not trusted.
	refused(t, e, func(string) string { return string(noCA) }, "certificate signed by unknown authority")
}

func TestClusterOverTLS(t *testing.T) {
	t.Parallel()
	files := redistest.MakeTLSFiles(t)
	c := redistest.StartCluster(t, 3, redistest.WithTLS(files), redistest.WithPassword("cluster-secret"))
	secure := fmt.Sprintf(", tls: true, tls_ca_file: %q", files.CA)
	e := newTopologyEnv(t, "cluster_addrs: "+yamlList(c.Addrs())+", password: cluster-secret"+secure)
	visitAndReminder(t, e, e.startDaemon())
	// The nodes speak TLS only: a daemon without it is refused at start.
	refused(t, e, func(y string) string { return replaceOnce(t, y, secure, "") }, "connect to redis")
}

func TestSentinelOverTLS(t *testing.T) {
	t.Parallel()
	files := redistest.MakeTLSFiles(t)
	s := redistest.StartSentinel(t, redistest.WithTLS(files), redistest.WithPassword("data-secret"))
	secure := fmt.Sprintf(", tls: true, tls_ca_file: %q", files.CA)
	e := newTopologyEnv(t, fmt.Sprintf("sentinel: { master: %s, addrs: %s }, password: data-secret", s.MasterName, yamlList(s.Addrs()))+secure)
	visitAndReminder(t, e, e.startDaemon())
	// The sentinels and servers speak TLS only: a daemon without it is refused.
	refused(t, e, func(y string) string { return replaceOnce(t, y, secure, "") }, "all sentinels specified in configuration are unreachable")
}

func TestRedisRequiringAClientCertificate(t *testing.T) {
	t.Parallel()
	files := redistest.MakeTLSFiles(t)
	e := newEnv(t, redistest.WithTLS(files), redistest.WithClientAuth())
	noCert, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("url: %q", e.redis.URL())
	ca := fmt.Sprintf(", tls_ca_file: %q", files.CA)
	cert := fmt.Sprintf(", tls_cert_file: %q, tls_key_file: %q", files.Cert, files.Key)
	withCert := replaceOnce(t, string(noCert), url, url+ca+cert)
	if err := os.WriteFile(e.cfg, []byte(withCert), 0o600); err != nil {
		t.Fatal(err)
	}
	visitAndReminder(t, e, e.startDaemon())
	// Without the certificate the server hangs up during the handshake.
	refused(t, e, func(y string) string { return replaceOnce(t, y, cert, "") }, "connect to redis")
}
