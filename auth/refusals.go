package auth

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// refusalLimiter bounds the audit entries written for refusals from one
// source (an address, or a signed-in staff member): at most perMinute in
// each minute, so that nobody can flood the append-only audit log by
// being refused. What it suppresses is counted, and said in the source's
// next entry.
type refusalLimiter struct {
	perMinute int

	mu    sync.Mutex
	addrs map[string]*refusalWindow // by source; guarded by mu; at most maxRefusalAddresses
}

type refusalWindow struct {
	start      time.Time // the minute being counted
	written    int       // entries written in it
	suppressed int       // entries not written since the last one that was
}

// maxRefusalAddresses bounds the sources remembered: beyond, those whose
// minute has passed are forgotten, and if none has, every source is.
const maxRefusalAddresses = 10000

// allow reports whether an entry for a refusal from source may be
// written at now, and how many were suppressed before it.
func (l *refusalLimiter) allow(source string, now time.Time) (ok bool, suppressedBefore int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.addrs == nil {
		l.addrs = map[string]*refusalWindow{}
	}
	w := l.addrs[source]
	if w == nil {
		if len(l.addrs) >= maxRefusalAddresses {
			for a, o := range l.addrs {
				if now.Sub(o.start) >= time.Minute && o.suppressed == 0 {
					delete(l.addrs, a)
				}
			}
			if len(l.addrs) >= maxRefusalAddresses {
				clear(l.addrs)
			}
		}
		w = &refusalWindow{start: now}
		l.addrs[source] = w
	}
	if now.Sub(w.start) >= time.Minute || now.Before(w.start) {
		w.start, w.written = now, 0
	}
	if w.written >= l.perMinute {
		w.suppressed++
		return false, 0
	}
	w.written++
	s := w.suppressed
	w.suppressed = 0
	return true, s
}

// AuditRefusal writes the audit entry of a refused request from address
// by someone not signed in, unless that address has had MaxRefusalAudits
// entries in the last minute: then the entry is suppressed, counted in
// patientpulse_audit_refusals_suppressed_total, and the number suppressed
// is added to the address's next entry that is written. A zero Outcome is
// denied. A failure to write is logged: the refusal is answered anyway.
func (a *Auth) AuditRefusal(ctx context.Context, address string, e registry.AuditEntry) {
	a.auditRefusal(ctx, "address "+address, address, e)
}

// AuditStaffRefusal is AuditRefusal for a request of a signed-in staff
// member, bounded per staff member rather than per address: colleagues
// behind one address do not use up each other's entries.
func (a *Auth) AuditStaffRefusal(ctx context.Context, username, address string, e registry.AuditEntry) {
	if e.Actor == "" {
		e.Actor = username
	}
	a.auditRefusal(ctx, "staff "+username, address, e)
}

func (a *Auth) auditRefusal(ctx context.Context, source, address string, e registry.AuditEntry) {
	ok, suppressed := a.refusals.allow(source, a.now())
	if !ok {
		a.suppressed.Inc()
		return
	}
	if e.Outcome == "" {
		e.Outcome = registry.OutcomeDenied
	}
	if e.At.IsZero() {
		e.At = a.now()
	}
	if e.Actor == "" {
		e.Actor = registry.ActorFrom(ctx).Name
	}
	e.Address = address
	if suppressed > 0 {
		e.Target += fmt.Sprintf(" (and %d refusals from this source not recorded)", suppressed)
	}
	if err := a.reg.Audit(ctx, e); err != nil {
		a.log.Error("audit failed", "err", err)
	}
}
