package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// maxSignInBytes bounds a sign-in request's body.
const maxSignInBytes = 8 << 10

// Me is what GET /v1/session and a sign-in answer: who is signed in, and
// the CSRF token their browser must send back as X-CSRF-Token.
type Me struct {
	Username  string        `json:"username"`
	Role      registry.Role `json:"role"`
	Via       string        `json:"via"`                  // session or token
	CSRFToken string        `json:"csrf_token,omitempty"` // sessions only
	ExpiresAt *time.Time    `json:"expires_at,omitempty"` // sessions only: the absolute expiry
	Timezone  string        `json:"timezone"`             // the clinic's, which consoles show times in
	Locale    string        `json:"locale"`               // the clinic's BCP 47 language tag, which consoles write dates in
}

// sessionRoutes are the session endpoints:
//
//	POST   /v1/session  sign in (JSON {"username","password"}, or the sign-in form)
//	GET    /v1/session  who am I, and my CSRF token
//	DELETE /v1/session  sign out
//	GET    /v1/signin/locks  admins: the accounts locked for every address now
//
// It reads nothing of a, so that SessionPatterns can list them without an
// Auth.
func (a *Auth) sessionRoutes() map[string]http.Handler {
	return map[string]http.Handler{
		"POST /v1/session":     http.HandlerFunc(a.signIn),
		"GET /v1/session":      a.Authenticate(http.HandlerFunc(a.me)),
		"DELETE /v1/session":   a.Authenticate(http.HandlerFunc(a.signOut)),
		"GET /v1/signin/locks": a.Require(Administer, "", a.locks),
	}
}

// Routes registers the session endpoints on mux.
func (a *Auth) Routes(mux *http.ServeMux) {
	for pattern, h := range a.sessionRoutes() {
		mux.Handle(pattern, h)
	}
}

// SessionPatterns lists the routes Routes registers.
func SessionPatterns() []string {
	var ps []string
	for pattern := range (*Auth)(nil).sessionRoutes() {
		ps = append(ps, pattern)
	}
	return ps
}

func (a *Auth) me(w http.ResponseWriter, r *http.Request) {
	p, _ := FromContext(r.Context())
	me := Me{Username: p.Username, Role: p.Role, Via: p.Via, CSRFToken: p.CSRFToken, Timezone: a.cfg.Timezone, Locale: a.cfg.Locale}
	if p.Via == "session" {
		if s, _, err := a.reg.SessionByID(r.Context(), p.sessionID); err == nil {
			exp := s.CreatedAt.Add(a.cfg.MaxAge)
			me.ExpiresAt = &exp
		}
	}
	httpx.WriteJSON(w, http.StatusOK, me)
}

// signIn checks a username and password and starts a session. The sign-in
// form (application/x-www-form-urlencoded) is answered with a redirect to
// its next field when that is a path of this site (a page's one-tap link
// sends its signed-out visitor through the form so), else to the
// dashboard; or back to the form with ?error= and the same next. JSON is
// answered with 200 and Me.
// Any session the browser held before is ended, and the new one has a new
// id, so that an id planted before sign-in is worth nothing after it.
func (a *Auth) signIn(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	form := ct == "application/x-www-form-urlencoded"
	next := "/" // where the form goes after signing in, once it is read
	fail := func(status int, msg, code string) {
		if form {
			back := url.Values{"error": {code}}
			if next != "/" {
				back.Set("next", next)
			}
			http.Redirect(w, r, "/signin?"+back.Encode(), http.StatusSeeOther)
			return
		}
		httpx.Error(w, status, msg)
	}
	if !sameOrigin(r) {
		a.AuditRefusal(ctx, httpx.ClientIP(r), registry.AuditEntry{Actor: "(unauthenticated)", Action: registry.ActionAccessDenied,
			Target: requestTarget(r) + ": " + refusalReason(errCrossOrigin)})
		fail(http.StatusForbidden, errCrossOrigin.Error(), "origin")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxSignInBytes)
	var creds struct{ Username, Password string }
	switch ct {
	case "application/json":
		if err := json.NewDecoder(r.Body).Decode(&creds); err != nil {
			fail(http.StatusBadRequest, "body must be JSON {\"username\": ..., \"password\": ...}", "request")
			return
		}
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			fail(http.StatusBadRequest, "unreadable form", "request")
			return
		}
		creds.Username, creds.Password = r.PostForm.Get("username"), r.PostForm.Get("password")
		next = localPath(r.PostForm.Get("next"))
	default:
		fail(http.StatusUnsupportedMediaType, "send application/json or a form", "request")
		return
	}
	if creds.Username == "" || creds.Password == "" {
		fail(http.StatusBadRequest, "username and password are required", "request")
		return
	}

	address := httpx.ClientIP(r)
	for _, l := range []*sync.Mutex{lockFor(&a.addressLocks, address), lockFor(&a.userLocks, creds.Username)} {
		l.Lock()
		defer l.Unlock()
	}
	now := a.now()
	// Only a username that exists is written to the audit log: what a
	// stranger types there may be anything, a password included.
	actor, known, onCall := "(unknown user)", false, false
	if st, err := a.reg.StaffMember(ctx, creds.Username); err == nil {
		actor, known, onCall = creds.Username, true, st.Role == registry.RoleOnCall
	}
	record := func(outcome string) error {
		a.signins.WithLabelValues(outcome).Inc()
		return a.reg.Audit(ctx, registry.AuditEntry{At: now, Actor: actor, Address: address,
			Action: registry.ActionSignIn, Target: "password", Outcome: outcome})
	}
	unavailable := func(err error) {
		// The error may quote what was typed as the username: a password, perhaps.
		a.log.Error("sign-in failed", "err", strings.ReplaceAll(err.Error(), creds.Username, "<username>"))
		fail(http.StatusServiceUnavailable, "cannot sign in now: try again", "unavailable")
	}

	since := now.Add(-a.cfg.LockoutWindow)
	counts, err := a.reg.SignInCounts(ctx, actor, address, since)
	if err != nil {
		unavailable(err)
		return
	}
	// Unknown usernames share one actor in the log; their failures are
	// counted in the registry by the name's hash, so that an unknown name
	// is locked out as a real one is, on every instance, and the answer
	// does not tell them apart.
	if !known {
		if err := a.reg.UnknownSignInCounts(ctx, nameHash(creds.Username), address, since, &counts); err != nil {
			unavailable(err)
			return
		}
	}
	if retry, locked := a.locked(counts, onCall, now); locked {
		a.signins.WithLabelValues(registry.OutcomeLocked).Inc()
		a.AuditRefusal(ctx, address, registry.AuditEntry{At: now, Actor: actor, Action: registry.ActionSignIn,
			Target: "password", Outcome: registry.OutcomeLocked})
		w.Header().Set("Retry-After", strconv.Itoa(int(max(retry, time.Second).Seconds()+0.5)))
		fail(http.StatusTooManyRequests, "too many failed sign-ins: try again later", "locked")
		return
	}
	st, err := a.reg.Authenticate(ctx, creds.Username, creds.Password)
	if errors.Is(err, registry.ErrBadCredentials) || errors.Is(err, registry.ErrDisabled) {
		if !known {
			if err := a.reg.AddUnknownSignIn(ctx, nameHash(creds.Username), address, now, since); err != nil {
				unavailable(err)
				return
			}
		}
		if err := record(registry.OutcomeFailed); err != nil {
			unavailable(err)
			return
		}
		if known && !onCall {
			a.noticeGlobalLock(r, actor, address, since)
		}
		fail(http.StatusUnauthorized, "wrong username or password, or the account is disabled", "credentials")
		return
	}
	if err != nil {
		unavailable(err)
		return
	}
	if old, err := r.Cookie(a.cookieName(r)); err == nil {
		if err := a.reg.EndSession(ctx, old.Value, now); err != nil {
			unavailable(err)
			return
		}
	}
	id, s, err := a.reg.CreateSession(ctx, st.Username, now)
	if err == nil {
		err = record(registry.OutcomeOK)
	}
	if err != nil {
		unavailable(err)
		return
	}
	http.SetCookie(w, a.cookie(r, id, int(a.cfg.MaxAge.Seconds())))
	if form {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	exp := s.CreatedAt.Add(a.cfg.MaxAge)
	httpx.WriteJSON(w, http.StatusOK, Me{Username: st.Username, Role: st.Role, Via: "session", CSRFToken: s.CSRFToken, ExpiresAt: &exp,
		Timezone: a.cfg.Timezone, Locale: a.cfg.Locale})
}

// localPath returns next when it is a path on this site ("/a/TOKEN"),
// else "/": a sign-in form's next may come from anyone's link, and must
// not send the freshly signed-in browser to another site. Browsers read
// "//host" and "/\host" as another host, and strip control characters,
// which could make one of those of what looks like a path.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") ||
		strings.ContainsFunc(next, unicode.IsControl) {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

// signOut ends the session and clears the cookie. Signing out with an API
// token is refused: revoke the token instead.
func (a *Auth) signOut(w http.ResponseWriter, r *http.Request) {
	p, _ := FromContext(r.Context())
	if p.Via != "session" {
		httpx.Error(w, http.StatusBadRequest, "not a browser session: revoke the API token instead")
		return
	}
	now := a.now()
	err := a.reg.EndSession(r.Context(), p.sessionID, now)
	if err == nil {
		err = a.reg.Audit(r.Context(), registry.AuditEntry{At: now, Action: registry.ActionSignOut})
	}
	if err != nil {
		a.log.Error("sign-out failed", "err", err)
		httpx.Error(w, http.StatusServiceUnavailable, "cannot sign out now: try again")
		return
	}
	http.SetCookie(w, a.cookie(r, "", -1))
	w.WriteHeader(http.StatusNoContent)
}

// cookie is r's session cookie with value, kept maxAge seconds (negative:
// deleted).
func (a *Auth) cookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     a.cookieName(r),
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   a.secure(r),
		SameSite: http.SameSiteStrictMode,
	}
}

// nameHash is how an unknown username's failed sign-ins are known: what
// is typed there may be a password, and is never stored.
func nameHash(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:])
}
