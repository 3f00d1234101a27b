package auth

import (
	"fmt"
	"net/http"
	"time"

	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// locked judges the counts of a sign-in attempt: whether it is refused
// without checking the password, and when to try again. An on-call
// account is judged on its own failures from this address only.
func (a *Auth) locked(c registry.SignInCounts, onCall bool, now time.Time) (retry time.Duration, locked bool) {
	if c.AccountAddress >= a.cfg.MaxFailures {
		return a.cfg.LockoutWindow, true
	}
	if onCall {
		return 0, false
	}
	if c.Address >= a.cfg.MaxAddressFailures {
		return a.cfg.LockoutWindow, true
	}
	if until := a.globalUntil(c); now.Before(until) {
		return until.Sub(now), true
	}
	return 0, false
}

// globalUntil is when an account's lock for every address ends (zero
// when it has none): GlobalBackoff after its last failure once it has
// GlobalFailures, doubled for each failure beyond, at most LockoutWindow.
func (a *Auth) globalUntil(c registry.SignInCounts) time.Time {
	if c.Account < a.cfg.GlobalFailures || c.LastFailure.IsZero() {
		return time.Time{}
	}
	d := a.cfg.GlobalBackoff << min(c.Account-a.cfg.GlobalFailures, 20)
	return c.LastFailure.Add(min(d, a.cfg.LockoutWindow))
}

// noticeGlobalLock writes the signin.lock audit entry when the failure
// just recorded has locked the account for every address, or made its
// lock longer. An admin finds it in the audit log and in GET
// /v1/signin/locks.
func (a *Auth) noticeGlobalLock(r *http.Request, username, address string, since time.Time) {
	ctx := r.Context()
	c, err := a.reg.SignInCounts(ctx, username, "", since)
	if err != nil {
		a.log.Error("counting sign-in failures failed", "err", err)
		return
	}
	until := a.globalUntil(c)
	if until.IsZero() {
		return
	}
	a.log.Warn("account locked for every address after failed sign-ins", "failures", c.Account, "addresses", c.AccountAddresses)
	if err := a.reg.Audit(ctx, registry.AuditEntry{Actor: username, Address: address, Action: registry.ActionSignInLock,
		Target: fmt.Sprintf("every address until %s: %d failed sign-ins from %d addresses",
			until.UTC().Format(time.RFC3339), c.Account, c.AccountAddresses),
		Outcome: registry.OutcomeLocked}); err != nil {
		a.log.Error("audit failed", "err", err)
	}
}

// SignInLock is an account locked for every address, as GET
// /v1/signin/locks lists it.
type SignInLock struct {
	Username  string    `json:"username"`
	Until     time.Time `json:"until"`
	Failures  int       `json:"failures"`  // since its last successful sign-in, within the lock-out window
	Addresses int       `json:"addresses"` // how many addresses they came from
}

// locks answers the accounts that are locked for every address now.
func (a *Auth) locks(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := a.now()
	since := now.Add(-a.cfg.LockoutWindow)
	es, err := a.reg.AuditEntries(ctx, registry.AuditFilter{Action: registry.ActionSignInLock, Since: since})
	if err != nil {
		a.log.Error("reading sign-in locks failed", "err", err)
		httpx.Error(w, http.StatusServiceUnavailable, "cannot read the sign-in locks now: try again")
		return
	}
	out := []SignInLock{}
	seen := map[string]bool{}
	for _, e := range es {
		if seen[e.Actor] {
			continue
		}
		seen[e.Actor] = true
		c, err := a.reg.SignInCounts(ctx, e.Actor, "", since)
		if err != nil {
			a.log.Error("reading sign-in locks failed", "err", err)
			httpx.Error(w, http.StatusServiceUnavailable, "cannot read the sign-in locks now: try again")
			return
		}
		if until := a.globalUntil(c); now.Before(until) {
			out = append(out, SignInLock{Username: e.Actor, Until: until.UTC(), Failures: c.Account, Addresses: c.AccountAddresses})
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"locks": out})
}
