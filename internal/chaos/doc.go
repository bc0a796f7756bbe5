// Package chaos holds Vigil's chaos test (issue 5) and nothing else: the real
// binary, built into a temporary directory, runs as three replicas on one
// redis-server with AOF on, all sending through one fake Twilio, while thousands of
// visits fall due and the test kills replicas (SIGKILL), pauses one past its leases
// (SIGSTOP, SIGCONT) and kills and restarts Redis. It then reports every alert and
// reminder expected, sent, missing and duplicated, and how late they went out.
//
// It is behind the build tag "chaos" (and VIGIL_CHAOS says which variant), so
// that `make test` does not run it:
//
//	make chaos-short   # VIGIL_CHAOS=short: about 1000 visits, 1-2 minutes (CI)
//	make chaos         # VIGIL_CHAOS=long: 3000 visits due over 3 minutes
//
// VIGIL_CHAOS_SEED repeats a run's random choices; VIGIL_CHAOS_RACE=1 builds the
// binary with the race detector (a race a replica reports fails the test);
// VIGIL_CHAOS_SENDS_PER_SECOND sets twilio.max_sends_per_second (default 2000).
package chaos
