package services

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// mailpitReadyTimeout bounds the wait for Mailpit to answer on both ports.
const mailpitReadyTimeout = 15 * time.Second

// Mailpit is a Mailpit SMTP server on a loopback port that keeps every
// message it is sent, with its web UI and HTTP API (/api/v1/...) on another,
// and its database and log in Dir. It accepts any SMTP AUTH username and
// password, or none. Its methods are safe for use from one test goroutine
// and from cleanup functions; mu guards the process and closed.
type Mailpit struct {
	Dir string // database (mailpit.db) and log (mailpit.log)

	smtpAddr string
	url      string

	mu     sync.Mutex
	proc   process
	closed bool // Close was called; Dir may be gone
}

// MailpitOptions changes the server that StartMailpitWith starts.
type MailpitOptions struct {
	// TLSCert and TLSKey are the PEM files of a certificate and its key
	// (both or neither). With them Mailpit offers STARTTLS with that
	// certificate; SMTP AUTH PLAIN and LOGIN are taken before STARTTLS
	// too, unless RequireTLS.
	TLSCert, TLSKey string
	// RequireTLS makes Mailpit answer AUTH, MAIL, RCPT, DATA and RSET with
	// 530 until the client has done STARTTLS. It needs TLSCert and TLSKey.
	RequireTLS bool
}

// StartMailpit starts Mailpit with SMTP and HTTP on free 127.0.0.1 ports,
// plain SMTP with AUTH PLAIN and LOGIN accepted for any username and
// password (or none), its database in a new temporary directory, no
// reverse DNS lookups and no version check, and its errors in
// mailpit.log there. It returns once GET /api/v1/messages answers 200 and
// the SMTP port accepts connections, or an error with the log's tail
// after 15 seconds. The binary is $MAILPIT when set, else mailpit from
// PATH or $(go env GOPATH)/bin. The error wraps ErrMissingBinary when
// mailpit is not installed.
func StartMailpit() (*Mailpit, error) {
	return StartMailpitWith(MailpitOptions{})
}

// StartMailpitWith is StartMailpit with options: STARTTLS, optionally
// required.
func StartMailpitWith(o MailpitOptions) (*Mailpit, error) {
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("start mailpit: TLSCert and TLSKey go together")
	}
	if o.RequireTLS && o.TLSCert == "" {
		return nil, errors.New("start mailpit: RequireTLS needs TLSCert and TLSKey")
	}
	bin, err := findMailpit()
	if err != nil {
		return nil, err
	}
	smtpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pp-mailpit-")
	if err != nil {
		return nil, fmt.Errorf("start mailpit: %w", err)
	}
	args := []string{
		"--smtp", loopback(smtpPort),
		"--listen", loopback(httpPort),
		"--database", filepath.Join(dir, "mailpit.db"),
		"--smtp-auth-accept-any",
		"--smtp-disable-rdns",
		"--disable-version-check",
		"--quiet",
	}
	if o.TLSCert != "" {
		args = append(args, "--smtp-tls-cert", o.TLSCert, "--smtp-tls-key", o.TLSKey)
	}
	if o.RequireTLS {
		args = append(args, "--smtp-require-starttls")
	} else {
		// Mailpit refuses this flag beside --smtp-require-starttls.
		args = append(args, "--smtp-auth-allow-insecure")
	}
	m := &Mailpit{
		Dir:      dir,
		smtpAddr: loopback(smtpPort),
		url:      "http://" + loopback(httpPort),
		proc: process{
			name:    "mailpit",
			bin:     bin,
			args:    args,
			logPath: filepath.Join(dir, "mailpit.log"),
		},
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.startLocked(); err != nil {
		_ = m.proc.stop()
		if !keepDirs() {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	return m, nil
}

// findMailpit returns $MAILPIT when set, else mailpit from PATH or from
// where go install puts it.
func findMailpit() (string, error) {
	if p := os.Getenv("MAILPIT"); p != "" {
		if info, err := os.Stat(p); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%w: MAILPIT=%s is not an executable file", ErrMissingBinary, p)
		}
		return p, nil
	}
	var candidates []string
	for _, d := range goBinDirs() {
		candidates = append(candidates, filepath.Join(d, "mailpit"))
	}
	return lookBinary("mailpit", candidates...)
}

// startLocked starts the process and waits until GET /api/v1/messages
// answers 200 and the SMTP port accepts connections. Called with mu held.
func (m *Mailpit) startLocked() error {
	if err := m.proc.start(); err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Second}
	return m.proc.waitReady(mailpitReadyTimeout, func() error {
		resp, err := client.Get(m.url + "/api/v1/messages")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /api/v1/messages: %s", resp.Status)
		}
		conn, err := net.DialTimeout("tcp", m.smtpAddr, time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

// SMTPAddr is the SMTP server's address, "127.0.0.1:port".
func (m *Mailpit) SMTPAddr() string { return m.smtpAddr }

// URL is the base of the web UI and the HTTP API, "http://127.0.0.1:port".
func (m *Mailpit) URL() string { return m.url }

// Pid is Mailpit's process id, 0 when it is not running.
func (m *Mailpit) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc.pid()
}

// Stop stops Mailpit with SIGTERM and waits for it to exit, keeping Dir so
// that Start resumes with the same messages: a mail server that is down,
// for a sender's retries. Calling Stop on a stopped server does nothing and
// returns nil.
func (m *Mailpit) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc.stop()
}

// Start starts Mailpit again after Stop, on the same ports and with the
// same messages, and waits until it answers. It fails while running or
// after Close.
func (m *Mailpit) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("start mailpit: closed")
	}
	return m.startLocked()
}

// Close stops Mailpit and removes Dir unless KEEP_TEST_SERVICES=1. Calling
// Close again does nothing and returns nil.
func (m *Mailpit) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	return m.proc.stopAndRemove(m.Dir)
}
