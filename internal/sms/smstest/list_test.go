package smstest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/vigil-safety/vigil/internal/sms"
	"github.com/vigil-safety/vigil/internal/sms/smstest"
)

// get lists resource with query as Twilio's REST API would answer it, decoded.
func get(t *testing.T, fake *smstest.Server, token, resource string, query url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet,
		fake.URL()+"/2010-04-01/Accounts/"+account+"/"+resource+".json?"+query.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(account, token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return res.StatusCode, body
}

func TestListMessagesShapeAndFilters(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 5, 31, 23, 0, 0, 0, time.UTC)
	fake := smstest.NewServer(t, account, smstest.WithClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now }))
	c := newClient(t, fake, nil)
	for i, at := range []time.Time{now, now.Add(2 * time.Hour), now.Add(3 * time.Hour)} {
		mu.Lock()
		now = at
		mu.Unlock()
		to := officer
		if i == 2 {
			to = office
		}
		if _, err := c.SendSMS(t.Context(), sms.Outbound{To: to, Body: "hello"}); err != nil {
			t.Fatal(err)
		}
	}
	sent := fake.Sent()

	status, body := get(t, fake, fake.AuthToken(), "Messages", url.Values{"To": {officer}, "DateSent>": {"2026-06-01"}})
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, body)
	}
	for _, key := range []string{"messages", "page", "page_size", "start", "end", "uri", "first_page_uri", "next_page_uri", "previous_page_uri"} {
		if _, ok := body[key]; !ok {
			t.Errorf("answer has no %q: %v", key, body)
		}
	}
	if body["next_page_uri"] != nil || body["previous_page_uri"] != nil || body["page"] != 0.0 || body["page_size"] != 50.0 {
		t.Errorf("paging = next %v prev %v page %v size %v, want null, null, 0, 50", body["next_page_uri"], body["previous_page_uri"], body["page"], body["page_size"])
	}
	msgs := body["messages"].([]any)
	if len(msgs) != 1 {
		t.Fatalf("listed %d messages, want the one to the officer sent on 1 June", len(msgs))
	}
	m := msgs[0].(map[string]any)
	if m["sid"] != sent[1].SID || m["to"] != officer || m["body"] != "hello" || m["direction"] != "outbound-api" ||
		m["date_created"] != "Mon, 01 Jun 2026 01:00:00 +0000" || m["date_sent"] != "Mon, 01 Jun 2026 01:00:00 +0000" {
		t.Errorf("listed %v", m)
	}

	// On or before a day, and the newest first.
	_, body = get(t, fake, fake.AuthToken(), "Messages", url.Values{"DateSent<": {"2026-06-01T12:00:00Z"}})
	msgs = body["messages"].([]any)
	if len(msgs) != 3 || msgs[0].(map[string]any)["sid"] != sent[2].SID || msgs[2].(map[string]any)["sid"] != sent[0].SID {
		t.Errorf("listed %v, want all three, newest first", msgs)
	}

	if status, body := get(t, fake, fake.AuthToken(), "Messages", url.Values{"DateSent": {"yesterday"}}); status != http.StatusBadRequest || body["code"] != 20001.0 {
		t.Errorf("bad date: %d %v, want 400 code 20001", status, body)
	}
	if status, body := get(t, fake, "wrong", "Messages", nil); status != http.StatusUnauthorized || body["code"] != 20003.0 {
		t.Errorf("wrong token: %d %v, want 401 code 20003", status, body)
	}
}

func TestListPages(t *testing.T) {
	t.Parallel()
	fake := smstest.NewServer(t, account)
	c := newClient(t, fake, nil)
	for range 5 {
		if _, err := c.PlaceCall(t.Context(), sms.Call{To: office, TwiML: "<Response/>"}); err != nil {
			t.Fatal(err)
		}
	}
	calls := fake.Calls()
	_, body := get(t, fake, fake.AuthToken(), "Calls", url.Values{"To": {office}, "PageSize": {"2"}})
	var got []string
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		for _, c := range body["calls"].([]any) {
			got = append(got, c.(map[string]any)["sid"].(string))
		}
		next, ok := body["next_page_uri"].(string)
		if !ok {
			break
		}
		u, err := url.Parse(next)
		if err != nil {
			t.Fatal(err)
		}
		_, body = get(t, fake, fake.AuthToken(), "Calls", u.Query())
	}
	if len(got) != 5 || got[0] != calls[4].SID || got[4] != calls[0].SID {
		t.Errorf("paged through %v, want the 5 calls newest first", got)
	}
	if n := len(fake.Lookups()); n != 3 {
		t.Errorf("%d lookups, want 3 pages", n)
	}
}
