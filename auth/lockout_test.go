package auth

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// fromAddr returns rq sent from the loopback address addr.
func fromAddr(rq request, addr string) request { rq.from = addr; return rq }

// TestLockoutPerAddress: a stranger's failures lock the account for the
// stranger's address only; the owner still signs in from their own.
func TestLockoutPerAddress(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // 3 failures
	e := newEnv(t, cfg, nil, admin)
	const stranger = "127.0.0.2"
	for i := range cfg.MaxFailures {
		e.clock.Advance(time.Second)
		expect(t, "stranger's guess "+strconv.Itoa(i+1), e.do(fromAddr(signInJSON(admin, wrongPass), stranger)), http.StatusUnauthorized)
	}
	e.clock.Advance(time.Second)
	expect(t, "the stranger, even with the right password", e.do(fromAddr(signInJSON(admin, testPassword), stranger)), http.StatusTooManyRequests)
	// The owner, from 127.0.0.1, is not locked out.
	e.clock.Advance(time.Second)
	e.signIn(admin, testPassword)
	// Nor does the owner's success free the stranger's address.
	e.clock.Advance(time.Second)
	expect(t, "the stranger after the owner's sign-in", e.do(fromAddr(signInJSON(admin, wrongPass), stranger)), http.StatusTooManyRequests)
	es := e.audit(registry.AuditFilter{Action: registry.ActionSignIn, Outcome: registry.OutcomeLocked})
	if len(es) != 2 || es[0].Address != stranger || es[1].Address != stranger {
		t.Errorf("locked entries = %+v, want two from %s", es, stranger)
	}
}

// TestGlobalLockWithBackoff: failures from many addresses lock the account
// for every address, for a delay that doubles with each further failure,
// with an audit entry and a listing admins see.
func TestGlobalLockWithBackoff(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // 3 per address, 10 in all, 1m backoff
	e := newEnv(t, cfg, nil, admin, clinician)
	adminToken := e.token(admin) // API tokens are not sign-ins: an admin still gets in
	fail := func(addr string) {
		t.Helper()
		e.clock.Advance(time.Second)
		expect(t, "guess from "+addr, e.do(fromAddr(signInJSON(clinician, wrongPass), addr)), http.StatusUnauthorized)
	}
	// 9 failures from three addresses: no global lock yet.
	for _, addr := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		for range cfg.MaxFailures {
			fail(addr)
		}
	}
	if es := e.audit(registry.AuditFilter{Action: registry.ActionSignInLock}); len(es) != 0 {
		t.Fatalf("signin.lock entries after 9 failures: %+v", es)
	}
	// Bob still signs in from his own address; this does not forgive
	// the strangers' failures, which were from other addresses.
	e.clock.Advance(time.Second)
	e.signIn(clinician, testPassword)
	for _, addr := range []string{"127.0.0.5", "127.0.0.6", "127.0.0.7"} {
		for range cfg.MaxFailures {
			fail(addr)
		}
	}
	fail("127.0.0.8")
	// The 10th failure locked bob for every address, 127.0.0.1 included.
	e.clock.Advance(time.Second)
	resp := e.do(signInJSON(clinician, testPassword))
	expect(t, "bob from his own address during the global lock", resp, http.StatusTooManyRequests)
	if got := resp.Header.Get("Retry-After"); got != "59" {
		t.Errorf("Retry-After %q, want 59 (1m after the last failure)", got)
	}
	es := e.audit(registry.AuditFilter{Action: registry.ActionSignInLock})
	if len(es) != 1 || es[0].Actor != clinician || es[0].Outcome != registry.OutcomeLocked ||
		!strings.Contains(es[0].Target, "10 failed sign-ins from 4 addresses") {
		t.Fatalf("signin.lock entries = %+v, want one for bob: 10 failures from 4 addresses", es)
	}
	locks := func() []SignInLock {
		t.Helper()
		resp := e.do(request{method: "GET", path: "/v1/signin/locks", bearer: adminToken})
		expect(t, "GET /v1/signin/locks", resp, http.StatusOK)
		var body struct{ Locks []SignInLock }
		if err := json.Unmarshal([]byte(resp.body), &body); err != nil {
			t.Fatal(err)
		}
		return body.Locks
	}
	if l := locks(); len(l) != 1 || l[0].Username != clinician || l[0].Failures != 10 || l[0].Addresses != 4 {
		t.Errorf("locks = %+v, want bob's", l)
	}
	expect(t, "locks for a clinician", e.do(request{method: "GET", path: "/v1/signin/locks", bearer: e.token(clinician)}), http.StatusForbidden)

	// After the delay, one more failure doubles it.
	e.clock.Advance(time.Minute)
	fail("127.0.0.9")
	e.clock.Advance(time.Minute + 30*time.Second)
	expect(t, "1.5m after the 11th failure", e.do(signInJSON(clinician, testPassword)), http.StatusTooManyRequests)
	if es := e.audit(registry.AuditFilter{Action: registry.ActionSignInLock}); len(es) != 2 {
		t.Errorf("signin.lock entries = %d, want 2 (the lock grew)", len(es))
	}
	e.clock.Advance(31 * time.Second)
	e.signIn(clinician, testPassword)
	if l := locks(); len(l) != 0 {
		t.Errorf("locks after bob signed in = %+v, want none", l)
	}
}

// TestOnCallNotLockedByStrangers: however many strangers guess at an
// on-call account, from however many addresses, its owner signs in from
// their own address.
func TestOnCallNotLockedByStrangers(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	e := newEnv(t, cfg, nil, admin, oncall)
	for i := 2; i <= 7; i++ {
		addr := "127.0.0." + strconv.Itoa(i)
		for range cfg.MaxFailures + 1 {
			e.clock.Advance(time.Second)
			e.do(fromAddr(signInJSON(oncall, wrongPass), addr))
		}
	}
	e.clock.Advance(time.Second)
	e.signIn(oncall, testPassword)
	if es := e.audit(registry.AuditFilter{Action: registry.ActionSignInLock}); len(es) != 0 {
		t.Errorf("signin.lock entries for an on-call account: %+v", es)
	}
	// Each stranger's address is still locked for it.
	expect(t, "a stranger", e.do(fromAddr(signInJSON(oncall, testPassword), "127.0.0.2")), http.StatusTooManyRequests)
}
