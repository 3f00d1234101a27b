package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/server"
)

// selfSigned makes a self-signed certificate for 127.0.0.1 in dir, as
// --tls-self-signed does, and returns its files and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	certFile, keyFile, _, err := server.DevCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, trust(t, certFile)
}

func trust(t *testing.T, certFile string) *x509.CertPool {
	t.Helper()
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("%s holds no certificate", certFile)
	}
	return pool
}

// insecureClient trusts any certificate: for waiting on a server with the
// development certificate, and for tests about something else than TLS.
func insecureClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
}

func TestHTTPSSelfSignedMode(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	srv := startServeOver(t, insecureClient(), "https", dir, "t-selfsigned", "--mqtt=false", "--cluster=false", "--tls-self-signed")
	trusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: trust(t, filepath.Join(dir, "tls", "dev-cert.pem"))},
	}}
	resp, err := trusting.Get(srv.url + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz trusting the certificate under <data-dir>/tls: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("GET /healthz over TLS: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
}

func TestHTTPSIngest(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	token := enroll(t, dir, "p-tls", "app-tls")
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	trusting := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	defer trusting.CloseIdleConnections()
	srv := startServeOver(t, trusting, "https", dir, "t-tls", "--mqtt=false", "--cluster=false", "--tls-cert", certFile, "--tls-key", keyFile)

	now := time.Now().UTC().Truncate(time.Second)
	status, doc, _, err := postWith(trusting, srv.url, token, "application/json",
		[]byte(fmt.Sprintf(`{"seq": 1, "samples": [{"type": "heart_rate", "time": %q, "bpm": 66}]}`, ts(now.Add(-time.Minute)))))
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusAccepted || doc["accepted"] != 1.0 {
		t.Fatalf("POST over https: %d %v, want 202 accepted 1", status, doc)
	}
	// 202 means stored: the point is there at once.
	rows := query(t, "app-tls")
	if len(rows) != 2 || rows[0].Field != "bpm" || rows[0].Value != 66.0 || !rows[0].Time.Equal(now.Add(-time.Minute)) ||
		rows[0].Tags["patient"] != "p-tls" {
		t.Fatalf("stored %+v, want bpm 66 (and its seq) under p-tls", rows)
	}

	// Plain HTTP to the TLS port is no way in: Go's server answers 400
	// to a plaintext request, and nothing is stored.
	plain := strings.Replace(srv.url, "https://", "http://", 1)
	req, _ := http.NewRequest(http.MethodPost, plain+"/v1/ingest",
		strings.NewReader(fmt.Sprintf(`{"seq": 2, "samples": [{"type": "heart_rate", "time": %q, "bpm": 67}]}`, ts(now))))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain http to the TLS port answered %d %q, want a failure (400 or no answer)", resp.StatusCode, body)
		}
	}
	// A client that does not trust the certificate refuses the server.
	if _, _, _, err := postWith(&http.Client{Timeout: 10 * time.Second}, srv.url, token, "application/json", []byte(`{}`)); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusting client: err %v, want a certificate error", err)
	}
	if rows := query(t, "app-tls"); len(rows) != 2 {
		t.Errorf("after the refused requests %d fields stored, want still 2", len(rows))
	}
}

// runServeConfig runs serve with args and env, returning its exit code and
// stderr. Every case here is a configuration error, so serve never starts;
// the timeout only bounds a regression where it would.
func runServeConfig(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	dir := filepath.Join(t.TempDir(), "data")
	args = append(append(append([]string{"serve", "--data-dir", dir}, registryArgs(t, dir)...), "--http-addr", "127.0.0.1:0"), args...)
	code := run(ctx, args, nil, &stdout, &stderr, func(k string) string { return env[k] })
	return code, stderr.String()
}

func TestConfigProblemsAllAtOnce(t *testing.T) {
	t.Run("every problem named", func(t *testing.T) {
		code, stderr := runServeConfig(t, nil,
			"--max-samples=0", "--write-batch-points=0", "--mqtt-url=nope", "--tls-cert=/missing")
		if code != 2 {
			t.Fatalf("exit %d, want 2; stderr: %s", code, stderr)
		}
		t.Logf("stderr:\n%s", stderr)
		for _, want := range []string{"max-samples", "write-batch-points", "mqtt-url", "tls-cert", "/missing"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr does not name %q:\n%s", want, stderr)
			}
		}
	})

	t.Run("unknown config key", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "patientpulse.yaml")
		if err := os.WriteFile(file, []byte("influx-bucket: patientpulse\nmqtt-urll: tcp://127.0.0.1:1883\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, stderr := runServeConfig(t, nil, "--config", file)
		if code != 2 || !strings.Contains(stderr, "mqtt-urll") {
			t.Errorf("exit %d, want 2 naming mqtt-urll; stderr: %s", code, stderr)
		}
	})

	t.Run("flag beats environment beats file", func(t *testing.T) {
		// Each layer sets a bad value that a higher layer corrects, except
		// write-batch-points, which only the environment sets (badly) so
		// that the environment is seen to be read at all, and max-samples,
		// which the flags set badly so that serve stops at validation.
		file := filepath.Join(t.TempDir(), "patientpulse.yaml")
		if err := os.WriteFile(file, []byte("write-concurrency: 0\nmqtt-url: nope-file\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{
			"PATIENTPULSE_WRITE_CONCURRENCY":  "1",        // corrects the file
			"PATIENTPULSE_MQTT_URL":           "nope-env", // corrected by the flag
			"PATIENTPULSE_WRITE_BATCH_POINTS": "0",        // stands
		}
		code, stderr := runServeConfig(t, env, "--config", file, "--mqtt-url", "tcp://127.0.0.1:1", "--max-samples=0")
		if code != 2 {
			t.Fatalf("exit %d, want 2; stderr: %s", code, stderr)
		}
		for _, want := range []string{"max-samples", "write-batch-points"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr does not name %q:\n%s", want, stderr)
			}
		}
		for _, overridden := range []string{"mqtt-url", "write-concurrency"} {
			if strings.Contains(stderr, overridden) {
				t.Errorf("stderr names %q, which a higher layer set right:\n%s", overridden, stderr)
			}
		}
	})
}
