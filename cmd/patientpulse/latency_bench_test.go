package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// BenchmarkAlertLatency measures, b.N times, the time from the QoS 1
// publish of a heart rate that breaks a patient's plan to the alert's
// arrival on an on-call console's websocket, while background devices
// publish 1,000 ordinary messages a second (PP_BENCH_LOAD changes it).
// It prints the latency's p50, p95 and p99 in milliseconds:
//
//	go test -run '^$' -bench AlertLatency -benchtime 200x ./cmd/patientpulse/
func BenchmarkAlertLatency(b *testing.B) {
	testservices.Require(b, servicesOK)
	prefix := benchPrefix("alert")
	dir := filepath.Join(b.TempDir(), "data")
	ctx := context.Background()
	reg, err := registry.Open(ctx, filepath.Join(dir, "patientpulse.db"))
	if err != nil {
		b.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	n := b.N
	for i := range n {
		p := fmt.Sprintf("%sp%d", prefix, i)
		must(reg.AddPatient(ctx, registry.Patient{ID: p}))
		_, err := reg.EnrollDevice(ctx, p+"-w", p)
		must(err)
		above := 120.0
		_, err = analysis.SavePlan(ctx, reg, &analysis.Plan{Patient: p, Effective: time.Now().Add(-48 * time.Hour),
			Rules: []analysis.Rule{{ID: "hr-high", Kind: analysis.KindThreshold, Metric: "heart_rate.bpm",
				Over: analysis.Duration(24 * time.Hour), Aggregate: "max", Above: &above, MinDays: 1, Severity: analysis.SeverityCritical}}})
		must(err)
	}
	must(reg.AddPatient(ctx, registry.Patient{ID: prefix + "load"}))
	var loadIDs []string
	for i := range benchDevices {
		id := fmt.Sprintf("%sload%d", prefix, i)
		_, err := reg.EnrollDevice(ctx, id, prefix+"load")
		must(err)
		loadIDs = append(loadIDs, id)
	}
	must(reg.AddStaff(ctx, "bench-oncall", registry.RoleOnCall, "a long bench password"))
	token, err := reg.IssueStaffToken(ctx, "bench-oncall", "bench")
	must(err)
	reg.Close()

	srv := benchServe(b, dir, "t-"+prefix, "--alert-fire-after", "0s", "--analysis-interval", "100ms",
		"--analysis-min-wear-hours", "1", "--log-level", "warn")
	ws, status := dialWS(b, srv.url, token, "", nil)
	if status != http.StatusSwitchingProtocols {
		b.Fatalf("websocket: %d", status)
	}
	arrived := make(map[string]time.Time, n)
	var mu sync.Mutex
	all := make(chan struct{})
	go func() {
		for m := range ws.msgs {
			if m["type"] != "alert" || m["change"] != "opened" {
				continue
			}
			p := fmt.Sprint(m["alert"].(map[string]any)["patient"])
			mu.Lock()
			arrived[p] = time.Now()
			if len(arrived) == n {
				close(all)
			}
			mu.Unlock()
		}
	}()

	// Background load: ordinary heart rates, paced to the rate asked for.
	rate := 1000
	if v, err := strconv.Atoi(os.Getenv("PP_BENCH_LOAD")); err == nil && v > 0 {
		rate = v
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	load := benchClients(b, loadIDs)
	var loadDone sync.WaitGroup
	for d, c := range load {
		loadDone.Go(func() {
			tick := time.NewTicker(time.Second * time.Duration(len(load)) / time.Duration(rate))
			defer tick.Stop()
			for seq := 1; ; seq++ {
				select {
				case <-loadCtx.Done():
					return
				case <-tick.C:
				}
				at := time.Now().UTC().Add(-time.Duration(seq) * time.Millisecond)
				c.Publish("pp/v1/devices/"+loadIDs[d]+"/data", 1, false,
					fmt.Sprintf(`{"seq": %d, "samples": [{"type": "heart_rate", "time": %q, "bpm": 70}]}`, seq, at.Format(time.RFC3339Nano)))
			}
		})
	}
	time.Sleep(2 * time.Second) // the load is steady

	alarm := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID(prefix + "alarm").SetCleanSession(true))
	if tok := alarm.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("mqtt connect: %v", tok.Error())
	}
	defer alarm.Disconnect(100)
	sent := make(map[string]time.Time, n)
	b.ResetTimer()
	for i := range n {
		p := fmt.Sprintf("%sp%d", prefix, i)
		sent[p] = time.Now()
		alarm.Publish("pp/v1/devices/"+p+"-w/data", 1, false,
			fmt.Sprintf(`{"seq": 1, "samples": [{"type": "heart_rate", "time": %q, "bpm": 150}]}`, time.Now().UTC().Format(time.RFC3339Nano)))
		time.Sleep(20 * time.Millisecond) // 50 alarms a second, among the load
	}
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		mu.Lock()
		b.Fatalf("%d of %d alerts arrived within 2 minutes", len(arrived), n)
	}
	b.StopTimer()
	stopLoad()
	loadDone.Wait()

	var lat []float64
	mu.Lock()
	for p, t0 := range sent {
		lat = append(lat, float64(arrived[p].Sub(t0).Microseconds())/1000)
	}
	mu.Unlock()
	slices.Sort(lat)
	pct := func(q float64) float64 { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(rate), "load-msgs/s")
}
