package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/patientpulse/patientpulse/auth"
)

// TestFrontDoorHSTS: HSTS is sent over TLS, and behind a trusted proxy
// that says the client used HTTPS; a forged X-Forwarded-Proto from
// anyone else is ignored.
func TestFrontDoorHSTS(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	trusted, err := auth.ParseProxies([]string{"127.0.0.1/32"})
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, _ := auth.ParseProxies([]string{"10.0.0.0/8"})
	tests := []struct {
		name    string
		tls     bool
		proxies *auth.Proxies
		proto   string
		want    bool
	}{
		{"plain HTTP", false, nil, "", false},
		{"TLS here", true, nil, "", true},
		{"trusted proxy, https", false, trusted, "https", true},
		{"trusted proxy, http", false, trusted, "http", false},
		{"untrusted peer says https", false, elsewhere, "https", false},
		{"no proxies configured, forged https", false, nil, "https", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(frontDoor(ok, tt.tls, tt.proxies))
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL, nil)
			if tt.proto != "" {
				req.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Strict-Transport-Security") != ""; got != tt.want {
				t.Errorf("HSTS sent: %v, want %v", got, tt.want)
			}
		})
	}
}
