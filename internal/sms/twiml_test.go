package sms_test

import (
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-safety/vigil/internal/sms"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

type messagingResponse struct {
	XMLName  xml.Name `xml:"Response"`
	Messages []string `xml:"Message"`
}

func TestMessageTwiML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want string // exact document; "" to check the round trip only
	}{
		// The common case, byte for byte.
		{"plain", "Checked in at 14:05. Stay safe.",
			`<?xml version="1.0" encoding="UTF-8"?><Response><Message>Checked in at 14:05. Stay safe.</Message></Response>`},
		// Every character XML gives meaning to is escaped.
		{"markup", `<b>Tom & "Jerry's"</b> > 5`,
			`<?xml version="1.0" encoding="UTF-8"?><Response><Message>&lt;b&gt;Tom &amp; &#34;Jerry&#39;s&#34;&lt;/b&gt; &gt; 5</Message></Response>`},
		// Newlines survive the round trip.
		{"multi-line", "Commands:\nIN - check in\nEXTEND 30", ""},
		// A would-be CDATA end or injected element stays text.
		{"injection", "]]></Message><Redirect>https://evil.example</Redirect><Message>", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := sms.MessageTwiML(tt.body)
			if tt.want != "" && got != tt.want {
				t.Errorf("MessageTwiML = %s\nwant          %s", got, tt.want)
			}
			var r messagingResponse
			if err := xml.Unmarshal([]byte(got), &r); err != nil {
				t.Fatalf("not valid XML: %v\n%s", err, got)
			}
			if len(r.Messages) != 1 || r.Messages[0] != tt.body {
				t.Errorf("round trip gave %q, want [%q]", r.Messages, tt.body)
			}
		})
	}
}

func TestMessageTwiMLEmptyIsNoReply(t *testing.T) {
	t.Parallel()
	got := sms.MessageTwiML("")
	// With the XML header, like every document this package writes.
	if want := sms.XMLHeader + "<Response/>"; got != want {
		t.Errorf("MessageTwiML(\"\") = %q, want %q", got, want)
	}
	var r messagingResponse
	if err := xml.Unmarshal([]byte(got), &r); err != nil || len(r.Messages) != 0 {
		t.Errorf("Unmarshal = %+v, %v; want a Response without Message", r, err)
	}
}

type voiceResponse struct {
	XMLName xml.Name `xml:"Response"`
	Verbs   []struct {
		XMLName   xml.Name
		Voice     string `xml:"voice,attr"`
		Language  string `xml:"language,attr"`
		NumDigits string `xml:"numDigits,attr"`
		Action    string `xml:"action,attr"`
		Method    string `xml:"method,attr"`
		Text      string `xml:",chardata"`
		Say       []struct {
			Text string `xml:",chardata"`
		} `xml:"Say"`
	} `xml:",any"`
}

func TestVoiceAlertTwiML(t *testing.T) {
	t.Parallel()
	text := "Overdue alert from Vigil. Jane Doe, Bishop Lonsdale, was due back at 14:30 & has not checked in."
	action := "https://vigil.example.org/twilio/voice/gather?alert=a1&contact=c2"
	got := sms.VoiceAlertTwiML(text, action)
	golden(t, "voice_alert.xml", got)

	var r voiceResponse
	if err := xml.Unmarshal([]byte(got), &r); err != nil {
		t.Fatalf("not valid XML: %v", err)
	}
	var names []string
	for _, v := range r.Verbs {
		names = append(names, v.XMLName.Local)
	}
	if want := "Say Pause Say Gather Say"; strings.Join(names, " ") != want {
		t.Fatalf("verbs = %v, want %s", names, want)
	}
	for _, i := range []int{0, 2} {
		if v := r.Verbs[i]; v.Text != text || v.Language != "en-GB" {
			t.Errorf("verb %d says %q in %q, want the alert in en-GB", i, v.Text, v.Language)
		}
	}
	g := r.Verbs[3]
	if g.NumDigits != "1" || g.Action != action || g.Method != "POST" || len(g.Say) != 1 || !strings.Contains(g.Say[0].Text, "Press 1") {
		t.Errorf("gather = %+v", g)
	}
	if r.Verbs[4].Text != "Goodbye." {
		t.Errorf("last words %q, want Goodbye.", r.Verbs[4].Text)
	}
}

func TestVoiceAlertTwiMLWithoutAction(t *testing.T) {
	t.Parallel()
	got := sms.VoiceAlertTwiML("Alert.", "")
	if strings.Contains(got, "action=") {
		t.Errorf("empty action written out:\n%s", got)
	}
}
