package smstest

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Lookup is one GET of the Messages.json or Calls.json list, or of one message
// (Messages/{Sid}.json) or call (Calls/{Sid}.json).
type Lookup struct {
	Resource   string     // "Messages" or "Calls" for a list; "Message" or "Call" for one
	Query      url.Values // filters and paging as sent; for one message or call, its SID under "Sid"
	HTTPStatus int        // what the fake answered (200 when it listed or found)
	At         time.Time
}

// Statuses the lists show: the fake does not model a message's or a call's
// progress, so every accepted message is listed as sent (date_sent = when it
// was accepted) and every call as ringing (start_time likewise). That is what
// Twilio's date filters, which look at date_sent and start_time, need to find
// them. A status given with SetMessageStatus or SetCallStatus is listed
// instead; the dates stay.
const (
	listedMessageStatus = "sent"
	listedCallStatus    = "ringing"
)

// Paging as Twilio does it: 50 a page unless PageSize says otherwise, at most
// 1000.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// Lookups returns every GET of the lists, and of single messages and calls, so
// far, in order.
func (s *Server) Lookups() []Lookup {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lookups)
}

// FailNextLookup makes the next n GETs (of the lists, or of one message or
// call) fail with httpStatus and twilioCode (with code 0 the body is an HTML
// error page). Sends are not affected; FailNext does not affect lookups.
func (s *Server) FailNextLookup(n, httpStatus, twilioCode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failLists = append(s.failLists, fault{httpStatus, twilioCode})
	}
}

// handleListMessages answers GET Messages.json: the messages accepted so far,
// newest first, filtered by To, From and DateSent (DateSent, DateSent<,
// DateSent>: by UTC day only, as Twilio compares them), one page at a time.
func (s *Server) handleListMessages(w http.ResponseWriter, r *http.Request) {
	q, ok := s.lookup(w, r, "Messages", r.URL.Query())
	if !ok {
		return
	}
	sentOn, ok := dayFilter(q, "DateSent")
	if !ok {
		s.refuseLookup(w, "Messages", q, http.StatusBadRequest, 20001)
		return
	}
	var items []Message
	for _, m := range newestFirst(s.Sent(), func(m Message) time.Time { return m.At }) {
		if match(q, "To", m.To) && match(q, "From", m.From) && sentOn(m.At) {
			items = append(items, m)
		}
	}
	writePage(s, w, q, "Messages", "messages", items,
		func(m Message) string { return m.SID },
		func(m Message) any {
			return s.messageJSON(m, s.messageStatus(m.SID, listedMessageStatus), twilioDate(m.At))
		})
}

// handleListCalls answers GET Calls.json: the calls placed so far, newest
// first, filtered by To, From, Status and StartTime (by UTC day). The fake
// gives no call an end_time (whatever SetCallStatus says), so an EndTime filter
// matches none.
func (s *Server) handleListCalls(w http.ResponseWriter, r *http.Request) {
	q, ok := s.lookup(w, r, "Calls", r.URL.Query())
	if !ok {
		return
	}
	startedOn, ok := dayFilter(q, "StartTime")
	if !ok {
		s.refuseLookup(w, "Calls", q, http.StatusBadRequest, 20001)
		return
	}
	if _, ok := dayFilter(q, "EndTime"); !ok {
		s.refuseLookup(w, "Calls", q, http.StatusBadRequest, 20001)
		return
	}
	ended := q.Has("EndTime") || q.Has("EndTime<") || q.Has("EndTime>")
	var items []CallRecord
	for _, c := range newestFirst(s.Calls(), func(c CallRecord) time.Time { return c.At }) {
		if !ended && match(q, "To", c.To) && match(q, "From", c.From) &&
			match(q, "Status", s.callStatus(c.SID, listedCallStatus)) && startedOn(c.At) {
			items = append(items, c)
		}
	}
	writePage(s, w, q, "Calls", "calls", items,
		func(c CallRecord) string { return c.SID },
		func(c CallRecord) any { return s.callJSON(c, s.callStatus(c.SID, listedCallStatus), twilioDate(c.At)) })
}

// lookup checks auth, account and injected faults for a GET, and records it
// (with q, what Lookup.Query shows) when it refuses it. It returns q, and false
// when it has already answered.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, resource string, q url.Values) (url.Values, bool) {
	if user, pass, ok := r.BasicAuth(); !ok || user != s.accountSID || pass != s.authToken {
		s.refuseLookup(w, resource, q, http.StatusUnauthorized, 20003)
		return nil, false
	}
	if r.PathValue("AccountSid") != s.accountSID {
		s.refuseLookup(w, resource, q, http.StatusNotFound, 20404)
		return nil, false
	}
	s.mu.Lock()
	var f fault
	if len(s.failLists) > 0 {
		f, s.failLists = s.failLists[0], s.failLists[1:]
	}
	s.mu.Unlock()
	if f.status != 0 {
		s.refuseLookup(w, resource, q, f.status, f.code)
		return nil, false
	}
	return q, true
}

// refuseLookup records a refused lookup and answers with Twilio's error body.
func (s *Server) refuseLookup(w http.ResponseWriter, resource string, q url.Values, status, code int) {
	s.recordLookup(resource, q, status)
	writeError(w, status, code)
}

func (s *Server) recordLookup(resource string, q url.Values, status int) {
	s.mu.Lock()
	s.lookups = append(s.lookups, Lookup{Resource: resource, Query: q, HTTPStatus: status, At: s.now()})
	s.notifyLocked()
	s.mu.Unlock()
}

// writePage answers one page of items as Twilio pages its 2010 lists: the
// records under key, page, page_size, start, end, uri, first_page_uri,
// next_page_uri and previous_page_uri (null at either end). Page numbers count
// from 0; a PageToken ("PA" + the SID of the previous page's last record, or
// "PB" + the next page's first) places the page after (or before) that record,
// as Twilio's tokens do, so that records created meanwhile do not shift it.
func writePage[T any](s *Server, w http.ResponseWriter, q url.Values, resource, key string, items []T, sid func(T) string, render func(T) any) {
	size := defaultPageSize
	if v := q.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.refuseLookup(w, resource, q, http.StatusBadRequest, 20001)
			return
		}
		size = min(n, maxPageSize)
	}
	page := 0
	if v := q.Get("Page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.refuseLookup(w, resource, q, http.StatusBadRequest, 20001)
			return
		}
		page = n
	}
	start := page * size
	switch tok := q.Get("PageToken"); {
	case strings.HasPrefix(tok, "PA"):
		if i := slices.IndexFunc(items, func(x T) bool { return sid(x) == tok[2:] }); i >= 0 {
			start = i + 1
		}
	case strings.HasPrefix(tok, "PB"):
		if i := slices.IndexFunc(items, func(x T) bool { return sid(x) == tok[2:] }); i >= 0 {
			start = max(i-size, 0)
		}
	}
	start = min(start, len(items))
	end := min(start+size, len(items))
	records := make([]any, 0, end-start)
	for _, x := range items[start:end] {
		records = append(records, render(x))
	}

	filters := url.Values{}
	for k, vs := range q {
		if k != "Page" && k != "PageSize" && k != "PageToken" {
			filters[k] = vs
		}
	}
	path := "/" + apiVersion + "/Accounts/" + s.accountSID + "/" + resource + ".json"
	pageURI := func(page int, token string) string {
		v := url.Values{}
		for k, vs := range filters {
			v[k] = vs
		}
		v.Set("PageSize", strconv.Itoa(size))
		v.Set("Page", strconv.Itoa(page))
		if token != "" {
			v.Set("PageToken", token)
		}
		return path + "?" + v.Encode()
	}
	var next, prev any
	if end < len(items) {
		next = pageURI(page+1, "PA"+sid(items[end-1]))
	}
	if start > 0 && page > 0 {
		prev = pageURI(page-1, "PB"+sid(items[start]))
	}
	s.recordLookup(resource, q, http.StatusOK)
	writeJSON(w, http.StatusOK, map[string]any{
		key:                 records,
		"page":              page,
		"page_size":         size,
		"start":             start,
		"end":               max(end-1, start),
		"uri":               pageURI(page, q.Get("PageToken")),
		"first_page_uri":    pageURI(0, ""),
		"next_page_uri":     next,
		"previous_page_uri": prev,
	})
}

// messageJSON is a message as Twilio writes it, in the answer to a create
// (dateSent nil), in lists and alone: with st's status, and its error code
// (null when 0) and Twilio's text for it.
func (s *Server) messageJSON(m Message, st messageState, dateSent any) map[string]any {
	uri := "/" + apiVersion + "/Accounts/" + s.accountSID + "/Messages/" + m.SID + ".json"
	date := twilioDate(m.At)
	var code, text any
	if st.errorCode != 0 {
		code, text = st.errorCode, errorMessage(st.errorCode)
	}
	return map[string]any{
		"account_sid":           s.accountSID,
		"api_version":           apiVersion,
		"body":                  m.Body,
		"date_created":          date,
		"date_sent":             dateSent,
		"date_updated":          date,
		"direction":             "outbound-api",
		"error_code":            code,
		"error_message":         text,
		"from":                  nullIfEmpty(m.From),
		"messaging_service_sid": nullIfEmpty(m.MessagingServiceSID),
		"num_media":             "0",
		"num_segments":          strconv.Itoa(m.Segments),
		"price":                 nil,
		"price_unit":            "USD",
		"sid":                   m.SID,
		"status":                st.status,
		"subresource_uris":      map[string]string{"media": strings.TrimSuffix(uri, ".json") + "/Media.json"},
		"to":                    m.To,
		"uri":                   uri,
	}
}

// callJSON is a call as Twilio writes it, in the answer to a create (startTime
// nil), in lists and alone.
func (s *Server) callJSON(c CallRecord, status string, startTime any) map[string]any {
	uri := "/" + apiVersion + "/Accounts/" + s.accountSID + "/Calls/" + c.SID + ".json"
	date := twilioDate(c.At)
	return map[string]any{
		"account_sid":      s.accountSID,
		"annotation":       nil,
		"answered_by":      nil,
		"api_version":      apiVersion,
		"caller_name":      nil,
		"date_created":     date,
		"date_updated":     date,
		"direction":        "outbound-api",
		"duration":         nil,
		"end_time":         nil,
		"forwarded_from":   nil,
		"from":             c.From,
		"from_formatted":   c.From,
		"group_sid":        nil,
		"parent_call_sid":  nil,
		"phone_number_sid": nil,
		"price":            nil,
		"price_unit":       "USD",
		"queue_time":       "0",
		"sid":              c.SID,
		"start_time":       startTime,
		"status":           status,
		"subresource_uris": map[string]string{},
		"to":               c.To,
		"to_formatted":     c.To,
		"trunk_sid":        nil,
		"uri":              uri,
	}
}

// twilioDate writes t as Twilio's 2010 API does (RFC 2822, UTC).
func twilioDate(t time.Time) string { return t.UTC().Format(time.RFC1123Z) }

// newestFirst returns xs sorted by at, newest first (the later recorded first
// among equals), as Twilio orders its lists.
func newestFirst[T any](xs []T, at func(T) time.Time) []T {
	slices.Reverse(xs)
	slices.SortStableFunc(xs, func(a, b T) int { return cmp.Compare(at(b).UnixNano(), at(a).UnixNano()) })
	return xs
}

// match reports whether the filter name, when given, equals v.
func match(q url.Values, name, v string) bool {
	return !q.Has(name) || q.Get(name) == v
}

// dayFilter reads the date filters name, name< and name> (Twilio's "on",
// "on or before" and "on or after") and returns a test of an instant against
// them. Twilio compares whole UTC days: a time given with the date is ignored
// (twilio-go sends RFC 3339 date-times; people send YYYY-MM-DD). It returns
// false when a value is not a date.
func dayFilter(q url.Values, name string) (func(time.Time) bool, bool) {
	type bound struct {
		day time.Time
		cmp func(c int) bool
	}
	var bounds []bound
	for suffix, ok := range map[string]func(int) bool{
		"":  func(c int) bool { return c == 0 },
		"<": func(c int) bool { return c <= 0 },
		">": func(c int) bool { return c >= 0 },
	} {
		v := q.Get(name + suffix)
		if v == "" {
			continue
		}
		day, err := parseDay(v)
		if err != nil {
			return nil, false
		}
		bounds = append(bounds, bound{day, ok})
	}
	return func(t time.Time) bool {
		d := utcDay(t)
		for _, b := range bounds {
			if !b.cmp(d.Compare(b.day)) {
				return false
			}
		}
		return true
	}, true
}

// parseDay reads a date filter's value: YYYY-MM-DD, or an RFC 3339 date-time
// whose UTC day counts.
func parseDay(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return utcDay(t), nil
	}
	return time.Parse(time.DateOnly, v)
}

func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
