package server

import (
	"net/http"

	"github.com/patientpulse/patientpulse/auth"
)

// contentSecurityPolicy allows the app's own scripts, styles and
// connections only: no inline script, no framing by other sites.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// securityHeaders sets the headers every response carries; with TLS on,
// or behind a trusted proxy that says the client used HTTPS, browsers are
// also told to use HTTPS only (HSTS).
func securityHeaders(next http.Handler, tls bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if tls || auth.ForwardedHTTPS(r) {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

// frontDoor is what every request goes through first: the trusted
// proxies' view of the client (its address and scheme), then the
// security headers.
func frontDoor(next http.Handler, tls bool, proxies *auth.Proxies) http.Handler {
	return proxies.Handler(securityHeaders(next, tls))
}
