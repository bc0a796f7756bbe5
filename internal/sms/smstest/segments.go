package smstest

import (
	"strings"
	"unicode/utf16"
)

// GSM 03.38 alphabet: the basic set costs one septet a character, the extension
// set two (escape + character).
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtension = "\f^{}\\[~]|€"
)

// Segments returns how many SMS segments body takes and whether it is GSM-7.
// A GSM-7 body fits 160 septets in one segment and 153 per segment when split;
// any other body is sent as UCS-2: 70 UTF-16 units in one, 67 per segment when
// split. An empty body takes one segment.
func Segments(body string) (segments int, gsm7 bool) {
	septets := 0
	gsm7 = true
	for _, r := range body {
		switch {
		case strings.ContainsRune(gsmBasic, r):
			septets++
		case strings.ContainsRune(gsmExtension, r):
			septets += 2
		default:
			gsm7 = false
		}
	}
	if gsm7 {
		return split(septets, 160, 153), true
	}
	return split(len(utf16.Encode([]rune(body))), 70, 67), false
}

func split(n, single, multi int) int {
	if n <= single {
		return 1
	}
	return (n + multi - 1) / multi
}
