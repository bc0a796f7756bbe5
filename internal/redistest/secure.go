package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// WithPassword makes the server require password (requirepass), and a replica
// use it to reach its primary (masterauth). Client, and the clients of Cluster
// and Sentinel, authenticate with it. StartSentinel also tells the sentinels.
func WithPassword(password string) Option {
	return func(o *options) { o.password = password }
}

// WithSentinelPassword makes StartSentinel's sentinels require password of
// their clients (and of each other). It does nothing to a lone server.
func WithSentinelPassword(password string) Option {
	return func(o *options) { o.sentinelPassword = password }
}

// WithTLS makes the server speak TLS only, with the certificate and key of
// files (MakeTLSFiles); clients need no certificate of their own. Client
// trusts files.CA, and URL starts with rediss://.
func WithTLS(files TLSFiles) Option {
	return func(o *options) { f := files; o.tls = &f }
}

// WithClientAuth makes a WithTLS server require a client certificate signed by
// the authority (tls-auth-clients yes). Client presents the server's own, which
// is made for client use too.
func WithClientAuth() Option {
	return func(o *options) { o.clientAuth = true }
}

// TLSFiles are PEM files for a TLS server on 127.0.0.1: a certificate
// authority, and a certificate it signed with its key.
type TLSFiles struct {
	CA, Cert, Key string
}

// Pool is a pool holding the authority of f, for a client's RootCAs.
func (f TLSFiles) Pool(t testing.TB) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatalf("redistest: read CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("redistest: %s holds no certificate", f.CA)
	}
	return pool
}

// MakeTLSFiles writes a fresh authority and a certificate for 127.0.0.1 and
// localhost it signed, valid for a day, under t.TempDir().
func MakeTLSFiles(t testing.TB) TLSFiles {
	t.Helper()
	dir := t.TempDir()
	f := TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "server.pem"), Key: filepath.Join(dir, "server-key.pem")}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redistest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		// Client use too: the nodes of a TLS Cluster present it to each other on
		// the cluster bus, which always asks for a certificate.
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for path, block := range map[string]*pem.Block{
		f.CA: {Type: "CERTIFICATE", Bytes: caDER}, f.Cert: {Type: "CERTIFICATE", Bytes: leafDER},
		f.Key: {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// secureArgs are the redis-server arguments for the password and TLS options.
func (o *options) secureArgs(port string) []string {
	var args []string
	if o.password != "" && !o.sentinel {
		args = append(args, "--requirepass", o.password, "--masterauth", o.password)
	}
	if o.tls != nil {
		args = append(args, "--port", "0", "--tls-port", port,
			"--tls-cert-file", o.tls.Cert, "--tls-key-file", o.tls.Key, "--tls-ca-cert-file", o.tls.CA,
			"--tls-auth-clients", map[bool]string{false: "no", true: "yes"}[o.clientAuth])
	}
	return args
}

// clientTLS is the TLS configuration of the server's own client, nil without
// TLS.
func (s *Server) clientTLS() *tls.Config {
	if s.opts.tls == nil {
		return nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: s.opts.tls.Pool(s.t), ServerName: "127.0.0.1"}
	if s.opts.clientAuth {
		cert, err := tls.LoadX509KeyPair(s.opts.tls.Cert, s.opts.tls.Key)
		if err != nil {
			s.t.Fatalf("redistest: load the client certificate: %v", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c
}
