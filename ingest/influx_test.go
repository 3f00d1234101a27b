package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// influx18Auth answers as InfluxDB 1.8 with auth-enabled = true: no
// bucket API, and /query only with the admin's credentials, taken from
// the URL's u and p or from Basic authentication, never from a form body.
func influx18Auth(t *testing.T, user, password string) (url string, statements *[]string) {
	t.Helper()
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/query" {
			http.NotFound(w, r)
			return
		}
		u, p, ok := r.BasicAuth()
		if !ok {
			u, p, ok = r.URL.Query().Get("u"), r.URL.Query().Get("p"), r.URL.Query().Has("u")
		}
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "unable to parse authentication credentials"})
			return
		}
		if u != user || p != password {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "authorization failed"})
			return
		}
		got = append(got, r.FormValue("q"))
		w.Write([]byte(`{"results":[{"statement_id":0}]}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &got
}

// With InfluxDB 1.8's authentication on (make services, make demo), serve
// creates its database with the user:password token.
func TestEnsureBucketInflux18Auth(t *testing.T) {
	url, statements := influx18Auth(t, "admin", "s3cret:with-colon")
	tests := []struct {
		name, token string
		ok          bool
	}{
		{name: "admin token", token: "admin:s3cret:with-colon", ok: true},
		{name: "wrong password", token: "admin:nope"},
		{name: "no token", token: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewInflux(InfluxConfig{URL: url, Token: tt.token, Bucket: "patientpulse", Timeout: 5 * time.Second})
			defer s.Close()
			err := s.EnsureBucket(context.Background())
			if tt.ok && err != nil {
				t.Fatalf("EnsureBucket: %v", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("EnsureBucket succeeded with a token InfluxDB refuses")
			}
		})
	}
	if len(*statements) != 1 || (*statements)[0] != `CREATE DATABASE "patientpulse"` {
		t.Errorf("statements run = %q, want one CREATE DATABASE", *statements)
	}
}
