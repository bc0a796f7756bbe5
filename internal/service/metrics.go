package service

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-safety/vigil/internal/visit"
)

// inboundCommands are the `command` label values of vigil_inbound_sms_total: every
// verb visit.Parse gives.
var inboundCommands = []visit.Verb{
	visit.VerbUnknown, visit.VerbVisit, visit.VerbNext, visit.VerbIn, visit.VerbExtend, visit.VerbPanic,
	visit.VerbAbort, visit.VerbStatus, visit.VerbAck, visit.VerbResolve,
}

// Metrics are the counters the service keeps (SPEC §7).
type Metrics struct {
	VisitsTotal *prometheus.CounterVec
	AlertsTotal *prometheus.CounterVec
	AckSeconds  prometheus.Histogram
	InboundSMS  *prometheus.CounterVec
	// Notifications is shared with the dispatcher, which counts sends; the service
	// counts replies and delivery receipts.
	Notifications *prometheus.CounterVec
	// DeliveryFailures counts messages that failed for good, by Twilio error code.
	DeliveryFailures *prometheus.CounterVec
}

// NewMetrics registers the service's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		VisitsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_visits_total", Help: "Visits closed, by outcome (safe, cancelled, duress).",
		}, []string{"outcome"}),
		AlertsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alerts_total", Help: "Alerts raised, by reason (overdue, panic, duress).",
		}, []string{"reason"}),
		AckSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_alert_ack_seconds", Help: "Time from an alert being raised to its first ACK.",
			Buckets: []float64{15, 30, 60, 120, 300, 600, 900, 1800, 3600},
		}),
		InboundSMS: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_inbound_sms_total", Help: "Inbound SMS, by command and result.",
		}, []string{"command", "result"}),
		Notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_notifications_total",
			Help: "Notifications by channel (sms, call), kind (reminder, alert, all_clear, notice, reply) and result (sent, failed, delivered, undelivered).",
		}, []string{"channel", "kind", "result"}),
	}
	m.DeliveryFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_delivery_failures_total",
		Help: "Messages and calls that failed for good (refused, undelivered, unanswered), by channel, kind and Twilio error code (0: none).",
	}, []string{"channel", "kind", "code"})
	reg.MustRegister(m.VisitsTotal, m.AlertsTotal, m.AckSeconds, m.InboundSMS, m.Notifications, m.DeliveryFailures)
	// Every series a rule watches exists from the start at 0, so increase() sees
	// the first alert or failure after a restart.
	for _, o := range []string{"safe", "cancelled", "duress"} {
		m.VisitsTotal.WithLabelValues(o)
	}
	for _, r := range []string{"overdue", "panic", "duress"} {
		m.AlertsTotal.WithLabelValues(r)
	}
	// An officer or contact opting out of SMS (Twilio 21610) has a rule of its own.
	for _, k := range []string{"reminder", "alert", "all_clear", "notice"} {
		m.DeliveryFailures.WithLabelValues("sms", k, "21610")
	}
	// Every command with every result, though some pairs never happen: which do
	// depends on who sends what, and a series missing until the first SMS after a
	// start is a gap on a dashboard and in rate() (SPEC §7 lists this counter).
	for _, c := range inboundCommands {
		for _, res := range []string{resultOK, resultRefused, resultDup, resultUnknown, resultNotUnder, resultNotConfirmed} {
			m.InboundSMS.WithLabelValues(string(c), res)
		}
	}
	for _, ch := range []string{"sms", "call"} {
		for _, k := range []string{"reminder", "alert", "all_clear", "notice", "reply"} {
			for _, res := range []string{"sent", "failed", "delivered", "undelivered"} {
				m.Notifications.WithLabelValues(ch, k, res)
			}
		}
	}
	return m
}
