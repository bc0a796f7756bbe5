// Package config is the only importer of viper: it reads Vigil's YAML file and
// VIGIL_* environment variables into a typed Config, fills defaults and validates it,
// naming every bad key by its dotted path.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"
)

// Config is Vigil's whole configuration (SPEC §3). Load returns it validated and
// normalised; a Config built another way should go through Validate.
type Config struct {
	Listen string `mapstructure:"listen"`
	// PublicURL is the base URL Twilio calls, without a trailing slash. Validate
	// fills an empty one with "http://" + Listen (localhost for an unspecified host).
	PublicURL     string `mapstructure:"public_url"`
	Timezone      string `mapstructure:"timezone"`
	DefaultRegion string `mapstructure:"default_region"`

	Redis      Redis      `mapstructure:"redis"`
	Twilio     Twilio     `mapstructure:"twilio"`
	Visits     Visits     `mapstructure:"visits"`
	Escalation Escalation `mapstructure:"escalation"`
	Monitoring Monitoring `mapstructure:"monitoring"`
	Duties     Duties     `mapstructure:"duties"`
	Retention  Retention  `mapstructure:"retention"`
	API        API        `mapstructure:"api"`
	Directory  Directory  `mapstructure:"directory"`
}

// Redis says where state lives. An empty URL (and no sentinel or cluster) means the
// embedded in-memory store, which keeps nothing across a restart.
type Redis struct {
	URL          string   `mapstructure:"url"`
	Sentinel     Sentinel `mapstructure:"sentinel"`
	ClusterAddrs []string `mapstructure:"cluster_addrs"`
	KeyPrefix    string   `mapstructure:"key_prefix"`
	// Username and Password authenticate to the Redis servers of a Sentinel or
	// Cluster setup (redis.url carries its own). TLS turns on TLS to them and to
	// the sentinels (redis.url says rediss:// instead); TLSCAFile, in any setup,
	// is a PEM file of the certificate authorities to trust instead of the
	// system's. TLSCertFile and TLSKeyFile, in any setup with TLS, are the PEM
	// certificate and key Vigil presents to servers that ask for one (mutual TLS).
	Username    string `mapstructure:"username"`
	Password    string `mapstructure:"password"`
	TLS         bool   `mapstructure:"tls"`
	TLSCAFile   string `mapstructure:"tls_ca_file"`
	TLSCertFile string `mapstructure:"tls_cert_file"`
	TLSKeyFile  string `mapstructure:"tls_key_file"`
}

// Sentinel names a Sentinel-managed primary. Password is the sentinels' own
// (requirepass in sentinel.conf), when they have one.
type Sentinel struct {
	Master   string   `mapstructure:"master"`
	Addrs    []string `mapstructure:"addrs"`
	Password string   `mapstructure:"password"`
}

// CAPool reads TLSCAFile (nil, nil when it is not set).
func (r Redis) CAPool() (*x509.CertPool, error) {
	if r.TLSCAFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(r.TLSCAFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read it: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", r.TLSCAFile)
	}
	return pool, nil
}

// ClientCertificate reads TLSCertFile and TLSKeyFile (nil, nil when neither is
// set).
func (r Redis) ClientCertificate() (*tls.Certificate, error) {
	if r.TLSCertFile == "" && r.TLSKeyFile == "" {
		return nil, nil
	}
	c, err := tls.LoadX509KeyPair(r.TLSCertFile, r.TLSKeyFile)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// TLSConfig is what the Redis client needs for TLS: for Sentinel or Cluster with
// TLS on, the whole configuration; for a rediss:// URL, which makes its own, the
// authorities to trust and the client certificate, when set. Nil when none
// applies.
func (r Redis) TLSConfig() (*tls.Config, error) {
	if !r.TLS && r.TLSCAFile == "" && r.TLSCertFile == "" && r.TLSKeyFile == "" {
		return nil, nil
	}
	pool, err := r.CAPool()
	if err != nil {
		return nil, fmt.Errorf("redis.tls_ca_file: %w", err)
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	cert, err := r.ClientCertificate()
	if err != nil {
		return nil, fmt.Errorf("redis.tls_cert_file and redis.tls_key_file: %w", err)
	}
	if cert != nil {
		t.Certificates = []tls.Certificate{*cert}
	}
	return t, nil
}

// Embedded reports whether no Redis was configured.
func (r Redis) Embedded() bool {
	return r.URL == "" && r.Sentinel.Master == "" && len(r.ClusterAddrs) == 0
}

// Twilio holds the credentials and sending settings. Without credentials Vigil prints
// messages to the console instead of sending them.
type Twilio struct {
	AccountSID          string        `mapstructure:"account_sid"`
	AuthToken           string        `mapstructure:"auth_token"`
	From                string        `mapstructure:"from"`
	MessagingServiceSID string        `mapstructure:"messaging_service_sid"`
	APIURL              string        `mapstructure:"api_url"`
	ValidateSignatures  bool          `mapstructure:"validate_signatures"`
	MaxSendsPerSecond   int           `mapstructure:"max_sends_per_second"`
	ValidityPeriod      time.Duration `mapstructure:"validity_period"`
}

// Console reports whether messages go to the console driver (no credentials).
func (t Twilio) Console() bool { return t.AccountSID == "" || t.AuthToken == "" }

// Visits holds the timings of a visit.
type Visits struct {
	DefaultDuration time.Duration `mapstructure:"default_duration"`
	MaxDuration     time.Duration `mapstructure:"max_duration"`
	ReminderBefore  time.Duration `mapstructure:"reminder_before"`
	Grace           time.Duration `mapstructure:"grace"`
}

// Escalation is the ladder an alert climbs.
type Escalation struct {
	Levels      []Level       `mapstructure:"levels"`
	PanicLevels []string      `mapstructure:"panic_levels"`
	AckHold     time.Duration `mapstructure:"ack_hold"`
}

// Level is one rung: the contact list to notify, how long after the alert was raised,
// and how often to repeat until someone ACKs.
type Level struct {
	Name        string        `mapstructure:"name"`
	After       time.Duration `mapstructure:"after"`
	RepeatEvery time.Duration `mapstructure:"repeat_every"`
}

// Monitoring configures Vigil's watch on itself.
type Monitoring struct {
	HeartbeatURL string `mapstructure:"heartbeat_url"`
}

// Duties are cron specs for scheduled jobs, run in each school's time zone. An
// empty spec turns the duty off.
type Duties struct {
	ExpiryCheck   string `mapstructure:"expiry_check"`
	MonthlyReport string `mapstructure:"monthly_report"`
}

// Retention says how long data is kept.
type Retention struct {
	VisitDays int `mapstructure:"visit_days"`
	AlertDays int `mapstructure:"alert_days"`
}

// API holds the bearer tokens of the office and admin API.
type API struct {
	Tokens []Token `mapstructure:"tokens"`
}

// Token is one bearer token with its role. Exactly one of Token and TokenSHA256 is set.
type Token struct {
	Name        string `mapstructure:"name"`
	Role        string `mapstructure:"role"`
	Token       string `mapstructure:"token"`
	TokenSHA256 string `mapstructure:"token_sha256"`
}

// Directory is the provisioned schools and officers, upserted at start and on reload.
type Directory struct {
	Schools  []School  `mapstructure:"schools"`
	Officers []Officer `mapstructure:"officers"`
}

// School is a provisioned school.
type School struct {
	ID       string               `mapstructure:"id"`
	Name     string               `mapstructure:"name"`
	Timezone string               `mapstructure:"timezone"`
	Contacts map[string][]Contact `mapstructure:"contacts"`
}

// Contact is a named phone number.
type Contact struct {
	Name  string `mapstructure:"name"`
	Phone string `mapstructure:"phone"`
}

// Officer is a provisioned officer.
type Officer struct {
	ID         string   `mapstructure:"id"`
	Name       string   `mapstructure:"name"`
	Phone      string   `mapstructure:"phone"`
	School     string   `mapstructure:"school"`
	DuressCode string   `mapstructure:"duress_code"`
	Vehicle    *Vehicle `mapstructure:"vehicle"`
}

// Vehicle is an officer's vehicle. InsuranceExpires is YYYY-MM-DD.
type Vehicle struct {
	Make             string `mapstructure:"make"`
	Model            string `mapstructure:"model"`
	Colour           string `mapstructure:"colour"`
	Registration     string `mapstructure:"registration"`
	InsuranceExpires string `mapstructure:"insurance_expires"`
}
