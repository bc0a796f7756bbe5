package sms

import (
	"encoding/xml"
	"strings"
)

// TwiML is written with encoding/xml rather than twilio-go's twiml package: that
// package pulls in another module (github.com/beevik/etree) and writes attributes
// in Go map order, so its output is not byte-stable for golden files.

// XMLHeader starts every TwiML document this package writes.
const XMLHeader = `<?xml version="1.0" encoding="UTF-8"?>`

// Voice settings for every <Say>: British English. "alice" is Twilio's basic
// voice that speaks en-GB.
const (
	sayVoice    = "alice"
	sayLanguage = "en-GB"
)

// Spoken prompts of the voice alert.
const (
	takeChargePrompt = "Press 1 to take charge."
	goodbye          = "Goodbye."
)

// MessageTwiML is the answer to an inbound SMS: XMLHeader +
// "<Response><Message>body</Message></Response>", the body XML-escaped (quotes,
// apostrophes, newlines and characters XML cannot carry included), or
// XMLHeader + "<Response/>" when body is empty: no reply.
func MessageTwiML(body string) string {
	if body == "" {
		return XMLHeader + "<Response/>"
	}
	var b strings.Builder
	b.WriteString(XMLHeader)
	b.WriteString("<Response><Message>")
	escape(&b, body)
	b.WriteString("</Message></Response>")
	return b.String()
}

// VoiceAlertTwiML is the TwiML of an alert call: it says text twice, asks the
// listener to press 1 to take charge (a <Gather numDigits="1"> that POSTs the
// digit to gatherAction), and says goodbye if nothing is pressed. An empty
// gatherAction leaves the action out: Twilio then posts to the document's own URL.
func VoiceAlertTwiML(text, gatherAction string) string {
	var b strings.Builder
	b.WriteString(XMLHeader)
	b.WriteString("\n<Response>\n")
	say(&b, text)
	b.WriteString(`<Pause length="1"/>` + "\n")
	say(&b, text)
	b.WriteString(`<Gather numDigits="1"`)
	if gatherAction != "" {
		b.WriteString(` action="`)
		escape(&b, gatherAction)
		b.WriteString(`"`)
	}
	b.WriteString(` method="POST">`)
	say(&b, takeChargePrompt)
	b.WriteString("</Gather>\n")
	say(&b, goodbye)
	b.WriteString("</Response>\n")
	return b.String()
}

// say writes one <Say> element and a newline.
func say(b *strings.Builder, text string) {
	b.WriteString(`<Say voice="` + sayVoice + `" language="` + sayLanguage + `">`)
	escape(b, text)
	b.WriteString("</Say>\n")
}

// escape writes s XML-escaped; the result is safe in text and in double-quoted
// attribute values.
func escape(b *strings.Builder, s string) {
	// EscapeText only fails when the writer does; a strings.Builder does not.
	_ = xml.EscapeText(b, []byte(s))
}

// SayTwiML is TwiML that says text once and hangs up: a reminder call to an
// officer, or the answer to a keypress.
func SayTwiML(text string) string {
	var b strings.Builder
	b.WriteString(XMLHeader)
	b.WriteString("\n<Response>\n")
	say(&b, text)
	b.WriteString("</Response>\n")
	return b.String()
}
