package auth

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// twoInstances is two Auths, each over a registry of its own on one
// Postgres database and served by a server of its own, as two instances
// of serve are; they share one clock.
func twoInstances(t *testing.T, cfg Config) (a, b *testEnv) {
	t.Helper()
	dsn := testservices.PostgresDB(t)
	clock := newFakeClock()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	env := func() *testEnv {
		reg, err := registry.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		e := &testEnv{t: t, reg: reg, clock: clock}
		e.auth = New(reg, cfg, nil, log, nil)
		e.auth.now = clock.Now
		mux := http.NewServeMux()
		e.auth.Routes(mux)
		e.srv = httptest.NewServer(mux)
		t.Cleanup(e.srv.Close)
		client := *e.srv.Client()
		e.client = &client
		e.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return e
	}
	a, b = env(), env()
	if err := a.reg.AddStaff(t.Context(), admin, registry.RoleAdmin, testPassword); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestLockoutAcrossInstances: failed sign-ins made through one instance
// lock the account (a real one, and an unknown username alike) on the
// other, and a session made on one is served by the other.
func TestLockoutAcrossInstances(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // 3 failures, 15m window
	a, b := twoInstances(t, cfg)
	for _, name := range []string{admin, "no-such-user"} {
		for i := range cfg.MaxFailures {
			a.clock.Advance(time.Second)
			expect(t, name+" wrong password on A "+strconv.Itoa(i+1), a.do(signInJSON(name, wrongPass)), http.StatusUnauthorized)
		}
		a.clock.Advance(time.Second)
		expect(t, name+" on B after 3 failures on A", b.do(signInJSON(name, wrongPass)), http.StatusTooManyRequests)
	}
	// Past the window, the owner signs in on B and A serves the session.
	a.clock.Advance(cfg.LockoutWindow)
	resp := b.do(signInJSON(admin, testPassword))
	expect(t, "sign-in on B past the window", resp, http.StatusOK)
	var session string
	for _, c := range resp.Cookies() {
		session = c.Value
	}
	expect(t, "B's session on A", a.do(request{method: http.MethodGet, path: "/v1/session", session: session}), http.StatusOK)
}
