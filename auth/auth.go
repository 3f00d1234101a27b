// Package auth decides who a staff request comes from and what they may
// see: browser sessions (sign-in, sign-out, CSRF), staff API tokens, and
// the one authorization check that every /v1/ endpoint, and the websocket,
// goes through.
//
// Who may see a patient:
//   - an admin: every patient;
//   - a clinician: the patients of their care team (registry.AssignPatient);
//   - on-call staff: the patients behind an active alert, and for a day
//     after it is resolved (ActiveAlerts).
//
// Every read of a patient's data is written to the registry's audit log
// before the answer goes out; an audit entry that cannot be written
// refuses the request. Every refusal (401, 403, a refused sign-in or
// websocket origin) is written too, with the client's address, at most
// Config.MaxRefusalAudits a minute per address, or per staff member once
// signed in (AuditRefusal, AuditStaffRefusal), so that being refused
// cannot flood the log. Nothing this package logs carries a
// patient id, a token, a session id or a password.
//
// Sign-in lock-out: failures are counted per account and address first,
// so a stranger's guesses lock the account for the stranger's address
// only. An account is locked for every address only after GlobalFailures
// failures since its last success (which, with the per-address limit,
// come from several addresses), for a delay that doubles with each
// further failure, and with an audit entry (signin.lock) and a listing
// for admins (GET /v1/signin/locks). On-call accounts are never locked for
// every address, nor by an address's guesses at other accounts: only
// their own failures from an address lock them there, so a stranger cannot
// keep them from acknowledging alerts.
package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// Config sets up sessions and the sign-in limits.
type Config struct {
	IdleTimeout time.Duration // a session unused this long ends
	MaxAge      time.Duration // a session ends this long after sign-in, used or not
	// Secure marks the cookie Secure (and names it with the __Host-
	// prefix): set it whenever the listener serves TLS.
	Secure bool
	// A sign-in is refused, without checking the password, while the
	// account has MaxFailures failed sign-ins from the same address since
	// its last success from there, or the address MaxAddressFailures of
	// any account, within LockoutWindow.
	MaxFailures        int
	MaxAddressFailures int
	LockoutWindow      time.Duration
	// GlobalFailures failed sign-ins of an account since its last success,
	// from any address, within LockoutWindow lock it for every address
	// (on-call accounts excepted): for GlobalBackoff after the last
	// failure, doubled for each further failure, at most LockoutWindow.
	GlobalFailures int
	GlobalBackoff  time.Duration
	// MaxRefusalAudits is how many refusals from one address a minute are
	// written to the audit log; more are counted only.
	MaxRefusalAudits int
	// Timezone is the clinic's IANA time zone, which consoles show times
	// in (GET /v1/session says it).
	Timezone string
	// Locale is the clinic's BCP 47 language tag (en-GB), which consoles
	// write dates and numbers in, always with 24-hour times.
	Locale string
}

// DefaultConfig is a clinic's usual policy.
func DefaultConfig() Config {
	return Config{
		IdleTimeout:        30 * time.Minute,
		MaxAge:             12 * time.Hour,
		MaxFailures:        5,
		MaxAddressFailures: 20,
		LockoutWindow:      15 * time.Minute,
		GlobalFailures:     20,
		GlobalBackoff:      time.Minute,
		MaxRefusalAudits:   20,
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.IdleTimeout < time.Minute {
		errs = append(errs, errors.New("session-idle must be at least 1m"))
	}
	if c.MaxAge < c.IdleTimeout {
		errs = append(errs, errors.New("session-max-age must be at least session-idle"))
	}
	if c.MaxFailures < 1 || c.MaxAddressFailures < 1 {
		errs = append(errs, errors.New("signin-max-failures and signin-max-address-failures must be at least 1"))
	}
	if c.LockoutWindow < time.Minute {
		errs = append(errs, errors.New("signin-lockout must be at least 1m"))
	}
	if c.GlobalFailures < c.MaxFailures {
		errs = append(errs, errors.New("signin-global-failures must be at least signin-max-failures"))
	}
	if c.GlobalBackoff < time.Second || (c.LockoutWindow >= time.Minute && c.GlobalBackoff > c.LockoutWindow) {
		errs = append(errs, errors.New("signin-global-backoff must be between 1s and signin-lockout"))
	}
	if c.MaxRefusalAudits < 1 {
		errs = append(errs, errors.New("audit-refusals-per-minute must be at least 1"))
	}
	return errors.Join(errs...)
}

// OnCallFollowUp is how long after an alert is resolved on-call staff may
// still see its patient: to follow up on what they handled.
const OnCallFollowUp = 24 * time.Hour

// ActiveAlerts tells which patients on-call staff may see: those with an
// active alert, or one resolved since resolvedSince. The registry
// provides it.
type ActiveAlerts interface {
	OnCallPatients(ctx context.Context, resolvedSince time.Time) ([]string, error)
}

// Auth authenticates staff requests and authorizes them.
type Auth struct {
	reg        *registry.Registry
	cfg        Config
	log        *slog.Logger
	alerts     ActiveAlerts // nil: no alerts, so on-call staff see no patient
	now        func() time.Time
	signins    *prometheus.CounterVec
	denied     prometheus.Counter
	suppressed prometheus.Counter
	refusals   refusalLimiter
	// addressLocks and userLocks serialise the sign-ins from one address
	// and of one username in this process (in that order), so that a
	// burst of guesses cannot all pass the lock-out counts before the
	// first failure is recorded.
	addressLocks, userLocks [64]sync.Mutex
}

// New returns an Auth over the registry; alerts may be nil. Its metrics
// are registered with reg when it is not nil.
func New(r *registry.Registry, cfg Config, alerts ActiveAlerts, log *slog.Logger, reg prometheus.Registerer) *Auth {
	a := &Auth{
		reg: r, cfg: cfg, log: log, alerts: alerts, now: time.Now,
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_signins_total",
			Help: "Browser sign-ins, by outcome (ok, failed, locked).",
		}, []string{"outcome"}),
		denied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_access_denied_total",
			Help: "Staff requests refused by the authorization check.",
		}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_audit_refusals_suppressed_total",
			Help: "Refusals not written to the audit log because their address had too many in a minute.",
		}),
		refusals: refusalLimiter{perMinute: cfg.MaxRefusalAudits},
	}
	if reg != nil {
		reg.MustRegister(a.signins, a.denied, a.suppressed)
	}
	return a
}

// Principal is the staff member a request comes from.
type Principal struct {
	registry.Staff
	Via       string // "session" or "token"
	CSRFToken string // the session's, for a browser
	sessionID string
	token     string // the API token, for Revalidate
}

// Revalidate checks that the credentials p came with still hold: the
// account enabled, the API token not revoked, the session not ended and
// not past its maximum age. A long-lived connection (the websocket) calls
// it as it goes; an open console counts as use of its session, so it does
// not idle out.
func (a *Auth) Revalidate(ctx context.Context, p *Principal) error {
	if p.Via == "token" {
		_, err := a.reg.StaffByToken(ctx, p.token)
		return err
	}
	s, _, err := a.reg.SessionByID(ctx, p.sessionID)
	if err != nil {
		return err
	}
	now := a.now()
	if now.Sub(s.CreatedAt) > a.cfg.MaxAge {
		if err := a.reg.EndSession(ctx, p.sessionID, now); err != nil {
			a.log.Warn("ending an expired session failed", "err", err)
		}
		return errSessionEnded
	}
	if now.Sub(s.LastSeenAt) >= time.Minute {
		if err := a.reg.TouchSession(ctx, p.sessionID, now); err != nil {
			a.log.Warn("recording session use failed", "err", err)
		}
	}
	return nil
}

type principalKey struct{}

// FromContext returns the principal that Authenticate put in ctx.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// ErrSessionEnded reports a session that has ended or expired.
var ErrSessionEnded = errors.New("your session has ended: sign in again")

// Errors of authentication, each one sentence for the client.
var (
	errUnauthenticated = errors.New("sign in, or send a staff API token as Authorization: Bearer")
	errSessionEnded    = ErrSessionEnded
	errCSRF            = errors.New("missing or wrong X-CSRF-Token header: reload the page")
	errCrossOrigin     = errors.New("cross-origin request refused")
	errBadToken        = errors.New("unknown, revoked or disabled staff API token")
)

// Authenticate resolves the request's staff member, from a bearer token or
// the session cookie, and refuses the request (401) when there is none.
// A browser's state-changing request must also carry the session's CSRF
// token in the X-CSRF-Token header, and come from this origin (403). Under
// it, the registry records changes as made by that staff member. A 401
// or 403 is written to the audit log (AuditRefusal).
func (a *Auth) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, status, err := a.principal(r)
		if err != nil {
			if status == http.StatusUnauthorized || status == http.StatusForbidden {
				e := registry.AuditEntry{Actor: "(unauthenticated)", Action: registry.ActionAccessDenied,
					Target: requestTarget(r) + ": " + refusalReason(err)}
				if p != nil { // a valid session, refused for CSRF or origin
					e.Actor = p.Username
					a.AuditStaffRefusal(r.Context(), p.Username, httpx.ClientIP(r), e)
				} else {
					a.AuditRefusal(r.Context(), httpx.ClientIP(r), e)
				}
			}
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="patientpulse"`)
			}
			httpx.Error(w, status, err.Error())
			return
		}
		ctx := context.WithValue(r.Context(), principalKey{}, p)
		ctx = registry.WithActor(ctx, registry.Actor{Name: p.Username, Address: httpx.ClientIP(r)})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// requestTarget names a request in the audit log: its route, or its
// method and path (at most 200 bytes).
func requestTarget(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	t := r.Method + " " + r.URL.Path
	return t[:min(len(t), 200)]
}

// refusalReason is the audit log's word for why authentication refused.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, errUnauthenticated):
		return "no credentials"
	case errors.Is(err, errSessionEnded):
		return "unknown or ended session"
	case errors.Is(err, errBadToken):
		return "unknown, revoked or disabled API token"
	case errors.Is(err, errCSRF):
		return "missing or wrong CSRF token"
	case errors.Is(err, errCrossOrigin):
		return "cross-origin request"
	}
	return "refused"
}

// principal authenticates r; on failure it returns the status to answer,
// and for a 403 the staff member the credentials named.
func (a *Auth) principal(r *http.Request) (*Principal, int, error) {
	ctx := r.Context()
	if r.Header.Get("Authorization") != "" {
		st, err := a.reg.StaffByToken(ctx, httpx.Bearer(r))
		switch {
		case errors.Is(err, registry.ErrNotFound), errors.Is(err, registry.ErrDisabled):
			return nil, http.StatusUnauthorized, errBadToken
		case err != nil:
			a.log.Error("staff token lookup failed", "err", err)
			return nil, http.StatusServiceUnavailable, errors.New("cannot check credentials now: try again")
		}
		return &Principal{Staff: st, Via: "token", token: httpx.Bearer(r)}, 0, nil
	}
	c, err := r.Cookie(a.cookieName(r))
	if err != nil || c.Value == "" {
		return nil, http.StatusUnauthorized, errUnauthenticated
	}
	s, st, err := a.reg.SessionByID(ctx, c.Value)
	switch {
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, registry.ErrDisabled):
		return nil, http.StatusUnauthorized, errSessionEnded
	case err != nil:
		a.log.Error("session lookup failed", "err", err)
		return nil, http.StatusServiceUnavailable, errors.New("cannot check the session now: try again")
	}
	now := a.now()
	if now.Sub(s.LastSeenAt) > a.cfg.IdleTimeout || now.Sub(s.CreatedAt) > a.cfg.MaxAge {
		if err := a.reg.EndSession(ctx, c.Value, now); err != nil {
			a.log.Warn("ending an expired session failed", "err", err)
		}
		return nil, http.StatusUnauthorized, errSessionEnded
	}
	if !safeMethod(r.Method) {
		if !sameOrigin(r) {
			return &Principal{Staff: st}, http.StatusForbidden, errCrossOrigin
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-CSRF-Token")), []byte(s.CSRFToken)) != 1 {
			return &Principal{Staff: st}, http.StatusForbidden, errCSRF
		}
	}
	// Idle time is kept to the minute: a busy dashboard does not write
	// on every request.
	if now.Sub(s.LastSeenAt) >= time.Minute {
		if err := a.reg.TouchSession(ctx, c.Value, now); err != nil {
			a.log.Warn("recording session use failed", "err", err)
		}
	}
	return &Principal{Staff: st, Via: "session", CSRFToken: s.CSRFToken, sessionID: c.Value}, 0, nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin reports whether a browser request comes from a page of this
// server. Browsers say where a request comes from in Sec-Fetch-Site; one
// too old for that sends Origin, which must name this host. (Under the
// no-referrer policy a form's Origin is "null", so Sec-Fetch-Site goes
// first.) A request with neither comes from a script, not a browser,
// and has no ambient cookie to abuse.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// secure reports whether r's session cookie is Secure: with TLS here
// (Config.Secure), or behind a trusted proxy that says the client used
// HTTPS.
func (a *Auth) secure(r *http.Request) bool { return a.cfg.Secure || ForwardedHTTPS(r) }

// cookieName is the session cookie's name. Over HTTPS it carries the
// __Host- prefix, with which browsers insist on Secure, Path=/ and no
// Domain, so that no other site or subdomain can plant or read it.
func (a *Auth) cookieName(r *http.Request) string {
	if a.secure(r) {
		return "__Host-pp_session"
	}
	return "pp_session"
}

// lockFor returns the lock of key among locks.
func lockFor(locks *[64]sync.Mutex, key string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(key))
	return &locks[h.Sum32()%uint32(len(locks))]
}

// Permission is what a request needs.
type Permission int

const (
	// SignedIn: any enabled staff member.
	SignedIn Permission = iota
	// Administer: admins only (staff, audit log).
	Administer
	// ReadPatient: the patient named by the route's {id} must be one the
	// staff member may see.
	ReadPatient
	// CarePatient: change the care of the patient named by {id} (their
	// plan): admins, and the clinicians of their care team.
	CarePatient
	// HandleAlert: acknowledge, resolve or snooze an alert of a patient
	// one may see (for on-call staff: a patient with an active alert, or
	// one resolved within a day).
	HandleAlert
)

// ErrForbidden is what Check returns when the staff member may not.
var ErrForbidden = errors.New("forbidden")

// Check is the authorization check: whether p may do what perm names, to
// patient (for ReadPatient and CarePatient). It returns nil, an error wrapping
// ErrForbidden, or another error when it could not decide.
func (a *Auth) Check(ctx context.Context, p *Principal, perm Permission, patient string) error {
	switch perm {
	case SignedIn:
		return nil
	case Administer:
		if p.Role == registry.RoleAdmin {
			return nil
		}
		return fmt.Errorf("%w: admins only", ErrForbidden)
	case CarePatient:
		if p.Role == registry.RoleOnCall {
			return fmt.Errorf("%w: on-call staff cannot change a patient's care", ErrForbidden)
		}
		fallthrough
	case ReadPatient, HandleAlert:
		scope, err := a.Scope(ctx, p)
		if err != nil {
			return err
		}
		if scope.Includes(patient) {
			return nil
		}
		return fmt.Errorf("%w: this patient is not in your care", ErrForbidden)
	}
	return fmt.Errorf("%w: unknown permission %d", ErrForbidden, perm)
}

// Scope is the set of patients a staff member may see.
type Scope struct {
	all bool
	ids map[string]bool
}

// All reports whether the scope is every patient.
func (s Scope) All() bool { return s.all }

// Includes reports whether the patient is in the scope.
func (s Scope) Includes(patient string) bool { return s.all || s.ids[patient] }

// Patients returns the patients of a scope that is not All, in no
// particular order, for a query to select only them.
func (s Scope) Patients() []string {
	ids := make([]string, 0, len(s.ids))
	for id := range s.ids {
		ids = append(ids, id)
	}
	return ids
}

// Scope returns the patients p may see.
func (a *Auth) Scope(ctx context.Context, p *Principal) (Scope, error) {
	var ids []string
	var err error
	switch p.Role {
	case registry.RoleAdmin:
		return Scope{all: true}, nil
	case registry.RoleClinician:
		ids, err = a.reg.AssignedPatients(ctx, p.Username)
	case registry.RoleOnCall:
		if a.alerts != nil {
			ids, err = a.alerts.OnCallPatients(ctx, a.now().Add(-OnCallFollowUp))
		}
	}
	if err != nil {
		return Scope{}, fmt.Errorf("scope of %s: %w", p.Username, err)
	}
	s := Scope{ids: make(map[string]bool, len(ids))}
	for _, id := range ids {
		s.ids[id] = true
	}
	return s, nil
}

// Require wraps an endpoint: it authenticates the request, runs Check
// with the route's {id} as the patient, and records the outcome in the
// audit log: a refusal always (403), and for ReadPatient, or any route
// that names what it reads, the read itself, as patient.read with what
// (and the query) as its target, before h runs.
func (a *Auth) Require(perm Permission, what string, h http.HandlerFunc) http.Handler {
	return a.RequireFor(perm, what, func(r *http.Request) (string, error) { return r.PathValue("id"), nil }, h)
}

// RequireFor is Require for a route that names its patient otherwise
// (an alert's): patientOf finds it; its error, such as a registry
// ErrNotFound, is answered as the API answers registry errors.
func (a *Auth) RequireFor(perm Permission, what string, patientOf func(*http.Request) (string, error), h http.HandlerFunc) http.Handler {
	return a.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		p, _ := FromContext(ctx)
		patient, err := patientOf(r)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			httpx.Error(w, http.StatusNotFound, err.Error())
			return
		case err != nil:
			a.log.Error("finding a request's patient failed", "err", err)
			httpx.Error(w, http.StatusServiceUnavailable, "cannot check access now: try again")
			return
		}
		err = a.Check(ctx, p, perm, patient)
		switch {
		case errors.Is(err, ErrForbidden):
			a.denied.Inc()
			a.log.Info("access denied", "role", p.Role, "route", r.Pattern)
			a.AuditStaffRefusal(ctx, p.Username, httpx.ClientIP(r), registry.AuditEntry{Action: registry.ActionAccessDenied, Patient: patient,
				Target: r.Pattern})
			httpx.Error(w, http.StatusForbidden, strings.TrimPrefix(err.Error(), "forbidden: "))
			return
		case err != nil:
			a.log.Error("authorization check failed", "err", err)
			httpx.Error(w, http.StatusServiceUnavailable, "cannot check access now: try again")
			return
		}
		if perm == ReadPatient || what != "" {
			target := what
			if q := r.URL.RawQuery; q != "" {
				target += "?" + q[:min(len(q), 200)]
			}
			if err := a.reg.Audit(ctx, registry.AuditEntry{Action: registry.ActionPatientRead, Patient: patient, Target: target}); err != nil {
				a.log.Error("audit failed", "err", err)
				httpx.Error(w, http.StatusServiceUnavailable, "cannot record this access now: try again")
				return
			}
		}
		h(w, r)
	}))
}
