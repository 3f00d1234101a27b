package bench

// Go benchmarks that drive the phases of `patientpulse bench` (the same
// code, not a copy), sized by b.N:
//
//	go test -run '^$' -bench . -benchtime 20000x ./bench/
//
// b.N is a number of messages, each an envelope of samplesPerMessage
// heart-rate samples (distinct times in the last minutes, so that no
// point overwrites another), or of alerts for BenchmarkAlertLatency.
// As in `patientpulse bench`, each run starts its own Mosquitto and
// influxd and, where serve takes part, serve in process over a fresh
// registry with its defaults; PP_BENCH_ARGS="--flag=value ..." appends
// flags to that serve, for exploring a setting. ns/op is the phase's own
// timed window per message (or alert), without the start of services.
// Benchmarks never fail on a time: they fail only when messages are lost
// or refused.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

const benchDevices = 8 // devices publishing at once, as bench's default --devices

// newBencher is a bencher for b: b.N messages (and alerts) from
// benchDevices devices, serve with PP_BENCH_ARGS, progress to the log.
func newBencher(b *testing.B) *bencher {
	s := DefaultSettings()
	s.Messages, s.Devices, s.Alerts = max(b.N, benchDevices), benchDevices, b.N
	s.ServeArgs = strings.Fields(os.Getenv("PP_BENCH_ARGS"))
	if err := s.Validate(); err != nil {
		b.Fatal(err)
	}
	return &bencher{s: s, progress: io.Discard}
}

// startTestServices starts a phase's Mosquitto and influxd, skipping the
// benchmark where they are not installed (failing it under CI=true).
func startTestServices(b *testing.B) *phaseServices {
	sv, err := startServices()
	testservices.Require(b, err)
	b.Cleanup(sv.close)
	return sv
}

// reportRate reports msgs messages (of samplesPerMessage points) in secs.
func reportRate(b *testing.B, msgs int, secs float64) {
	b.ReportMetric(secs*1e9/float64(msgs), "ns/op")
	b.ReportMetric(float64(msgs)/secs, "msgs/s")
	b.ReportMetric(float64(msgs*samplesPerMessage)/secs, "points/s")
}

// BenchmarkBrokerQoS1 is row (a): Mosquitto's own rate with the devices
// and payloads of (c), QoS 1 from publish to a plain QoS 1 subscriber.
func BenchmarkBrokerQoS1(b *testing.B) {
	bn := newBencher(b)
	sv := startTestServices(b)
	var res Results
	if err := bn.broker(context.Background(), sv, makeMessages(bn.s.Messages, bn.s.Devices, time.Now()), &res); err != nil {
		b.Fatal(err)
	}
	reportRate(b, bn.s.Messages, res.brokerSecs)
}

// BenchmarkInfluxWrite is row (b): InfluxDB's own rate for the
// pipeline's lines, written through its sink as serve writes them.
func BenchmarkInfluxWrite(b *testing.B) {
	bn := newBencher(b)
	sv := startTestServices(b)
	var res Results
	if err := bn.influxWrite(context.Background(), sv, &res); err != nil {
		b.Fatal(err)
	}
	reportRate(b, bn.s.Messages, res.influxSecs)
}

// BenchmarkIngestMQTT is row (c): devices publish with QoS 1 into serve
// until every message is stored and counted in InfluxDB.
// "puback-msgs/s" is how fast the broker took them.
func BenchmarkIngestMQTT(b *testing.B) {
	bn := newBencher(b)
	var res Results
	// (c) starts its own services: Require skips where they are missing.
	testservices.Require(b, bn.pipeline(context.Background(), makeMessages(bn.s.Messages, bn.s.Devices, time.Now()), &res))
	reportRate(b, bn.s.Messages, res.pipeSecs)
	b.ReportMetric(res.pipePubackMsgs, "puback-msgs/s")
}

// BenchmarkIngestHTTP: concurrent clients, each a device, POST until b.N
// messages are answered 202 (stored); 429 and 503 are retried after
// Retry-After. As a request is answered only once its points are
// stored, each client sends at most one message per write, so the rate
// grows with the number of clients; hence two sizes. It is (c) over
// HTTPS, with the harness's services, serve and messages.
func BenchmarkIngestHTTP(b *testing.B) {
	for _, clients := range []int{8, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { benchHTTP(b, clients) })
	}
}

func benchHTTP(b *testing.B, clients int) {
	ctx := context.Background()
	bn := newBencher(b)
	sv := startTestServices(b)
	const prefix = "bench-http-"
	dir := b.TempDir()
	_, tokens, err := enrolDevices(ctx, dir, prefix, clients)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := bn.startServe(ctx, sv, dir, "--mqtt=false", "--device-rate=0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := srv.stop(); err != nil {
			b.Error(err)
		}
	})
	payloads := makeMessages(b.N, clients, time.Now())
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = clients
	client := &http.Client{Transport: transport, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	var retried atomic.Int64

	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for _, p := range payloads[c] {
				for {
					status, retryAfter, err := postIngest(client, srv.url, tokens[c], p)
					if err != nil {
						b.Error(err)
						return
					}
					if status == http.StatusAccepted {
						break
					}
					secs, perr := strconv.Atoi(retryAfter)
					if (status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable) || perr != nil {
						b.Errorf("POST: %d", status)
						return
					}
					retried.Add(1)
					time.Sleep(time.Duration(secs) * time.Second)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if b.Failed() {
		return
	}
	if err := checkStored(ctx, sv.in.URL, prefix, int64(b.N)*samplesPerMessage); err != nil {
		b.Fatal(err)
	}
	reportRate(b, b.N, elapsed.Seconds())
	b.ReportMetric(float64(retried.Load()), "retries")
}

// postIngest posts one envelope to /v1/ingest as a device, and returns
// the status and the Retry-After header.
func postIngest(client *http.Client, url, token string, body []byte) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/v1/ingest", strings.NewReader(string(body)))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// BenchmarkAlertLatency is row (d) for b.N alerts: the time from the QoS
// 1 publish of a heart rate that breaks a patient's plan to the alert's
// arrival on an on-call console's websocket, while background devices
// publish 1,000 ordinary messages a second (PP_BENCH_LOAD changes it).
// It reports p50, p95 and p99 in milliseconds:
//
//	go test -run '^$' -bench AlertLatency -benchtime 200x ./bench/
func BenchmarkAlertLatency(b *testing.B) {
	bn := newBencher(b)
	if v, err := strconv.Atoi(os.Getenv("PP_BENCH_LOAD")); err == nil && v > 0 {
		bn.s.Load = v
	}
	var res Results
	// (d) starts its own services: Require skips where they are missing.
	testservices.Require(b, bn.latency(context.Background(), &res))
	b.ReportMetric(res.p50, "p50-ms")
	b.ReportMetric(res.p95, "p95-ms")
	b.ReportMetric(res.p99, "p99-ms")
	b.ReportMetric(res.loadAchieved, "load-msgs/s")
}
