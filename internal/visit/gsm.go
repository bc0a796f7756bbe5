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

// gsmLetters maps a Latin letter outside the alphabet to the letters it is read as
// without its accents (the letter Unicode decomposes it into, or its usual spelling
// for the few that do not decompose: Ł, Đ, Œ, Þ). Made once from gsmUnaccented.
var gsmLetters = func() map[rune]string {
	m := map[rune]string{}
	for _, x := range gsmUnaccented {
		for _, r := range x.from {
			m[r] = x.to
		}
	}
	return m
}()

// gsmUnaccented lists, for each plain spelling, the letters (Latin-1, Latin
// Extended-A and -B, Latin Extended Additional) read as it; those the alphabet has
// (é, ñ, ü, Å ...) are not here and stay as they are.
var gsmUnaccented = []struct{ to, from string }{
	{"A", "ÀÁÂÃĀĂĄǍǞǠǺȀȂȦḀẠẢẤẦẨẪẬẮẰẲẴẶ"},
	{"B", "ḂḄḆ"},
	{"C", "ĆĈĊČḈ"},
	{"D", "ĎḊḌḎḐḒĐ"},
	{"E", "ÈÊËĒĔĖĘĚȄȆȨḔḖḘḚḜẸẺẼẾỀỂỄỆ"},
	{"F", "Ḟ"},
	{"G", "ĜĞĠĢǦǴḠ"},
	{"H", "ĤȞḢḤḦḨḪĦ"},
	{"I", "ÌÍÎÏĨĪĬĮİǏȈȊḬḮỈỊ"},
	{"J", "Ĵ"},
	{"K", "ĶǨḰḲḴ"},
	{"L", "ĹĻĽḶḸḺḼŁ"},
	{"M", "ḾṀṂ"},
	{"N", "ŃŅŇǸṄṆṈṊ"},
	{"O", "ÒÓÔÕŌŎŐƠǑǪǬȌȎȪȬȮȰṌṎṐṒỌỎỐỒỔỖỘỚỜỞỠỢ"},
	{"OE", "Œ"},
	{"P", "ṔṖ"},
	{"R", "ŔŖŘȐȒṘṚṜṞ"},
	{"S", "ŚŜŞŠȘṠṢṤṦṨ"},
	{"T", "ŢŤȚṪṬṮṰ"},
	{"Th", "Þ"},
	{"U", "ÙÚÛŨŪŬŮŰŲƯǓǕǗǙǛȔȖṲṴṶṸṺỤỦỨỪỬỮỰ"},
	{"V", "ṼṾ"},
	{"W", "ŴẀẂẄẆẈ"},
	{"X", "ẊẌ"},
	{"Y", "ÝŶŸȲẎỲỴỶỸ"},
	{"Z", "ŹŻŽẐẒẔ"},
	{"a", "áâãāăąǎǟǡǻȁȃȧḁạảấầẩẫậắằẳẵặ"},
	{"b", "ḃḅḇ"},
	{"c", "çćĉċčḉ"},
	{"d", "ďḋḍḏḑḓđð"},
	{"e", "êëēĕėęěȅȇȩḕḗḙḛḝẹẻẽếềểễệ"},
	{"f", "ḟ"},
	{"g", "ĝğġģǧǵḡ"},
	{"h", "ĥȟḣḥḧḩḫẖħ"},
	{"i", "íîïĩīĭįǐȉȋḭḯỉịı"},
	{"j", "ĵǰ"},
	{"k", "ķǩḱḳḵ"},
	{"l", "ĺļľḷḹḻḽł"},
	{"m", "ḿṁṃ"},
	{"n", "ńņňǹṅṇṉṋ"},
	{"o", "óôõōŏőơǒǫǭȍȏȫȭȯȱṍṏṑṓọỏốồổỗộớờởỡợ"},
	{"oe", "œ"},
	{"p", "ṕṗ"},
	{"r", "ŕŗřȑȓṙṛṝṟ"},
	{"s", "śŝşšșṡṣṥṧṩ"},
	{"t", "ţťțṫṭṯṱẗ"},
	{"th", "þ"},
	{"u", "úûũūŭůűųưǔǖǘǚǜȕȗṳṵṷṹṻụủứừửữự"},
	{"v", "ṽṿ"},
	{"w", "ŵẁẃẅẇẉẘ"},
	{"x", "ẋẍ"},
	{"y", "ýÿŷȳẏẙỳỵỷỹ"},
	{"z", "źżžẑẓẕ"},
	{"Æ", "ǢǼ"},
	{"Ø", "Ǿ"},
	{"æ", "ǣǽ"},
	{"ø", "ǿ"},
}

func inGSM(r rune) bool {
	return strings.ContainsRune(gsmBasic, r) || strings.ContainsRune(gsmExtension, r)
}

// GSM rewrites s into the GSM-7 alphabet: curly quotes and dashes become their plain
// forms, a letter with an accent the alphabet lacks loses the accent (Łódź → Lodz,
// Zoë → Zoe; é, ñ, ü and the others the alphabet has stay), and anything else
// outside it (emoji, other scripts) becomes '?', so a message never silently
// switches to UCS-2 and 70-character segments, and a place or a name stays readable.
func GSM(s string) string {
	s = gsmReplacements.Replace(s)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch to, ok := gsmLetters[r]; {
		case inGSM(r):
			b.WriteRune(r)
		case ok:
			b.WriteString(to)
		default:
			b.WriteByte('?')
		}
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
