package store

// keys builds every Redis key Vigil uses, one function per key. Keys that belong to a
// school carry the school in a hash tag ({school}), so every key one event touches
// lives in one Cluster slot and a single Lua script can change them all atomically.
type keys struct{ prefix string }

func (k keys) school(s string) string { return k.prefix + "{" + s + "}:" }

// Per school.
func (k keys) visit(s, id string) string     { return k.school(s) + "visit:" + id }
func (k keys) alert(s, id string) string     { return k.school(s) + "alert:" + id }
func (k keys) officerStates(s string) string { return k.school(s) + "ostates" } // hash by officer
func (k keys) openVisits(s string) string    { return k.school(s) + "visits:open" }
func (k keys) closedVisits(s string) string  { return k.school(s) + "visits:closed" } // zset by closed ms
func (k keys) openAlerts(s string) string    { return k.school(s) + "alerts:open" }
func (k keys) alerts(s string) string        { return k.school(s) + "alerts" } // zset by raised ms
func (k keys) code(s, code string) string    { return k.school(s) + "code:" + code }
func (k keys) timers(s string) string        { return k.school(s) + "timers" }
func (k keys) receiptChecks(s string) string { return k.school(s) + "rchecks" } // zset by next check ms
func (k keys) outbox(s string, prio int) string {
	return k.school(s) + "outbox:" + string(rune('0'+prio))
}
func (k keys) message(s, id string) string  { return k.school(s) + "msg:" + id }
func (k keys) inbound(s, sid string) string { return k.school(s) + "sms:" + sid }
func (k keys) audit(s string) string        { return k.school(s) + "audit" }

// Left by earlier versions, read and drained (README "Redis keys"): an officer's
// state as a key of its own, now a field of officerStates; and the set of open
// visits, now listed from the officer states.
func (k keys) officerState(s, o string) string { return k.school(s) + "ostate:" + o }

// Global: the directory and indexes looked up before the school is known.
func (k keys) schools() string                  { return k.prefix + "dir:schools" }
func (k keys) officers() string                 { return k.prefix + "dir:officers" }
func (k keys) phones() string                   { return k.prefix + "dir:phones" }
func (k keys) unknownReply(ph string) string    { return k.prefix + "unknown:" + ph }
func (k keys) twilioSID(sid string) string      { return k.prefix + "sid:" + sid }
func (k keys) inboundSchool(sid string) string  { return k.prefix + "smsschool:" + sid }
func (k keys) pendingReceipt(sid string) string { return k.prefix + "receipt:" + sid }
func (k keys) wake() string                     { return k.prefix + "wake" }        // pub/sub: timers
func (k keys) wakeOutbox() string               { return k.prefix + "wake:outbox" } // pub/sub: messages
func (k keys) heartbeat() string                { return k.prefix + "heartbeat" }
func (k keys) writeCheck() string               { return k.prefix + "write-check" }

// Timer members of a school's timer set.
func visitTimer(id string) string { return "v:" + id }
func alertTimer(id string) string { return "a:" + id }
