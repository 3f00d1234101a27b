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
// flags to that serve, for exploring a setting, and PP_BENCH_CONSOLES
// sets the consoles of BenchmarkIngestMQTT (50; 0: none). ns/op is the phase's own
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

// newBencher is a bencher for b: b.N messages (at least one for each
// device and each patient of the consoles' care teams) and alerts from
// benchDevices devices, serve with PP_BENCH_ARGS, progress to the log.
func newBencher(b *testing.B) *bencher {
	s := DefaultSettings()
	s.Devices, s.Alerts = benchDevices, b.N
	s.ServeArgs = strings.Fields(os.Getenv("PP_BENCH_ARGS"))
	if v, err := strconv.Atoi(os.Getenv("PP_BENCH_CONSOLES")); err == nil {
		s.Consoles = v
	}
	s.Messages = max(b.N, s.Devices, s.Consoles*s.ConsolePatients)
	if err := s.Validate(); err != nil {
		b.Fatal(err)
	}
	return &bencher{s: s, progress: io.Discard}
}

// startTestServices starts a phase's Mosquitto and influxd, skipping the
// benchmark where they are not installed (failing it under CI=true).
func startTestServices(b *testing.B) *phaseServices {
	sv, err := startServices(context.Background(), "")
	testservices.Require(b, err)
	b.Cleanup(sv.close)
	sv.db = testservices.RegistryDSN(b) // the registry follows PP_TEST_REGISTRY
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
	if err := bn.broker(context.Background(), sv, makeMessages(bn.s.Messages, newFleet(bn.s), time.Now()), &res); err != nil {
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

// BenchmarkIngestMQTT is rows (c) and (c+ws): devices publish with QoS
// 1 into serve until every message is stored and counted in InfluxDB,
// then again, from fresh services, with 50 clinicians' consoles on the
// websocket (PP_BENCH_CONSOLES changes it; 0: no second run), each
// subscribed to its care team of 5 of the 250 patients. ns/op, msgs/s
// and points/s are those without consoles; "puback-msgs/s" is how fast
// the broker took them. "ws-msgs/s" is the rate with the consoles,
// "ws-samples" the sample messages they received in all (of their care
// teams' b.N × 10), "ws-evicted" how many serve disconnected for
// falling behind, and "ws-feed-dropped" the device messages whose
// samples serve's live feed dropped.
func BenchmarkIngestMQTT(b *testing.B) {
	bn := newBencher(b)
	var res Results
	// (c) starts its own services: Require skips where they are missing.
	testservices.Require(b, bn.pipeline(context.Background(), makeMessages(bn.s.Messages, newFleet(bn.s), time.Now()), &res))
	reportRate(b, bn.s.Messages, res.pipe.secs)
	b.ReportMetric(res.pipe.pubackMsgs, "puback-msgs/s")
	if bn.s.Consoles > 0 {
		b.ReportMetric(res.pipeConsoles.msgs, "ws-msgs/s")
		b.ReportMetric(float64(res.pipeConsoles.samples), "ws-samples")
		b.ReportMetric(float64(res.pipeConsoles.evicted), "ws-evicted")
		b.ReportMetric(float64(res.pipeConsoles.feedDropped), "ws-feed-dropped")
	}
}

// TestPipelineConsoles runs (c) small, with --quick's 20 clinicians'
// consoles, each watching 5 of the 100 patients, in its second run: both
// runs have a rate, no console was disconnected, and the consoles
// received their care teams' samples, every one unless serve's live feed
// dropped some. It judges no rate.
func TestPipelineConsoles(t *testing.T) {
	s := QuickSettings()
	s.Messages = 2000
	bn := &bencher{s: s, progress: t.Output()}
	var res Results
	// (c) starts its own services: Require skips where they are missing.
	testservices.Require(t, bn.pipeline(t.Context(), makeMessages(s.Messages, newFleet(s), time.Now()), &res))
	want := int64(s.Messages) * samplesPerMessage
	for name, f := range map[string]pipeFigures{"without consoles": res.pipe, "with consoles": res.pipeConsoles} {
		if !(f.msgs > 0) || f.counted != want {
			t.Errorf("%s: %.0f msgs/s, %d points counted; want a rate and %d", name, f.msgs, f.counted, want)
		}
	}
	c := res.pipeConsoles
	t.Logf("without consoles %.0f msgs/s, with %d %.0f msgs/s; %d of %d sample messages, %d consoles complete, %d evicted, %d dropped; "+
		"the live feed dropped the samples of %d messages", res.pipe.msgs, c.consoles, c.msgs, c.samples, c.expected, c.complete,
		c.evicted, c.dropped, c.feedDropped)
	if res.pipe.consoles != 0 || res.pipe.samples != 0 {
		t.Errorf("the run without consoles had %d consoles and %d samples", res.pipe.consoles, res.pipe.samples)
	}
	if c.consoles != s.Consoles || c.evicted != 0 || c.dropped != 0 {
		t.Errorf("%d consoles, %d disconnected for falling behind, %d otherwise; want %d, 0 and 0", c.consoles, c.evicted, c.dropped, s.Consoles)
	}
	// Each patient is in one care team: the care teams' samples are every sample.
	if c.expected != want {
		t.Errorf("the care teams' samples are %d, want every stored one, %d", c.expected, want)
	}
	if c.samples <= 0 {
		t.Fatalf("the consoles received no sample message")
	}
	if c.feedDropped == 0 && (c.samples < want || c.complete != c.consoles) {
		t.Errorf("serve's live feed dropped nothing, yet the consoles received %d sample messages of %d, %d of %d consoles every one of theirs",
			c.samples, want, c.complete, c.consoles)
	}
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
	fl := fleet{conns: clients, wearables: clients, patients: clients} // a wearable, and a patient, a client
	_, tokens, err := enrolDevices(ctx, sv.db, prefix, fl)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := bn.startServe(ctx, sv, "--mqtt=false", "--cluster=false", "--device-rate=0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := srv.stop(); err != nil {
			b.Error(err)
		}
	})
	payloads := makeMessages(b.N, fl, time.Now())
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

// TestPrintConsoles: with --consoles 0 the table has no (c+ws) rows nor
// console lines; with consoles it has both rates side by side, the care
// teams, what the consoles received, the live feed's drops, and their CPU
// row.
func TestPrintConsoles(t *testing.T) {
	ok := cpuUse{bench: time.Second, ok: true}
	r := &Results{brokerMsgs: 40000, influxMsgs: 50000, memPatients: 1, cpuA: ok, cpuB: ok,
		pipe: pipeFigures{msgs: 15000, counted: 40000, cpu: ok},
		pipeConsoles: pipeFigures{msgs: 12000, secs: 3.33, counted: 40000, cpu: ok, consoles: 2, samples: 31000, expected: 40000, complete: 1,
			evicted: 1, firstEvicted: 0.5, lastEvicted: 0.5, consolesLag: 0.25, feedDropped: 7}}
	for _, n := range []int{0, 2} {
		s := QuickSettings()
		s.Consoles = n
		var out strings.Builder
		r.Print(&out, s)
		for _, want := range []string{
			"| (c+ws) | (c) with 2 clinicians' consoles on /v1/ws, each subscribed to its care team (5 of 10 patients) | 12000 | 120000 |",
			"consoles received 31000 of their care teams' 40000 sample messages (1 of 2 consoles every one); disconnected for falling behind: 1 of 2, " +
				"0.50 s into the 3.33 s window; serve's live feed dropped the samples of 7 messages; the last sample reached those left 0.25 s after the window |",
			"| (c+ws)/(c) | pipeline with 2 consoles / without | 0.80 | 0.80 | |",
			"consoles: (c) end to end with and without 2 clinicians' consoles, each subscribed to its care team of 5 of the 10 patients (each patient watched by one console), in this run:\n",
			"  with 2 consoles: 12000 msgs/s (120000 points/s); without: 15000 msgs/s (150000 points/s); with/without: 0.80\n",
			"  sample messages received: 31000 of their care teams' 40000; every one by 1 of 2 consoles; disconnected for falling behind: 1 of 2, 0.50 s into the 3.33 s window\n",
			"  serve's live feed dropped the samples of 7 device messages (patientpulse_ws_samples_dropped_total)\n",
			"  in (c) the devices publish for 10 wearables of 10 patients",
			"each subscribed to its care team of 5 patients (dealt round-robin)",
			"the consoles in (c+ws)",
			"| pipeline, 2 consoles (c+ws) | 1.00 s |",
		} {
			if got := strings.Contains(out.String(), want); got != (n > 0) {
				t.Errorf("--consoles %d: %q in the output: %v, want %v:\n%s", n, want, got, n > 0, out.String())
			}
		}
	}
}
