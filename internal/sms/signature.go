package sms

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// SignatureHeader is the header Twilio signs its webhook requests with.
const SignatureHeader = "X-Twilio-Signature"

// Sign returns the X-Twilio-Signature Twilio sends with a form-encoded webhook
// request to fullURL (scheme, host, path and query exactly as configured at
// Twilio, e.g. public_url + "/twilio/sms") carrying form:
// base64(HMAC-SHA1(authToken, fullURL + name1 + value1 + name2 + value2 ...)),
// names sorted, and a repeated name's distinct values sorted, each preceded by the
// name (as Twilio's Node and Python libraries do; with one value per name it is
// what twilio-go's client.RequestValidator computes).
func Sign(authToken, fullURL string, form url.Values) string {
	return sign(authToken, fullURL, signedFields(form))
}

// ValidSignature reports whether signature is what Twilio would send for form
// posted to fullURL under authToken. Like twilio-go's client.RequestValidator it
// accepts the URL with and without a port (":443" written out or left off, and any
// port left off), because Twilio is not consistent about it. It tries fullURL as
// given first, so the usual request costs one HMAC and no URL parsing.
func ValidSignature(authToken, fullURL string, form url.Values, signature string) bool {
	if signature == "" {
		return false
	}
	fields := signedFields(form)
	if hmac.Equal([]byte(sign(authToken, fullURL, fields)), []byte(signature)) {
		return true
	}
	// The one other form of the URL twilio-go would try: with the scheme's default
	// port when it has none, without its port when it has one.
	other := withDefaultPort(fullURL)
	if other == fullURL {
		other = withoutPort(fullURL)
	}
	return other != fullURL && hmac.Equal([]byte(sign(authToken, other, fields)), []byte(signature))
}

// signedFields is the part of the signed text after the URL.
func signedFields(form url.Values) string {
	n := 0
	for name, values := range form {
		for _, v := range values {
			n += len(name) + len(v)
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, name := range slices.Sorted(maps.Keys(form)) {
		values := form[name]
		if len(values) > 1 {
			values = slices.Compact(slices.Sorted(slices.Values(values)))
		}
		for _, v := range values {
			b.WriteString(name)
			b.WriteString(v)
		}
	}
	return b.String()
}

func sign(authToken, fullURL, fields string) string {
	mac := hmac.New(sha1.New, []byte(authToken))
	_, _ = io.WriteString(mac, fullURL)
	_, _ = io.WriteString(mac, fields)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// withDefaultPort returns rawURL with its scheme's default port written out, when
// it has no port.
func withDefaultPort(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Port() != "" {
		return rawURL
	}
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	u.Host = u.Host + ":" + strconv.Itoa(port)
	return u.String()
}

// withoutPort returns rawURL with any port removed.
func withoutPort(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Port() == "" {
		return rawURL
	}
	u.Host = strings.TrimSuffix(u.Host, ":"+u.Port())
	return u.String()
}
