package sms

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/twilio/twilio-go/client"
)

// SignatureHeader is the header Twilio signs its webhook requests with.
const SignatureHeader = "X-Twilio-Signature"

// Sign returns the X-Twilio-Signature Twilio sends with a form-encoded webhook
// request to fullURL (scheme, host, path and query exactly as configured at
// Twilio, e.g. public_url + "/twilio/sms") carrying form:
// base64(HMAC-SHA1(authToken, fullURL + name1 + value1 + name2 + value2 ...)),
// names sorted, and a repeated name's distinct values sorted, each preceded by the
// name (as Twilio's Node and Python libraries do).
func Sign(authToken, fullURL string, form url.Values) string {
	var b strings.Builder
	b.WriteString(fullURL)
	for _, name := range slices.Sorted(maps.Keys(form)) {
		values := slices.Clone(form[name])
		slices.Sort(values)
		for _, v := range slices.Compact(values) {
			b.WriteString(name)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ValidSignature reports whether signature is what Twilio would send for form
// posted to fullURL under authToken. Like twilio-go's client.RequestValidator it
// accepts the URL with and without the scheme's default port (":443", ":80"),
// because Twilio is not consistent about it.
//
// When every field has one value it is twilio-go's RequestValidator that decides.
// twilio-go takes a map of single values, so a form with a repeated field is
// checked here with the same algorithm over all its values.
func ValidSignature(authToken, fullURL string, form url.Values, signature string) bool {
	if signature == "" {
		return false
	}
	flat := make(map[string]string, len(form))
	for name, values := range form {
		if len(values) != 1 {
			return validMulti(authToken, fullURL, form, signature)
		}
		flat[name] = values[0]
	}
	rv := client.NewRequestValidator(authToken)
	return rv.Validate(fullURL, flat, signature)
}

// validMulti checks a form with repeated fields over the same URL variants as
// twilio-go.
func validMulti(authToken, fullURL string, form url.Values, signature string) bool {
	for _, u := range []string{withDefaultPort(fullURL), withoutPort(fullURL)} {
		if hmac.Equal([]byte(Sign(authToken, u, form)), []byte(signature)) {
			return true
		}
	}
	return false
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
