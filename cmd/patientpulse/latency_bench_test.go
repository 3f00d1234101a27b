package main

import (
	"context"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// BenchmarkAlertLatency is row (d) of `patientpulse bench` for b.N alerts:
// the time from the QoS 1 publish of a heart rate that breaks a patient's
// plan to the alert's arrival on an on-call console's websocket, while
// background devices publish 1,000 ordinary messages a second
// (PP_BENCH_LOAD changes it). It prints p50, p95 and p99 in milliseconds:
//
//	go test -run '^$' -bench AlertLatency -benchtime 200x ./cmd/patientpulse/
func BenchmarkAlertLatency(b *testing.B) {
	testservices.Require(b, servicesOK)
	load := 1000
	if v, err := strconv.Atoi(os.Getenv("PP_BENCH_LOAD")); err == nil && v > 0 {
		load = v
	}
	bn := &bencher{s: benchSettings{alerts: b.N, load: load, devices: benchDevices}, progress: io.Discard}
	var res benchResults
	if err := bn.latency(context.Background(), &res); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.p50, "p50-ms")
	b.ReportMetric(res.p95, "p95-ms")
	b.ReportMetric(res.p99, "p99-ms")
	b.ReportMetric(res.loadAchieved, "load-msgs/s")
}
