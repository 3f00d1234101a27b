package auth

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// TestRefusalsAudited: each kind of refusal writes an audit entry with the
// client's address, and a flood of refusals from one address writes a
// bounded number, the rest counted in the next entry.
func TestRefusalsAudited(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // 20 refusals a minute per address
	e := newEnv(t, cfg, nil, admin, clinician)
	session, me := e.signIn(admin, testPassword)
	const from = "127.0.0.2"
	tests := []struct {
		name   string
		rq     request
		status int
		actor  string
		target string
	}{
		{"no credentials", request{method: "POST", path: "/v1/thing"}, http.StatusUnauthorized,
			"(unauthenticated)", "POST /v1/thing: no credentials"},
		{"bad token", request{method: "GET", path: "/v1/thing/p-1", bearer: "pps_nonsense"}, http.StatusUnauthorized,
			"(unauthenticated)", "GET /v1/thing/{id}: unknown, revoked or disabled API token"},
		{"ended session", request{method: "GET", path: "/v1/session", session: "no-such-session"}, http.StatusUnauthorized,
			"(unauthenticated)", "GET /v1/session: unknown or ended session"},
		{"no CSRF token", request{method: "POST", path: "/v1/thing", session: session}, http.StatusForbidden,
			admin, "POST /v1/thing: missing or wrong CSRF token"},
		{"cross origin", request{method: "POST", path: "/v1/thing", session: session, csrf: me.CSRFToken, origin: foreignSite},
			http.StatusForbidden, admin, "POST /v1/thing: cross-origin request"},
		{"cross-origin sign-in", request{method: "POST", path: "/v1/session", origin: foreignSite,
			json: map[string]string{"username": admin, "password": testPassword}}, http.StatusForbidden,
			"(unauthenticated)", "POST /v1/session: cross-origin request"},
		{"not in care", request{method: "GET", path: "/v1/thing/p-2", bearer: e.token(clinician)}, http.StatusForbidden,
			clinician, "GET /v1/thing/{id}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Advance(time.Second)
			rq := tt.rq
			rq.from = from
			expect(t, tt.name, e.do(rq), tt.status)
			es := e.audit(registry.AuditFilter{Action: registry.ActionAccessDenied})
			if len(es) == 0 {
				t.Fatal("no access.denied entry")
			}
			got := es[len(es)-1]
			if got.Actor != tt.actor || got.Address != from || got.Target != tt.target || got.Outcome != registry.OutcomeDenied {
				t.Errorf("entry %+v, want actor %q, address %s, target %q, denied", got, tt.actor, from, tt.target)
			}
		})
	}

	// A flood from one address.
	e.clock.Advance(time.Minute)
	const flood = 1000
	before := len(e.audit(registry.AuditFilter{Action: registry.ActionAccessDenied}))
	for range flood {
		expect(t, "flood", e.do(request{method: "GET", path: "/v1/thing/p-1", from: "127.0.0.3"}), http.StatusUnauthorized)
	}
	written := len(e.audit(registry.AuditFilter{Action: registry.ActionAccessDenied})) - before
	if written != cfg.MaxRefusalAudits {
		t.Errorf("%d refusals from one address within a minute wrote %d entries, want %d", flood, written, cfg.MaxRefusalAudits)
	}
	// Another address is still audited meanwhile.
	expect(t, "from elsewhere", e.do(request{method: "GET", path: "/v1/thing/p-1", from: "127.0.0.4"}), http.StatusUnauthorized)
	if es := e.audit(registry.AuditFilter{Action: registry.ActionAccessDenied}); es[len(es)-1].Address != "127.0.0.4" {
		t.Errorf("last entry %+v, want one from 127.0.0.4", es[len(es)-1])
	}
	// A minute later, the flooding address's next entry says how many were not written.
	e.clock.Advance(time.Minute)
	expect(t, "after the minute", e.do(request{method: "GET", path: "/v1/thing/p-1", from: "127.0.0.3"}), http.StatusUnauthorized)
	es := e.audit(registry.AuditFilter{Action: registry.ActionAccessDenied})
	if last := es[len(es)-1]; last.Address != "127.0.0.3" || !strings.HasSuffix(last.Target, "(and 980 refusals from this source not recorded)") {
		t.Errorf("entry after the flood = %+v, want it to count 980 not recorded", last)
	}
}

// TestLockedSignInsBounded: sign-ins refused by the lock-out are audited
// like other refusals: a bounded number per address.
func TestLockedSignInsBounded(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	e := newEnv(t, cfg, nil, admin)
	for range cfg.MaxFailures {
		e.do(signInJSON(admin, wrongPass))
	}
	for range 100 {
		expect(t, "locked", e.do(signInJSON(admin, wrongPass)), http.StatusTooManyRequests)
	}
	if es := e.audit(registry.AuditFilter{Action: registry.ActionSignIn, Outcome: registry.OutcomeLocked}); len(es) != cfg.MaxRefusalAudits {
		t.Errorf("100 locked sign-ins wrote %d entries, want %d", len(es), cfg.MaxRefusalAudits)
	}
}
