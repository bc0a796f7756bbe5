// Package app wires Vigil together: New builds every part from the configuration in
// one straight function, and Run starts every loop in one errgroup and stops them in
// order. End-to-end tests import it to run the real daemon in-process.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-safety/vigil/internal/config"
	"github.com/vigil-safety/vigil/internal/jobs"
	"github.com/vigil-safety/vigil/internal/notify"
	"github.com/vigil-safety/vigil/internal/scheduler"
	"github.com/vigil-safety/vigil/internal/service"
	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/store"
	"github.com/vigil-safety/vigil/internal/visit"
	"github.com/vigil-safety/vigil/internal/web"
	"github.com/vigil-safety/vigil/internal/web/console"
)

// Leases and timeouts. A replica that dies holding a timer or a message hands it
// to the others when the lease ends, so leases are short (SPEC §8: picked up within
// 5 s). A message's lease outlasts the Twilio request it covers, so a live replica
// never loses a send it is still making. TimerLease is exported for tests that
// tell a claimed timer (re-scored to now + TimerLease) from one not yet due.
const (
	TimerLease    = 3 * time.Second
	messageLease  = 4 * time.Second
	twilioTimeout = 3 * time.Second
)

// twilioTransport keeps connections to Twilio open for every dispatcher worker.
// Go's default keeps two idle connections per host, so with more sends under way
// than that, each extra one closed its connection after the answer and the next
// send dialled (and, against api.twilio.com, shook hands over TLS) again.
func twilioTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.MaxIdleConns = 64
	return t
}

// Per-contact throttles: at most this many SMS and calls per phone per window,
// beyond an alert's first notification, panics, duresses and ALL CLEARs.
const (
	contactWindow   = 15 * time.Minute
	contactMaxSMS   = 5
	contactMaxCalls = 3
)

// Options are what New needs besides the configuration.
type Options struct {
	Log *slog.Logger
	// Console receives the console SMS driver's output (no Twilio credentials).
	Console io.Writer
	// Now replaces the clock (tests).
	Now func() time.Time
	// Poll is the scheduler's and dispatcher's longest sleep (default 1 s).
	Poll time.Duration
	// Version is reported by /metrics (vigil_build_info).
	Version string
	// HeartbeatEvery is how often monitoring.heartbeat_url is pinged (default 1 min).
	HeartbeatEvery time.Duration
	// WebhookPatience and OnWebhookRetry are web.Options' Patience and OnRetry (tests).
	WebhookPatience time.Duration
	OnWebhookRetry  func(path string, err error)
	// ReceiptCheckAfter is how long after an alert message is sent Twilio is asked
	// for a receipt that has not come (default store.DefaultReceiptCheck; negative:
	// never, for load runs whose fake Twilio sends no receipts). ReceiptCheckEvery
	// is how often due checks are looked for (default 15 s).
	ReceiptCheckAfter time.Duration
	ReceiptCheckEvery time.Duration
}

// App is a built Vigil daemon.
type App struct {
	cfg       *config.Config
	log       *slog.Logger
	store     *store.Store
	service   *service.Service
	scheduler *scheduler.Scheduler
	notifier  *notify.Dispatcher
	receipts  *notify.ReceiptChecker // nil when receipts are never checked
	jobs      *jobs.Runner
	server    *http.Server
	listener  net.Listener
	registry  *prometheus.Registry
	now       func() time.Time
	beatEvery time.Duration
}

// New builds everything from cfg, connects to Redis, upserts the directory and
// listens on cfg.Listen. It starts no loop: Run does.
func New(ctx context.Context, cfg *config.Config, o Options) (*App, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Console == nil {
		o.Console = io.Discard
	}
	if o.HeartbeatEvery <= 0 {
		o.HeartbeatEvery = time.Minute
	}
	a := &App{cfg: cfg, log: o.Log, now: o.Now, beatEvery: o.HeartbeatEvery}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, fmt.Errorf("timezone: %w", err)
	}

	st, err := OpenStore(ctx, cfg.Redis, o.Log)
	if err != nil {
		return nil, err
	}
	a.store = st
	switch {
	case cfg.Twilio.Console():
		// The console has no receipts to lose: nothing is listed or checked.
		st.CheckReceiptsAfter(0)
	case o.ReceiptCheckAfter != 0:
		st.CheckReceiptsAfter(o.ReceiptCheckAfter)
	}
	if err := st.SyncDirectory(ctx, cfg.Schools(), cfg.Officers()); err != nil {
		st.Close()
		return nil, fmt.Errorf("load directory: %w", err)
	}

	a.registry = prometheus.NewRegistry()
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_build_info", Help: "Always 1; the version is a label.", ConstLabels: prometheus.Labels{"version": o.Version},
	}, func() float64 { return 1 }))
	a.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_visits_open", Help: "Visits open now (active or overdue), across all schools.",
	}, a.gauge(func(ctx context.Context, schools []string) (int64, error) { return st.CountOpenVisits(ctx, schools) })))
	a.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_outbox_depth", Help: "Messages waiting to be sent, across all schools.",
	}, a.gauge(st.OutboxDepth)))
	if !st.Embedded() {
		a.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_redis_replicas_in_sync",
			Help: "Redis replicas online with an acknowledgement at most 10 s old (least over Cluster masters; -1 unknown). " +
				"At 0, recent writes exist on one machine only: a failover or its loss loses them.",
		}, a.gauge(func(ctx context.Context, _ []string) (int64, error) { return st.ReplicasInSync(ctx, 10*time.Second) })))
	}
	a.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_alert_oldest_unacked_seconds", Help: "Age of the oldest open alert nobody has taken charge of (0 when none).",
	}, a.oldestUnacked))
	a.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_clock_skew_seconds",
		Help: "How far this server's clock is ahead of Redis' (negative: behind); NaN when Redis cannot be read. " +
			"Replicas compare due times and leases written by each other's clocks: keep every clock within 0.5 s.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		skew, _, err := a.store.ClockSkew(ctx, time.Now)
		if err != nil {
			return math.NaN()
		}
		return skew.Seconds()
	}))
	svcMetrics := service.NewMetrics(a.registry)

	var sender notify.Sender
	var phone *console.Phone
	if cfg.Twilio.Console() {
		o.Log.Warn("no Twilio credentials: messages are printed to the console, not sent")
		// The console's phone page shows the last messages too.
		phone = console.NewPhone(o.Console, 200, o.Now)
		sender = sms.NewConsole(phone)
	} else {
		c, err := sms.New(sms.Options{
			AccountSID: cfg.Twilio.AccountSID, AuthToken: cfg.Twilio.AuthToken,
			From: cfg.Twilio.From, MessagingServiceSID: cfg.Twilio.MessagingServiceSID,
			APIURL: cfg.Twilio.APIURL, StatusCallback: cfg.PublicURL + "/twilio/status",
			HTTPClient: &http.Client{Timeout: twilioTimeout, Transport: twilioTransport(), CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			}},
		})
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("twilio: %w", err)
		}
		sender = c
	}

	poll := o.Poll
	publicURL := cfg.PublicURL
	checker, _ := sender.(notify.Checker) // sms.Client and sms.Console both are
	a.notifier = notify.New(notify.Options{
		Store: st, Sender: sender, Now: o.Now, Log: o.Log, Poll: poll, Lease: messageLease, SendTimeout: twilioTimeout,
		// A claim takes a tenth of a second's worth of sends at the configured rate
		// (shared by every replica): a batch never waits out its lease in the rate
		// limiter, and a PANIC queued meanwhile waits for little more than it.
		Batch:   max(1, min(64, cfg.Twilio.MaxSendsPerSecond/10)),
		Limiter: st.NewSendLimiter(cfg.Twilio.MaxSendsPerSecond),
		// Before sending again something that may have gone (a timeout, a crash
		// mid-send), ask Twilio whether it has it.
		Checker: checker,
		// A refused alert send is not retried after its alert was resolved.
		AlertResolved: func(ctx context.Context, school, id string) (bool, error) {
			al, err := st.AlertByID(ctx, school, id)
			return al != nil && !al.Open(), err
		},
		ContactLimit: st.NewContactLimiter(contactWindow, map[string]int64{
			visit.ChannelSMS: contactMaxSMS, visit.ChannelCall: contactMaxCalls,
		}),
		Metrics: notify.NewMetrics(a.registry, svcMetrics.Notifications),
		CallTwiML: func(m visit.Message) string {
			if m.Kind != visit.KindAlert {
				return sms.SayTwiML(m.Body)
			}
			q := url.Values{"school": {m.School}, "alert": {m.AlertID}, "to": {m.To}}
			return sms.VoiceAlertTwiML(m.Body, publicURL+"/twilio/voice/gather?"+q.Encode())
		},
		OnEarlyReceipt: func(ctx context.Context, sid string, r store.EarlyReceipt) {
			if err := a.service.HandleReceipt(ctx, service.Receipt{SID: sid, Status: r.Status, ErrorCode: r.Code}); err != nil {
				o.Log.Error("replaying an early delivery receipt failed", "sid", sid, "err", err)
			}
		},
		OnFailure: func(ctx context.Context, f notify.Failure) {
			if err := a.service.HandleDeliveryFailure(ctx, f.School, f.Message, f.Code, f.Reason); err != nil {
				o.Log.Error("re-routing a failed message failed", "msg", f.Message.ID, "err", err)
			}
		},
	})
	if fetcher, ok := sender.(notify.StatusFetcher); ok && !cfg.Twilio.Console() && o.ReceiptCheckAfter >= 0 {
		a.receipts = notify.NewReceiptChecker(notify.ReceiptCheckOptions{
			Store: st, Twilio: fetcher, Now: o.Now, Log: o.Log, Every: o.ReceiptCheckEvery,
			// Until Twilio has failed what it could not send in the validity
			// period, and its carriers have had time to report.
			GiveUp:  max(time.Hour, cfg.Twilio.ValidityPeriod+30*time.Minute),
			Metrics: notify.NewReceiptMetrics(a.registry),
			Handle: func(ctx context.Context, school string, m visit.Message, status string, code int) error {
				return a.service.HandleMessageStatus(ctx, school, m, status, code, service.NewHandler())
			},
		})
	}
	var sched *scheduler.Scheduler
	a.service = service.New(service.Options{
		Store: st, Policy: Policy(cfg), Location: loc, Now: o.Now, Log: o.Log, Metrics: svcMetrics,
		Wake: func() { sched.Wake() },
		// Messages this replica queues, its own dispatcher sends at once
		// (committed already claimed for it, when it has room).
		Queued: a.notifier.Queued, Local: a.notifier.HasRoom, ClaimFor: messageLease,
	})
	sched = scheduler.New(scheduler.Options{
		Store: st, Handle: a.service.HandleTimer, Now: o.Now, Log: o.Log, Poll: poll, Lease: TimerLease,
		Metrics: scheduler.NewMetrics(a.registry),
	})
	a.scheduler = sched

	a.jobs = jobs.New(jobs.Options{
		Store: st, Log: o.Log, Now: o.Now, Location: loc,
		ExpiryCheck: cfg.Duties.ExpiryCheck, MonthlyReport: cfg.Duties.MonthlyReport,
		VisitDays: cfg.Retention.VisitDays, AlertDays: cfg.Retention.AlertDays,
	})

	tokens, err := apiTokens(cfg.API.Tokens)
	if err != nil {
		st.Close()
		return nil, err
	}
	webOpts := web.Options{
		Service: a.service, Log: o.Log, PublicURL: cfg.PublicURL, TwiML: sms.MessageTwiML, SayTwiML: sms.SayTwiML, Tokens: tokens,
		Metrics: promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}), Ready: a.Ready,
		Patience: o.WebhookPatience, OnRetry: o.OnWebhookRetry,
		MonthlyReport: func(ctx context.Context, school, month string) (any, error) {
			return a.jobs.MonthlyReport(ctx, school, month)
		},
	}
	if err := a.console(ctx, cfg, loc, phone, &webOpts); err != nil {
		st.Close()
		return nil, err
	}
	if cfg.Twilio.ValidateSignatures {
		token := cfg.Twilio.AuthToken
		webOpts.CheckSignature = func(full string, form url.Values, sig string) bool {
			return sms.ValidSignature(token, full, form, sig)
		}
	}
	a.server = &http.Server{
		Handler: web.New(webOpts), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
	}
	a.listener, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	return a, nil
}

// OpenStore connects to the Redis cfg names (store.Open), with its credentials and
// TLS settings.
func OpenStore(ctx context.Context, cfg config.Redis, log *slog.Logger) (*store.Store, error) {
	t, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, store.Options{
		URL: cfg.URL, SentinelMaster: cfg.Sentinel.Master, SentinelAddrs: cfg.Sentinel.Addrs,
		ClusterAddrs: cfg.ClusterAddrs, KeyPrefix: cfg.KeyPrefix,
		Username: cfg.Username, Password: cfg.Password, SentinelPassword: cfg.Sentinel.Password, TLS: t,
	}, log)
}

// console builds the office console and the directory API into webOpts. With the
// embedded store and the console SMS driver (the demo), a demo user is made and the
// phone page is on.
func (a *App) console(ctx context.Context, cfg *config.Config, loc *time.Location, phone *console.Phone, webOpts *web.Options) error {
	var lists []string
	for _, l := range cfg.Escalation.Levels {
		if !slices.Contains(lists, l.Name) {
			lists = append(lists, l.Name)
		}
	}
	dir := console.NewDirectory(a.store, cfg.DefaultRegion, slices.Clone(lists), a.now)
	if !slices.Contains(lists, visit.ListHeadteacher) {
		lists = append(lists, visit.ListHeadteacher)
	}
	demo := phone != nil && a.store.Embedded()
	if demo {
		if err := console.EnsureDemoUser(ctx, a.store, a.now()); err != nil {
			return fmt.Errorf("demo user: %w", err)
		}
		a.log.Warn("demo mode: sign in to the console at " + cfg.PublicURL + " as " + console.DemoUser + " with the password " + console.DemoPassword)
	}
	con, err := console.New(console.Options{
		Service: a.service, Store: a.store, Directory: dir, Log: a.log, Now: a.now, Location: loc,
		PublicURL: cfg.PublicURL, ReminderBefore: cfg.Visits.ReminderBefore, Grace: cfg.Visits.Grace,
		DefaultDuration: cfg.Visits.DefaultDuration, Lists: lists, Phone: phone, DemoLogin: demo,
	})
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	webOpts.Directory, webOpts.Console = dir, con
	return nil
}

// Policy is the domain's view of the configuration's timings and ladder.
func Policy(cfg *config.Config) visit.Policy {
	p := visit.Policy{
		DefaultDuration: cfg.Visits.DefaultDuration, MaxDuration: cfg.Visits.MaxDuration,
		ReminderBefore: cfg.Visits.ReminderBefore, Grace: cfg.Visits.Grace,
		PanicLevels: cfg.Escalation.PanicLevels, AckHold: cfg.Escalation.AckHold,
		ValidityPeriod: cfg.Twilio.ValidityPeriod,
	}
	for _, l := range cfg.Escalation.Levels {
		p.Levels = append(p.Levels, visit.Level{Name: l.Name, After: l.After, RepeatEvery: l.RepeatEvery})
	}
	return p
}

func apiTokens(in []config.Token) ([]web.Token, error) {
	var out []web.Token
	for _, t := range in {
		wt := web.Token{Name: t.Name, Role: t.Role}
		if t.Token != "" {
			wt.SHA256 = web.HashToken(t.Token)
		} else {
			h, err := web.ParseTokenHash(t.TokenSHA256)
			if err != nil {
				return nil, fmt.Errorf("api.tokens %s: %w", t.Name, err)
			}
			wt.SHA256 = h
		}
		out = append(out, wt)
	}
	return out, nil
}

// gauge turns a count over all schools into a metric callback.
func (a *App) gauge(count func(context.Context, []string) (int64, error)) func() float64 {
	return func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		schools, err := a.store.SchoolIDs(ctx)
		if err != nil {
			return -1
		}
		n, err := count(ctx, schools)
		if err != nil {
			return -1
		}
		return float64(n)
	}
}

// oldestUnacked is the age of the oldest open alert without an ACK, in seconds.
func (a *App) oldestUnacked() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	schools, err := a.store.SchoolIDs(ctx)
	if err != nil {
		return -1
	}
	alerts, err := a.store.ListAlerts(ctx, schools, true, 0)
	if err != nil {
		return -1
	}
	oldest := 0.0
	for _, al := range alerts {
		if al.State == visit.AlertOpen {
			oldest = max(oldest, a.now().Sub(al.RaisedAt).Seconds())
		}
	}
	return oldest
}

// Addr is the address the HTTP server listens on.
func (a *App) Addr() string { return a.listener.Addr().String() }

// Service is the app's service layer (end-to-end tests drive timers through it).
func (a *App) Service() *service.Service { return a.service }

// Store is the app's store.
func (a *App) Store() *store.Store { return a.store }

// Registry is the app's metrics registry.
func (a *App) Registry() *prometheus.Registry { return a.registry }

// stallAfter is how old the scheduler's last pass may be before Vigil says it is
// not ready: it passes at least every second, so this is a stall, not a slow pass.
// The last good pass may be up to a second older than the stall, so /readyz fails
// within 9 s of it (SPEC §8: within 10 s).
const stallAfter = 8 * time.Second

// Ready reports why Vigil is not ready: Redis unreachable, or the scheduler stalled.
func (a *App) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		return fmt.Errorf("redis unreachable: %w", err)
	}
	last := a.scheduler.LastTick()
	if last.IsZero() {
		return errors.New("scheduler has not started")
	}
	if age := a.now().Sub(last); age > stallAfter {
		if why := a.scheduler.LastError(); why != "" {
			return fmt.Errorf("scheduler stalled: last pass %s ago; it fails to %s", age.Round(time.Second), why)
		}
		return fmt.Errorf("scheduler stalled: last pass %s ago", age.Round(time.Second))
	}
	return nil
}

// Reload re-reads the directory from cfg (SIGHUP).
func (a *App) Reload(ctx context.Context, cfg *config.Config) error {
	if err := a.store.SyncDirectory(ctx, cfg.Schools(), cfg.Officers()); err != nil {
		return fmt.Errorf("reload directory: %w", err)
	}
	a.log.Info("directory reloaded", "schools", len(cfg.Directory.Schools), "officers", len(cfg.Directory.Officers))
	return nil
}

// Run serves and runs every loop until ctx ends, then shuts down in order: stop
// taking webhooks and API calls, stop claiming timers, let the dispatcher finish the
// sends under way, close the store.
func (a *App) Run(ctx context.Context) error {
	defer a.store.Close()
	loops, loopCtx := errgroup.WithContext(ctx)
	sendCtx, stopSending := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSending()

	loops.Go(func() error {
		a.store.Subscribe(loopCtx, a.scheduler.Wake, a.notifier.Wake)
		return nil
	})
	loops.Go(func() error { return a.scheduler.Run(loopCtx) })
	loops.Go(func() error { return a.jobs.Run(loopCtx) })
	if a.receipts != nil {
		loops.Go(func() error { return a.receipts.Run(loopCtx) })
	}
	senderDone := make(chan error, 1)
	go func() { senderDone <- a.notifier.Run(sendCtx) }()
	if a.cfg.Monitoring.HeartbeatURL != "" {
		loops.Go(func() error { return a.heartbeat(loopCtx) })
	}
	loops.Go(func() error { a.watchClock(loopCtx, time.Minute); return nil })
	loops.Go(func() error {
		err := a.server.Serve(a.listener)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("http: %w", err)
	})
	loops.Go(func() error {
		<-loopCtx.Done()
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return a.server.Shutdown(shut)
	})
	a.log.Info("vigil is running", "listen", a.Addr(), "embedded_store", a.store.Embedded())
	err := loops.Wait()
	// Timers are no longer claimed and webhooks no longer taken: stop the
	// dispatcher. Sends under way finish (they run on their own context); messages
	// not yet claimed wait in Redis for another replica or the next start.
	stopSending()
	<-senderDone
	return err
}

// maxClockSkew is the most this server's clock may differ from Redis' before it
// is reported: a tenth of the shortest lease (3 s), with room for NTP's usual
// few milliseconds many times over.
const maxClockSkew = 500 * time.Millisecond

// watchClock compares this server's clock with Redis' now and every 'every', and
// says so in the log when they come to differ by more than maxClockSkew and when
// they agree again. It changes nothing else: a Redis whose own clock is wrong
// would make every replica report, and none should stop for that.
// vigil_clock_skew_seconds shows the figure at each scrape.
func (a *App) watchClock(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	off := false
	for {
		m, cancel := context.WithTimeout(ctx, 2*time.Second)
		skew, unc, err := a.store.ClockSkew(m, time.Now)
		cancel()
		switch {
		case err != nil:
		case (skew.Abs()-unc > maxClockSkew) && !off:
			off = true
			a.log.Error("this server's clock differs from Redis' by more than "+maxClockSkew.String()+
				": due times and leases from replicas whose clocks disagree can fire alerts early or twice; fix NTP",
				"ahead_by", skew.Round(time.Millisecond), "uncertainty", unc.Round(time.Millisecond))
		case skew.Abs()+unc <= maxClockSkew && off:
			off = false
			a.log.Info("this server's clock agrees with Redis' again", "ahead_by", skew.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heartbeat pings monitoring.heartbeat_url every minute while Vigil is ready, and
// not at all while it is not: the outside monitor's silence alarm is the signal.
func (a *App) heartbeat(ctx context.Context) error {
	client := &http.Client{Timeout: 10 * time.Second}
	t := time.NewTicker(a.beatEvery)
	defer t.Stop()
	for {
		if err := a.Ready(ctx); err != nil {
			a.log.Warn("heartbeat withheld: not ready", "err", err)
		} else if req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.cfg.Monitoring.HeartbeatURL, nil); err == nil {
			// The URL is not logged: its path is often the check's secret.
			if resp, err := client.Do(req); err != nil {
				var ue *url.Error
				if errors.As(err, &ue) {
					err = ue.Err
				}
				a.log.Warn("heartbeat ping failed", "err", err)
			} else {
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					a.log.Warn("heartbeat ping refused", "status", resp.Status)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Wake makes the scheduler and the dispatcher look for work now (tests that move a
// fake clock call it; in production commits and pub/sub do).
func (a *App) Wake() {
	a.scheduler.Wake()
	a.notifier.Wake()
	if a.receipts != nil {
		a.receipts.Wake()
	}
}
