package service_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/visit"
)

// series is every series c exports, as its label pairs, with its value.
func series(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric)
	go func() { c.Collect(ch); close(ch) }()
	out := map[string]float64{}
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		var labels []string
		for _, l := range d.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		out[strings.Join(labels, ",")] = d.GetCounter().GetValue()
	}
	return out
}

// vigil_inbound_sms_total is exported from the start, at 0, with every series an
// inbound SMS can count: a series that appeared only with the first SMS after a
// start would be missing from dashboards and from increase() over that SMS.
func TestInboundSMSSeriesExistFromStart(t *testing.T) {
	t.Parallel()
	r := newReplica(t, redistest.Start(t))
	if err := r.st.SyncDirectory(t.Context(), []visit.School{schoolWith("School office")}, []visit.Officer{jane}); err != nil {
		t.Fatal(err)
	}
	before := series(t, r.metrics.InboundSMS)
	for _, want := range []string{"command=panic,result=ok", "command=in,result=ok", "command=unknown,result=unknown_sender"} {
		if v, ok := before[want]; !ok || v != 0 {
			t.Errorf("at start, vigil_inbound_sms_total{%s} is %v (exported: %v); want 0", want, v, ok)
		}
	}

	// One SMS of each kind of answer, from an officer, a contact and a stranger.
	for i, m := range []struct{ from, body string }{
		{janePhone, "VISIT 45 14 Elm Road"}, {janePhone, "STATUS"}, {janePhone, "EXTEND 15"},
		{janePhone, "blah"}, {janePhone, "NEXT 30 2 Oak Lane"}, {janePhone, "PANIC"},
		{officePhone, "ACK"}, {officePhone, "hello"}, {officePhone, "RESOLVE found safe"},
		{janePhone, "IN"}, {janePhone, "EXTEND 15"}, {janePhone, "ABORT dog loose"},
		{newPhone, "IN"},
	} {
		r.sms(t, m.from, m.body, "SM-"+string(rune('a'+i)))
	}
	r.sms(t, janePhone, "STATUS", "SM-b") // a repeat

	after := series(t, r.metrics.InboundSMS)
	counted, nonzero := 0.0, []string{}
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[k]; !ok {
			t.Errorf("vigil_inbound_sms_total{%s} appeared only when counted", k)
		}
		if after[k] != 0 {
			counted += after[k]
			nonzero = append(nonzero, k)
		}
	}
	if counted != 14 {
		t.Errorf("%v inbound SMS counted, want 14: %v", counted, nonzero)
	}
}
