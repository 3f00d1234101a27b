package auth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// The test staff. Every one of them has testPassword.
const (
	testPassword = "correct horse battery"
	admin        = "alice" // admin
	clinician    = "bob"   // clinician, assigned p-1
	oncall       = "carol" // on-call
	disabled     = "dave"  // clinician, disabled
	p1, p2       = "p-1", "p-2"
	wrongPass    = "not the password at all"
	foreignSite  = "http://evil.example"
)

// fakeClock is Auth.now under the test's control. It starts at the real
// time, since sign-in lock-out compares it with times in the audit log.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().UTC().Round(0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// fakeAlerts is an ActiveAlerts with a fixed answer.
type fakeAlerts struct {
	ids []string
	err error
}

func (f fakeAlerts) OnCallPatients(context.Context, time.Time) ([]string, error) { return f.ids, f.err }

// testEnv is an Auth over a fresh registry, served by a test server with
// the session routes and a few guarded endpoints.
type testEnv struct {
	t      *testing.T
	reg    *registry.Registry
	auth   *Auth
	clock  *fakeClock
	srv    *httptest.Server
	client *http.Client // follows no redirects, keeps no cookies

	mu      sync.Mutex
	handled []string // the guarded handlers that ran: "read p-1", "post alice", "admin alice"
}

// testConfig is a policy with room for a few failures.
func testConfig() Config {
	return Config{
		IdleTimeout:        30 * time.Minute,
		MaxAge:             2 * time.Hour,
		MaxFailures:        3,
		MaxAddressFailures: 20,
		LockoutWindow:      15 * time.Minute,
		GlobalFailures:     10,
		GlobalBackoff:      time.Minute,
		MaxRefusalAudits:   20,
	}
}

// openRegistry opens a registry in a fresh file, as the registry's own
// tests do, with patients p-1 and p-2.
func openRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	r, err := registry.Open(t.Context(), testservices.RegistryDSN(t))
	if err != nil {
		t.Fatalf("registry.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	for _, id := range []string{p1, p2} {
		if err := r.AddPatient(t.Context(), registry.Patient{ID: id}); err != nil {
			t.Fatalf("AddPatient %s: %v", id, err)
		}
	}
	return r
}

// newEnv starts a test server. staff names the test staff to create (see
// the constants); nil creates only alice (admin).
func newEnv(t *testing.T, cfg Config, alerts ActiveAlerts, staff ...string) *testEnv {
	t.Helper()
	return newEnvServer(t, cfg, alerts, httptest.NewServer, staff...)
}

func newEnvServer(t *testing.T, cfg Config, alerts ActiveAlerts, start func(http.Handler) *httptest.Server, staff ...string) *testEnv {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	ctx := t.Context()
	reg := openRegistry(t)
	if len(staff) == 0 {
		staff = []string{admin}
	}
	roles := map[string]registry.Role{admin: registry.RoleAdmin, clinician: registry.RoleClinician,
		oncall: registry.RoleOnCall, disabled: registry.RoleClinician}
	// Argon2 is slow (more so under -race): hash the passwords at once.
	errs := make([]error, len(staff))
	var wg sync.WaitGroup
	for i, name := range staff {
		wg.Go(func() { errs[i] = reg.AddStaff(ctx, name, roles[name], testPassword) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("AddStaff: %v", err)
	}
	if slices.Contains(staff, clinician) {
		if err := reg.AssignPatient(ctx, clinician, p1); err != nil {
			t.Fatalf("AssignPatient: %v", err)
		}
	}
	if slices.Contains(staff, disabled) {
		if err := reg.DisableStaff(ctx, disabled); err != nil {
			t.Fatalf("DisableStaff: %v", err)
		}
	}

	e := &testEnv{t: t, reg: reg, clock: newFakeClock()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.auth = New(reg, cfg, alerts, log, nil)
	e.auth.now = e.clock.Now

	mux := http.NewServeMux()
	e.auth.Routes(mux)
	mux.Handle("GET /v1/thing/{id}", e.auth.Require(ReadPatient, "details", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		// The read must be in the audit log before the handler runs.
		es, err := reg.AuditEntries(r.Context(), registry.AuditFilter{Action: registry.ActionPatientRead, Patient: id, Limit: 1})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if len(es) == 1 {
			w.Header().Set("X-Audited", es[0].Actor+" "+es[0].Target)
		}
		e.ran("read " + id)
		w.WriteHeader(http.StatusOK)
	}))
	mux.Handle("POST /v1/thing", e.auth.Require(SignedIn, "", func(w http.ResponseWriter, r *http.Request) {
		p, ok := FromContext(r.Context())
		if !ok {
			http.Error(w, "no principal", http.StatusInternalServerError)
			return
		}
		e.ran("post " + p.Username)
		w.WriteHeader(http.StatusOK)
	}))
	mux.Handle("GET /v1/admin", e.auth.Require(Administer, "", func(w http.ResponseWriter, r *http.Request) {
		p, _ := FromContext(r.Context())
		e.ran("admin " + p.Username)
		w.WriteHeader(http.StatusOK)
	}))
	e.srv = start(mux)
	t.Cleanup(e.srv.Close)
	client := *e.srv.Client() // a copy: a test may give its own a jar
	e.client = &client
	e.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return e
}

func (e *testEnv) ran(what string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.handled = append(e.handled, what)
}

// handledAll returns the guarded handlers that ran, and forgets them.
func (e *testEnv) handledAll() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.handled
	e.handled = nil
	return h
}

// origin is the test server's own origin.
func (e *testEnv) origin() string { return e.srv.URL }

// request is one request to the test server.
type request struct {
	method, path string
	json         any        // a JSON body
	form         url.Values // or a form body
	session      string     // the session cookie's value ("" for none)
	cookieName   string     // its name: pp_session unless set
	csrf         string     // X-CSRF-Token
	origin       string     // Origin
	fetchSite    string     // Sec-Fetch-Site
	bearer       string     // Authorization: Bearer
	authz        string     // Authorization, verbatim
	from         string     // the loopback address to connect from (127.0.0.2...), when not 127.0.0.1
	header       http.Header
}

// response is an answer, its body read.
type response struct {
	*http.Response
	body string
}

// sessionCookie returns the session cookie the response sets, or nil.
func (r response) sessionCookie(name string) *http.Cookie {
	for _, c := range r.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (e *testEnv) do(rq request) response {
	e.t.Helper()
	var body io.Reader
	ctype := ""
	switch {
	case rq.json != nil:
		b, err := json.Marshal(rq.json)
		if err != nil {
			e.t.Fatal(err)
		}
		body, ctype = strings.NewReader(string(b)), "application/json"
	case rq.form != nil:
		body, ctype = strings.NewReader(rq.form.Encode()), "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequestWithContext(e.t.Context(), rq.method, e.srv.URL+rq.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if rq.session != "" {
		name := rq.cookieName
		if name == "" {
			name = "pp_session"
		}
		req.AddCookie(&http.Cookie{Name: name, Value: rq.session})
	}
	if rq.csrf != "" {
		req.Header.Set("X-CSRF-Token", rq.csrf)
	}
	if rq.origin != "" {
		req.Header.Set("Origin", rq.origin)
	}
	if rq.fetchSite != "" {
		req.Header.Set("Sec-Fetch-Site", rq.fetchSite)
	}
	if rq.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+rq.bearer)
	}
	if rq.authz != "" {
		req.Header.Set("Authorization", rq.authz)
	}
	for k, vs := range rq.header {
		req.Header[k] = vs
	}
	client := e.client
	if rq.from != "" {
		client = e.clientFrom(rq.from)
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading the body: %v", rq.method, rq.path, err)
	}
	return response{Response: resp, body: string(b)}
}

// clientFrom is e.client connecting from the loopback address from, so
// that the server sees a request from another address (Linux routes all
// of 127.0.0.0/8 to the loopback interface).
func (e *testEnv) clientFrom(from string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	tr := e.srv.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = d.DialContext
	tr.DisableKeepAlives = true
	c := *e.client
	c.Transport = tr
	return &c
}

// expect fails the test unless resp has the status.
func expect(t *testing.T, what string, resp response, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d; body %q", what, resp.StatusCode, status, resp.body)
	}
}

// signIn signs in with JSON and returns the session id and the answer.
func (e *testEnv) signIn(username, password string) (string, Me) {
	e.t.Helper()
	resp := e.do(request{method: "POST", path: "/v1/session", json: map[string]string{"username": username, "password": password}})
	expect(e.t, "sign-in of "+username, resp, http.StatusOK)
	c := resp.sessionCookie("pp_session")
	if c == nil || c.Value == "" {
		e.t.Fatalf("sign-in of %s set no session cookie: %v", username, resp.Header.Values("Set-Cookie"))
	}
	var me Me
	if err := json.Unmarshal([]byte(resp.body), &me); err != nil {
		e.t.Fatalf("sign-in answer %q: %v", resp.body, err)
	}
	return c.Value, me
}

// token issues a staff API token.
func (e *testEnv) token(username string) string {
	e.t.Helper()
	tok, err := e.reg.IssueStaffToken(e.t.Context(), username, "test")
	if err != nil {
		e.t.Fatalf("IssueStaffToken: %v", err)
	}
	return tok
}

// audit returns the audit entries f selects, oldest first.
func (e *testEnv) audit(f registry.AuditFilter) []registry.AuditEntry {
	e.t.Helper()
	es, err := e.reg.AuditEntries(e.t.Context(), f)
	if err != nil {
		e.t.Fatalf("AuditEntries: %v", err)
	}
	slices.Reverse(es)
	return es
}

// outcomes returns the outcomes of the sign-in entries, oldest first.
func (e *testEnv) signInOutcomes() []string {
	e.t.Helper()
	var out []string
	for _, en := range e.audit(registry.AuditFilter{Action: registry.ActionSignIn}) {
		out = append(out, en.Outcome)
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v, want nil", err)
	}
	if err := testConfig().Validate(); err != nil {
		t.Errorf("testConfig().Validate() = %v, want nil", err)
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string // the one problem named
	}{
		{"idle under a minute", func(c *Config) { c.IdleTimeout = 59 * time.Second }, "session-idle must be"},
		{"max-age under idle", func(c *Config) { c.MaxAge = c.IdleTimeout - time.Second }, "session-max-age"},
		{"no account failures", func(c *Config) { c.MaxFailures = 0 }, "signin-max-failures"},
		{"negative account failures", func(c *Config) { c.MaxFailures = -1 }, "signin-max-failures"},
		{"no address failures", func(c *Config) { c.MaxAddressFailures = 0 }, "signin-max-address-failures"},
		{"lockout under a minute", func(c *Config) { c.LockoutWindow = 30 * time.Second }, "signin-lockout"},
		{"zero lockout", func(c *Config) { c.LockoutWindow = 0 }, "signin-lockout"},
		{"global under account failures", func(c *Config) { c.GlobalFailures = c.MaxFailures - 1 }, "signin-global-failures"},
		{"no global backoff", func(c *Config) { c.GlobalBackoff = 0 }, "signin-global-backoff"},
		{"global backoff over the window", func(c *Config) { c.GlobalBackoff = c.LockoutWindow + time.Second }, "signin-global-backoff"},
		{"no refusal audits", func(c *Config) { c.MaxRefusalAudits = 0 }, "audit-refusals-per-minute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to name %q", err, tt.want)
			}
			if n := len(strings.Split(err.Error(), "\n")); n != 1 {
				t.Errorf("Validate() = %q: %d problems, want 1", err, n)
			}
		})
	}
	t.Run("everything wrong", func(t *testing.T) {
		err := Config{IdleTimeout: 30 * time.Second, MaxAge: time.Second}.Validate()
		if err == nil {
			t.Fatal("Validate() of a zero config = nil")
		}
		for _, want := range []string{"session-idle must be", "session-max-age", "signin-max-failures", "signin-lockout",
			"signin-global-backoff", "audit-refusals-per-minute"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Validate() = %q, want it to name %q", err, want)
			}
		}
		if n := len(strings.Split(err.Error(), "\n")); n != 6 {
			t.Errorf("Validate() = %q: %d problems, want 6", err, n)
		}
	})
	t.Run("limits themselves are fine", func(t *testing.T) {
		c := Config{IdleTimeout: time.Minute, MaxAge: time.Minute, MaxFailures: 1, MaxAddressFailures: 1, LockoutWindow: time.Minute,
			GlobalFailures: 1, GlobalBackoff: time.Second, MaxRefusalAudits: 1}
		if err := c.Validate(); err != nil {
			t.Errorf("Validate() = %v, want nil", err)
		}
	})
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil, admin, clinician, oncall)
	ctx := t.Context()
	tok := e.token(clinician)

	resp := e.do(request{method: "GET", path: "/v1/session", bearer: tok})
	expect(t, "GET /v1/session with a token", resp, http.StatusOK)
	var me Me
	if err := json.Unmarshal([]byte(resp.body), &me); err != nil {
		t.Fatal(err)
	}
	if me.Username != clinician || me.Role != registry.RoleClinician || me.Via != "token" {
		t.Errorf("me = %+v, want %s, clinician, via token", me, clinician)
	}
	if strings.Contains(resp.body, "csrf_token") || strings.Contains(resp.body, "expires_at") {
		t.Errorf("token answer %q has a CSRF token or an expiry", resp.body)
	}
	if c := resp.Header.Values("Set-Cookie"); len(c) != 0 {
		t.Errorf("token request set cookies %v", c)
	}

	// A state-changing request with a token needs no CSRF token, nor an origin.
	resp = e.do(request{method: "POST", path: "/v1/thing", bearer: tok})
	expect(t, "POST with a token and no CSRF token", resp, http.StatusOK)
	if got := e.handledAll(); !slices.Equal(got, []string{"post " + clinician}) {
		t.Errorf("handlers run = %v", got)
	}
	// "bearer" in any case.
	resp = e.do(request{method: "GET", path: "/v1/session", authz: "bearer " + tok})
	expect(t, "lower-case bearer", resp, http.StatusOK)

	// Another member's token is theirs.
	resp = e.do(request{method: "GET", path: "/v1/session", bearer: e.token(oncall)})
	expect(t, "on-call token", resp, http.StatusOK)
	if !strings.Contains(resp.body, `"username":"`+oncall+`"`) {
		t.Errorf("on-call token answer %q", resp.body)
	}

	// A device token is no staff token.
	dev, err := e.reg.EnrollDevice(ctx, "dev-1", p1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dev, "ppd_") {
		t.Fatalf("device token %q", dev)
	}

	refused := map[string]string{
		"device token":     "Bearer " + dev,
		"garbage":          "Bearer not-a-token",
		"empty bearer":     "Bearer ",
		"basic":            "Basic YWxpY2U6Y29ycmVjdCBob3JzZSBiYXR0ZXJ5",
		"token, no scheme": tok,
		"token tampered":   "Bearer " + tok[:len(tok)-1] + "x",
	}
	if tok[len(tok)-1] == 'x' {
		refused["token tampered"] = "Bearer " + tok[:len(tok)-1] + "y"
	}
	for name, authz := range refused {
		resp := e.do(request{method: "GET", path: "/v1/session", authz: authz})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, resp.StatusCode)
		}
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", name)
		}
		if strings.Contains(resp.body, dev) || strings.Contains(resp.body, tok) {
			t.Errorf("%s: answer %q repeats the token", name, resp.body)
		}
	}
	// A bad token is not rescued by a good session cookie.
	sid, _ := e.signIn(admin, testPassword)
	resp = e.do(request{method: "GET", path: "/v1/session", session: sid, bearer: "garbage"})
	expect(t, "bad token with a good session", resp, http.StatusUnauthorized)

	// Revoked: refused.
	if err := e.reg.RevokeStaffTokens(ctx, clinician); err != nil {
		t.Fatal(err)
	}
	resp = e.do(request{method: "GET", path: "/v1/session", bearer: tok})
	expect(t, "revoked token", resp, http.StatusUnauthorized)
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("revoked token: WWW-Authenticate %q, want a Bearer challenge", got)
	}
	resp = e.do(request{method: "POST", path: "/v1/thing", bearer: tok})
	expect(t, "POST with a revoked token", resp, http.StatusUnauthorized)
	if got := e.handledAll(); len(got) != 0 {
		t.Errorf("handlers ran for a revoked token: %v", got)
	}
}

func TestBearerTokenOfDisabledStaff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil, admin, clinician)
	tok := e.token(clinician)
	expect(t, "before disabling", e.do(request{method: "GET", path: "/v1/session", bearer: tok}), http.StatusOK)
	if err := e.reg.DisableStaff(t.Context(), clinician); err != nil {
		t.Fatal(err)
	}
	resp := e.do(request{method: "GET", path: "/v1/session", bearer: tok})
	expect(t, "token of a disabled member", resp, http.StatusUnauthorized)
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
}

func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil)
	for _, rq := range []request{
		{method: "GET", path: "/v1/session"},
		{method: "DELETE", path: "/v1/session"},
		{method: "GET", path: "/v1/thing/" + p1},
		{method: "POST", path: "/v1/thing"},
		{method: "GET", path: "/v1/admin"},
		{method: "GET", path: "/v1/admin", session: "made-up-session-id"},
	} {
		resp := e.do(rq)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s: status %d, want 401", rq.method, rq.path, resp.StatusCode)
		}
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without WWW-Authenticate", rq.method, rq.path)
		}
	}
	if got := e.handledAll(); len(got) != 0 {
		t.Errorf("handlers ran without credentials: %v", got)
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil, admin)
	sid, me := e.signIn(admin, testPassword)
	if me.CSRFToken == "" {
		t.Fatal("sign-in gave no CSRF token")
	}
	wrong := "x" + me.CSRFToken[1:]
	if wrong == me.CSRFToken {
		wrong = "y" + me.CSRFToken[1:]
	}
	u, err := url.Parse(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		rq     request
		status int
		ran    bool
	}{
		{"no token", request{method: "POST", path: "/v1/thing", session: sid}, http.StatusForbidden, false},
		{"wrong token", request{method: "POST", path: "/v1/thing", session: sid, csrf: wrong}, http.StatusForbidden, false},
		{"token prefix", request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken[:len(me.CSRFToken)-1]}, http.StatusForbidden, false},
		{"right token", request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken}, http.StatusOK, true},
		{"right token, same origin", request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken, origin: e.origin()}, http.StatusOK, true},
		{"right token, foreign origin", request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken, origin: foreignSite}, http.StatusForbidden, false},
		{"right token, same host other port", request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken, origin: "http://" + u.Hostname() + ":1"}, http.StatusForbidden, false},
		{"right token, null origin", request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken, origin: "null"}, http.StatusForbidden, false},
		{"right token, Sec-Fetch-Site same-origin", request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken, fetchSite: "same-origin"}, http.StatusOK, true},
		// Under the no-referrer policy a form's Origin is null: Sec-Fetch-Site decides.
		{"right token, same-origin with a null Origin", request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken, fetchSite: "same-origin", origin: "null"}, http.StatusOK, true},
		{"right token, Sec-Fetch-Site cross-site", request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken, fetchSite: "cross-site"}, http.StatusForbidden, false},
		{"right token, Sec-Fetch-Site same-site", request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken, fetchSite: "same-site"}, http.StatusForbidden, false},
		{"right token, Sec-Fetch-Site none", request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken, fetchSite: "none"}, http.StatusForbidden, false},
		// Sec-Fetch-Site says where the request comes from; a same-host Origin does not overrule it.
		{"right token, cross-site with this Origin", request{method: "POST", path: "/v1/thing", session: sid, csrf: me.CSRFToken, fetchSite: "cross-site", origin: e.origin()}, http.StatusForbidden, false},
		{"same-origin but no token", request{method: "POST", path: "/v1/thing", session: sid, fetchSite: "same-origin", origin: e.origin()}, http.StatusForbidden, false},
		{"GET cross-site needs no token", request{method: "GET", path: "/v1/session", session: sid, fetchSite: "cross-site"}, http.StatusOK, false},
		{"GET needs no token", request{method: "GET", path: "/v1/session", session: sid}, http.StatusOK, false},
		{"GET of a patient needs no token", request{method: "GET", path: "/v1/thing/" + p1, session: sid}, http.StatusOK, true},
		{"sign-out without a token", request{method: "DELETE", path: "/v1/session", session: sid}, http.StatusForbidden, false},
		{"sign-out with a wrong token", request{method: "DELETE", path: "/v1/session", session: sid, csrf: wrong}, http.StatusForbidden, false},
	}
	for _, tt := range tests {
		resp := e.do(tt.rq)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d; body %q", tt.name, resp.StatusCode, tt.status, resp.body)
		}
		if ran := len(e.handledAll()) > 0; ran != tt.ran {
			t.Errorf("%s: handler ran %v, want %v", tt.name, ran, tt.ran)
		}
	}
	// The refused sign-outs left the session alive.
	expect(t, "session after refused sign-outs", e.do(request{method: "GET", path: "/v1/session", session: sid}), http.StatusOK)

	// Another session's CSRF token is no good for this one.
	sid2, me2 := e.signIn(admin, testPassword)
	if me2.CSRFToken == me.CSRFToken {
		t.Fatal("two sessions share a CSRF token")
	}
	expect(t, "other session's CSRF token", e.do(request{method: "POST", path: "/v1/thing", session: sid, csrf: me2.CSRFToken}), http.StatusForbidden)
	expect(t, "own CSRF token", e.do(request{method: "POST", path: "/v1/thing", session: sid2, csrf: me2.CSRFToken}), http.StatusOK)
}

func TestScopeAndCheck(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	reg := openRegistry(t)
	for name, role := range map[string]registry.Role{admin: registry.RoleAdmin, clinician: registry.RoleClinician, oncall: registry.RoleOnCall} {
		if err := reg.AddStaff(ctx, name, role, testPassword); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.AssignPatient(ctx, clinician, p1); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	principal := func(name string) *Principal {
		st, err := reg.StaffMember(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return &Principal{Staff: st, Via: "token"}
	}
	adm, cli, onc := principal(admin), principal(clinician), principal(oncall)

	type want struct {
		all      bool
		includes []string
		excludes []string
	}
	checkScope := func(name string, a *Auth, p *Principal, w want) {
		t.Helper()
		s, err := a.Scope(ctx, p)
		if err != nil {
			t.Fatalf("%s: Scope: %v", name, err)
		}
		if s.All() != w.all {
			t.Errorf("%s: All() = %v, want %v", name, s.All(), w.all)
		}
		for _, id := range w.includes {
			if !s.Includes(id) {
				t.Errorf("%s: scope leaves out %s", name, id)
			}
			if err := a.Check(ctx, p, ReadPatient, id); err != nil {
				t.Errorf("%s: Check(ReadPatient, %s) = %v, want nil", name, id, err)
			}
		}
		for _, id := range w.excludes {
			if s.Includes(id) {
				t.Errorf("%s: scope includes %s", name, id)
			}
			if err := a.Check(ctx, p, ReadPatient, id); !errors.Is(err, ErrForbidden) {
				t.Errorf("%s: Check(ReadPatient, %s) = %v, want ErrForbidden", name, id, err)
			}
		}
	}

	noAlerts := New(reg, testConfig(), nil, log, nil)
	checkScope("admin", noAlerts, adm, want{all: true, includes: []string{p1, p2, "p-unknown"}})
	checkScope("clinician", noAlerts, cli, want{includes: []string{p1}, excludes: []string{p2, "", "p-unknown"}})
	checkScope("on-call without alerts", noAlerts, onc, want{excludes: []string{p1, p2, ""}})

	withAlerts := New(reg, testConfig(), fakeAlerts{ids: []string{p2}}, log, nil)
	checkScope("on-call with an alert for p-2", withAlerts, onc, want{includes: []string{p2}, excludes: []string{p1, ""}})
	// The alerts are the on-call staff's only: a clinician's stay their care team.
	checkScope("clinician with alerts about", withAlerts, cli, want{includes: []string{p1}, excludes: []string{p2}})

	// A care team changes what a clinician may see at once.
	if err := reg.AssignPatient(ctx, clinician, p2); err != nil {
		t.Fatal(err)
	}
	checkScope("clinician assigned p-2 too", noAlerts, cli, want{includes: []string{p1, p2}})
	if err := reg.UnassignPatient(ctx, clinician, p1); err != nil {
		t.Fatal(err)
	}
	checkScope("clinician unassigned p-1", noAlerts, cli, want{includes: []string{p2}, excludes: []string{p1}})

	// Administer and SignedIn.
	for _, tt := range []struct {
		p     *Principal
		perm  Permission
		allow bool
	}{
		{adm, Administer, true}, {cli, Administer, false}, {onc, Administer, false},
		{adm, SignedIn, true}, {cli, SignedIn, true}, {onc, SignedIn, true},
		{adm, Permission(99), false},
	} {
		err := noAlerts.Check(ctx, tt.p, tt.perm, "")
		if tt.allow && err != nil {
			t.Errorf("Check(%s, %d) = %v, want nil", tt.p.Role, tt.perm, err)
		}
		if !tt.allow && !errors.Is(err, ErrForbidden) {
			t.Errorf("Check(%s, %d) = %v, want ErrForbidden", tt.p.Role, tt.perm, err)
		}
	}

	// An alerts stage that cannot answer is no refusal: the check could not decide.
	broken := New(reg, testConfig(), fakeAlerts{err: errors.New("alerts down")}, log, nil)
	if _, err := broken.Scope(ctx, onc); err == nil {
		t.Error("Scope with failing alerts = nil error")
	}
	if err := broken.Check(ctx, onc, ReadPatient, p1); err == nil || errors.Is(err, ErrForbidden) {
		t.Errorf("Check with failing alerts = %v, want an error that is not ErrForbidden", err)
	}
}

func TestRequireReadPatient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), nil, admin, clinician, oncall)
	adm, cli, onc := e.token(admin), e.token(clinician), e.token(oncall)

	// admin: every patient, the read audited before the handler ran.
	for _, id := range []string{p1, p2} {
		resp := e.do(request{method: "GET", path: "/v1/thing/" + id, bearer: adm})
		expect(t, "admin reads "+id, resp, http.StatusOK)
		if got := resp.Header.Get("X-Audited"); got != admin+" details" {
			t.Errorf("admin reads %s: the handler saw audit entry %q, want %q", id, got, admin+" details")
		}
	}
	// The query is part of what was read.
	resp := e.do(request{method: "GET", path: "/v1/thing/" + p1 + "?from=2024-01-01&series=sleep", bearer: adm})
	expect(t, "admin reads with a query", resp, http.StatusOK)
	if got, want := resp.Header.Get("X-Audited"), admin+" details?from=2024-01-01&series=sleep"; got != want {
		t.Errorf("read with a query: audit target %q, want %q", got, want)
	}
	reads := e.audit(registry.AuditFilter{Action: registry.ActionPatientRead})
	if len(reads) != 3 {
		t.Fatalf("patient.read entries = %+v, want 3", reads)
	}
	for i, want := range []struct{ patient, target string }{{p1, "details"}, {p2, "details"}, {p1, "details?from=2024-01-01&series=sleep"}} {
		en := reads[i]
		if en.Patient != want.patient || en.Target != want.target || en.Actor != admin || en.Outcome != registry.OutcomeOK || en.Address != "127.0.0.1" {
			t.Errorf("patient.read entry %d = %+v, want patient %s, target %q, actor %s, ok, from 127.0.0.1", i, en, want.patient, want.target, admin)
		}
	}
	if got := e.handledAll(); !slices.Equal(got, []string{"read " + p1, "read " + p2, "read " + p1}) {
		t.Errorf("handlers run = %v", got)
	}

	// clinician: the care team only.
	resp = e.do(request{method: "GET", path: "/v1/thing/" + p1, bearer: cli})
	expect(t, "clinician reads an assigned patient", resp, http.StatusOK)
	if got := resp.Header.Get("X-Audited"); got != clinician+" details" {
		t.Errorf("clinician read: the handler saw audit entry %q", got)
	}
	if got := e.handledAll(); !slices.Equal(got, []string{"read " + p1}) {
		t.Errorf("handlers run = %v", got)
	}
	resp = e.do(request{method: "GET", path: "/v1/thing/" + p2, bearer: cli})
	expect(t, "clinician reads another patient", resp, http.StatusForbidden)
	if got := e.handledAll(); len(got) != 0 {
		t.Errorf("handler ran for a refused read: %v", got)
	}
	denied := e.audit(registry.AuditFilter{Action: registry.ActionAccessDenied})
	if len(denied) != 1 {
		t.Fatalf("access.denied entries = %+v, want 1", denied)
	}
	if d := denied[0]; d.Patient != p2 || d.Actor != clinician || d.Outcome != registry.OutcomeDenied || d.Address != "127.0.0.1" ||
		d.Target != "GET /v1/thing/{id}" {
		t.Errorf("access.denied entry = %+v, want patient %s, actor %s, outcome denied, target GET /v1/thing/{id}", d, p2, clinician)
	}
	if es := e.audit(registry.AuditFilter{Action: registry.ActionPatientRead, Patient: p2, Actor: clinician}); len(es) != 0 {
		t.Errorf("a refused read was recorded as a read: %+v", es)
	}
	// A patient that does not exist is refused the same way.
	expect(t, "clinician reads an unknown patient", e.do(request{method: "GET", path: "/v1/thing/p-nobody", bearer: cli}), http.StatusForbidden)

	// on-call, no alerts stage: nobody.
	for _, id := range []string{p1, p2} {
		expect(t, "on-call without alerts reads "+id, e.do(request{method: "GET", path: "/v1/thing/" + id, bearer: onc}), http.StatusForbidden)
	}
	if got := e.handledAll(); len(got) != 0 {
		t.Errorf("handlers ran for refused reads: %v", got)
	}
	if es := e.audit(registry.AuditFilter{Action: registry.ActionAccessDenied, Actor: oncall}); len(es) != 2 {
		t.Errorf("on-call access.denied entries = %+v, want 2", es)
	}
}

func TestRequireOnCallWithAlerts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), fakeAlerts{ids: []string{p2}}, admin, oncall)
	onc := e.token(oncall)
	resp := e.do(request{method: "GET", path: "/v1/thing/" + p2, bearer: onc})
	expect(t, "on-call reads the alerting patient", resp, http.StatusOK)
	if got := resp.Header.Get("X-Audited"); got != oncall+" details" {
		t.Errorf("the handler saw audit entry %q", got)
	}
	expect(t, "on-call reads a quiet patient", e.do(request{method: "GET", path: "/v1/thing/" + p1, bearer: onc}), http.StatusForbidden)
	if got := e.handledAll(); !slices.Equal(got, []string{"read " + p2}) {
		t.Errorf("handlers run = %v", got)
	}
	denied := e.audit(registry.AuditFilter{Action: registry.ActionAccessDenied})
	if len(denied) != 1 || denied[0].Patient != p1 || denied[0].Actor != oncall {
		t.Errorf("access.denied entries = %+v, want one for %s by %s", denied, p1, oncall)
	}
}

func TestRequireAlertsFailing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), fakeAlerts{err: errors.New("alerts down")}, admin, oncall)
	resp := e.do(request{method: "GET", path: "/v1/thing/" + p1, bearer: e.token(oncall)})
	expect(t, "on-call read while alerts are down", resp, http.StatusServiceUnavailable)
	if got := e.handledAll(); len(got) != 0 {
		t.Errorf("handlers ran: %v", got)
	}
	if es := e.audit(registry.AuditFilter{Action: registry.ActionPatientRead}); len(es) != 0 {
		t.Errorf("patient.read entries %+v for an undecided request", es)
	}
}

func TestRequireAdminister(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig(), fakeAlerts{ids: []string{p1, p2}}, admin, clinician, oncall)
	expect(t, "admin", e.do(request{method: "GET", path: "/v1/admin", bearer: e.token(admin)}), http.StatusOK)
	if got := e.handledAll(); !slices.Equal(got, []string{"admin " + admin}) {
		t.Errorf("handlers run = %v", got)
	}
	for _, name := range []string{clinician, oncall} {
		expect(t, name+" administers", e.do(request{method: "GET", path: "/v1/admin", bearer: e.token(name)}), http.StatusForbidden)
	}
	if got := e.handledAll(); len(got) != 0 {
		t.Errorf("handlers ran for refused requests: %v", got)
	}
	denied := e.audit(registry.AuditFilter{Action: registry.ActionAccessDenied})
	if len(denied) != 2 {
		t.Fatalf("access.denied entries = %+v, want 2", denied)
	}
	for i, name := range []string{clinician, oncall} {
		d := denied[i]
		if d.Actor != name || d.Patient != "" || d.Outcome != registry.OutcomeDenied || d.Target != "GET /v1/admin" {
			t.Errorf("access.denied entry %d = %+v, want actor %s, no patient, denied, GET /v1/admin", i, d, name)
		}
	}
	// SignedIn is anyone's; nothing is audited for it.
	before := len(e.audit(registry.AuditFilter{}))
	for _, name := range []string{admin, clinician, oncall} {
		expect(t, name+" posts", e.do(request{method: "POST", path: "/v1/thing", bearer: e.token(name)}), http.StatusOK)
	}
	// Each token issued is audited (staff.token); the posts are not.
	if after := len(e.audit(registry.AuditFilter{})); after != before+3 {
		t.Errorf("audit grew by %d entries for 3 tokens and 3 posts, want 3", after-before)
	}
}
