package console

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-safety/vigil/internal/config"
	"github.com/vigil-safety/vigil/internal/service"
	"github.com/vigil-safety/vigil/internal/store"
)

// Phone keeps the last messages of the console SMS driver for the demo mode's phone
// page. It is an io.Writer to put between the driver and its output: it passes every
// write on and reads each one as one entry (the driver writes each entry in one
// piece, in the format sms.Console documents). It also keeps the SMS sent from the
// phone page, with their replies. It is safe for concurrent use.
type Phone struct {
	w   io.Writer
	max int
	now func() time.Time

	mu   sync.Mutex
	seq  int
	msgs []PhoneMessage
}

// PhoneMessage is one entry of the phone page.
type PhoneMessage struct {
	Seq int
	At  time.Time
	// Dir is "out" (Vigil sent it), "in" (sent from the phone page) or "reply".
	Dir  string
	Kind string // sms or call
	SID  string
	To   string
	From string
	Head string // the rest of the driver's header (validity, call URL)
	Body string
}

// NewPhone returns a Phone that passes writes on to w and keeps the last max
// entries (0: 200).
func NewPhone(w io.Writer, max int, now func() time.Time) *Phone {
	if w == nil {
		w = io.Discard
	}
	if max <= 0 {
		max = 200
	}
	if now == nil {
		now = time.Now
	}
	return &Phone{w: w, max: max, now: now}
}

// Write records one console entry and passes it on.
func (p *Phone) Write(b []byte) (int, error) {
	p.record(parseConsoleEntry(string(b)))
	return p.w.Write(b)
}

func (p *Phone) record(m PhoneMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	m.Seq = p.seq
	if m.At.IsZero() {
		m.At = p.now()
	}
	p.msgs = append(p.msgs, m)
	if len(p.msgs) > p.max {
		p.msgs = append([]PhoneMessage(nil), p.msgs[len(p.msgs)-p.max:]...)
	}
}

// Messages lists the entries kept, newest first.
func (p *Phone) Messages() []PhoneMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PhoneMessage, len(p.msgs))
	for i, m := range p.msgs {
		out[len(p.msgs)-1-i] = m
	}
	return out
}

// parseConsoleEntry reads "[sms] CONSOLE-1 to=+44... validity=10m0s | body", or the
// header alone followed by body lines indented by four spaces.
func parseConsoleEntry(s string) PhoneMessage {
	m := PhoneMessage{Dir: "out"}
	s = strings.TrimRight(s, "\n")
	head, rest, _ := strings.Cut(s, "\n")
	if h, body, ok := strings.Cut(head, " | "); ok {
		head, m.Body = h, body
	} else {
		var lines []string
		for l := range strings.SplitSeq(rest, "\n") {
			lines = append(lines, strings.TrimPrefix(l, "    "))
		}
		m.Body = strings.Join(lines, "\n")
	}
	fields := strings.Fields(head)
	var extra []string
	for i, f := range fields {
		switch {
		case i == 0 && strings.HasPrefix(f, "[") && strings.HasSuffix(f, "]"):
			m.Kind = strings.Trim(f, "[]")
		case i == 1:
			m.SID = f
		case strings.HasPrefix(f, "to="):
			m.To = strings.TrimPrefix(f, "to=")
		default:
			extra = append(extra, f)
		}
	}
	m.Head = strings.Join(extra, " ")
	return m
}

type phoneNumber struct {
	Phone, Label string
}

type phoneData struct {
	Numbers  []phoneNumber
	Messages []phoneRow
	From     string
	Version  string
}

type phoneRow struct {
	PhoneMessage
	Who, Time string
}

func (h *Handler) loadPhone(r *http.Request, u *store.User) (*phoneData, error) {
	dir, err := h.loadDirectory(r.Context(), u)
	if err != nil {
		return nil, err
	}
	d := &phoneData{From: r.URL.Query().Get("from")}
	names := map[string]string{}
	for _, o := range dir.sortedOfficers() {
		d.Numbers = append(d.Numbers, phoneNumber{o.Phone, o.Name + " (officer) " + o.Phone})
		names[o.Phone] = o.Name
	}
	for _, id := range dir.order {
		sc := dir.schools[id]
		for _, l := range sortedLists(&sc.School) {
			for _, c := range sc.Contacts[l] {
				if _, ok := names[c.Phone]; ok {
					continue
				}
				names[c.Phone] = c.Name
				d.Numbers = append(d.Numbers, phoneNumber{c.Phone, c.Name + " (" + l + ") " + c.Phone})
			}
		}
	}
	for _, m := range h.o.Phone.Messages() {
		who := m.To
		if m.Dir == "in" {
			who = m.From
		}
		if n, ok := names[who]; ok {
			who = n + " " + who
		} else if !can(u, RoleTrustAdmin) {
			continue // another school's number
		}
		d.Messages = append(d.Messages, phoneRow{PhoneMessage: m, Who: who, Time: m.At.In(h.o.Location).Format("15:04:05")})
	}
	// Entries are only ever added: the newest one and the count say what changed.
	if len(d.Messages) > 0 {
		d.Version = strconv.Itoa(d.Messages[0].Seq) + "-" + strconv.Itoa(len(d.Messages))
	}
	return d, nil
}

func (h *Handler) phone(w http.ResponseWriter, r *http.Request, u *store.User) {
	d, err := h.loadPhone(r, u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "phone", u, "Phone", d)
}

func (h *Handler) phoneState(w http.ResponseWriter, r *http.Request, u *store.User) {
	d, err := h.loadPhone(r, u)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "could not read the phone"})
		return
	}
	html, err := h.fragment("phone", "live", d)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "could not render the phone"})
		return
	}
	writeJSON(w, http.StatusOK, boardState{Version: d.Version, Now: h.o.Now().UnixMilli(), Alerts: []string{}, HTML: html})
}

// phoneSend hands an SMS to the service as if the number had sent it (no Twilio,
// no signature: the sign-in and role stand for it).
func (h *Handler) phoneSend(w http.ResponseWriter, r *http.Request, u *store.User) {
	if err := r.ParseForm(); err != nil {
		h.done(w, r, "/phone", invalid("the form could not be read"), "")
		return
	}
	d, err := h.loadPhone(r, u)
	if err != nil {
		h.internal(w, r, err)
		return
	}
	raw := r.PostForm.Get("from")
	from, err := config.NormalizePhone(raw, h.region())
	allowed := false
	for _, n := range d.Numbers {
		allowed = allowed || n.Phone == from
	}
	if err != nil || (!allowed && !can(u, RoleTrustAdmin)) {
		h.done(w, r, "/phone", invalid("choose one of your directory's numbers"), "")
		return
	}
	body := strings.TrimSpace(r.PostForm.Get("body"))
	if body == "" {
		h.done(w, r, "/phone?from="+url.QueryEscape(from), invalid("write the text to send"), "")
		return
	}
	sid := make([]byte, 16)
	_, _ = rand.Read(sid)
	h.o.Phone.record(PhoneMessage{Dir: "in", Kind: "sms", From: from, Body: body})
	reply, err := h.o.Service.HandleSMS(r.Context(), service.InboundSMS{From: from, Body: body, SID: "SMWEB" + hex.EncodeToString(sid)})
	if err != nil {
		h.done(w, r, "/phone?from="+url.QueryEscape(from), err, "")
		return
	}
	if reply != "" {
		h.o.Phone.record(PhoneMessage{Dir: "reply", Kind: "sms", To: from, Body: reply})
	}
	h.log.Info("demo SMS sent from the phone page", "by", u.Name)
	http.Redirect(w, r, "/phone?from="+url.QueryEscape(from), http.StatusSeeOther)
}

func (h *Handler) region() string {
	if h.o.Directory != nil {
		return h.o.Directory.region
	}
	return "GB"
}
