package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patientpulse/patientpulse/internal/services"
	"github.com/patientpulse/patientpulse/registry"
	"github.com/patientpulse/patientpulse/server"
)

// addStaff adds a staff member with a random password to reg, as
// `patientpulse staff add` does, and issues them an API token, as
// `patientpulse staff token` does.
func addStaff(ctx context.Context, reg *registry.Registry, username string, role registry.Role) (token string, err error) {
	var password [32]byte
	for i := range password {
		password[i] = byte('a' + rand.IntN(26))
	}
	if err := reg.AddStaff(ctx, username, role, string(password[:])); err != nil {
		return "", err
	}
	return reg.IssueStaffToken(ctx, username, "bench")
}

// startProfile starts the CPU profile of --cpuprofile, if asked for.
func (b *bencher) startProfile() (stop func(), err error) {
	if b.s.CPUProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(b.s.CPUProfile)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		b.logf("CPU profile of (c) written to %s; serve without consoles: go tool pprof -top -tagfocus role=serve -tagignore consoles=connected %s; "+
			"with: -tagignore consoles=none", b.s.CPUProfile, b.s.CPUProfile)
	}, nil
}

// runningServe is serve running in process for a phase.
type runningServe struct {
	url  string
	logs *serveLogs
	stop func() error
}

// startServe runs serve in process against the phase's services, with
// their data dir and registry (sv.dir, sv.db), its defaults, --log-level warn, extra and --serve-args,
// and waits until /readyz answers 200. serve runs under the pprof label
// role=serve.
func (b *bencher) startServe(ctx context.Context, sv *phaseServices, extra ...string) (*runningServe, error) {
	port, err := services.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{
		"--data-dir", sv.dir,
		"--db", sv.db,
		"--http-addr", addr,
		"--mqtt-url", sv.mq.URL,
		"--mqtt-client-id", "pp-bench",
		"--mqtt-share-group", "pp-bench",
		"--influx-url", sv.in.URL,
		"--influx-bucket", bucket,
		"--log-level", "warn",
		// The fleet's weekly summaries, published at start, would add
		// reads that are neither ingest nor alerts.
		"--weekly-summaries=false",
	}, extra...)
	c, err := serveConfig(append(args, b.s.ServeArgs...))
	if err != nil {
		return nil, err
	}
	level, _ := c.Level()
	logs := &serveLogs{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))
	srvCtx, cancel := context.WithCancel(ctx)
	var serveErr error
	exited := make(chan struct{})
	go pprof.Do(srvCtx, pprof.Labels("role", "serve"), func(ctx context.Context) {
		serveErr = server.Run(ctx, c, log)
		close(exited)
	})
	var once sync.Once
	srv := &runningServe{url: "http://" + addr, logs: logs}
	srv.stop = func() error {
		once.Do(func() { cancel(); <-exited })
		if serveErr != nil {
			return fmt.Errorf("serve: %w\n%s", serveErr, logs.tail())
		}
		return nil
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case <-exited:
			return nil, fmt.Errorf("serve exited before it was ready: %v\n%s", serveErr, logs.tail())
		case <-ctx.Done():
			srv.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if resp, err := client.Get(srv.url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return srv, nil
			}
		}
		if time.Now().After(deadline) {
			srv.stop()
			return nil, fmt.Errorf("serve not ready within 30s\n%s", logs.tail())
		}
	}
}

// serveConfig is serve's configuration from args alone: the user's
// PATIENTPULSE_* variables and files are not the bench's.
func serveConfig(args []string) (*server.Config, error) {
	var c server.Config
	fs := server.NewFlagSet("serve", &c)
	fs.SetOutput(io.Discard)
	err := server.Load(fs, &c, args, func(string) string { return "" })
	if err := errors.Join(err, c.Validate()); err != nil {
		return nil, fmt.Errorf("bench: serve settings (--serve-args?): %w", err)
	}
	return &c, nil
}

// pointsWritten reads the patientpulse_writer_points_written_total of
// the serve at url.
func pointsWritten(url string) (int64, error) {
	return serveMetric(url, "patientpulse_writer_points_written_total")
}

// serveMetric reads the metric name, a counter or gauge without labels,
// of the serve at url, uncompressed, to spare serve's CPU; 0 when serve
// has not set it (or has no such metric).
func serveMetric(url, name string) (int64, error) {
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	return 0, nil
}

// serveLogs keeps serve's log for error messages.
type serveLogs struct {
	mu  sync.Mutex
	buf []byte
}

func (l *serveLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > 1<<20 {
		l.buf = slices.Clone(l.buf[len(l.buf)-64<<10:])
	}
	return len(p), nil
}

// tail is the end of serve's log, to follow an error message.
func (l *serveLogs) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := string(l.buf)
	if len(s) > 4096 {
		s = s[len(s)-4096:]
	}
	if strings.TrimSpace(s) == "" {
		return "(serve logged nothing at warn or above)"
	}
	return "--- serve's log ---\n" + s
}
