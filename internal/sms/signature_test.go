package sms_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"testing"

	"github.com/twilio/twilio-go/client"

	"github.com/vigil-safety/vigil/internal/sms"
)

const token = "0123456789abcdef0123456789abcdef"

// flat is what twilio-go's validator takes: one value per field.
func flat(form url.Values) map[string]string {
	m := make(map[string]string, len(form))
	for k, v := range form {
		m[k] = v[0]
	}
	return m
}

func TestSignKnownVector(t *testing.T) {
	t.Parallel()
	// The vector twilio-go tests its validator with.
	form := url.Values{
		"Digits": {"1234"}, "CallSid": {"CA1234567890ABCDE"}, "To": {"+18005551212"},
		"Caller": {"+14158675309"}, "From": {"+14158675309"},
		"ReasonConferenceEnded": {"test"}, "Reason": {"Participant"},
	}
	got := sms.Sign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", form)
	if want := "vOEb5UThFn24KEfnOFLQY2AE5FY="; got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestSignAgreesWithTwilioGo(t *testing.T) {
	t.Parallel()
	inbound := url.Values{
		"MessageSid": {"SM0123"}, "AccountSid": {"AC0123"}, "From": {"+447700900101"},
		"To": {"+441332000001"}, "Body": {"VISIT 45 12 Acacia Ave & back <soon>"},
	}
	tests := []struct {
		name string
		url  string
		form url.Values
	}{
		// The SMS webhook as configured in SPEC §4.
		{"plain path", "https://vigil.example.org/twilio/sms", inbound},
		// Twilio signs the query string as configured.
		{"query string", "https://vigil.example.org/twilio/voice/alert?alert=a1&level=2", url.Values{"CallSid": {"CA1"}, "Digits": {"1"}}},
		// An escaped query is signed byte for byte.
		{"escaped query", "https://vigil.example.org/twilio/status?next=%2Fa%20b", url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"undelivered"}, "ErrorCode": {"30003"}}},
		// An explicit port is part of the URL.
		{"explicit port", "http://127.0.0.1:8080/twilio/sms", inbound},
		// A GET-style webhook: no form at all.
		{"no form", "https://vigil.example.org/twilio/voice/alert?alert=a1", url.Values{}},
		// Non-ASCII text is signed as UTF-8.
		{"unicode body", "https://vigil.example.org/twilio/sms", url.Values{"Body": {"café £5 — ok"}, "From": {"+447700900101"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rv := client.NewRequestValidator(token)
			sig := sms.Sign(token, tt.url, tt.form)
			if !rv.Validate(tt.url, flat(tt.form), sig) {
				t.Errorf("twilio-go rejects Sign's signature %q", sig)
			}
			if !sms.ValidSignature(token, tt.url, tt.form, sig) {
				t.Errorf("ValidSignature rejects Sign's signature %q", sig)
			}

			// Tampering with the body: both must refuse.
			tampered := url.Values{}
			for k, v := range tt.form {
				tampered[k] = append([]string(nil), v...)
			}
			tampered.Set("Body", "PANIC")
			if rv.Validate(tt.url, flat(tampered), sig) || sms.ValidSignature(token, tt.url, tampered, sig) {
				t.Errorf("tampered body accepted")
			}
			// Another auth token or another URL: both must refuse.
			if sms.ValidSignature("another-token", tt.url, tt.form, sig) {
				t.Errorf("signature accepted under another token")
			}
			if sms.ValidSignature(token, tt.url+"x", tt.form, sig) {
				t.Errorf("signature accepted for another URL")
			}
		})
	}
}

func TestValidSignatureDefaultPort(t *testing.T) {
	t.Parallel()
	form := url.Values{"MessageSid": {"SM1"}, "Body": {"IN"}}
	tests := []struct {
		name           string
		signed, served string
	}{
		// Twilio signed with the default port written out; Vigil knows the URL without.
		{"signed with :443", "https://vigil.example.org:443/twilio/sms", "https://vigil.example.org/twilio/sms"},
		// And the other way round.
		{"signed without :443", "https://vigil.example.org/twilio/sms", "https://vigil.example.org:443/twilio/sms"},
		// Plain HTTP uses :80.
		{"signed with :80", "http://vigil.example.org:80/twilio/sms", "http://vigil.example.org/twilio/sms"},
		// Vigil knows a port that is not the default; Twilio signed without it.
		{"signed without :8443", "https://vigil.example.org/twilio/sms", "https://vigil.example.org:8443/twilio/sms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sig := sms.Sign(token, tt.signed, form)
			rv := client.NewRequestValidator(token)
			if got, want := sms.ValidSignature(token, tt.served, form, sig), rv.Validate(tt.served, flat(form), sig); got != want || !got {
				t.Errorf("ValidSignature = %v, twilio-go = %v, want both true", got, want)
			}
			// The repeated-field path must treat ports the same way.
			multi := url.Values{"MediaUrl": {"a", "b"}}
			if !sms.ValidSignature(token, tt.served, multi, sms.Sign(token, tt.signed, multi)) {
				t.Errorf("repeated fields: port variant refused")
			}
		})
	}
}

func TestSignRepeatedFields(t *testing.T) {
	t.Parallel()
	// twilio-go's validator takes one value per field, so repeated fields are
	// checked against the algorithm of Twilio's Node and Python libraries: names
	// sorted, each name's distinct values sorted, each value preceded by its name.
	const u = "https://vigil.example.org/twilio/sms?x=1"
	form := url.Values{"To": {"+441332000001"}, "MediaUrl": {"https://b.example/2", "https://a.example/1", "https://a.example/1"}}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(u + "MediaUrlhttps://a.example/1" + "MediaUrlhttps://b.example/2" + "To+441332000001"))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))

	if got := sms.Sign(token, u, form); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	if !sms.ValidSignature(token, u, form, want) {
		t.Errorf("ValidSignature refuses the right signature")
	}
	// The order of repeated values does not matter.
	reordered := url.Values{"To": {"+441332000001"}, "MediaUrl": {"https://a.example/1", "https://b.example/2"}}
	if !sms.ValidSignature(token, u, reordered, want) {
		t.Errorf("ValidSignature depends on the order of repeated values")
	}
	// Dropping or changing one value is tampering.
	for _, tampered := range []url.Values{
		{"To": {"+441332000001"}, "MediaUrl": {"https://a.example/1"}},
		{"To": {"+441332000001"}, "MediaUrl": {"https://a.example/1", "https://evil.example/2"}},
	} {
		if sms.ValidSignature(token, u, tampered, want) {
			t.Errorf("ValidSignature accepts tampered form %v", tampered)
		}
	}
}

// A signature for a URL with a port that is neither the URL's own nor absent is
// refused, by twilio-go and by ValidSignature.
func TestValidSignatureRefusesAnotherPort(t *testing.T) {
	t.Parallel()
	form := url.Values{"MessageSid": {"SM1"}, "Body": {"IN"}}
	for _, served := range []string{"https://vigil.example.org/twilio/sms", "https://vigil.example.org:443/twilio/sms", "https://vigil.example.org:8443/twilio/sms"} {
		sig := sms.Sign(token, "https://vigil.example.org:9443/twilio/sms", form)
		rv := client.NewRequestValidator(token)
		if sms.ValidSignature(token, served, form, sig) || rv.Validate(served, flat(form), sig) {
			t.Errorf("served at %s: a signature for port 9443 accepted", served)
		}
	}
}

func BenchmarkValidSignature(b *testing.B) {
	const u = "https://vigil.example.org/twilio/sms"
	form := url.Values{
		"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "AccountSid": {"AC0123456789abcdef0123456789abcdef"},
		"From": {"+447700900101"}, "To": {"+441332000001"}, "Body": {"VISIT 45 12 Acacia Ave"},
		"NumMedia": {"0"}, "NumSegments": {"1"}, "SmsStatus": {"received"}, "ApiVersion": {"2010-04-01"},
	}
	sig := sms.Sign(token, u, form)
	b.ReportAllocs()
	for b.Loop() {
		if !sms.ValidSignature(token, u, form, sig) {
			b.Fatal("refused")
		}
	}
}

func TestValidSignatureRefusesEmpty(t *testing.T) {
	t.Parallel()
	if sms.ValidSignature(token, "https://vigil.example.org/twilio/sms", url.Values{"Body": {"IN"}}, "") {
		t.Errorf("empty signature accepted")
	}
}
