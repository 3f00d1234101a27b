package testservices

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// mosquittoReadyTimeout bounds the wait for the broker to accept connections.
const mosquittoReadyTimeout = 10 * time.Second

// Mosquitto is a Mosquitto broker on a loopback port, with anonymous access
// and persistence in Dir. Its methods are safe for use from one test
// goroutine and from cleanup functions; mu guards the process and stopped.
type Mosquitto struct {
	Addr string // "127.0.0.1:port"
	URL  string // "tcp://127.0.0.1:port"
	Dir  string // configuration, persistence database and log

	mu      sync.Mutex
	proc    process
	stopped bool // Stop was called; Dir may be gone
}

// StartMosquitto starts a broker with a configuration written into a new
// temporary directory: a listener on a free 127.0.0.1 port, anonymous
// access, persistence in the directory, the queue limits the pipeline needs
// (max_inflight_messages 1000, max_queued_messages 1000000, no byte limit)
// and a log file, mosquitto.log. It returns once the broker accepts TCP
// connections, or an error with the log's tail after 10 seconds. The binary
// is $MOSQUITTO when set, else mosquitto from PATH or /usr/sbin. The error
// wraps ErrMissingBinary when mosquitto is not installed.
func StartMosquitto() (*Mosquitto, error) {
	bin, err := findMosquitto()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pp-mosquitto-")
	if err != nil {
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(mosquittoConfig(port, dir)), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	m := &Mosquitto{
		Addr: loopback(port),
		URL:  "tcp://" + loopback(port),
		Dir:  dir,
		proc: process{
			name:    "mosquitto",
			bin:     bin,
			args:    []string{"-c", conf},
			logPath: filepath.Join(dir, "mosquitto.log"),
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

// findMosquitto returns $MOSQUITTO when set, else mosquitto from PATH or
// from the sbin directories that Debian and Homebrew install it in (not on a
// normal user's PATH).
func findMosquitto() (string, error) {
	if p := os.Getenv("MOSQUITTO"); p != "" {
		if info, err := os.Stat(p); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%w: MOSQUITTO=%s is not an executable file", ErrMissingBinary, p)
		}
		return p, nil
	}
	return lookBinary("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto",
		"/opt/homebrew/sbin/mosquitto", "/usr/local/opt/mosquitto/sbin/mosquitto")
}

// mosquittoConfig returns the broker's configuration.
func mosquittoConfig(port int, dir string) string {
	user := ""
	if os.Geteuid() == 0 {
		// As root, Mosquitto would switch to the "mosquitto" user, which
		// cannot write to a temporary directory owned by root.
		user = "user root\n"
	}
	return fmt.Sprintf(`# Written by internal/testservices.
listener %d 127.0.0.1
allow_anonymous true
persistence true
persistence_location %s/
max_inflight_messages 1000
max_queued_messages 1000000
max_queued_bytes 0
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S
connection_messages true
%s`, port, dir, user)
}

// startLocked starts the process and waits until it accepts connections.
// Called with mu held.
func (m *Mosquitto) startLocked() error {
	if err := m.proc.start(); err != nil {
		return err
	}
	return m.proc.waitReady(mosquittoReadyTimeout, func() error {
		conn, err := net.DialTimeout("tcp", m.Addr, time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

// Stop stops the broker with SIGTERM, which saves its persistence database,
// and waits for it to exit. It removes Dir unless KEEP_TEST_SERVICES=1.
// Calling Stop again does nothing and returns nil.
func (m *Mosquitto) Stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil
	}
	m.stopped = true
	err := m.proc.stop()
	if !keepDirs() {
		err = errors.Join(err, os.RemoveAll(m.Dir))
	}
	return err
}

// Restart stops the broker and starts it again on the same port with the
// same directory, so persistent sessions and their queued messages survive.
// It fails after Stop.
func (m *Mosquitto) Restart() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return errors.New("restart mosquitto: stopped")
	}
	if err := m.proc.stop(); err != nil {
		return fmt.Errorf("restart mosquitto: %w", err)
	}
	if err := m.startLocked(); err != nil {
		return fmt.Errorf("restart mosquitto: %w", err)
	}
	return nil
}
