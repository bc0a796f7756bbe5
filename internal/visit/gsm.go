package visit

import (
	"strings"
	"unicode/utf8"
)

// gsmBasic is the GSM 03.38 basic character set: text made only of these (and of
// the extension table below, two septets each) is sent as GSM-7, 160 per segment.
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

const gsmExtension = "^{}\\[~]|€"

var gsmReplacements = strings.NewReplacer(
	"\u2018", "'", "\u2019", "'", "\u201a", "'", "\u201b", "'",
	"\u201c", "\"", "\u201d", "\"", "\u201e", "\"",
	"\u2013", "-", "\u2014", "-", "\u2212", "-",
	"\u2026", "...", "\u00a0", " ", "\t", " ",
)

// GSM rewrites s into the GSM-7 alphabet: curly quotes and dashes become their plain
// forms and anything else outside the alphabet (emoji, most accents) becomes '?', so
// a message never silently switches to UCS-2 and 70-character segments.
func GSM(s string) string {
	s = gsmReplacements.Replace(s)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if strings.ContainsRune(gsmBasic, r) || strings.ContainsRune(gsmExtension, r) {
			b.WriteRune(r)
			continue
		}
		b.WriteByte('?')
	}
	return b.String()
}

// Septets is the length of s in GSM-7 septets (extension characters count two).
func Septets(s string) int {
	n := 0
	for _, r := range s {
		n++
		if strings.ContainsRune(gsmExtension, r) {
			n++
		}
	}
	return n
}

// clip shortens s to at most n characters, marking the cut with "..".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 2 {
		return string([]rune(s)[:n])
	}
	return strings.TrimSpace(string([]rune(s)[:n-2])) + ".."
}
