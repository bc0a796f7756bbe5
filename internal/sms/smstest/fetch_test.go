package smstest_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
)

func TestFetchMessageShapeAndStatus(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	fake := smstest.NewServer(t, account, smstest.WithClock(func() time.Time { return at }))
	c := newClient(t, fake, nil)
	sid, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "OVERDUE: Jane Doe"})
	if err != nil {
		t.Fatal(err)
	}

	status, m := get(t, fake, fake.AuthToken(), "Messages/"+sid, nil)
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, m)
	}
	for _, key := range []string{"error_code", "error_message", "date_sent", "messaging_service_sid", "price"} {
		if v, ok := m[key]; !ok || (key != "date_sent" && v != nil) {
			t.Errorf("%s = %v (present %v), want null", key, v, ok)
		}
	}
	if m["sid"] != sid || m["to"] != officer || m["from"] != from || m["body"] != "OVERDUE: Jane Doe" ||
		m["status"] != "delivered" || m["direction"] != "outbound-api" || m["num_segments"] != "1" ||
		m["date_sent"] != "Mon, 01 Jun 2026 09:00:00 +0000" || m["uri"] != "/2010-04-01/Accounts/"+account+"/Messages/"+sid+".json" {
		t.Errorf("fetched %v", m)
	}

	// A status set by the test is answered alone and in the list, with Twilio's
	// error code (a number) and text.
	fake.SetMessageStatus(sid, "undelivered", 30003)
	_, m = get(t, fake, fake.AuthToken(), "Messages/"+sid, nil)
	if m["status"] != "undelivered" || m["error_code"] != 30003.0 || m["error_message"] != "Unreachable destination handset" {
		t.Errorf("after SetMessageStatus: status %v error_code %v (%T) error_message %v", m["status"], m["error_code"], m["error_code"], m["error_message"])
	}
	_, list := get(t, fake, fake.AuthToken(), "Messages", url.Values{"To": {officer}})
	if l := list["messages"].([]any)[0].(map[string]any); l["status"] != "undelivered" || l["error_code"] != 30003.0 {
		t.Errorf("listed status %v error_code %v, want undelivered 30003", l["status"], l["error_code"])
	}

	// "" restores the defaults: delivered alone, sent in the list.
	fake.SetMessageStatus(sid, "", 0)
	if _, m = get(t, fake, fake.AuthToken(), "Messages/"+sid, nil); m["status"] != "delivered" || m["error_code"] != nil {
		t.Errorf("after reset: status %v error_code %v", m["status"], m["error_code"])
	}
	_, list = get(t, fake, fake.AuthToken(), "Messages", url.Values{"To": {officer}})
	if l := list["messages"].([]any)[0].(map[string]any); l["status"] != "sent" || l["error_code"] != nil {
		t.Errorf("listed after reset: status %v error_code %v, want sent, null", l["status"], l["error_code"])
	}

	lks := fake.Lookups()
	if len(lks) != 5 || lks[0].Resource != "Message" || lks[0].Query.Get("Sid") != sid || lks[0].HTTPStatus != http.StatusOK || lks[2].Resource != "Messages" {
		t.Errorf("lookups = %+v", lks)
	}
}

func TestFetchCallShapeAndStatus(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	sid, err := c.PlaceCall(t.Context(), sms.Call{To: office, TwiMLURL: "https://vigil.example.org/twilio/voice/a1"})
	if err != nil {
		t.Fatal(err)
	}
	status, call := get(t, fake, fake.AuthToken(), "Calls/"+sid, nil)
	if status != http.StatusOK || call["sid"] != sid || call["to"] != office || call["from"] != from ||
		call["status"] != "completed" || call["start_time"] == nil || call["direction"] != "outbound-api" {
		t.Errorf("fetched %d %v", status, call)
	}

	// The set status is answered alone and in the list, whose Status filter
	// compares it.
	fake.SetCallStatus(sid, "busy")
	if _, call = get(t, fake, fake.AuthToken(), "Calls/"+sid, nil); call["status"] != "busy" {
		t.Errorf("after SetCallStatus: status %v, want busy", call["status"])
	}
	if _, list := get(t, fake, fake.AuthToken(), "Calls", url.Values{"Status": {"busy"}}); len(list["calls"].([]any)) != 1 {
		t.Errorf("Status=busy listed %v, want the call", list["calls"])
	}
	if _, list := get(t, fake, fake.AuthToken(), "Calls", url.Values{"Status": {"ringing"}}); len(list["calls"].([]any)) != 0 {
		t.Errorf("Status=ringing listed %v, want none", list["calls"])
	}
	if lk := fake.Lookups()[0]; lk.Resource != "Call" || lk.Query.Get("Sid") != sid {
		t.Errorf("lookup = %s %v, want Call Sid=%s", lk.Resource, lk.Query, sid)
	}
}

// Look-ups of one record are checked, faulted and refused as those of the lists.
func TestFetchRefusals(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	sid, err := c.SendSMS(t.Context(), sms.Outbound{To: officer, Body: "IN"})
	if err != nil {
		t.Fatal(err)
	}
	unknown := "SM" + "ffffffffffffffffffffffffffffffff"
	inbound := fake.InboundSMS(officer, from, "IN").Get("MessageSid")

	fake.FailNextLookup(1, http.StatusServiceUnavailable, 20500)
	cases := []struct {
		name, token, resource string
		wantStatus, wantCode  int
		wantResource, wantSid string
	}{
		{"injected fault", fake.AuthToken(), "Messages/" + sid, 503, 20500, "Message", sid},
		{"fault used up", fake.AuthToken(), "Messages/" + sid, 200, 0, "Message", sid},
		{"wrong token", "wrong", "Messages/" + sid, 401, 20003, "Message", sid},
		{"unknown message", fake.AuthToken(), "Messages/" + unknown, 404, 20404, "Message", unknown},
		{"inbound message", fake.AuthToken(), "Messages/" + inbound, 404, 20404, "Message", inbound},
		{"a message as a call", fake.AuthToken(), "Calls/" + sid, 404, 20404, "Call", sid},
	}
	for i, tc := range cases {
		status, body := get(t, fake, tc.token, tc.resource, nil)
		if status != tc.wantStatus || (tc.wantCode != 0 && body["code"] != float64(tc.wantCode)) {
			t.Errorf("%s: %d %v, want %d code %d", tc.name, status, body, tc.wantStatus, tc.wantCode)
		}
		if tc.wantCode != 0 && body["more_info"] != "https://www.twilio.com/docs/errors/"+strconv.Itoa(tc.wantCode) {
			t.Errorf("%s: body %v is not Twilio's error body", tc.name, body)
		}
		lks := fake.Lookups()
		if len(lks) != i+1 {
			t.Fatalf("%s: %d lookups recorded, want %d", tc.name, len(lks), i+1)
		}
		if lk := lks[i]; lk.Resource != tc.wantResource || lk.Query.Get("Sid") != tc.wantSid || lk.HTTPStatus != tc.wantStatus {
			t.Errorf("%s: recorded %s Sid=%s -> %d", tc.name, lk.Resource, lk.Query.Get("Sid"), lk.HTTPStatus)
		}
	}

	// Another account's path, and a path without ".json".
	for _, path := range []string{
		"/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages/" + sid + ".json",
		"/2010-04-01/Accounts/" + account + "/Messages/" + sid,
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, fake.URL()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(account, fake.AuthToken())
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
}

func TestWaitLookupsWakesOnFetch(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	sid, err := c.PlaceCall(t.Context(), sms.Call{To: office, TwiML: "<Response/>"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.FetchStatus(context.Background(), sid)
		done <- err
	}()
	lks := fake.WaitLookups(5*time.Second, func(lks []smstest.Lookup) bool {
		return len(lks) == 1 && lks[0].Resource == "Call"
	})
	if lks[0].Query.Get("Sid") != sid {
		t.Errorf("lookup %v, want Sid=%s", lks[0].Query, sid)
	}
	if err := <-done; err != nil {
		t.Errorf("FetchStatus: %v", err)
	}
}
