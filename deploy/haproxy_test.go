package deploy

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/internal/testservices"
)

// haproxyBin is Debian's haproxy (make tools), which lives in /usr/sbin.
func haproxyBin(t *testing.T) string {
	t.Helper()
	if bin, err := exec.LookPath("haproxy"); err == nil {
		return bin
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	testservices.Require(t, fmt.Errorf("haproxy (make tools): %w", testservices.ErrMissingBinary))
	return ""
}

// haproxy -c accepts deploy/haproxy/haproxy.cfg, with no warning but that
// the instances' names do not resolve outside Docker.
func TestHAProxyConfigValid(t *testing.T) {
	out, err := exec.Command(haproxyBin(t), "-c", "-f", filepath.Join("haproxy", "haproxy.cfg")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Configuration file is valid") {
		t.Fatalf("haproxy -c: %v:\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "WARNING") && !strings.Contains(line, "could not resolve address") {
			t.Errorf("haproxy -c warns: %s", line)
		}
	}
}

// backend is a stand-in for a patientpulse instance behind the balancer:
// it trusts the balancer (127.0.0.1) as patientpulse trusts the cluster
// network, and answers with the client address auth.Proxies gives it.
// It trusts 127.0.0.3 too: the cluster network's gateway, from which
// Docker's userland proxy connects the host's own clients to a port
// published on the loopback, is in that network.
type backend struct {
	name  string
	ready atomic.Bool
	srv   *httptest.Server
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	proxies, err := auth.ParseProxies([]string{"127.0.0.1/32", "127.0.0.3/32"})
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name}
	b.ready.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !b.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "%s %s https=%v", b.name, host, auth.HTTPS(r))
	})
	// A websocket-like upgrade: 101, then an echo of what the client sends.
	mux.HandleFunc("GET /v1/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			base64.StdEncoding.EncodeToString(sum[:]))
		rw.Flush()
		io.Copy(conn, rw)
	})
	b.srv = httptest.NewServer(proxies.Handler(mux))
	t.Cleanup(b.srv.Close)
	return b
}

// startHAProxy runs deploy/haproxy/haproxy.cfg with its bind and its
// servers moved to loopback ports, and returns its address.
func startHAProxy(t *testing.T, backends ...*backend) string {
	t.Helper()
	bin := haproxyBin(t)
	b, err := os.ReadFile(filepath.Join("haproxy", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	port, err := testservices.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	bind := regexp.MustCompile(`(?m)^(\s*bind\s+):8080\b`)
	if !bind.MatchString(cfg) {
		t.Fatal("haproxy.cfg: no bind :8080")
	}
	cfg = bind.ReplaceAllString(cfg, fmt.Sprintf("${1}127.0.0.1:%d", port))
	for _, be := range backends {
		server := regexp.MustCompile(`(?m)^(\s*server\s+` + be.name + `\s+)` + be.name + `:8080\b`)
		if !server.MatchString(cfg) {
			t.Fatalf("haproxy.cfg: no server %s", be.name)
		}
		cfg = server.ReplaceAllString(cfg, "${1}"+be.srv.Listener.Addr().String())
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-db", "-f", path)
	var log testservices.LogBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy's log:\n%s", log.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy does not listen on %s:\n%s", addr, log.String())
		}
	}
}

// clientFrom is an HTTP client whose connections come from local (a
// loopback address other than the balancer's own 127.0.0.1).
func clientFrom(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// whoami asks through the balancer which instance answered and whom it
// took for the client, sending a forged X-Forwarded-For and
// X-Forwarded-Proto.
func whoami(t *testing.T, c *http.Client, addr string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/whoami", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /whoami: %s: %s", resp.Status, b)
	}
	return string(b)
}

// Through the balancer an instance takes the client for who it is (not
// the balancer, not what the client claims in X-Forwarded-For), both
// instances take requests, one whose /readyz fails gets none until it
// recovers, and a websocket upgrade passes both ways.
func TestHAProxyBalances(t *testing.T) {
	a, b := startBackend(t, "pp-a"), startBackend(t, "pp-b")
	addr := startHAProxy(t, a, b)
	client := clientFrom("127.0.0.2")

	seen := map[string]int{}
	for range 10 {
		got := whoami(t, client, addr)
		name, rest, _ := strings.Cut(got, " ")
		seen[name]++
		if rest != "127.0.0.2 https=false" {
			t.Fatalf("the instance saw %q, want the client 127.0.0.2 over plain http (not the balancer, nor the forged header)", rest)
		}
	}
	if seen["pp-a"] == 0 || seen["pp-b"] == 0 {
		t.Errorf("requests went to %v: want both instances", seen)
	}
	// From a trusted address (the gateway), what the client forged must
	// not be believed either: the balancer drops it.
	if got := whoami(t, clientFrom("127.0.0.3"), addr); !strings.HasSuffix(got, " 127.0.0.3 https=false") {
		t.Errorf("a client at the cluster network's gateway: the instance saw %q, want 127.0.0.3 over plain http", got)
	}

	b.ready.Store(false)
	out := func() bool { // pp-b out: 10 requests in a row to pp-a
		for range 10 {
			if !strings.HasPrefix(whoami(t, client, addr), "pp-a ") {
				return false
			}
		}
		return true
	}
	waitFor(t, 15*time.Second, "pp-b, unready, taken out of the balancer", out)
	b.ready.Store(true)
	waitFor(t, 15*time.Second, "pp-b, ready again, back in the balancer", func() bool {
		return strings.HasPrefix(whoami(t, client, addr), "pp-b ")
	})

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(conn, "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	r := bufio.NewReader(conn)
	status, err := r.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		t.Fatalf("websocket upgrade through the balancer: %q, %v", status, err)
	}
	for line := "x"; line != "\r\n"; {
		if line, err = r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprint(conn, "ping\n")
	if echo, err := r.ReadString('\n'); err != nil || echo != "ping\n" {
		t.Errorf("after the upgrade: %q, %v; want the echo", echo, err)
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
	}
}
