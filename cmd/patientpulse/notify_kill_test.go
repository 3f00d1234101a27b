package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/notify"
	"github.com/patientpulse/patientpulse/registry"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// binary builds patientpulse from this tree once per test run, for the
// tests that need serve in a process of its own (to kill it).
func binary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "patientpulse-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "patientpulse")
		if out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput(); err != nil {
			binaryErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// serveProcess runs serve as a child process and waits for /readyz; the
// returned command is killed at the end of the test if still running.
// MQTT is left out (--mqtt=false in extra) or set up by the caller.
func serveProcess(t *testing.T, dataDir string, extra ...string) (*exec.Cmd, *testservices.LogBuffer) {
	t.Helper()
	port, err := testservices.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return serveProcessAt(t, dataDir, fmt.Sprintf("127.0.0.1:%d", port), extra...)
}

// serveProcessAt is serveProcess listening on addr (host:port).
func serveProcessAt(t *testing.T, dataDir, addr string, extra ...string) (*exec.Cmd, *testservices.LogBuffer) {
	t.Helper()
	logs := &testservices.LogBuffer{}
	args := append([]string{"serve", "--data-dir", dataDir, "--http-addr", addr,
		"--influx-url", influx.URL, "--influx-bucket", "patientpulse"}, registryArgs(t, dataDir)...)
	cmd := exec.Command(binary(t), append(args, extra...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	waitUntil(t, 30*time.Second, "serve's /readyz", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return cmd, logs
}

// TestWebhookDeliveriesSurviveKill: the clinic's webhook answers 503
// while three critical alerts open; serve is killed with SIGKILL with
// their deliveries pending; after a restart, with the webhook answering,
// every delivery arrives, and after de-duplication by delivery id each
// arrives exactly once, each event under one id only.
func TestWebhookDeliveriesSurviveKill(t *testing.T) {
	needServices(t)
	const secret = "a webhook secret of the clinic"
	type request struct{ id, event, body string }
	var mu sync.Mutex
	var got []request
	answer := http.StatusServiceUnavailable
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.VerifyWebhook([]byte(secret), r, body, time.Minute, time.Now()); err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, request{r.Header.Get(notify.WebhookDeliveryHeader), r.Header.Get(notify.WebhookEventHeader), string(body)})
		w.WriteHeader(answer)
	}))
	defer hook.Close()

	dir := newDataDir(t)
	for i := range 3 {
		patient := fmt.Sprintf("p-kill-%d", i)
		cli(t, dir, "patients", "add", "--id", patient)
		plan := filepath.Join(t.TempDir(), "plan.yaml")
		if err := os.WriteFile(plan, []byte("patient: "+patient+"\neffective: 2026-11-01T00:00:00Z\nrules:\n"+
			"  - {id: vitals-silent, kind: silence, metric: vitals, for: 24h, severity: critical}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		mustStaff(t, dir, "", "plans", "apply", "-f", plan)
	}
	args := []string{"--mqtt=false", "--cluster=false", "--alert-fire-after", "0s", "--webhook-url", hook.URL, "--webhook-secret", secret,
		"--webhook-events", "opened", "--notify-min-backoff", "200ms"}
	first, _ := serveProcess(t, dir, args...)

	reg := openRegistry(t, dir)
	deliveries := func(state string) []registry.OutboxDelivery {
		ds, err := reg.Deliveries(context.Background(), registry.DeliveryFilter{State: state})
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	waitUntil(t, 20*time.Second, "three pending webhook deliveries, each refused at least once", func() bool {
		pending := deliveries(registry.DeliveryPending)
		tried := 0
		for _, d := range pending {
			if d.Attempts > 0 {
				tried++
			}
		}
		return len(pending) == 3 && tried == 3
	})
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	mu.Lock()
	refused := len(got)
	answer = http.StatusOK
	mu.Unlock()

	serveProcess(t, dir, args...)
	waitUntil(t, 20*time.Second, "every delivery delivered after the restart", func() bool {
		return len(deliveries(registry.DeliveryPending)) == 0
	})
	stored := deliveries("")
	if len(stored) != 3 {
		t.Fatalf("%d deliveries stored, want 3 (one per opened alert): %+v", len(stored), stored)
	}
	mu.Lock()
	defer mu.Unlock()
	bodies := map[string]string{} // by delivery id, after de-duplication
	for _, r := range got {
		if r.event != "opened" {
			t.Errorf("a %s event was posted; only opened was asked for", r.event)
		}
		if b, seen := bodies[r.id]; seen && b != r.body {
			t.Errorf("delivery %s was posted with two different bodies", r.id)
		}
		bodies[r.id] = r.body
	}
	for _, d := range stored {
		if d.State != registry.DeliveryDelivered {
			t.Errorf("delivery %s is %s (%s), want delivered", d.ID, d.State, d.LastError)
		}
		if _, ok := bodies[d.ID]; !ok {
			t.Errorf("delivery %s never reached the webhook", d.ID)
		}
	}
	if len(bodies) != len(stored) {
		t.Errorf("the webhook saw %d delivery ids, the outbox holds %d", len(bodies), len(stored))
	}
	t.Logf("%d requests refused before the kill, %d in all, %d distinct deliveries", refused, len(got), len(bodies))
}
