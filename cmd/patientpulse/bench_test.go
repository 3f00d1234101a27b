package main

// End-to-end ingest benchmarks against the real Mosquitto and influxd of
// TestMain, and the two services' own rates as a baseline:
//
//	go test -run '^$' -bench . -benchtime 20000x ./cmd/patientpulse/
//
// b.N is a number of messages, each an envelope of benchSamples
// heart-rate samples (distinct times in the last 24h, so that no point
// overwrites another). Each run enrols fresh devices (ids unique per run)
// and starts its own serve with its own MQTT share group, so that re-runs
// with a larger b.N do not collide. serve keeps its own defaults
// (--write-flush-interval among them); PP_BENCH_ARGS="--flag=value ..."
// appends flags to the benchmarks' serve, for exploring a setting.
// Benchmarks never fail on a time: they fail only when messages are
// lost or refused.
//
// Run them without the tests (-run '^$'): the tests leave persistent
// MQTT sessions behind in the shared broker, and each would be queued a
// copy of every message published here.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/testservices"
)

const (
	benchDevices = 8  // simulated devices, each its own client
	benchSamples = 10 // samples per message
	benchWindow  = 32 // QoS 1 publishes awaiting their PUBACK, per device
)

var benchRun atomic.Int64 // makes ids unique across runs of one process

// benchPrefix is the prefix of this run's device ids, e.g. "bench-mqtt-3-".
func benchPrefix(kind string) string { return fmt.Sprintf("bench-%s-%d-", kind, benchRun.Add(1)) }

// benchPayloads builds b.N messages spread over the devices: payloads[d]
// holds device d's, seq 1, 2, ... Sample times step back 1ms from a
// minute ago, distinct per device for any b.N below 8 million.
func benchPayloads(n, devices int) [][][]byte {
	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	payloads := make([][][]byte, devices)
	for i := range n {
		d, k := i%devices, i/devices
		var sb strings.Builder
		fmt.Fprintf(&sb, `{"seq": %d, "samples": [`, k+1)
		for j := range benchSamples {
			if j > 0 {
				sb.WriteString(", ")
			}
			at := base.Add(-time.Duration(k*benchSamples+j) * time.Millisecond)
			fmt.Fprintf(&sb, `{"type": "heart_rate", "time": %q, "bpm": %d}`, at.Format(time.RFC3339Nano), 55+(k+j)%40)
		}
		sb.WriteString("]}")
		payloads[d] = append(payloads[d], []byte(sb.String()))
	}
	return payloads
}

// benchEnroll enrols one patient and n devices in a fresh registry and
// returns the registry's directory, the device ids and their tokens.
func benchEnroll(tb testing.TB, prefix string, n int) (dir string, ids, tokens []string) {
	tb.Helper()
	dir = filepath.Join(tb.TempDir(), "data")
	admin := func(args ...string) string {
		var stdout, stderr strings.Builder
		args = append(args, "--data-dir", dir)
		if code := run(context.Background(), args, nil, &stdout, &stderr, func(string) string { return "" }); code != 0 {
			tb.Fatalf("patientpulse %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
		}
		return strings.TrimSpace(stdout.String())
	}
	admin("patients", "add", "--id", prefix+"p")
	for i := range n {
		ids = append(ids, fmt.Sprintf("%sd%d", prefix, i))
		tokens = append(tokens, admin("devices", "enroll", "--patient", prefix+"p", "--device", ids[i]))
	}
	return dir, ids, tokens
}

// benchServe starts serve for a benchmark, with PP_BENCH_ARGS appended.
func benchServe(b *testing.B, dir, group string, extra ...string) *instance {
	b.Helper()
	extra = append(extra, strings.Fields(os.Getenv("PP_BENCH_ARGS"))...)
	return startServeOver(b, http.DefaultClient, "http", dir, group, extra...)
}

// benchClients connects one MQTT client per id, under the pprof label
// role=devices (which paho's own goroutines inherit).
func benchClients(b *testing.B, ids []string) []mqtt.Client {
	b.Helper()
	clients := make([]mqtt.Client, len(ids))
	pprof.Do(context.Background(), pprof.Labels("role", "devices"), func(context.Context) {
		for i, id := range ids {
			c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID(id).SetCleanSession(true))
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatalf("mqtt connect %s: %v", id, tok.Error())
			}
			b.Cleanup(func() { c.Disconnect(100) })
			clients[i] = c
		}
	})
	return clients
}

// publishAll publishes every device's payloads concurrently with QoS 1,
// each device keeping up to benchWindow publishes awaiting their PUBACK,
// and returns once the broker has acknowledged them all.
func publishAll(b *testing.B, clients []mqtt.Client, topic func(d int) string, payloads [][][]byte) {
	var wg sync.WaitGroup
	for d, c := range clients {
		wg.Go(func() {
			pprof.Do(context.Background(), pprof.Labels("role", "devices"), func(context.Context) {
				window := make([]mqtt.Token, benchWindow)
				wait := func(tok mqtt.Token) bool {
					if tok != nil && (!tok.WaitTimeout(30*time.Second) || tok.Error() != nil) {
						b.Errorf("publish: no PUBACK within 30s: %v", tok.Error())
						return false
					}
					return true
				}
				for i, p := range payloads[d] {
					if !wait(window[i%benchWindow]) {
						return
					}
					window[i%benchWindow] = c.Publish(topic(d), 1, false, p)
				}
				for _, tok := range window {
					wait(tok)
				}
			})
		})
	}
	wg.Wait()
}

// waitProgress polls count until it reaches want and returns when it did.
// It fails the benchmark only when count stops moving for a minute: then
// messages are lost or stuck, which is a fault, not a slow run.
func waitProgress(b *testing.B, what string, want int64, count func() (int64, error)) time.Time {
	last, moved := int64(-1), time.Now()
	for {
		n, err := count()
		now := time.Now()
		if err == nil && n >= want {
			return now
		}
		if n != last {
			last, moved = n, now
		}
		if now.Sub(moved) > time.Minute {
			b.Fatalf("%s: stuck at %d of %d for a minute (last error %v)", what, n, want, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// storedBPM counts the bpm values stored for the devices whose ids start
// with prefix.
func storedBPM(tb testing.TB, prefix string) int64 {
	tb.Helper()
	n, err := benchCount(context.Background(), influx.URL, prefix)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// report checks that every point is stored and reports the end-to-end
// rates over elapsed.
func report(b *testing.B, prefix string, elapsed time.Duration) {
	b.Helper()
	want := int64(b.N) * benchSamples
	if got := storedBPM(b, prefix); got != want {
		b.Fatalf("InfluxDB holds %d bpm values of %s*, want %d", got, prefix, want)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(want)/elapsed.Seconds(), "points/s")
}

// BenchmarkIngestMQTT: devices publish with QoS 1 until b.N messages
// are stored, as counted by serve's points-written metric and then by
// one Flux count. "puback-msgs/s" is how fast the broker took them.
func BenchmarkIngestMQTT(b *testing.B) {
	testservices.Require(b, servicesOK)
	prefix := benchPrefix("mqtt")
	dir, ids, _ := benchEnroll(b, prefix, benchDevices)
	srv := benchServe(b, dir, strings.TrimSuffix(prefix, "-"))
	clients := benchClients(b, ids)
	payloads := benchPayloads(b.N, len(ids))
	want := int64(b.N) * benchSamples

	b.ResetTimer()
	start := time.Now()
	publishAll(b, clients, func(d int) string { return "pp/v1/devices/" + ids[d] + "/data" }, payloads)
	pubacked := time.Since(start)
	if b.Failed() {
		return
	}
	end := waitProgress(b, "points written", want, func() (int64, error) { return pointsWritten(srv.url) })
	b.StopTimer()

	report(b, prefix, end.Sub(start))
	b.ReportMetric(float64(b.N)/pubacked.Seconds(), "puback-msgs/s")
}

// BenchmarkIngestHTTP: concurrent clients, each a device, POST until b.N
// messages are answered 202 (stored); 429 and 503 are retried after
// Retry-After. As a request is answered only once its points are
// stored, each client sends at most one message per write, so the rate
// grows with the number of clients; hence two sizes.
func BenchmarkIngestHTTP(b *testing.B) {
	for _, clients := range []int{8, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { benchHTTP(b, clients) })
	}
}

func benchHTTP(b *testing.B, clients int) {
	testservices.Require(b, servicesOK)
	prefix := benchPrefix("http")
	dir, _, tokens := benchEnroll(b, prefix, clients)
	srv := benchServe(b, dir, strings.TrimSuffix(prefix, "-"), "--mqtt=false", "--device-rate=0")
	payloads := benchPayloads(b.N, clients)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = clients
	client := &http.Client{Transport: transport, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	var retried atomic.Int64

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for _, p := range payloads[c] {
				for {
					status, doc, h, err := postWith(client, srv.url, tokens[c], "application/json", p)
					if err != nil {
						b.Error(err)
						return
					}
					if status == http.StatusAccepted && doc["accepted"] == float64(benchSamples) {
						break
					}
					secs, perr := strconv.Atoi(h.Get("Retry-After"))
					if (status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable) || perr != nil {
						b.Errorf("POST: %d %v", status, doc)
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
	b.StopTimer()
	if b.Failed() {
		return
	}
	report(b, prefix, elapsed)
	b.ReportMetric(float64(retried.Load()), "retries")
}

// BenchmarkBrokerQoS1 is Mosquitto's own rate with the same devices and
// payloads: QoS 1 from publish to a plain QoS 1 subscriber (auto
// acknowledging, on a topic no pipeline subscribes to).
func BenchmarkBrokerQoS1(b *testing.B) {
	testservices.Require(b, servicesOK)
	prefix := benchPrefix("broker")
	ids := make([]string, benchDevices)
	for d := range ids {
		ids[d] = fmt.Sprintf("%sd%d", prefix, d)
	}
	var received atomic.Int64
	sub := benchClients(b, []string{prefix + "sub"})[0]
	topic := "bench/" + strings.TrimSuffix(prefix, "-")
	tok := sub.Subscribe(topic+"/+/data", 1, func(mqtt.Client, mqtt.Message) { received.Add(1) })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscribe: %v", tok.Error())
	}
	clients := benchClients(b, ids)
	payloads := benchPayloads(b.N, len(ids))

	b.ResetTimer()
	start := time.Now()
	publishAll(b, clients, func(d int) string { return topic + "/" + ids[d] + "/data" }, payloads)
	pubacked := time.Since(start)
	if b.Failed() {
		return
	}
	end := waitProgress(b, "messages received", int64(b.N), func() (int64, error) { return received.Load(), nil })
	b.StopTimer()

	elapsed := end.Sub(start).Seconds()
	b.ReportMetric(float64(b.N)/elapsed, "msgs/s")
	b.ReportMetric(float64(b.N*benchSamples)/elapsed, "points/s")
	b.ReportMetric(float64(b.N)/pubacked.Seconds(), "puback-msgs/s")
}

// BenchmarkInfluxWrite is InfluxDB's own rate for the pipeline's lines:
// b.N messages' worth of points (benchSamples each), in batches of 5000
// lines (the default --write-batch-points) written through the pipeline's
// sink, ingest.Influx, uncompressed (the default), two at a time (the
// default --write-concurrency).
func BenchmarkInfluxWrite(b *testing.B) {
	testservices.Require(b, servicesOK)
	const batchPoints, concurrency = 5000, 2
	prefix := benchPrefix("influx")
	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	var batches [][]byte
	for i := 0; i < b.N*benchSamples; i += batchPoints {
		var batch []byte
		for j := i; j < min(i+batchPoints, b.N*benchSamples); j++ {
			d, k := j%benchDevices, j/benchDevices
			p := ingest.Point{Measurement: "heart_rate", Fields: []ingest.Field{{Key: "bpm", Value: float64(55 + k%40)}},
				Time: base.Add(-time.Duration(k) * time.Millisecond)}
			batch = ingest.AppendLine(batch, &p, prefix+"p", fmt.Sprintf("%sd%d", prefix, d), int64(k/benchSamples+1))
			batch = append(batch, '\n')
		}
		batches = append(batches, batch)
	}
	sink := ingest.NewInflux(ingest.InfluxConfig{URL: influx.URL, Bucket: "patientpulse", Timeout: 30 * time.Second})
	defer sink.Close()
	if err := sink.EnsureBucket(context.Background()); err != nil {
		b.Fatal(err)
	}
	if err := sink.Ping(context.Background()); err != nil { // the connection is up
		b.Fatal(err)
	}
	queue := make(chan []byte)

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for batch := range queue {
				if err := sink.Write(context.Background(), batch); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for _, batch := range batches {
		queue <- batch
	}
	close(queue)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if !b.Failed() {
		report(b, prefix, elapsed)
	}
}
