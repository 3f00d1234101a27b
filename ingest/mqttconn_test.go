package ingest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
)

// TestOpenBrokerConn dials each kind of broker URL the collector takes and
// checks that bytes pass both ways through the buffered connection.
func TestOpenBrokerConn(t *testing.T) {
	opts := *mqtt.NewClientOptions().SetConnectTimeout(5 * time.Second)

	t.Run("tcp", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			io.Copy(c, c) // echo
		}()
		echoes(t, "tcp://"+ln.Addr().String(), opts)
	})

	t.Run("tls", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "over tls")
		}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
		srv.StartTLS()
		defer srv.Close()
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		o := opts
		o.TLSConfig = &tls.Config{RootCAs: pool}
		conn := dial(t, "mqtts://"+srv.Listener.Addr().String(), o)
		io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "over tls" {
			t.Errorf("got %q over TLS", body)
		}
		if _, err := openBrokerConn(mustURL(t, "mqtts://"+srv.Listener.Addr().String()), opts); err == nil {
			t.Error("a broker whose certificate is not trusted was accepted")
		}
	})

	t.Run("ws", func(t *testing.T) {
		up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer ws.Close()
			for {
				typ, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				ws.WriteMessage(typ, msg)
			}
		}))
		defer srv.Close()
		echoes(t, "ws://user:pw@"+strings.TrimPrefix(srv.URL, "http://")+"/mqtt", opts)
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func dial(t *testing.T, broker string, opts mqtt.ClientOptions) net.Conn {
	t.Helper()
	conn, err := openBrokerConn(mustURL(t, broker), opts)
	if err != nil {
		t.Fatalf("open %s: %v", broker, err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}

// echoes writes to an echoing peer and reads the bytes back in small
// reads, as paho does.
func echoes(t *testing.T, broker string, opts mqtt.ClientOptions) {
	t.Helper()
	conn := dial(t, broker, opts)
	want := "\x30\x05hello"
	if _, err := io.WriteString(conn, want); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	for i := range got {
		if _, err := io.ReadFull(conn, got[i:i+1]); err != nil {
			t.Fatalf("read byte %d: %v", i, err)
		}
	}
	if string(got) != want {
		t.Errorf("read back %q, want %q", got, want)
	}
}

// tcpPair returns both ends of a loopback TCP connection, the first
// wrapped as the collector wraps its broker connection.
func tcpPair(t *testing.T) (*bufferedConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { raw.Close(); peer.Close() })
	return newBufferedConn(raw), peer
}

// TestBufferedConnKeepsOrder writes many small packets, as paho writes
// PUBACKs, more than maxUnsent in all while the peer reads slowly, and
// checks that the peer gets every byte in order.
func TestBufferedConnKeepsOrder(t *testing.T) {
	conn, peer := tcpPair(t)
	const n = 200000 // 1.4 MB, above maxUnsent
	go func() {
		for i := range n {
			if _, err := fmt.Fprintf(conn, "%06d;", i); err != nil {
				t.Errorf("write %d: %v", i, err)
				return
			}
		}
		conn.Close() // sends what is pending first
	}()
	peer.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(peer)
	for i := range n {
		if i%50000 == 0 {
			time.Sleep(50 * time.Millisecond) // let the writer fill its buffer
		}
		got, err := r.ReadString(';')
		if want := fmt.Sprintf("%06d;", i); got != want || err != nil {
			t.Fatalf("packet %d: got %q (%v), want %q", i, got, err, want)
		}
	}
	if b, err := r.ReadByte(); err != io.EOF {
		t.Errorf("after the last packet: %q, %v; want EOF", b, err)
	}
}

// TestBufferedConnFailsAfterPeerCloses checks that a send that fails is
// not silent: later writes fail, and the connection is closed, so that
// paho's reads end too.
func TestBufferedConnFailsAfterPeerCloses(t *testing.T) {
	conn, peer := tcpPair(t)
	peer.(*net.TCPConn).SetLinger(0) // close with a reset
	peer.Close()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = conn.Write([]byte("\x40\x02\x00\x01")) // a PUBACK
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes to a reset connection kept succeeding")
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, rerr := conn.Read(make([]byte, 1)); rerr == nil || errors.Is(rerr, os.ErrDeadlineExceeded) {
		t.Errorf("read after a failed send: %v, want the connection closed", rerr)
	}
	conn.Close()
	if _, err := conn.Write([]byte("x")); err == nil {
		t.Error("write after Close succeeded")
	}
}
