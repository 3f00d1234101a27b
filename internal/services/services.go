// Package services runs real Mosquitto, InfluxDB and Mailpit (SMTP)
// processes, each on free loopback ports, with its configuration, data and
// log in a new temporary directory, stopped by whoever started it: the
// integration tests (through internal/testservices, which adds what a test
// needs) and `patientpulse bench`, whose phases each run their own. It
// imports no `testing`, so that the clinic's binary may link it.
//
// StartMosquitto (anonymous access), StartMosquittoWith (say, with the
// dynamic security plugin and no anonymous access), StartInflux,
// StartMailpit and StartMailpitWith (say, with STARTTLS) return an error
// wrapping ErrMissingBinary when a binary is not installed.
// Set KEEP_TEST_SERVICES=1 to keep the directories (configuration, data and
// logs) after a run for inspection.
//
// The child processes get SIGKILL when the process that started them dies
// (Linux Pdeathsig), so a crashed or killed test or bench leaves no broker
// behind.
package services

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrMissingBinary reports that mosquitto, influxd, mailpit or chromium is
// not installed.
var ErrMissingBinary = errors.New("services: binary not installed")

// InstallHint tells a developer how to get the binaries.
const InstallHint = "install the test services with `make services` (scripts/services.sh install), " +
	"or by hand: `apt-get install mosquitto chromium`, " +
	"`go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10` and " +
	"`go install github.com/axllent/mailpit@v1.33.1`; " +
	"under CI=true a missing binary fails the test"

// keepDirs reports whether KEEP_TEST_SERVICES=1 asks to keep the directories.
func keepDirs() bool { return os.Getenv("KEEP_TEST_SERVICES") == "1" }

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	return port, nil
}

// loopback returns "127.0.0.1:port".
func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// stopTimeout bounds a graceful stop before the process is killed.
const stopTimeout = 30 * time.Second

// process is one run of a service's binary with its output appended to a
// log file. The methods of a process are called with its owner's mutex
// held; process itself has no lock.
type process struct {
	name    string // for messages: "mosquitto", "influxd"
	bin     string
	args    []string
	env     []string // nil: inherit the environment
	logPath string

	cmd     *exec.Cmd     // nil when not running
	done    chan struct{} // closed when cmd has exited
	waitErr error         // cmd.Wait's result, valid once done is closed
}

// start starts the binary. It does not wait for the service to be ready.
func (p *process) start() error {
	if p.cmd != nil {
		return fmt.Errorf("start %s: already running", p.name)
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	// The child holds its own copy of the descriptor.
	defer logFile.Close()

	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Pdeathsig fires when the thread that started the child exits; the Go
	// runtime keeps its threads for the life of the process, so in effect
	// this kills the child when the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		p.waitErr = cmd.Wait()
		close(done)
	}()
	return nil
}

// pid is the running process's id, or 0.
func (p *process) pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// stop sends SIGTERM and waits for the process to exit, killing it after
// stopTimeout. It is a no-op when the process is not running. It reports a
// process that had already died on its own, or that had to be killed.
func (p *process) stop() error {
	if p.cmd == nil {
		return nil
	}
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil

	select {
	case <-done:
		return fmt.Errorf("%s had exited on its own: %v%s", p.name, p.waitErr, logTail(p.logPath))
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", p.name, err)
	}
	select {
	case <-done:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("stop %s: no exit within %s of SIGTERM, killed%s", p.name, stopTimeout, logTail(p.logPath))
	}
	if !exitedCleanly(p.waitErr) {
		return fmt.Errorf("stop %s: %v%s", p.name, p.waitErr, logTail(p.logPath))
	}
	return nil
}

// stopAndRemove stops the process and removes dir, unless
// KEEP_TEST_SERVICES=1 asks to keep it.
func (p *process) stopAndRemove(dir string) error {
	err := p.stop()
	if !keepDirs() {
		err = errors.Join(err, os.RemoveAll(dir))
	}
	return err
}

// exitedCleanly reports whether a process stopped by SIGTERM ended well:
// with status 0, or by the signal itself.
func exitedCleanly(err error) bool {
	if err == nil {
		return true
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return false
	}
	ws, ok := exitErr.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM
}

// waitReady polls ready every 50ms until it returns nil, the process exits,
// or timeout passes. The error carries the tail of the log.
func (p *process) waitReady(timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during startup: %v%s", p.name, p.waitErr, logTail(p.logPath))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s: %v%s", p.name, timeout, err, logTail(p.logPath))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logTail returns the last lines of the log at path, formatted to follow an
// error message, or "" when there is nothing to show.
func logTail(path string) string {
	const maxBytes, maxLines = 4096, 25
	data, err := os.ReadFile(path)
	if err != nil || len(bytes.TrimSpace(data)) == 0 {
		return ""
	}
	if len(data) > maxBytes {
		data = data[len(data)-maxBytes:]
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return fmt.Sprintf("\n--- tail of %s ---\n%s", path, strings.Join(lines, "\n"))
}

// lookBinary looks name up on PATH, then returns the first of candidates
// (absolute paths; empty ones are skipped) that is an executable file. Its
// error wraps ErrMissingBinary.
func lookBinary(name string, candidates ...string) (string, error) {
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if info, err := os.Stat(c); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w: %s not found on PATH nor in %s", ErrMissingBinary, name, strings.Join(candidates, ", "))
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// caller's own listeners.
func FreePort() (int, error) { return freePort() }
