package auth

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// signInJSON is the request of a JSON sign-in.
func signInJSON(username, password string) request {
	return request{method: "POST", path: "/v1/session", json: map[string]string{"username": username, "password": password}}
}

// signInForm is the request of a sign-in through the form.
func signInForm(username, password, origin string) request {
	return request{method: "POST", path: "/v1/session", origin: origin,
		form: url.Values{"username": {username}, "password": {password}}}
}

func TestSignInJSON(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	e := newEnv(t, cfg, nil, admin, clinician)
	at := e.clock.Now()

	resp := e.do(signInJSON(clinician, testPassword))
	expect(t, "sign-in", resp, http.StatusOK)
	var me Me
	if err := json.Unmarshal([]byte(resp.body), &me); err != nil {
		t.Fatalf("answer %q: %v", resp.body, err)
	}
	if me.Username != clinician || me.Role != registry.RoleClinician || me.Via != "session" || me.CSRFToken == "" {
		t.Errorf("answer = %+v, want %s, clinician, via session, a CSRF token", me, clinician)
	}
	if me.ExpiresAt == nil || !me.ExpiresAt.Equal(at.Add(cfg.MaxAge)) {
		t.Errorf("expires_at = %v, want %v", me.ExpiresAt, at.Add(cfg.MaxAge))
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}

	c := resp.sessionCookie("pp_session")
	if c == nil {
		t.Fatalf("no pp_session cookie among %v", resp.Header.Values("Set-Cookie"))
	}
	if len(c.Value) < 40 {
		t.Errorf("session id %q is too short to be unguessable", c.Value)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || c.Domain != "" {
		t.Errorf("cookie %q: want HttpOnly, SameSite=Strict, Path=/, not Secure, no Domain", c.Raw)
	}
	if c.MaxAge != int(cfg.MaxAge.Seconds()) {
		t.Errorf("cookie Max-Age %d, want %d", c.MaxAge, int(cfg.MaxAge.Seconds()))
	}
	if c.Value == me.CSRFToken {
		t.Error("the CSRF token is the session id")
	}
	if strings.Contains(resp.body, c.Value) {
		t.Error("the answer's body repeats the session id")
	}

	// The session works, and GET /v1/session says the same.
	resp = e.do(request{method: "GET", path: "/v1/session", session: c.Value})
	expect(t, "GET /v1/session", resp, http.StatusOK)
	var again Me
	if err := json.Unmarshal([]byte(resp.body), &again); err != nil {
		t.Fatal(err)
	}
	if again.Username != clinician || again.Via != "session" || again.CSRFToken != me.CSRFToken ||
		again.ExpiresAt == nil || !again.ExpiresAt.Equal(*me.ExpiresAt) {
		t.Errorf("GET /v1/session = %+v, want the sign-in's %+v", again, me)
	}

	// The audit log has the sign-in, at the clock's time, from the loopback address.
	es := e.audit(registry.AuditFilter{Action: registry.ActionSignIn})
	if len(es) != 1 {
		t.Fatalf("signin entries = %+v, want 1", es)
	}
	if en := es[0]; en.Actor != clinician || en.Address != "127.0.0.1" || en.Outcome != registry.OutcomeOK ||
		en.Target != "password" || !en.At.Equal(at) {
		t.Errorf("signin entry = %+v, want actor %s, address 127.0.0.1, ok, target password, at %v", en, clinician, at)
	}
	// Nothing in the log holds the password or the session id.
	for _, en := range e.audit(registry.AuditFilter{}) {
		if s := auditText(en); strings.Contains(s, testPassword) || strings.Contains(s, c.Value) || strings.Contains(s, me.CSRFToken) {
			t.Errorf("audit entry %+v holds a secret", en)
		}
	}
}

// auditText is every text field of an entry.
func auditText(en registry.AuditEntry) string {
	return strings.Join([]string{en.Actor, en.Address, en.Action, en.Patient, en.Target, en.Outcome}, "\x00")
}

func TestSignInRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil, admin)
	tests := []struct {
		name   string
		ctype  string
		body   string
		status int
	}{
		{"not JSON", "application/json", "{", http.StatusBadRequest},
		{"no password", "application/json", `{"username":"alice"}`, http.StatusBadRequest},
		{"no username", "application/json", `{"password":"correct horse battery"}`, http.StatusBadRequest},
		{"text", "text/plain", `{"username":"alice","password":"correct horse battery"}`, http.StatusUnsupportedMediaType},
		{"no content type", "", `{"username":"alice","password":"correct horse battery"}`, http.StatusUnsupportedMediaType},
		{"JSON with charset", "application/json; charset=utf-8", `{"username":"alice","password":"correct horse battery"}`, http.StatusOK},
		{"too big", "application/json", `{"username":"alice","password":"` + strings.Repeat("a", 9<<10) + `"}`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		req, err := http.NewRequestWithContext(t.Context(), "POST", e.srv.URL+"/v1/session", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		if tt.ctype != "" {
			req.Header.Set("Content-Type", tt.ctype)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
		if tt.status != http.StatusOK && len(resp.Cookies()) != 0 {
			t.Errorf("%s: refused sign-in set cookies", tt.name)
		}
	}

	// JSON from another site's page is refused before the password is looked at.
	rq := signInJSON(admin, testPassword)
	rq.origin = foreignSite
	resp := e.do(rq)
	expect(t, "JSON sign-in from another origin", resp, http.StatusForbidden)
	if resp.sessionCookie("pp_session") != nil {
		t.Error("a cross-origin sign-in set a session cookie")
	}
	// Only the one sign-in above succeeded; the refusals before the
	// password check are not failures.
	if got := e.signInOutcomes(); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("signin outcomes = %v, want [ok]", got)
	}
}

func TestSignInForm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil, admin)

	resp := e.do(signInForm(admin, testPassword, e.origin()))
	expect(t, "form sign-in", resp, http.StatusSeeOther)
	if got := resp.Header.Get("Location"); got != "/" {
		t.Errorf("form sign-in: Location %q, want /", got)
	}
	c := resp.sessionCookie("pp_session")
	if c == nil || c.Value == "" {
		t.Fatalf("form sign-in set no session cookie: %v", resp.Header.Values("Set-Cookie"))
	}
	expect(t, "session of the form", e.do(request{method: "GET", path: "/v1/session", session: c.Value}), http.StatusOK)

	// Without an Origin header (an older browser) the form works too.
	resp = e.do(signInForm(admin, testPassword, ""))
	expect(t, "form sign-in without Origin", resp, http.StatusSeeOther)
	if resp.sessionCookie("pp_session") == nil {
		t.Error("form sign-in without Origin set no cookie")
	}

	// A browser under the no-referrer policy sends Origin: null, and
	// Sec-Fetch-Site: same-origin.
	rq := signInForm(admin, testPassword, "null")
	rq.fetchSite = "same-origin"
	resp = e.do(rq)
	expect(t, "form sign-in, same-origin with a null Origin", resp, http.StatusSeeOther)
	if got := resp.Header.Get("Location"); got != "/" || resp.sessionCookie("pp_session") == nil {
		t.Errorf("same-origin form with a null Origin: Location %q, cookies %v; want / and a session", got, resp.Header.Values("Set-Cookie"))
	}

	resp = e.do(signInForm(admin, wrongPass, e.origin()))
	expect(t, "form sign-in with a wrong password", resp, http.StatusSeeOther)
	if got := resp.Header.Get("Location"); got != "/signin?error=credentials" {
		t.Errorf("wrong password: Location %q, want /signin?error=credentials", got)
	}
	if resp.sessionCookie("pp_session") != nil {
		t.Error("a failed sign-in set a session cookie")
	}

	resp = e.do(signInForm(admin, "", e.origin()))
	expect(t, "form sign-in without a password", resp, http.StatusSeeOther)
	if got := resp.Header.Get("Location"); got != "/signin?error=request" {
		t.Errorf("no password: Location %q, want /signin?error=request", got)
	}

	if got := e.signInOutcomes(); !slices.Equal(got, []string{"ok", "ok", "ok", "failed"}) {
		t.Fatalf("signin outcomes = %v, want [ok ok ok failed]", got)
	}

	// A form posted from another site, even with the right password,
	// starts no session.
	for _, origin := range []string{foreignSite, "null", "http://evil.example:" + strconv.Itoa(e.srv.Listener.Addr().(*net.TCPAddr).Port)} {
		resp = e.do(signInForm(admin, testPassword, origin))
		expect(t, "form sign-in from "+origin, resp, http.StatusSeeOther)
		if got := resp.Header.Get("Location"); got != "/signin?error=origin" {
			t.Errorf("from %s: Location %q, want /signin?error=origin", origin, got)
		}
		if len(resp.Cookies()) != 0 {
			t.Errorf("from %s: cookies set: %v", origin, resp.Header.Values("Set-Cookie"))
		}
	}
	for _, site := range []string{"cross-site", "same-site"} {
		rq := signInForm(admin, testPassword, e.origin())
		rq.fetchSite = site
		resp = e.do(rq)
		expect(t, "form sign-in "+site, resp, http.StatusSeeOther)
		if got := resp.Header.Get("Location"); got != "/signin?error=origin" {
			t.Errorf("%s: Location %q, want /signin?error=origin", site, got)
		}
		if len(resp.Cookies()) != 0 {
			t.Errorf("%s: cookies set: %v", site, resp.Header.Values("Set-Cookie"))
		}
	}
	if got := e.signInOutcomes(); !slices.Equal(got, []string{"ok", "ok", "ok", "failed"}) {
		t.Errorf("after cross-origin forms, signin outcomes = %v, want [ok ok ok failed] still", got)
	}
}

// TestSignInFormNext: the form goes on to its next field (where a page's
// one-tap link was going) after signing in, and keeps it when sending the
// browser back to the form; a next that is not a path of this site goes
// nowhere but the dashboard.
func TestSignInFormNext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil, admin)
	withNext := func(password, next string) request {
		rq := signInForm(admin, password, e.origin())
		rq.form.Set("next", next)
		return rq
	}
	const link = "/a/AAAAAAAAACoAAAAAaWNhbGwtc2lnbmVkLXRva2Vu"

	resp := e.do(withNext(testPassword, link))
	expect(t, "sign-in with next", resp, http.StatusSeeOther)
	if got := resp.Header.Get("Location"); got != link || resp.sessionCookie("pp_session") == nil {
		t.Errorf("sign-in with next: Location %q, cookies %v; want %s and a session", got, resp.Header.Values("Set-Cookie"), link)
	}
	resp = e.do(withNext(testPassword, "/patient?id=p-1"))
	if got := resp.Header.Get("Location"); got != "/patient?id=p-1" {
		t.Errorf("sign-in with a next with a query: Location %q", got)
	}

	resp = e.do(withNext(wrongPass, link))
	expect(t, "failed sign-in with next", resp, http.StatusSeeOther)
	if got, want := resp.Header.Get("Location"), "/signin?error=credentials&next="+url.QueryEscape(link); got != want {
		t.Errorf("failed sign-in with next: Location %q, want %q", got, want)
	}
	if u, err := url.Parse(resp.Header.Get("Location")); err != nil || u.Query().Get("next") != link {
		t.Errorf("the form's next does not survive the way back: %v %v", u, err)
	}
	resp = e.do(withNext(wrongPass, "https://evil.example/phish"))
	if got := resp.Header.Get("Location"); got != "/signin?error=credentials" {
		t.Errorf("failed sign-in with a foreign next: Location %q, want /signin?error=credentials", got)
	}

	for _, next := range []string{
		"https://evil.example/a/x", "//evil.example/a/x", "/\\evil.example", "\\/evil.example", "/\\/evil.example",
		"javascript:alert(1)", "http:/evil.example", "evil.example", "a/x", "/\t/evil.example", "/\n/evil.example",
		"\t//evil.example", " //evil.example", "/a/x\u0085", "/%zz", "",
	} {
		resp := e.do(withNext(testPassword, next))
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || got != "/" {
			t.Errorf("sign-in with next %q: %d, Location %q; want / only", next, resp.StatusCode, got)
		}
	}
}

func TestSignInFailuresLookAlike(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil, admin, disabled)
	const stranger = "Tr0ub4dor&3-typed-in-the-username-box"

	bodies := map[string]string{}
	for name, rq := range map[string]request{
		"wrong password":                signInJSON(admin, wrongPass),
		"unknown user":                  signInJSON(stranger, testPassword),
		"disabled user, right password": signInJSON(disabled, testPassword),
		"disabled user, wrong password": signInJSON(disabled, wrongPass),
	} {
		resp := e.do(rq)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, resp.StatusCode)
		}
		if len(resp.Cookies()) != 0 {
			t.Errorf("%s: cookies set: %v", name, resp.Header.Values("Set-Cookie"))
		}
		bodies[name] = resp.body
	}
	want := bodies["wrong password"]
	if want == "" {
		t.Fatal("empty answer to a wrong password")
	}
	for name, b := range bodies {
		if b != want {
			t.Errorf("%s: answer %q, want the same as for a wrong password, %q", name, b, want)
		}
	}

	es := e.audit(registry.AuditFilter{Action: registry.ActionSignIn})
	if len(es) != 4 {
		t.Fatalf("signin entries = %+v, want 4", es)
	}
	actors := map[string]int{}
	for _, en := range es {
		if en.Outcome != registry.OutcomeFailed || en.Address != "127.0.0.1" {
			t.Errorf("entry %+v, want outcome failed from 127.0.0.1", en)
		}
		actors[en.Actor]++
	}
	if actors[admin] != 1 || actors[disabled] != 2 || actors["(unknown user)"] != 1 {
		t.Errorf("signin entries by actor = %v, want alice 1, dave 2, (unknown user) 1", actors)
	}
	// What a stranger typed as a username is stored nowhere.
	for _, en := range e.audit(registry.AuditFilter{}) {
		if s := auditText(en); strings.Contains(s, stranger) || strings.Contains(s, "Tr0ub4dor") {
			t.Errorf("audit entry %+v holds the unknown username", en)
		}
		if s := auditText(en); strings.Contains(s, wrongPass) || strings.Contains(s, testPassword) {
			t.Errorf("audit entry %+v holds a password", en)
		}
	}
}

func TestSessionFixation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil, admin, clinician)

	// An id the client chose is replaced.
	const planted = "attacker-chosen-session-id-0123456789abcdefghijklmn"
	rq := signInJSON(admin, testPassword)
	rq.session = planted
	resp := e.do(rq)
	expect(t, "sign-in with a planted cookie", resp, http.StatusOK)
	c := resp.sessionCookie("pp_session")
	if c == nil || c.Value == "" || c.Value == planted {
		t.Fatalf("sign-in with a planted cookie: cookie %v, want a new id", c)
	}
	expect(t, "the planted id", e.do(request{method: "GET", path: "/v1/session", session: planted}), http.StatusUnauthorized)
	expect(t, "the new id", e.do(request{method: "GET", path: "/v1/session", session: c.Value}), http.StatusOK)

	// A valid session planted in the victim's browser (the attacker's
	// own) is ended by the victim's sign-in, which gets a new id.
	attackers, _ := e.signIn(clinician, testPassword)
	rq = signInJSON(admin, testPassword)
	rq.session = attackers
	resp = e.do(rq)
	expect(t, "sign-in over a valid session", resp, http.StatusOK)
	victims := resp.sessionCookie("pp_session")
	if victims == nil || victims.Value == attackers {
		t.Fatalf("sign-in over a valid session: cookie %v, want a new id", victims)
	}
	expect(t, "the old session", e.do(request{method: "GET", path: "/v1/session", session: attackers}), http.StatusUnauthorized)
	resp = e.do(request{method: "GET", path: "/v1/session", session: victims.Value})
	expect(t, "the new session", resp, http.StatusOK)
	if !strings.Contains(resp.body, `"username":"`+admin+`"`) {
		t.Errorf("new session answers %q, want %s", resp.body, admin)
	}

	// Signing in again in the same browser ends the previous session.
	rq = signInJSON(admin, testPassword)
	rq.session = victims.Value
	resp = e.do(rq)
	expect(t, "sign-in again", resp, http.StatusOK)
	if c := resp.sessionCookie("pp_session"); c == nil || c.Value == victims.Value {
		t.Fatalf("sign-in again: cookie %v, want a new id", c)
	}
	expect(t, "the session before", e.do(request{method: "GET", path: "/v1/session", session: victims.Value}), http.StatusUnauthorized)

	// A failed sign-in leaves the browser's session as it was.
	sid, _ := e.signIn(admin, testPassword)
	rq = signInJSON(admin, wrongPass)
	rq.session = sid
	expect(t, "failed sign-in over a session", e.do(rq), http.StatusUnauthorized)
	expect(t, "session after a failed sign-in", e.do(request{method: "GET", path: "/v1/session", session: sid}), http.StatusOK)
}

func TestIdleExpiry(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // idle 30m, max age 2h
	e := newEnv(t, cfg, nil, admin)
	start := e.clock.Now()
	sid, me := e.signIn(admin, testPassword)

	e.clock.Advance(cfg.IdleTimeout - time.Minute)
	expect(t, "within the idle time", e.do(request{method: "GET", path: "/v1/session", session: sid}), http.StatusOK)

	e.clock.Advance(cfg.IdleTimeout + time.Second)
	resp := e.do(request{method: "GET", path: "/v1/session", session: sid})
	expect(t, "past the idle time", resp, http.StatusUnauthorized)
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	// Nor does a POST with the right CSRF token get through.
	expect(t, "POST past the idle time", e.do(request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken}), http.StatusUnauthorized)

	// Ended for good: a clock put back does not revive it.
	e.clock.Set(start.Add(time.Minute))
	expect(t, "clock put back", e.do(request{method: "GET", path: "/v1/session", session: sid}), http.StatusUnauthorized)
	if _, _, err := e.reg.SessionByID(t.Context(), sid); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("SessionByID of the expired session = %v, want ErrNotFound (ended)", err)
	}
	if got := e.handledAll(); len(got) != 0 {
		t.Errorf("handlers ran: %v", got)
	}
}

func TestLastSeenKeepsSessionAlive(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // idle 30m, max age 2h
	e := newEnv(t, cfg, nil, admin)
	start := e.clock.Now()
	sid, _ := e.signIn(admin, testPassword)

	e.clock.Advance(10 * time.Minute)
	expect(t, "after 10 minutes", e.do(request{method: "GET", path: "/v1/session", session: sid}), http.StatusOK)
	s, _, err := e.reg.SessionByID(t.Context(), sid)
	if err != nil {
		t.Fatal(err)
	}
	if want := start.Add(10 * time.Minute); !s.LastSeenAt.Equal(want) {
		t.Errorf("LastSeenAt = %v, want %v", s.LastSeenAt, want)
	}

	// 35 minutes after sign-in, 25 after the last use: alive.
	e.clock.Advance(25 * time.Minute)
	expect(t, "35 minutes after sign-in", e.do(request{method: "GET", path: "/v1/session", session: sid}), http.StatusOK)
	// 59 minutes after sign-in, 24 after the last use: alive.
	e.clock.Advance(24 * time.Minute)
	expect(t, "59 minutes after sign-in", e.do(request{method: "GET", path: "/v1/session", session: sid}), http.StatusOK)
	// Then idle too long.
	e.clock.Advance(cfg.IdleTimeout + time.Second)
	expect(t, "idle after the last use", e.do(request{method: "GET", path: "/v1/session", session: sid}), http.StatusUnauthorized)
}

func TestAbsoluteExpiry(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxAge = time.Hour // idle 30m
	e := newEnv(t, cfg, nil, admin)
	sid, me := e.signIn(admin, testPassword)

	for elapsed := 10 * time.Minute; elapsed < cfg.MaxAge; elapsed += 10 * time.Minute {
		e.clock.Advance(10 * time.Minute)
		expect(t, "used after "+elapsed.String(), e.do(request{method: "GET", path: "/v1/session", session: sid}), http.StatusOK)
		expect(t, "POST after "+elapsed.String(), e.do(request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken}), http.StatusOK)
	}
	// 50 minutes gone; 11 more is past the hour though only 11 idle.
	e.clock.Advance(11 * time.Minute)
	expect(t, "past the maximum age", e.do(request{method: "GET", path: "/v1/session", session: sid}), http.StatusUnauthorized)
	e.clock.Advance(-30 * time.Minute)
	expect(t, "clock put back", e.do(request{method: "GET", path: "/v1/session", session: sid}), http.StatusUnauthorized)
}

func TestSessionOfDisabledStaff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil, admin, clinician)
	sid, _ := e.signIn(clinician, testPassword)
	if err := e.reg.DisableStaff(t.Context(), clinician); err != nil {
		t.Fatal(err)
	}
	expect(t, "session of a disabled member", e.do(request{method: "GET", path: "/v1/session", session: sid}), http.StatusUnauthorized)
}

func TestSignOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil, admin)
	sid, me := e.signIn(admin, testPassword)
	other, _ := e.signIn(admin, testPassword) // another browser

	resp := e.do(request{method: "DELETE", path: "/v1/session", session: sid, csrf: me.CSRFToken, origin: e.origin()})
	expect(t, "sign-out", resp, http.StatusNoContent)
	c := resp.sessionCookie("pp_session")
	if c == nil {
		t.Fatalf("sign-out did not clear the cookie: %v", resp.Header.Values("Set-Cookie"))
	}
	if c.Value != "" || c.MaxAge >= 0 || c.Path != "/" || !c.HttpOnly {
		t.Errorf("sign-out cookie %q, want an empty value, Max-Age<0, Path=/, HttpOnly", c.Raw)
	}

	resp = e.do(request{method: "GET", path: "/v1/session", session: sid})
	expect(t, "the signed-out session", resp, http.StatusUnauthorized)
	expect(t, "signing out twice", e.do(request{method: "DELETE", path: "/v1/session", session: sid, csrf: me.CSRFToken}), http.StatusUnauthorized)
	expect(t, "the other browser", e.do(request{method: "GET", path: "/v1/session", session: other}), http.StatusOK)

	es := e.audit(registry.AuditFilter{Action: registry.ActionSignOut})
	if len(es) != 1 {
		t.Fatalf("signout entries = %+v, want 1", es)
	}
	if en := es[0]; en.Actor != admin || en.Address != "127.0.0.1" || en.Outcome != registry.OutcomeOK || !en.At.Equal(e.clock.Now()) {
		t.Errorf("signout entry = %+v, want actor %s from 127.0.0.1, ok, at the clock's time", en, admin)
	}

	// With an API token there is no session to end.
	tok := e.token(admin)
	resp = e.do(request{method: "DELETE", path: "/v1/session", bearer: tok})
	expect(t, "sign-out with a token", resp, http.StatusBadRequest)
	if len(resp.Cookies()) != 0 {
		t.Errorf("sign-out with a token set cookies: %v", resp.Header.Values("Set-Cookie"))
	}
	expect(t, "the token after", e.do(request{method: "GET", path: "/v1/session", bearer: tok}), http.StatusOK)
	if es := e.audit(registry.AuditFilter{Action: registry.ActionSignOut}); len(es) != 1 {
		t.Errorf("signout entries after a token's attempt = %d, want 1", len(es))
	}
}

func TestLockoutByAccount(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // 3 failures, 15m window
	e := newEnv(t, cfg, nil, admin, clinician)

	for i := range cfg.MaxFailures {
		e.clock.Advance(time.Second)
		expect(t, "wrong password "+strconv.Itoa(i+1), e.do(signInJSON(admin, wrongPass)), http.StatusUnauthorized)
	}
	e.clock.Advance(time.Second)
	resp := e.do(signInJSON(admin, testPassword))
	expect(t, "right password after 3 failures", resp, http.StatusTooManyRequests)
	if got, want := resp.Header.Get("Retry-After"), strconv.Itoa(int(cfg.LockoutWindow.Seconds())); got != want {
		t.Errorf("Retry-After %q, want %q", got, want)
	}
	if len(resp.Cookies()) != 0 {
		t.Errorf("locked sign-in set cookies: %v", resp.Header.Values("Set-Cookie"))
	}
	es := e.audit(registry.AuditFilter{Action: registry.ActionSignIn})
	if last := es[len(es)-1]; last.Outcome != registry.OutcomeLocked || last.Actor != admin || last.Address != "127.0.0.1" {
		t.Errorf("last signin entry = %+v, want locked for %s from 127.0.0.1", last, admin)
	}
	// The form is told so too.
	resp = e.do(signInForm(admin, testPassword, e.origin()))
	expect(t, "form sign-in while locked", resp, http.StatusSeeOther)
	if got := resp.Header.Get("Location"); got != "/signin?error=locked" {
		t.Errorf("form while locked: Location %q, want /signin?error=locked", got)
	}
	// Another account from the same address is not locked.
	e.signIn(clinician, testPassword)

	// Still locked most of the window after the last failure.
	e.clock.Advance(cfg.LockoutWindow - 2*time.Minute)
	expect(t, "within the window", e.do(signInJSON(admin, testPassword)), http.StatusTooManyRequests)

	// Past the window from the last failure: the right password works.
	e.clock.Advance(2 * time.Minute)
	e.signIn(admin, testPassword)
	if got := e.signInOutcomes(); !slices.Equal(got, []string{"failed", "failed", "failed", "locked", "locked", "ok", "locked", "ok"}) {
		t.Errorf("signin outcomes = %v", got)
	}
}

func TestLockoutResetBySuccess(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // 3 failures
	e := newEnv(t, cfg, nil, admin)
	attempt := func(password string, status int) {
		t.Helper()
		e.clock.Advance(time.Second)
		resp := e.do(signInJSON(admin, password))
		if resp.StatusCode != status {
			t.Fatalf("attempt %d (%v): status %d, want %d", len(e.signInOutcomes())+1, e.signInOutcomes(), resp.StatusCode, status)
		}
	}
	attempt(wrongPass, http.StatusUnauthorized)
	attempt(wrongPass, http.StatusUnauthorized)
	attempt(testPassword, http.StatusOK)
	attempt(wrongPass, http.StatusUnauthorized)
	attempt(wrongPass, http.StatusUnauthorized)
	// 4 failures in the window, but only 2 since the success.
	attempt(testPassword, http.StatusOK)
	// And the count still works after the reset.
	attempt(wrongPass, http.StatusUnauthorized)
	attempt(wrongPass, http.StatusUnauthorized)
	attempt(wrongPass, http.StatusUnauthorized)
	attempt(testPassword, http.StatusTooManyRequests)
}

func TestLockoutByAddress(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxFailures, cfg.MaxAddressFailures = 3, 4
	e := newEnv(t, cfg, nil, admin)

	// Guesses spread over many (unknown) usernames from one address.
	for i := range cfg.MaxAddressFailures {
		e.clock.Advance(time.Second)
		expect(t, "guess "+strconv.Itoa(i+1), e.do(signInJSON("ghost-"+strconv.Itoa(i), testPassword)), http.StatusUnauthorized)
	}
	// None of them counts against alice's account...
	acct, addr, err := e.reg.SignInFailures(t.Context(), admin, "127.0.0.1", e.clock.Now().Add(-cfg.LockoutWindow))
	if err != nil {
		t.Fatal(err)
	}
	if acct != 0 || addr != cfg.MaxAddressFailures {
		t.Fatalf("SignInFailures = %d by account, %d by address; want 0 and %d", acct, addr, cfg.MaxAddressFailures)
	}
	// ...but the address is locked out, for a valid user with the right password too.
	e.clock.Advance(time.Second)
	resp := e.do(signInJSON(admin, testPassword))
	expect(t, "right password from a locked address", resp, http.StatusTooManyRequests)
	if got := resp.Header.Get("Retry-After"); got != strconv.Itoa(int(cfg.LockoutWindow.Seconds())) {
		t.Errorf("Retry-After %q", got)
	}
	e.clock.Advance(time.Second)
	expect(t, "another stranger from a locked address", e.do(signInJSON("ghost-new", testPassword)), http.StatusTooManyRequests)
	es := e.audit(registry.AuditFilter{Action: registry.ActionSignIn, Outcome: registry.OutcomeLocked})
	if len(es) != 2 || es[0].Actor != admin || es[1].Actor != "(unknown user)" {
		t.Errorf("locked entries = %+v, want alice's then an unknown user's", es)
	}

	// The window passes: the address may try again.
	e.clock.Advance(cfg.LockoutWindow)
	e.signIn(admin, testPassword)
}

// TestLockoutByAddressConcurrent: guesses at many usernames from one
// address, sent at once, are checked one after the other, so the limit
// holds.
func TestLockoutByAddressConcurrent(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxAddressFailures = 2
	e := newEnv(t, cfg, nil, admin)
	const burst = 8
	var wg sync.WaitGroup
	statuses := make([]int, burst)
	for i := range burst {
		wg.Go(func() {
			body := `{"username":"ghost-` + strconv.Itoa(i) + `","password":"` + wrongPass + `"}`
			resp, err := http.Post(e.srv.URL+"/v1/session", "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	checked := 0
	for _, s := range statuses {
		if s == http.StatusUnauthorized {
			checked++
		}
	}
	if checked > cfg.MaxAddressFailures {
		t.Errorf("%d of %d simultaneous guesses from one address had their password checked (statuses %v); the limit is %d",
			checked, burst, statuses, cfg.MaxAddressFailures)
	}
}

func TestSecureCookie(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Secure = true
	e := newEnvServer(t, cfg, nil, httptest.NewTLSServer, admin)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := *e.srv.Client()
	client.Jar = jar

	resp, err := client.Post(e.srv.URL+"/v1/session", "application/json",
		strings.NewReader(`{"username":"alice","password":"correct horse battery"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in over TLS: status %d", resp.StatusCode)
	}
	var c *http.Cookie
	for _, rc := range resp.Cookies() {
		if rc.Name == "__Host-pp_session" {
			c = rc
		}
		if rc.Name == "pp_session" {
			t.Errorf("a Secure config set a pp_session cookie: %q", rc.Raw)
		}
	}
	if c == nil {
		t.Fatalf("no __Host-pp_session cookie among %v", resp.Header.Values("Set-Cookie"))
	}
	if !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie %q: want Secure, HttpOnly, Path=/, no Domain, SameSite=Strict", c.Raw)
	}

	// The jar sends it back over TLS, and it works.
	resp, err = client.Get(e.srv.URL + "/v1/session")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/session with the jar: status %d", resp.StatusCode)
	}
	// The same id under the unprefixed name is not the session.
	resp2 := e.do(request{method: "GET", path: "/v1/session", session: c.Value, cookieName: "pp_session"})
	expect(t, "the id as pp_session", resp2, http.StatusUnauthorized)
	resp2 = e.do(request{method: "GET", path: "/v1/session", session: c.Value, cookieName: "__Host-pp_session"})
	expect(t, "the id as __Host-pp_session", resp2, http.StatusOK)

	// Sign-out clears the prefixed cookie.
	var me Me
	resp3 := e.do(request{method: "GET", path: "/v1/session", session: c.Value, cookieName: "__Host-pp_session"})
	if err := json.Unmarshal([]byte(resp3.body), &me); err != nil {
		t.Fatal(err)
	}
	resp3 = e.do(request{method: "DELETE", path: "/v1/session", session: c.Value, cookieName: "__Host-pp_session", csrf: me.CSRFToken})
	expect(t, "sign-out over TLS", resp3, http.StatusNoContent)
	if out := resp3.sessionCookie("__Host-pp_session"); out == nil || out.MaxAge >= 0 || !out.Secure {
		t.Errorf("sign-out over TLS: cookies %v, want __Host-pp_session cleared, Secure", resp3.Header.Values("Set-Cookie"))
	}
}

// TestLockoutOfUnknownUsername: an unknown username is locked out after as
// many failures as a real one, so the answers do not tell which usernames
// exist; the name typed is kept nowhere in clear.
func TestLockoutOfUnknownUsername(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // 3 failures, 15m window
	e := newEnv(t, cfg, nil, admin)
	for _, name := range []string{admin, "no-such-user"} {
		for i := range cfg.MaxFailures {
			e.clock.Advance(time.Second)
			expect(t, name+" wrong password "+strconv.Itoa(i+1), e.do(signInJSON(name, wrongPass)), http.StatusUnauthorized)
		}
		e.clock.Advance(time.Second)
		expect(t, name+" after 3 failures", e.do(signInJSON(name, wrongPass)), http.StatusTooManyRequests)
	}
	// Another unknown name is not locked by the first one's failures.
	expect(t, "another unknown name", e.do(signInJSON("someone-else", wrongPass)), http.StatusUnauthorized)
	// Past the window, the unknown name is answered 401 again.
	e.clock.Advance(cfg.LockoutWindow)
	expect(t, "unknown name after the window", e.do(signInJSON("no-such-user", wrongPass)), http.StatusUnauthorized)
}
