package services

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// mosquittoReadyTimeout bounds the wait for the broker to accept connections.
const mosquittoReadyTimeout = 10 * time.Second

// Mosquitto is a Mosquitto broker on a loopback port, with persistence in
// Dir: with anonymous access, or with the dynamic security plugin and an
// admin account. Its methods are safe for use from one test goroutine and
// from cleanup functions; mu guards the process and stopped.
type Mosquitto struct {
	Addr string // "127.0.0.1:port"
	URL  string // "tcp://127.0.0.1:port"
	Dir  string // configuration, persistence database, dynsec file and log

	// With MosquittoOptions.DynSec, the account that administers the
	// dynamic security plugin ($CONTROL/dynamic-security/v1); empty
	// otherwise.
	AdminUser, AdminPassword string

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
	return StartMosquittoWith(MosquittoOptions{})
}

// MosquittoOptions changes the broker that StartMosquittoWith starts.
type MosquittoOptions struct {
	// DynSec loads the dynamic security plugin, refuses anonymous clients,
	// and makes an admin account (AdminUser, AdminPassword) with the
	// plugin's default admin role: it may send the plugin's commands and
	// read every topic, but publish to none. Default access is the
	// plugin's: no client may publish or subscribe without a role allowing
	// it.
	DynSec bool
}

// StartMosquittoWith is StartMosquitto with options. With DynSec, the
// plugin (mosquitto_dynamic_security.so, from $MOSQUITTO_DYNSEC_PLUGIN or
// the system's library directories) and mosquitto_ctrl must be installed,
// else the error wraps ErrMissingBinary.
func StartMosquittoWith(o MosquittoOptions) (*Mosquitto, error) {
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
	m := &Mosquitto{
		Addr: loopback(port),
		URL:  "tcp://" + loopback(port),
		Dir:  dir,
		proc: process{
			name:    "mosquitto",
			bin:     bin,
			args:    []string{"-c", filepath.Join(dir, "mosquitto.conf")},
			logPath: filepath.Join(dir, "mosquitto.log"),
		},
	}
	fail := func(err error) (*Mosquitto, error) {
		if !keepDirs() {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	conf := mosquittoConfig(port, dir, !o.DynSec)
	if o.DynSec {
		extra, err := m.initDynSec()
		if err != nil {
			return fail(err)
		}
		conf += extra
	}
	if err := os.WriteFile(m.proc.args[1], []byte(conf), 0o600); err != nil {
		return fail(fmt.Errorf("start mosquitto: %w", err))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.startLocked(); err != nil {
		_ = m.proc.stop()
		return fail(err)
	}
	return m, nil
}

// initDynSec writes the plugin's configuration file with an admin account
// (mosquitto_ctrl dynsec init) and returns the broker's configuration
// lines that load it.
func (m *Mosquitto) initDynSec() (string, error) {
	plugin, err := findDynSecPlugin()
	if err != nil {
		return "", err
	}
	ctrl, err := lookBinary("mosquitto_ctrl", "/usr/bin/mosquitto_ctrl", "/usr/local/bin/mosquitto_ctrl",
		"/opt/homebrew/bin/mosquitto_ctrl")
	if err != nil {
		return "", err
	}
	var secret [16]byte
	rand.Read(secret[:])
	m.AdminUser, m.AdminPassword = "admin", hex.EncodeToString(secret[:])
	file := filepath.Join(m.Dir, "dynamic-security.json")
	// The password goes in on stdin (asked twice), not in the process list.
	cmd := exec.Command(ctrl, "dynsec", "init", file, m.AdminUser)
	cmd.Stdin = strings.NewReader(m.AdminPassword + "\n" + m.AdminPassword + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mosquitto_ctrl dynsec init: %w: %s", err, out)
	}
	// mosquitto_ctrl exits 0 even when it wrote nothing.
	if err := os.Chmod(file, 0o600); err != nil {
		return "", fmt.Errorf("mosquitto_ctrl dynsec init: %w: %s", err, out)
	}
	return fmt.Sprintf("plugin %s\nplugin_opt_config_file %s\n", plugin, file), nil
}

// findDynSecPlugin returns $MOSQUITTO_DYNSEC_PLUGIN when set, else the
// dynamic security plugin from the library directories of Debian (per
// architecture), the eclipse-mosquitto image and Homebrew.
func findDynSecPlugin() (string, error) {
	const name = "mosquitto_dynamic_security.so"
	if p := os.Getenv("MOSQUITTO_DYNSEC_PLUGIN"); p != "" {
		if info, err := os.Stat(p); err != nil || info.IsDir() {
			return "", fmt.Errorf("%w: MOSQUITTO_DYNSEC_PLUGIN=%s is not a file", ErrMissingBinary, p)
		}
		return p, nil
	}
	candidates, _ := filepath.Glob("/usr/lib/*/" + name)
	candidates = append(candidates, "/usr/lib/"+name, "/usr/local/lib/"+name, "/opt/homebrew/lib/"+name)
	for _, c := range candidates {
		if info, err := os.Stat(c); err == nil && !info.IsDir() {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w: %s not found in /usr/lib/*/, /usr/lib, /usr/local/lib or /opt/homebrew/lib "+
		"(Debian's mosquitto package has it)", ErrMissingBinary, name)
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
func mosquittoConfig(port int, dir string, anonymous bool) string {
	user := ""
	if os.Geteuid() == 0 {
		// As root, Mosquitto would switch to the "mosquitto" user, which
		// cannot write to a temporary directory owned by root.
		user = "user root\n"
	}
	return fmt.Sprintf(`# Written by internal/services.
listener %d 127.0.0.1
allow_anonymous %t
persistence true
persistence_location %s/
max_inflight_messages 1000
max_queued_messages 1000000
max_queued_bytes 0
max_packet_size 614400
retain_available true
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S
connection_messages true
%s`, port, anonymous, dir, user)
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
	return m.proc.stopAndRemove(m.Dir)
}

// Pid is the broker's process id, 0 when it is not running.
func (m *Mosquitto) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc.pid()
}

// Restart stops the broker and starts it again on the same port with the
// same directory, so persistent sessions and their queued messages survive
// (Mosquitto keeps plain subscriptions, not shared ones). It fails after
// Stop.
func (m *Mosquitto) Restart() error {
	if err := m.Down(); err != nil {
		return fmt.Errorf("restart mosquitto: %w", err)
	}
	if err := m.Up(); err != nil {
		return fmt.Errorf("restart mosquitto: %w", err)
	}
	return nil
}

// Down stops the broker with SIGTERM, which saves its persistence database,
// and leaves it stopped, its port and directory kept for Up. Calling Down
// on a broker that is down does nothing. It fails after Stop.
func (m *Mosquitto) Down() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return errors.New("mosquitto down: stopped")
	}
	return m.proc.stop()
}

// Up starts a broker that Down stopped again, on the same port with the
// same directory, and waits until it accepts connections. Calling Up on a
// running broker does nothing. It fails after Stop.
func (m *Mosquitto) Up() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return errors.New("mosquitto up: stopped")
	}
	if m.proc.pid() != 0 {
		return nil
	}
	return m.startLocked()
}

// Version is what the broker's binary says it is ("mosquitto version
// 2.0.11"), from mosquitto -h.
func (m *Mosquitto) Version() string {
	out, _ := exec.Command(m.proc.bin, "-h").CombinedOutput() // exits 3 after printing its usage
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first)
}
