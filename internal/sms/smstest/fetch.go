package smstest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Statuses a GET of one message or call answers unless SetMessageStatus or
// SetCallStatus says otherwise: the fake is a network where everything arrives.
const (
	fetchedMessageStatus = "delivered"
	fetchedCallStatus    = "completed"
)

// messageState is a message's status as answered: status, and the Twilio error
// code (0 for none).
type messageState struct {
	status    string
	errorCode int
}

// SetMessageStatus makes later GETs of message sid, alone or in the lists,
// answer status ("sent", "delivered", "undelivered", "failed", ...) with
// error_code errorCode (null when 0) and Twilio's error_message for it. sid need
// not have been accepted yet (see NextMessageSID). Status "" restores the
// default: "delivered" alone, "sent" in the lists.
func (s *Server) SetMessageStatus(sid, status string, errorCode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == "" {
		delete(s.msgStatus, sid)
		return
	}
	s.msgStatus[sid] = messageState{status: status, errorCode: errorCode}
}

// SetCallStatus makes later GETs of call sid, alone or in the lists, answer
// status ("ringing", "in-progress", "completed", "busy", "no-answer",
// "failed", "canceled"); the lists' Status filter compares it. Status ""
// restores the default: "completed" alone, "ringing" in the lists.
func (s *Server) SetCallStatus(sid, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == "" {
		delete(s.callState, sid)
		return
	}
	s.callState[sid] = status
}

// messageStatus is what message sid is answered with: the status set for it,
// else def with no error code.
func (s *Server) messageStatus(sid, def string) messageState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.msgStatus[sid]; ok {
		return st
	}
	return messageState{status: def}
}

// callStatus is what call sid is answered with: the status set for it, else
// def.
func (s *Server) callStatus(sid, def string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.callState[sid]; ok {
		return st
	}
	return def
}

// handleFetchMessage answers GET Messages/{Sid}.json: one message the fake
// accepted, as the lists write it, with its status (see SetMessageStatus).
func (s *Server) handleFetchMessage(w http.ResponseWriter, r *http.Request) {
	sid, q, ok := s.fetch(w, r, "Message")
	if !ok {
		return
	}
	m, found := find(s.Sent(), func(m Message) bool { return m.SID == sid })
	if !found {
		s.refuseLookup(w, "Message", q, http.StatusNotFound, 20404)
		return
	}
	s.recordLookup("Message", q, http.StatusOK)
	writeJSON(w, http.StatusOK, s.messageJSON(m, s.messageStatus(sid, fetchedMessageStatus), twilioDate(m.At)))
}

// handleFetchCall answers GET Calls/{Sid}.json: one call the fake placed, as
// the lists write it, with its status (see SetCallStatus).
func (s *Server) handleFetchCall(w http.ResponseWriter, r *http.Request) {
	sid, q, ok := s.fetch(w, r, "Call")
	if !ok {
		return
	}
	c, found := find(s.Calls(), func(c CallRecord) bool { return c.SID == sid })
	if !found {
		s.refuseLookup(w, "Call", q, http.StatusNotFound, 20404)
		return
	}
	s.recordLookup("Call", q, http.StatusOK)
	writeJSON(w, http.StatusOK, s.callJSON(c, s.callStatus(sid, fetchedCallStatus), twilioDate(c.At)))
}

// fetch is what both GETs of one record do first: read the SID from the path
// ("{Sid}.json"), then check auth, account and injected faults as a GET of a
// list does. It returns the SID, the query recorded (with the SID under "Sid"),
// and false when it has already answered; a path not ending in ".json" is
// answered 404.
func (s *Server) fetch(w http.ResponseWriter, r *http.Request, resource string) (string, url.Values, bool) {
	sid, isJSON := strings.CutSuffix(r.PathValue("Sid"), ".json")
	q := r.URL.Query()
	q.Set("Sid", sid)
	q, ok := s.lookup(w, r, resource, q)
	if !ok {
		return "", nil, false
	}
	if !isJSON || sid == "" {
		s.refuseLookup(w, resource, q, http.StatusNotFound, 20404)
		return "", nil, false
	}
	return sid, q, true
}

// find returns the first of xs for which ok holds.
func find[T any](xs []T, ok func(T) bool) (T, bool) {
	if i := slices.IndexFunc(xs, ok); i >= 0 {
		return xs[i], true
	}
	var zero T
	return zero, false
}
