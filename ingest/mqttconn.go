package ingest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// openBrokerConn opens the connection to the broker as paho's own dialling
// does (a proxy from the environment for TCP and TLS, websockets through
// paho), with its reads buffered: paho reads each packet in at least
// three reads (its first byte, its length, byte by byte, and its body),
// each a system call on a bare connection, and the collector reads tens
// of thousands of packets a second.
func openBrokerConn(uri *url.URL, opts mqtt.ClientOptions) (net.Conn, error) {
	dialer := opts.Dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: opts.ConnectTimeout}
	}
	var conn net.Conn
	var err error
	switch uri.Scheme {
	case "ws", "wss":
		u := *uri
		u.User = nil // as paho does: the websocket dialer refuses URLs with credentials
		var tlsCfg *tls.Config
		if u.Scheme == "wss" {
			tlsCfg = opts.TLSConfig
		}
		conn, err = mqtt.NewWebsocket(u.String(), tlsCfg, opts.ConnectTimeout, opts.HTTPHeaders, opts.WebsocketOptions)
	case "tcp", "mqtt":
		conn, err = proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
	case "ssl", "tls", "mqtts":
		conn, err = dialTLS(uri, opts, dialer)
	default:
		return nil, errors.New("unknown broker URL scheme")
	}
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: conn, r: bufio.NewReaderSize(conn, 32<<10)}, nil
}

func dialTLS(uri *url.URL, opts mqtt.ClientOptions, dialer *net.Dialer) (net.Conn, error) {
	raw, err := proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
	if err != nil {
		return nil, err
	}
	cfg := opts.TLSConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = uri.Hostname()
	}
	conn := tls.Client(raw, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), opts.ConnectTimeout)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// bufferedConn is a connection whose reads go through a buffer. Only
// paho's one reading goroutine reads it.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
