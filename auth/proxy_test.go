package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

func TestParseProxies(t *testing.T) {
	if _, err := ParseProxies([]string{"10.0.0.0/8", "192.0.2.1", "::1", " "}); err != nil {
		t.Errorf("ParseProxies = %v", err)
	}
	_, err := ParseProxies([]string{"10.0.0.0/33", "proxy.example", "10.0.0.1"})
	if err == nil || !strings.Contains(err.Error(), "10.0.0.0/33") || !strings.Contains(err.Error(), "proxy.example") {
		t.Errorf("ParseProxies of two bad ones = %v, want both named", err)
	}
}

func TestProxiesClient(t *testing.T) {
	p, err := ParseProxies([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{"none", nil, ""},
		{"one client", []string{"203.0.113.7"}, "203.0.113.7"},
		{"client and a forged hop", []string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7"},
		{"through two proxies", []string{"203.0.113.7, 10.1.1.1"}, "203.0.113.7"},
		{"several headers", []string{"198.51.100.1", "203.0.113.7", "10.1.1.1"}, "203.0.113.7"},
		{"only proxies", []string{"10.2.2.2, 10.1.1.1"}, "10.2.2.2"},
		{"garbage before the client", []string{"nonsense, 203.0.113.7"}, "203.0.113.7"},
		{"garbage last", []string{"203.0.113.7, nonsense"}, ""},
		{"ipv6", []string{"2001:db8::1"}, "2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.client(tt.values); got != tt.want {
				t.Errorf("client(%q) = %q, want %q", tt.values, got, tt.want)
			}
		})
	}
}

// behind starts the test server behind the proxies cidrs trusts.
func behind(t *testing.T, cidrs ...string) func(http.Handler) *httptest.Server {
	p, err := ParseProxies(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return func(h http.Handler) *httptest.Server { return httptest.NewServer(p.Handler(h)) }
}

// TestTrustedProxy: behind a trusted TLS-terminating proxy, the session
// cookie is Secure and __Host- prefixed, and the lock-out and the audit
// log see the client's address; HTTPS() says so for the HSTS header.
func TestTrustedProxy(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	e := newEnvServer(t, cfg, nil, behind(t, "127.0.0.1/32"), admin)
	forwarded := func(rq request, client string) request {
		rq.header = http.Header{"X-Forwarded-For": {client}, "X-Forwarded-Proto": {"https"}}
		return rq
	}
	resp := e.do(forwarded(signInJSON(admin, testPassword), "203.0.113.7"))
	expect(t, "sign-in through the proxy", resp, http.StatusOK)
	c := resp.sessionCookie("__Host-pp_session")
	if c == nil || !c.Secure || resp.sessionCookie("pp_session") != nil {
		t.Fatalf("cookies %v, want a Secure __Host-pp_session only", resp.Header.Values("Set-Cookie"))
	}
	got := e.do(forwarded(request{method: "GET", path: "/v1/session", session: c.Value, cookieName: "__Host-pp_session"}, "203.0.113.7"))
	expect(t, "the __Host- cookie through the proxy", got, http.StatusOK)
	es := e.audit(registry.AuditFilter{Action: registry.ActionSignIn})
	if len(es) != 1 || es[0].Address != "203.0.113.7" {
		t.Errorf("signin entries %+v, want one from 203.0.113.7", es)
	}
	// The lock-out counts the client, not the proxy.
	for range cfg.MaxFailures {
		e.clock.Advance(time.Second)
		expect(t, "guess", e.do(forwarded(signInJSON(admin, wrongPass), "198.51.100.9")), http.StatusUnauthorized)
	}
	expect(t, "the guessing client", e.do(forwarded(signInJSON(admin, testPassword), "198.51.100.9")), http.StatusTooManyRequests)
	expect(t, "another client through the same proxy", e.do(forwarded(signInJSON(admin, testPassword), "203.0.113.7")), http.StatusOK)
}

// TestUntrustedForwardedHeaders: from a peer that is not a trusted proxy,
// X-Forwarded-* are ignored.
func TestUntrustedForwardedHeaders(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	e := newEnvServer(t, cfg, nil, behind(t, "10.0.0.0/8"), admin)
	spoof := http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Forwarded-Proto": {"https"}}
	rq := signInJSON(admin, testPassword)
	rq.header = spoof
	resp := e.do(rq)
	expect(t, "sign-in with forged headers", resp, http.StatusOK)
	if c := resp.sessionCookie("pp_session"); c == nil || c.Secure || resp.sessionCookie("__Host-pp_session") != nil {
		t.Errorf("cookies %v, want pp_session, not Secure", resp.Header.Values("Set-Cookie"))
	}
	// Forged addresses do not escape the lock-out.
	for i := range cfg.MaxFailures + 1 {
		rq := signInJSON(admin, wrongPass)
		rq.header = http.Header{"X-Forwarded-For": {"203.0.113." + string(rune('1'+i))}}
		e.clock.Advance(time.Second)
		e.do(rq)
	}
	expect(t, "after failures with forged addresses", e.do(signInJSON(admin, testPassword)), http.StatusTooManyRequests)
	for _, en := range e.audit(registry.AuditFilter{Action: registry.ActionSignIn}) {
		if en.Address != "127.0.0.1" {
			t.Errorf("entry %+v: a forged address was believed", en)
		}
	}
}

func TestHTTPS(t *testing.T) {
	p, _ := ParseProxies([]string{"127.0.0.1"})
	var saw []bool
	srv := httptest.NewServer(p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { saw = append(saw, HTTPS(r)) })))
	defer srv.Close()
	for _, proto := range []string{"https", "http", ""} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if len(saw) != 3 || !saw[0] || saw[1] || saw[2] {
		t.Errorf("HTTPS = %v, want true for https only", saw)
	}
}
