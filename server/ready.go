package server

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/patientpulse/patientpulse/internal/httpx"
)

// readyz answers 200 when InfluxDB, the broker (if used: with several
// instances, the partition feed subscribed) and the registry's writes
// all work, 503 otherwise, with each one's state:
// "up", "down", "disabled", or for the broker "waiting for influxdb"
// while it answers but the collector waits for InfluxDB (see takeMQTT).
// The registry is probed with a write at most every five seconds: a
// registry that cannot write (a full disk) refuses every sign-in and
// staff read, which write their audit rows first.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	status := map[string]string{"influxdb": "up", "mqtt": "disabled", "registry": "up"}
	ready := true
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if !s.stored.Load() || !s.writer.Available() || s.sink.Ping(ctx) != nil {
		status["influxdb"], ready = "down", false
	}
	if s.mqtt != nil || s.feed != nil {
		switch {
		case s.mqtt != nil && s.mqtt.Connected(), s.feed != nil && s.feed.Subscribed():
			status["mqtt"] = "up"
		case !s.stored.Load() && brokerAnswers(ctx, s.cfg.MQTT.URL):
			status["mqtt"], ready = "waiting for influxdb", false
		default:
			status["mqtt"], ready = "down", false
		}
	}
	// The registry's probe has its own two seconds: an InfluxDB slow to
	// answer while it takes in a backlog must not leave it none, and so
	// report a registry that can write as one that cannot.
	pctx, pcancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer pcancel()
	if err := s.probe.Check(pctx); err != nil {
		status["registry"], ready = "down", false
		s.log.Warn("registry cannot write", "err", err)
	}
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	httpx.WriteJSON(w, code, status)
}

// brokerAnswers reports whether the broker at rawURL takes a TCP
// connection: what readiness can tell of a broker the collector has not
// connected to yet.
func brokerAnswers(ctx context.Context, rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	host := u.Host
	if u.Port() == "" {
		port := map[string]string{"ws": "80", "wss": "443", "ssl": "8883", "tls": "8883", "mqtts": "8883"}[u.Scheme]
		if port == "" {
			port = "1883"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", host)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
