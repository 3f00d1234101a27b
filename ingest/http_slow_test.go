package ingest

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// slowBody opens a connection to srv and sends the headers of an ingest
// request of device token tok, then one byte of its body, and no more.
func slowBody(t *testing.T, srv *httptest.Server, tok string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_, err = fmt.Fprintf(conn, "POST /v1/ingest HTTP/1.1\r\nHost: pp\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", tok)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// postOnce sends one small valid message of device token tok over a new
// connection and returns the status.
func postOnce(t *testing.T, srv *httptest.Server, tok string) (int, string) {
	t.Helper()
	body := fmt.Sprintf(`{"seq": 1, "samples": [{"type": "heart_rate", "time": %q, "bpm": 60}]}`,
		time.Now().UTC().Format(time.RFC3339))
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/ingest", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// TestHTTPSlowBodiesKeepOthersServed: one device opening many requests
// whose bodies never arrive holds at most its own share of open requests,
// is answered 429 beyond it, and never takes a storing slot, so another
// device keeps getting 202.
func TestHTTPSlowBodiesKeepOthersServed(t *testing.T) {
	h := newTestHTTP(t, &fakeSink{}, HTTPConfig{MaxInFlight: 2})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close) // after the slow connections close: cleanups run last first

	const slow = 10
	answers := make(chan int, slow)
	for range slow {
		conn := slowBody(t, srv, "tok-1")
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				return // closed at the end of the test
			}
			resp.Body.Close()
			answers <- resp.StatusCode
		}()
	}
	// Those beyond the device's share are answered at once.
	refused := 0
	for refused < slow-DefaultDeviceOpen {
		select {
		case code := <-answers:
			if code != http.StatusTooManyRequests {
				t.Fatalf("a slow request of app-1 was answered %d, want 429", code)
			}
			refused++
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of app-1's %d slow requests answered, want %d answered 429", refused, slow, slow-DefaultDeviceOpen)
		}
	}
	for i := range 5 {
		if code, _ := postOnce(t, srv, "tok-2"); code != http.StatusAccepted {
			t.Fatalf("app-2's request %d while app-1 holds slow bodies: status %d, want 202", i+1, code)
		}
	}
	code, retry := postOnce(t, srv, "tok-1")
	if code != http.StatusTooManyRequests || retry == "" {
		t.Errorf("app-1's next request: status %d, Retry-After %q; want 429 with Retry-After", code, retry)
	}
}

// TestHTTPSlowBodyTimesOut: a body that does not arrive within ReadWait is
// answered 408, and its device's requests are counted open no longer.
func TestHTTPSlowBodyTimesOut(t *testing.T) {
	h := newTestHTTP(t, &fakeSink{}, HTTPConfig{MaxInFlight: 2, DeviceOpen: 1, ReadWait: 300 * time.Millisecond})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	conn := slowBody(t, srv, "tok-1")
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a slow body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow body answered %d, want 408", resp.StatusCode)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("answered after %s, before the read wait of 300ms", took)
	}
	if code, _ := postOnce(t, srv, "tok-1"); code != http.StatusAccepted {
		t.Errorf("app-1's next request after the timeout: status %d, want 202", code)
	}
}
