package services

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// influxReadyTimeout bounds the wait for influxd to answer /ping.
const influxReadyTimeout = 30 * time.Second

// Influx is an InfluxDB 1.8 server on a loopback port, without
// authentication, with Flux and the /api/v2 compatibility endpoints enabled,
// and with its data in Dir. It creates no database. Its methods are safe for
// use from one test goroutine and from cleanup functions; mu guards the
// process and closed.
type Influx struct {
	URL string // "http://127.0.0.1:port"
	Dir string // configuration, meta, data, wal and log

	mu     sync.Mutex
	proc   process
	closed bool // Close was called; Dir may be gone
}

// StartInflux starts influxd 1.8 with a configuration generated in a new
// temporary directory: HTTP and RPC on free 127.0.0.1 ports, Flux enabled,
// no authentication, no reporting, monitor store, continuous queries or
// subscriber, and its output in influxd.log. The binary is $INFLUXD when
// set, else influxd from PATH or $(go env GOPATH)/bin. It returns once GET
// /ping answers 204, or an error with the log's tail after 30 seconds. The
// error wraps ErrMissingBinary when influxd 1.x is not installed.
func StartInflux() (*Influx, error) {
	bin, err := findInfluxd()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	rpcPort, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pp-influxd-")
	if err != nil {
		return nil, fmt.Errorf("start influxd: %w", err)
	}
	conf := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(conf, []byte(influxConfig(httpPort, rpcPort, dir)), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start influxd: %w", err)
	}
	i := &Influx{
		URL: "http://" + loopback(httpPort),
		Dir: dir,
		proc: process{
			name:    "influxd",
			bin:     bin,
			args:    []string{"run", "-config", conf},
			env:     influxEnv(),
			logPath: filepath.Join(dir, "influxd.log"),
		},
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if err := i.startLocked(); err != nil {
		_ = i.proc.stop()
		if !keepDirs() {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	return i, nil
}

// influxConfig returns influxd's configuration.
func influxConfig(httpPort, rpcPort int, dir string) string {
	return fmt.Sprintf(`# Written by internal/services.
reporting-disabled = true
bind-address = %q

[meta]
  dir = %q

[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false

[http]
  enabled = true
  bind-address = %q
  auth-enabled = false
  log-enabled = false
  flux-enabled = true

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
`, loopback(rpcPort), filepath.Join(dir, "meta"), filepath.Join(dir, "data"),
		filepath.Join(dir, "wal"), loopback(httpPort))
}

// influxEnv returns the environment for influxd: the test's own, less the
// INFLUXDB_* variables that influxd would take over its configuration file
// (a developer's INFLUXDB_HTTP_BIND_ADDRESS, say), plus Flux enabled.
func influxEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INFLUXDB_") {
			env = append(env, kv)
		}
	}
	return append(env, "INFLUXDB_HTTP_FLUX_ENABLED=true")
}

// findInfluxd finds influxd 1.x once per test binary.
var findInfluxd = sync.OnceValues(func() (string, error) {
	if p := os.Getenv("INFLUXD"); p != "" {
		if err := checkInfluxd(p); err != nil {
			return "", fmt.Errorf("%w: INFLUXD=%s: %v", ErrMissingBinary, p, err)
		}
		return p, nil
	}
	var candidates []string
	if p, err := exec.LookPath("influxd"); err == nil {
		candidates = append(candidates, p)
	}
	dirs := goBinDirs()
	for _, d := range dirs {
		candidates = append(candidates, filepath.Join(d, "influxd"))
	}
	var problems []string
	for _, c := range candidates {
		err := checkInfluxd(c)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			problems = append(problems, fmt.Sprintf("%s: %v", c, err))
		}
	}
	msg := fmt.Sprintf("influxd 1.8 not found on PATH nor in %s", strings.Join(dirs, ", "))
	if len(problems) > 0 {
		msg += " (" + strings.Join(problems, "; ") + ")"
	}
	return "", fmt.Errorf("%w: %s", ErrMissingBinary, msg)
})

// newerInfluxd matches the version line of influxd 2.x and later, whose
// configuration and API differ. A 1.8 built with go install says "vunknown".
var newerInfluxd = regexp.MustCompile(`^InfluxDB v([2-9]|[1-9][0-9])\.`)

// checkInfluxd reports whether path is an influxd older than 2.0.
func checkInfluxd(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if info.IsDir() || info.Mode()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	out, err := exec.Command(path, "version").Output()
	if err != nil {
		return fmt.Errorf("influxd version: %w", err)
	}
	if line := strings.TrimSpace(string(out)); newerInfluxd.MatchString(line) {
		return fmt.Errorf("%q is not 1.x", line)
	}
	return nil
}

// goBinDirs returns where go install puts binaries: $GOBIN, else the bin
// directory of each $(go env GOPATH) entry.
func goBinDirs() []string {
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		return []string{gobin}
	}
	gopath := ""
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gopath = strings.TrimSpace(string(out))
	}
	if gopath == "" {
		gopath = os.Getenv("GOPATH")
	}
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	var dirs []string
	for _, p := range filepath.SplitList(gopath) {
		dirs = append(dirs, filepath.Join(p, "bin"))
	}
	return dirs
}

// startLocked starts the process and waits until /ping answers 204.
// Called with mu held.
func (i *Influx) startLocked() error {
	if err := i.proc.start(); err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Second}
	return i.proc.waitReady(influxReadyTimeout, func() error {
		resp, err := client.Get(i.URL + "/ping")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("GET /ping: %s", resp.Status)
		}
		return nil
	})
}

// Stop stops influxd with SIGTERM and waits for it to exit, keeping Dir so
// that Start resumes with the same data. Calling Stop on a stopped server
// does nothing and returns nil.
func (i *Influx) Stop() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.proc.stop()
}

// Pid is influxd's process id, 0 when it is not running.
func (i *Influx) Pid() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.proc.pid()
}

// Start starts influxd again after Stop, on the same port and with the same
// data, and waits until it answers /ping. It fails while running or after
// Close.
func (i *Influx) Start() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return errors.New("start influxd: closed")
	}
	return i.startLocked()
}

// Close stops influxd and removes Dir unless KEEP_TEST_SERVICES=1. Calling
// Close again does nothing and returns nil.
func (i *Influx) Close() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil
	}
	i.closed = true
	return i.proc.stopAndRemove(i.Dir)
}
