package app_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/vigil-safety/vigil/internal/redistest"
	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
)

// BenchmarkInboundVisitIn measures one signed VISIT and one signed IN through the
// real HTTP handler (signature check, dedup, load, decide, Lua commit) against a
// real redis-server. Each op is the pair. Messages are not sent (nothing is due).
func BenchmarkInboundVisitIn(b *testing.B) {
	srv := redistest.Start(b)
	fake := smstest.NewServer(b, accountSID)
	base := runApp(b, testConfig(srv.URL(), fake.URL())).base
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	post := func(i int, body string) {
		form := url.Values{"From": {janePhone}, "To": {twilioNumber}, "Body": {body},
			"MessageSid": {fmt.Sprintf("SM%032x", i)}, "AccountSid": {accountSID}}
		req, _ := http.NewRequest(http.MethodPost, base+"/twilio/sms", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sms.Sign(smstest.DefaultAuthToken, publicURL+"/twilio/sms", form))
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body2, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body2), "<Message>") {
			b.Fatalf("%s: %d %s", body, res.StatusCode, body2)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		post(2*i, "VISIT 45 14 Elm Road")
		post(2*i+1, "IN")
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}
