package main

// `patientpulse bench`: one run on this machine that measures the
// pipeline next to the limits of the services it sits between, and prints
// one table (issue 7, items 3 and 5). Every phase starts its own Mosquitto
// and influxd (internal/testservices: free loopback ports, temporary
// directories), so bench never touches the user's services, and each
// phase starts from empty services:
//
//	(a) Mosquitto's own QoS 1 rate, publishers to a plain subscriber;
//	(b) InfluxDB's own write rate, in the pipeline's line protocol and
//	    batches;
//	(c) the pipeline end to end: the same messages as (a), QoS 1 into
//	    serve (in process, a fresh registry), stored, acknowledged, and
//	    counted in InfluxDB;
//	(d) publish-to-websocket alert latency under background load;
//	(e) analysis memory per 10,000 simulated patients.
//
// bench never fails on a time: it fails only on a fault (a service that
// cannot start, points or alerts lost, progress that stops for a minute),
// or when interrupted.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/examples"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
	"github.com/patientpulse/patientpulse/server"
)

// The workload's shape, shared by (a), (b) and (c).
const (
	benchPerMessage  = 10   // heart-rate samples per message
	benchInFlight    = 32   // QoS 1 publishes awaiting their PUBACK, per device
	benchBatchPoints = 5000 // (b): points per write, serve's --write-batch-points default
	benchWrites      = 2    // (b): writes in flight, serve's --write-concurrency default
	benchHistoryDays = 90   // (e): days of history each patient's analysis holds
	benchStuckAfter  = time.Minute
	benchBucket      = "patientpulse"
)

// Targets of issue 7, item 5.
const (
	benchTargetShare   = 0.70 // pipeline / min(broker, InfluxDB)
	benchTargetP99     = 250.0
	benchTargetLoad    = 1000
	benchTargetMemMiB  = 50.0
	benchTargetPatient = 10000
)

// benchSettings are bench's flags.
type benchSettings struct {
	messages   int
	devices    int
	load       int
	alerts     int
	patients   int
	quick      bool
	serveArgs  []string
	cpuProfile string
}

func benchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var s benchSettings
	var serveArgs string
	fs := flag.NewFlagSet("patientpulse bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&s.messages, "messages", 200000, "(a), (b), (c): messages of 10 heart-rate samples each (default: about 20-30 s for the pipeline here)")
	fs.IntVar(&s.devices, "devices", 8, "(a), (c): devices publishing at once, each its own MQTT client")
	fs.IntVar(&s.load, "load", benchTargetLoad, "(d): background messages per second while alert latency is measured")
	fs.IntVar(&s.alerts, "alerts", 200, "(d): alerts whose latency is measured, 50 a second")
	fs.IntVar(&s.patients, "patients", benchTargetPatient, "(e): simulated patients held by analysis (figures are scaled to 10,000)")
	fs.BoolVar(&s.quick, "quick", false, "small sizes, for a smoke test (flags given explicitly still win)")
	fs.StringVar(&serveArgs, "serve-args", "", "extra serve flags for (c) and (d), space-separated, e.g. \"--write-concurrency=4\"")
	fs.StringVar(&s.cpuProfile, "cpuprofile", "", "write a CPU profile of (c), the pipeline end to end, to this file (pprof labels role=serve, role=devices)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: patientpulse bench [flags]\n\n"+
			"Measures, on this machine and against its own Mosquitto and influxd, the broker's and InfluxDB's own\n"+
			"rates, the pipeline's end-to-end rate, alert latency under load and analysis memory, and prints one table.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))}
	}
	if s.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for _, q := range []struct {
			name string
			v    *int
			size int
		}{{"messages", &s.messages, 4000}, {"devices", &s.devices, 4}, {"load", &s.load, 200},
			{"alerts", &s.alerts, 20}, {"patients", &s.patients, 500}} {
			if !set[q.name] {
				*q.v = q.size
			}
		}
	}
	s.serveArgs = strings.Fields(serveArgs)
	var problems []error
	if s.devices < 1 || s.devices > 1000 {
		problems = append(problems, errors.New("bench: --devices must be 1 to 1000"))
	}
	if s.messages < s.devices || s.messages > 5_000_000 {
		problems = append(problems, errors.New("bench: --messages must be at least --devices and at most 5000000"))
	}
	if s.load < 1 || s.load > 100000 {
		problems = append(problems, errors.New("bench: --load must be 1 to 100000 messages a second"))
	}
	if s.alerts < 1 || s.alerts > 10000 {
		problems = append(problems, errors.New("bench: --alerts must be 1 to 10000"))
	}
	if s.patients < 1 || s.patients > 100000 {
		problems = append(problems, errors.New("bench: --patients must be 1 to 100000"))
	}
	if err := errors.Join(problems...); err != nil {
		return usageError{err}
	}
	if _, err := benchServeConfig(s.serveArgs); err != nil { // before anything starts
		return err
	}
	b := &bencher{s: s, progress: stderr}
	res, err := b.run(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("bench: interrupted; every service it started is stopped")
		}
		return err
	}
	res.print(stdout, s)
	return nil
}

// bencher is one run of bench.
type bencher struct {
	s        benchSettings
	progress io.Writer // progress lines
}

func (b *bencher) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "bench: "+format+"\n", args...)
}

// benchResults are the figures of one run.
type benchResults struct {
	started time.Time

	brokerMsgs, brokerSecs float64 // (a)
	influxMsgs, influxSecs float64 // (b), in messages' worth of points
	pipeMsgs, pipeSecs     float64 // (c)
	cpuA, cpuB, cpuC       benchCPU
	pipePubackMsgs         float64
	pipeCounted            int64
	pipeWritten            int64 // by serve's metric: more than counted when messages came twice

	p50, p95, p99 float64 // (d), ms
	alerts        int
	loadAchieved  float64

	memPatients int // (e)
	memBytes    float64
	memSecs     float64
}

// run runs the phases in order; each stops what it started before the
// next begins, also on an error or an interruption.
func (b *bencher) run(ctx context.Context) (*benchResults, error) {
	res := &benchResults{started: time.Now()}
	// The services of (a) and (b) start together, so that a missing
	// binary is reported before anything is measured.
	sv, err := startBenchServices()
	if err != nil {
		return nil, err
	}
	payloads := benchMessages(b.s.messages, b.s.devices, time.Now())
	err = func() error {
		defer sv.close()
		if err := b.broker(ctx, sv, payloads, res); err != nil {
			return fmt.Errorf("bench (a) broker: %w", err)
		}
		if err := b.influxWrite(ctx, sv, res); err != nil {
			return fmt.Errorf("bench (b) InfluxDB: %w", err)
		}
		return nil
	}()
	if err != nil {
		return nil, err
	}
	if err := b.pipeline(ctx, payloads, res); err != nil {
		return nil, fmt.Errorf("bench (c) pipeline: %w", err)
	}
	payloads = nil
	if err := b.latency(ctx, res); err != nil {
		return nil, fmt.Errorf("bench (d) alert latency: %w", err)
	}
	if err := b.memory(ctx, res); err != nil {
		return nil, fmt.Errorf("bench (e) analysis memory: %w", err)
	}
	return res, nil
}

// benchServices are one phase's own Mosquitto and influxd.
type benchServices struct {
	mq *testservices.Mosquitto
	in *testservices.Influx
}

func startBenchServices() (*benchServices, error) {
	mq, err := testservices.StartMosquitto()
	if err != nil {
		return nil, benchServiceError(err)
	}
	in, err := testservices.StartInflux()
	if err != nil {
		mq.Stop()
		return nil, benchServiceError(err)
	}
	return &benchServices{mq: mq, in: in}, nil
}

func benchServiceError(err error) error {
	if errors.Is(err, testservices.ErrMissingBinary) {
		return fmt.Errorf("bench runs its own Mosquitto and InfluxDB 1.8: %w\n%s", err, testservices.InstallHint)
	}
	return fmt.Errorf("bench: %w", err)
}

// close stops both services and removes their directories; calling it
// again does nothing.
func (s *benchServices) close() {
	s.mq.Stop()
	s.in.Close()
}

// benchMessages builds n messages spread over the devices: payloads[d]
// holds device d's, seq 1, 2, ... Sample times step back 1ms from a
// minute before now, distinct per device (and no device id is in a
// payload, so (a) and (c) send the very same bytes).
func benchMessages(n, devices int, now time.Time) [][][]byte {
	base := now.UTC().Add(-time.Minute).Truncate(time.Second)
	payloads := make([][][]byte, devices)
	var buf []byte
	for i := range n {
		d, k := i%devices, i/devices
		buf = fmt.Appendf(buf[:0], `{"seq": %d, "samples": [`, k+1)
		for j := range benchPerMessage {
			if j > 0 {
				buf = append(buf, ", "...)
			}
			at := base.Add(-time.Duration(k*benchPerMessage+j) * time.Millisecond)
			buf = fmt.Appendf(buf, `{"type": "heart_rate", "time": %q, "bpm": %d}`, at.Format(time.RFC3339Nano), 55+(k+j)%40)
		}
		buf = append(buf, "]}"...)
		payloads[d] = append(payloads[d], slices.Clone(buf))
	}
	return payloads
}

// benchConnect connects one MQTT client per id, under the pprof label
// role=devices (which paho's own goroutines inherit). The caller
// disconnects them.
func benchConnect(ctx context.Context, url string, ids []string) ([]mqtt.Client, error) {
	clients := make([]mqtt.Client, 0, len(ids))
	var err error
	pprof.Do(ctx, pprof.Labels("role", "devices"), func(context.Context) {
		for _, id := range ids {
			c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true).
				SetAutoReconnect(false).SetConnectTimeout(10 * time.Second))
			if tok := c.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
				err = fmt.Errorf("mqtt connect %s: %v", id, tok.Error())
				return
			}
			clients = append(clients, c)
		}
	})
	if err != nil {
		benchDisconnect(clients)
		return nil, err
	}
	return clients, nil
}

func benchDisconnect(clients []mqtt.Client) {
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.Disconnect(100) })
	}
	wg.Wait()
}

// benchPublish publishes every device's payloads with QoS 1, each device
// keeping up to benchInFlight publishes awaiting their PUBACK, and
// returns once the broker has acknowledged them all. It fails when no
// PUBACK comes for a minute.
func benchPublish(ctx context.Context, clients []mqtt.Client, topics []string, payloads [][][]byte) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var acked atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	want := int64(0)
	for d, c := range clients {
		want += int64(len(payloads[d]))
		wg.Go(func() {
			pprof.Do(pctx, pprof.Labels("role", "devices"), func(context.Context) {
				window := make([]mqtt.Token, benchInFlight)
				wait := func(tok mqtt.Token) bool {
					if tok == nil {
						return true
					}
					select {
					case <-tok.Done():
					case <-pctx.Done():
						return false
					}
					if tok.Error() != nil {
						failed.CompareAndSwap(nil, tok.Error())
						cancel()
						return false
					}
					acked.Add(1)
					return true
				}
				for i, p := range payloads[d] {
					if !wait(window[i%benchInFlight]) {
						return
					}
					window[i%benchInFlight] = c.Publish(topics[d], 1, false, p)
				}
				for _, tok := range window {
					if !wait(tok) {
						return
					}
				}
			})
		})
	}
	_, err := benchWait(pctx, "PUBACKs", want, func() (int64, error) { return acked.Load(), nil })
	cancel()
	wg.Wait()
	if e, ok := failed.Load().(error); ok {
		return fmt.Errorf("publish: %w", e)
	}
	return err
}

// benchWait polls count every 50ms until it reaches want, and returns
// when it did. It fails only when count stops moving for a minute (then
// something is lost or stuck, which is a fault, not a slow run) or ctx
// ends.
func benchWait(ctx context.Context, what string, want int64, count func() (int64, error)) (time.Time, error) {
	last, moved := int64(-1), time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := count()
		now := time.Now()
		if err == nil && n >= want {
			return now, nil
		}
		if n != last {
			last, moved = n, now
		}
		if now.Sub(moved) > benchStuckAfter {
			return now, fmt.Errorf("%s: stuck at %d of %d for %s (last error: %v)", what, n, want, benchStuckAfter, err)
		}
		select {
		case <-ctx.Done():
			return now, ctx.Err()
		case <-tick.C:
		}
	}
}

// broker is (a): the devices publish every message with QoS 1 on a topic
// that a plain QoS 1 subscriber (paho, acknowledging at once) takes; the
// rate is over publish start to the last message received.
func (b *bencher) broker(ctx context.Context, sv *benchServices, payloads [][][]byte, res *benchResults) error {
	b.logf("(a) Mosquitto QoS 1: %d messages from %d publishers to a plain subscriber", b.s.messages, b.s.devices)
	subs, err := benchConnect(ctx, sv.mq.URL, []string{"bench-subscriber"})
	if err != nil {
		return err
	}
	defer benchDisconnect(subs)
	var received atomic.Int64
	tok := subs[0].Subscribe("bench/+/data", 1, func(mqtt.Client, mqtt.Message) { received.Add(1) })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	ids, topics := make([]string, b.s.devices), make([]string, b.s.devices)
	for d := range ids {
		ids[d] = fmt.Sprintf("bench-broker-d%d", d)
		topics[d] = "bench/" + ids[d] + "/data"
	}
	clients, err := benchConnect(ctx, sv.mq.URL, ids)
	if err != nil {
		return err
	}
	defer benchDisconnect(clients)

	cpu := startCPUMeter(sv)
	start := time.Now()
	if err := benchPublish(ctx, clients, topics, payloads); err != nil {
		return err
	}
	end, err := benchWait(ctx, "messages received", int64(b.s.messages), func() (int64, error) { return received.Load(), nil })
	if err != nil {
		return err
	}
	res.cpuA = cpu.since()
	res.brokerSecs = end.Sub(start).Seconds()
	res.brokerMsgs = float64(b.s.messages) / res.brokerSecs
	return nil
}

// influxWrite is (b): the same number of points as (a)'s messages hold,
// written as the pipeline writes them: its line protocol
// (ingest.AppendLine), through its sink (ingest.Influx, uncompressed as
// serve sends by default), in batches of 5000, two writes in flight; then
// every point is counted.
func (b *bencher) influxWrite(ctx context.Context, sv *benchServices, res *benchResults) error {
	points := b.s.messages * benchPerMessage
	b.logf("(b) InfluxDB write: %d points in batches of %d, %d in flight", points, benchBatchPoints, benchWrites)
	const prefix = "bench-influx-"
	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	var batches [][]byte
	for i := 0; i < points; i += benchBatchPoints {
		var batch []byte
		for j := i; j < min(i+benchBatchPoints, points); j++ {
			d, k := j%b.s.devices, j/b.s.devices
			p := ingest.Point{Measurement: "heart_rate", Fields: []ingest.Field{{Key: "bpm", Value: float64(55 + k%40)}},
				Time: base.Add(-time.Duration(k) * time.Millisecond)}
			batch = ingest.AppendLine(batch, &p, prefix+"p", prefix+"d"+strconv.Itoa(d), int64(k/benchPerMessage+1))
			batch = append(batch, '\n')
		}
		batches = append(batches, batch)
	}
	sink := ingest.NewInflux(ingest.InfluxConfig{URL: sv.in.URL, Bucket: benchBucket, Timeout: 30 * time.Second})
	defer sink.Close()
	if err := sink.EnsureBucket(ctx); err != nil {
		return err
	}
	if err := sink.Ping(ctx); err != nil { // the connection is up
		return err
	}

	cpu := startCPUMeter(sv)
	start := time.Now()
	queue := make(chan []byte)
	errs := make([]error, benchWrites)
	var wg sync.WaitGroup
	for w := range benchWrites {
		wg.Go(func() {
			for batch := range queue {
				if errs[w] == nil {
					errs[w] = sink.Write(ctx, batch)
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
	res.cpuB = cpu.since()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	batches = nil
	if err := benchCheckCount(ctx, sv.in.URL, prefix, int64(points)); err != nil {
		return err
	}
	res.influxSecs = elapsed.Seconds()
	res.influxMsgs = float64(b.s.messages) / res.influxSecs
	return nil
}

// benchCheckCount checks that InfluxDB holds want bpm values of the
// devices whose ids start with prefix. A count that differs is taken
// again, once a second, for up to 30 seconds before it is an error.
func benchCheckCount(ctx context.Context, url, prefix string, want int64) error {
	var n int64
	for range 30 {
		var err error
		if n, err = benchCount(ctx, url, prefix); err != nil {
			return err
		}
		if n == want {
			return nil
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("InfluxDB holds %d bpm values of the %d points written", n, want)
}

// benchCount counts the stored bpm values of the devices whose ids start
// with prefix, with one InfluxQL query. (Not Flux: after a burst of
// writes, influxd 1.8's Flux reads were seen here to count a few points
// in a thousand twice, for more than 30 seconds, where InfluxQL counts
// each once.)
func benchCount(ctx context.Context, url, prefix string) (int64, error) {
	q := neturl.Values{"db": {benchBucket}, "q": {fmt.Sprintf(`SELECT count(bpm) FROM heart_rate WHERE device =~ /^%s/`, prefix)}}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/query?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("count: %w", err)
	}
	defer resp.Body.Close()
	var doc struct {
		Results []struct {
			Error  string `json:"error"`
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
		} `json:"results"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return 0, fmt.Errorf("count: %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || doc.Error != "" || len(doc.Results) != 1 || doc.Results[0].Error != "" {
		return 0, fmt.Errorf("count: %s %s %v", resp.Status, doc.Error, doc.Results)
	}
	var n int64
	for _, series := range doc.Results[0].Series {
		for _, row := range series.Values {
			if len(row) == 2 {
				v, _ := row[1].(float64)
				n += int64(v)
			}
		}
	}
	return n, nil
}

// pipeline is (c): the devices of (a), enrolled in a fresh registry,
// publish the same messages with QoS 1 to serve's broker; the rate is
// over publish start to the moment serve's points-written metric has
// them all. serve acknowledges a message to the broker only once its
// points are stored; InfluxDB's count of the points is checked after.
func (b *bencher) pipeline(ctx context.Context, payloads [][][]byte, res *benchResults) error {
	b.logf("(c) pipeline end to end: %d messages from %d devices, QoS 1, into serve, stored and counted", b.s.messages, b.s.devices)
	sv, err := startBenchServices()
	if err != nil {
		return err
	}
	defer sv.close()
	dir, err := os.MkdirTemp("", "pp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	const prefix = "bench-pipe-"
	reg, err := registry.Open(ctx, filepath.Join(dir, "patientpulse.db"))
	if err != nil {
		return err
	}
	ids, topics := make([]string, b.s.devices), make([]string, b.s.devices)
	err = reg.AddPatient(ctx, registry.Patient{ID: prefix + "p"})
	for d := range ids {
		ids[d] = fmt.Sprintf("%sd%d", prefix, d)
		topics[d] = "pp/v1/devices/" + ids[d] + "/data"
		if err == nil {
			_, err = reg.EnrollDevice(ctx, ids[d], prefix+"p")
		}
	}
	reg.Close()
	if err != nil {
		return err
	}
	srv, err := b.startServe(ctx, sv, dir)
	if err != nil {
		return err
	}
	defer srv.stop()
	clients, err := benchConnect(ctx, sv.mq.URL, ids)
	if err != nil {
		return err
	}
	defer benchDisconnect(clients)
	want := int64(b.s.messages) * benchPerMessage

	stopProfile, err := b.startProfile()
	if err != nil {
		return err
	}
	cpu := startCPUMeter(sv)
	start := time.Now()
	err = benchPublish(ctx, clients, topics, payloads)
	pubacked := time.Since(start)
	var end time.Time
	if err == nil {
		end, err = benchWait(ctx, "points written", want, func() (int64, error) { return pointsWritten(srv.url) })
	}
	res.cpuC = cpu.since()
	// A message that came twice (QoS 1 is at least once) is written twice:
	// the metric may reach want before every point is stored. Then the
	// end is when InfluxDB's count reaches it.
	var n int64
	if err == nil {
		if n, err = benchCount(ctx, sv.in.URL, prefix); err == nil && n < want {
			end, err = benchWait(ctx, "points counted in InfluxDB", want, func() (int64, error) {
				return benchCount(ctx, sv.in.URL, prefix)
			})
		}
	}
	stopProfile()
	if err != nil {
		return fmt.Errorf("%w\n%s", err, srv.logs.tail())
	}
	if err := benchCheckCount(ctx, sv.in.URL, prefix, want); err != nil {
		return err
	}
	res.pipeCounted = want
	res.pipeWritten, _ = pointsWritten(srv.url)
	res.pipeSecs = end.Sub(start).Seconds()
	res.pipeMsgs = float64(b.s.messages) / res.pipeSecs
	res.pipePubackMsgs = float64(b.s.messages) / pubacked.Seconds()
	return srv.stop()
}

// startProfile starts the CPU profile of --cpuprofile, if asked for.
func (b *bencher) startProfile() (stop func(), err error) {
	if b.s.cpuProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(b.s.cpuProfile)
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
		b.logf("CPU profile of (c) written to %s (go tool pprof -top -tagfocus role=serve %s)", b.s.cpuProfile, b.s.cpuProfile)
	}, nil
}

// benchServer is serve running in process for a phase.
type benchServer struct {
	url  string
	logs *benchLogs
	stop func() error
}

// startServe runs serve in process against the phase's services, with the
// registry in dir, its defaults, --log-level warn, extra and --serve-args,
// and waits until /readyz answers 200. serve runs under the pprof label
// role=serve.
func (b *bencher) startServe(ctx context.Context, sv *benchServices, dir string, extra ...string) (*benchServer, error) {
	port, err := testservices.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{
		"--data-dir", dir,
		"--http-addr", addr,
		"--mqtt-url", sv.mq.URL,
		"--mqtt-client-id", "pp-bench",
		"--mqtt-share-group", "pp-bench",
		"--influx-url", sv.in.URL,
		"--influx-bucket", benchBucket,
		"--log-level", "warn",
	}, extra...)
	c, err := benchServeConfig(append(args, b.s.serveArgs...))
	if err != nil {
		return nil, err
	}
	level, _ := c.Level()
	logs := &benchLogs{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))
	srvCtx, cancel := context.WithCancel(ctx)
	var serveErr error
	exited := make(chan struct{})
	go pprof.Do(srvCtx, pprof.Labels("role", "serve"), func(ctx context.Context) {
		serveErr = server.Run(ctx, c, log)
		close(exited)
	})
	var once sync.Once
	srv := &benchServer{url: "http://" + addr, logs: logs}
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

// benchServeConfig is serve's configuration from args alone: the user's
// PATIENTPULSE_* variables and files are not the bench's.
func benchServeConfig(args []string) (*server.Config, error) {
	var c server.Config
	fs := server.NewFlagSet("serve", &c)
	fs.SetOutput(io.Discard)
	err := server.Load(fs, &c, args, func(string) string { return "" })
	if err := errors.Join(err, c.Validate()); err != nil {
		return nil, usageError{fmt.Errorf("bench: serve settings (--serve-args?): %w", err)}
	}
	return &c, nil
}

// pointsWritten reads the patientpulse_writer_points_written_total of
// the serve at url, uncompressed, to spare serve's CPU.
func pointsWritten(url string) (int64, error) {
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
		if v, ok := strings.CutPrefix(line, "patientpulse_writer_points_written_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	return 0, nil // not written to yet
}

// benchLogs keeps serve's log for error messages.
type benchLogs struct {
	mu  sync.Mutex
	buf []byte
}

func (l *benchLogs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > 1<<20 {
		l.buf = slices.Clone(l.buf[len(l.buf)-64<<10:])
	}
	return len(p), nil
}

// tail is the end of serve's log, to follow an error message.
func (l *benchLogs) tail() string {
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

// latency is (d): --alerts patients each have a plan with a critical
// heart-rate threshold (max above 120 bpm over 24h) and a watch; serve
// runs with --alert-fire-after 0s, --analysis-interval 100ms and
// --analysis-min-wear-hours 1; an on-call console holds the websocket
// with an API token. While load devices publish --load ordinary messages
// a second, each watch in turn publishes one 150 bpm reading (50 a
// second), and the time from just before its publish to the alert's
// "opened" message on the websocket is its latency.
func (b *bencher) latency(ctx context.Context, res *benchResults) error {
	b.logf("(d) alert latency: %d alerts, publish to websocket, under %d messages/s of load", b.s.alerts, b.s.load)
	sv, err := startBenchServices()
	if err != nil {
		return err
	}
	defer sv.close()
	dir, err := os.MkdirTemp("", "pp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	const prefix = "bench-alert-"
	loadDevices := min(b.s.devices, b.s.load)
	token, err := func() (string, error) {
		reg, err := registry.Open(ctx, filepath.Join(dir, "patientpulse.db"))
		if err != nil {
			return "", err
		}
		defer reg.Close()
		above := 120.0
		for i := range b.s.alerts {
			p := fmt.Sprintf("%sp%d", prefix, i)
			if err := reg.AddPatient(ctx, registry.Patient{ID: p}); err != nil {
				return "", err
			}
			if _, err := reg.EnrollDevice(ctx, p+"-w", p); err != nil {
				return "", err
			}
			_, err = analysis.SavePlan(ctx, reg, &analysis.Plan{Patient: p, Effective: time.Now().Add(-48 * time.Hour),
				Rules: []analysis.Rule{{ID: "hr-high", Kind: analysis.KindThreshold, Metric: "heart_rate.bpm",
					Over: analysis.Duration(24 * time.Hour), Aggregate: "max", Above: &above, MinDays: 1, Severity: analysis.SeverityCritical}}})
			if err != nil {
				return "", err
			}
		}
		if err := reg.AddPatient(ctx, registry.Patient{ID: prefix + "load"}); err != nil {
			return "", err
		}
		for d := range loadDevices {
			if _, err := reg.EnrollDevice(ctx, fmt.Sprintf("%sload%d", prefix, d), prefix+"load"); err != nil {
				return "", err
			}
		}
		var secret [32]byte
		for i := range secret {
			secret[i] = byte('a' + rand.IntN(26))
		}
		if err := reg.AddStaff(ctx, "bench-oncall", registry.RoleOnCall, string(secret[:])); err != nil {
			return "", err
		}
		return reg.IssueStaffToken(ctx, "bench-oncall", "bench")
	}()
	if err != nil {
		return err
	}
	srv, err := b.startServe(ctx, sv, dir, "--alert-fire-after", "0s", "--analysis-interval", "100ms",
		"--analysis-min-wear-hours", "1")
	if err != nil {
		return err
	}
	defer srv.stop()

	// The console.
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(srv.url, "http")+"/v1/ws", h)
	if err != nil {
		if resp != nil {
			return fmt.Errorf("websocket: %s", resp.Status)
		}
		return fmt.Errorf("websocket: %w", err)
	}
	defer ws.Close()
	var mu sync.Mutex
	arrived := make(map[string]time.Time, b.s.alerts)
	var arrivedN atomic.Int64
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			now := time.Now()
			var m struct {
				Type   string `json:"type"`
				Change string `json:"change"`
				Alert  struct {
					Patient string `json:"patient"`
				} `json:"alert"`
			}
			if json.Unmarshal(data, &m) != nil || m.Type != "alert" || m.Change != "opened" {
				continue
			}
			mu.Lock()
			if _, ok := arrived[m.Alert.Patient]; !ok {
				arrived[m.Alert.Patient] = now
				arrivedN.Add(1)
			}
			mu.Unlock()
		}
	}()

	// Background load: ordinary heart rates, paced to --load in all.
	loadIDs := make([]string, loadDevices)
	for d := range loadIDs {
		loadIDs[d] = fmt.Sprintf("%sload%d", prefix, d)
	}
	load, err := benchConnect(ctx, sv.mq.URL, loadIDs)
	if err != nil {
		return err
	}
	defer benchDisconnect(load)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var loadSent atomic.Int64
	var loadDone sync.WaitGroup
	defer func() { stopLoad(); loadDone.Wait() }()
	for d, c := range load {
		loadDone.Go(func() {
			pprof.Do(loadCtx, pprof.Labels("role", "devices"), func(context.Context) {
				tick := time.NewTicker(time.Second * time.Duration(len(load)) / time.Duration(b.s.load))
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
					loadSent.Add(1)
				}
			})
		})
	}
	select { // the load is steady
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}

	alarms, err := benchConnect(ctx, sv.mq.URL, []string{prefix + "alarm"})
	if err != nil {
		return err
	}
	defer benchDisconnect(alarms)
	sent := make(map[string]time.Time, b.s.alerts)
	loadFrom, start := loadSent.Load(), time.Now()
	tick := time.NewTicker(20 * time.Millisecond) // 50 alarms a second, among the load
	for i := range b.s.alerts {
		p := fmt.Sprintf("%sp%d", prefix, i)
		sent[p] = time.Now()
		alarms[0].Publish("pp/v1/devices/"+p+"-w/data", 1, false,
			fmt.Sprintf(`{"seq": 1, "samples": [{"type": "heart_rate", "time": %q, "bpm": 150}]}`, time.Now().UTC().Format(time.RFC3339Nano)))
		select {
		case <-tick.C:
		case <-ctx.Done():
			tick.Stop()
			return ctx.Err()
		}
	}
	tick.Stop()
	end, err := benchWait(ctx, "alerts on the websocket", int64(b.s.alerts), func() (int64, error) { return arrivedN.Load(), nil })
	if err != nil {
		return fmt.Errorf("%w\n%s", err, srv.logs.tail())
	}
	res.loadAchieved = float64(loadSent.Load()-loadFrom) / end.Sub(start).Seconds()
	stopLoad()

	var lat []float64
	mu.Lock()
	for p, t0 := range sent {
		lat = append(lat, float64(arrived[p].Sub(t0).Microseconds())/1000)
	}
	mu.Unlock()
	slices.Sort(lat)
	pct := func(q float64) float64 { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	res.p50, res.p95, res.p99, res.alerts = pct(0.50), pct(0.95), pct(0.99), len(lat)
	return nil
}

// memory is (e), measured as analysis's own benchmark measures it (the
// heap after GC, before and after), through analysis's exported API: an
// analysis.Evaluator over a fresh registry where --patients simulated
// patients (the simulate cohort's personas and plan templates) have their
// plan, reading back 90 days of each persona's history from an in-memory
// Source as it would from InfluxDB. The figure is the heap that the
// evaluator holds once it has loaded and evaluated every patient,
// scaled to 10,000 patients.
func (b *bencher) memory(ctx context.Context, res *benchResults) error {
	b.logf("(e) analysis memory: %d simulated patients with %d days of history", b.s.patients, benchHistoryDays)
	dir, err := os.MkdirTemp("", "pp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The registry is only the evaluator's source of plans and sink of
	// transitions; SQLite's memory is not Go heap, and no fsync is needed.
	reg, err := registry.Open(ctx, "file:"+filepath.Join(dir, "patientpulse.db")+"?_pragma=synchronous(OFF)")
	if err != nil {
		return err
	}
	defer reg.Close()
	now := time.Now().UTC()
	start := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -(benchHistoryDays - 1))
	src := &benchHistory{patients: make(map[string]int, b.s.patients)}
	templates := map[string]*analysis.Plan{}
	for i := range b.s.patients {
		per := personaOf(i)
		tmpl := templates[per.template]
		if tmpl == nil {
			data, err := examples.Plans.ReadFile("plans/" + per.template)
			if err != nil {
				return err
			}
			plan, err := analysis.ParsePlan(data)
			if err != nil {
				return err
			}
			tmpl = &plan
			templates[per.template] = tmpl
		}
		pi := personaIndex(i)
		if src.byPersona == nil {
			src.byPersona = make([]map[string][]ingest.StoredValue, len(personas))
		}
		if src.byPersona[pi] == nil {
			if src.byPersona[pi], err = benchPersonaHistory(pi, tmpl, start, now); err != nil {
				return err
			}
		}
		id := fmt.Sprintf("bench-mem-p%05d", i)
		src.patients[id] = pi
		if err := reg.AddPatient(ctx, registry.Patient{ID: id}); err != nil {
			return err
		}
		plan := *tmpl
		plan.Patient, plan.Effective = id, start
		if _, err := analysis.SavePlan(ctx, reg, &plan); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	cfg := analysis.DefaultConfig()
	cfg.Location = time.UTC
	promReg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// The baseline includes the empty evaluator (its queue is a fixed
	// cost, not a patient's).
	ev := analysis.NewEvaluator(cfg, reg, src, log, promReg, nil)
	runtime.GC()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- ev.Run(runCtx) }()
	_, err = benchWait(ctx, "patients evaluated", int64(b.s.patients), func() (int64, error) {
		select {
		case err := <-runErr:
			runErr <- err
			return 0, fmt.Errorf("evaluator stopped: %v", err)
		default:
		}
		return benchCounter(promReg, "patientpulse_analysis_evaluations_total")
	})
	// A check that the measurement holds judged patients (Verdicts asks
	// the running evaluator).
	if err == nil && len(ev.Verdicts("bench-mem-p00000")) == 0 {
		err = errors.New("the evaluator judged nothing for the first patient: the measurement would be empty")
	}
	stop()
	if rerr := <-runErr; err == nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	res.memSecs = time.Since(t0).Seconds()
	runtime.GC()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(ev)
	runtime.KeepAlive(src)
	res.memPatients = b.s.patients
	res.memBytes = float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
	return nil
}

// benchCounter reads a counter from a Prometheus registry.
func benchCounter(reg *prometheus.Registry, name string) (int64, error) {
	families, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range families {
		if f.GetName() == name {
			var n float64
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
			return int64(n), nil
		}
	}
	return 0, nil
}

// benchHistory is an analysis.Source in memory: each patient reads back
// their persona's history, as serve's evaluator reads InfluxDB.
type benchHistory struct {
	patients  map[string]int                    // patient → persona index
	byPersona []map[string][]ingest.StoredValue // measurement → values
}

func (h *benchHistory) Values(ctx context.Context, patient string, measurements []string, from, to time.Time, fn func(ingest.StoredValue) error) error {
	pi, ok := h.patients[patient]
	if !ok {
		return fmt.Errorf("values: unknown patient")
	}
	for _, m := range measurements {
		for _, v := range h.byPersona[pi][m] {
			if v.Time.Before(from) || !v.Time.Before(to) {
				continue
			}
			if err := fn(v); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

func (h *benchHistory) Newest(ctx context.Context, patient, measurement, field string) (time.Time, bool, error) {
	pi, ok := h.patients[patient]
	if !ok {
		return time.Time{}, false, fmt.Errorf("newest: unknown patient")
	}
	var newest time.Time
	for _, v := range h.byPersona[pi][measurement] {
		if (field == "" || v.Field == field) && v.Time.After(newest) {
			newest = v.Time
		}
	}
	return newest, !newest.IsZero(), ctx.Err()
}

// benchPersonaHistory is what persona pi's devices send from start to
// now, as simulate sends it (the watch's and the app's samples, seed 1),
// decoded by ingest as serve decodes it, as stored values.
func benchPersonaHistory(pi int, plan *analysis.Plan, start, now time.Time) (map[string][]ingest.StoredValue, error) {
	p := personas[pi]
	var regimen []simDose
	for _, d := range plan.Regimen {
		sched := d.Schedule
		regimen = append(regimen, simDose{Medication: d.Medication, Route: d.Route, Unit: d.Unit, Amount: d.Amount,
			due: func(from, to time.Time) []time.Time { return sched.Due(start.Add(8*time.Hour), from, to) }})
	}
	lim := ingest.Limits{MaxSamples: 10000, Backfill: time.Duration(benchHistoryDays+2) * 24 * time.Hour, FutureSkew: 5 * time.Minute}
	out := map[string][]ingest.StoredValue{}
	for d := range benchHistoryDays {
		dayStart := start.AddDate(0, 0, d)
		rng := rand.New(rand.NewPCG(1, uint64(pi)<<32|uint64(d)))
		watch, app := p.deviceDay(rng, d, benchHistoryDays, dayStart, regimen)
		samples := due(append(watch, app...), start.Add(-time.Nanosecond), now)
		if len(samples) == 0 {
			continue
		}
		env, err := ingest.Decode(envelope(int64(d+1), samples), now, lim)
		if err != nil {
			return nil, fmt.Errorf("simulated history: %w", err)
		}
		if len(env.Problems) > 0 {
			return nil, fmt.Errorf("simulated history: %d samples refused, first: %v", len(env.Problems), env.Problems[0])
		}
		for _, pt := range env.Points {
			var tags map[string]string
			for _, t := range pt.Tags {
				if tags == nil {
					tags = map[string]string{}
				}
				tags[t.Key] = t.Value
			}
			for _, f := range pt.Fields {
				out[pt.Measurement] = append(out[pt.Measurement], ingest.StoredValue{Measurement: pt.Measurement,
					Field: f.Key, Value: f.Value, Time: pt.Time, Tags: tags})
			}
		}
	}
	return out, nil
}

// print writes the table, the ratios and the targets.
func (r *benchResults) print(w io.Writer, s benchSettings) {
	points := func(msgs float64) float64 { return msgs * benchPerMessage }
	memMiB10k := r.memBytes / float64(r.memPatients) * benchTargetPatient / (1 << 20)
	fmt.Fprintf(w, "patientpulse bench, %s, %s/%s, %d CPUs, %s; every figure from this one run\n\n",
		r.started.Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Fprintln(w, "| row | measurement | msgs/s | points/s | other |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | --- |")
	fmt.Fprintf(w, "| (a) | Mosquitto QoS 1, %d publishers → a plain subscriber | %.0f | %.0f | %d msgs of %d samples in %.2f s |\n",
		s.devices, r.brokerMsgs, points(r.brokerMsgs), s.messages, benchPerMessage, r.brokerSecs)
	fmt.Fprintf(w, "| (b) | InfluxDB write, %d-point batches, %d in flight | %.0f | %.0f | %d points in %.2f s (msgs/s: points/%d) |\n",
		benchBatchPoints, benchWrites, r.influxMsgs, points(r.influxMsgs), s.messages*benchPerMessage, r.influxSecs, benchPerMessage)
	fmt.Fprintf(w, "| (c) | pipeline end to end: QoS 1 publish → stored → acked, counted in InfluxDB | %.0f | %.0f | %d points counted (serve wrote %d), %.2f s; PUBACKs at %.0f msgs/s |\n",
		r.pipeMsgs, points(r.pipeMsgs), r.pipeCounted, r.pipeWritten, r.pipeSecs, r.pipePubackMsgs)
	fmt.Fprintf(w, "| (d) | alert latency, publish → websocket, p50 / p95 / p99 | – | – | %.1f / %.1f / %.1f ms (%d alerts; load %d msgs/s asked, %.0f sent) |\n",
		r.p50, r.p95, r.p99, r.alerts, s.load, r.loadAchieved)
	fmt.Fprintf(w, "| (e) | analysis heap after GC per 10,000 patients | – | – | %.2f MiB (%d patients, %d days; %.0f bytes/patient; %.1f s to load) |\n",
		memMiB10k, r.memPatients, benchHistoryDays, r.memBytes/float64(r.memPatients), r.memSecs)
	fmt.Fprintf(w, "| (c)/(a) | pipeline / broker | %.2f | %.2f | |\n", r.pipeMsgs/r.brokerMsgs, points(r.pipeMsgs)/points(r.brokerMsgs))
	fmt.Fprintf(w, "| (c)/(b) | pipeline / InfluxDB | %.2f | %.2f | |\n", r.pipeMsgs/r.influxMsgs, points(r.pipeMsgs)/points(r.influxMsgs))

	fmt.Fprintln(w)
	fmt.Fprintln(w, "ratios:")
	fmt.Fprintf(w, "  pipeline/broker:   %.2f (msgs/s %.0f / %.0f; points/s %.0f / %.0f)\n",
		r.pipeMsgs/r.brokerMsgs, r.pipeMsgs, r.brokerMsgs, points(r.pipeMsgs), points(r.brokerMsgs))
	fmt.Fprintf(w, "  pipeline/InfluxDB: %.2f (msgs/s %.0f / %.0f; points/s %.0f / %.0f)\n",
		r.pipeMsgs/r.influxMsgs, r.pipeMsgs, r.influxMsgs, points(r.pipeMsgs), points(r.influxMsgs))

	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	lower, lowerName := min(r.brokerMsgs, r.influxMsgs), "broker"
	if r.influxMsgs < r.brokerMsgs {
		lowerName = "InfluxDB"
	}
	share := r.pipeMsgs / lower
	fmt.Fprintln(w)
	fmt.Fprintln(w, "targets (issue 7, item 5):")
	fmt.Fprintf(w, "  pipeline >= %.0f%% of the lower of (a) and (b): %.0f%% of %s's %.0f msgs/s (%.0f points/s): %s\n",
		benchTargetShare*100, share*100, lowerName, lower, points(lower), met(share >= benchTargetShare))
	if s.load == benchTargetLoad {
		fmt.Fprintf(w, "  alert p99 <= %.0f ms at %d msgs/s: p99 %.1f ms: %s\n", benchTargetP99, benchTargetLoad, r.p99, met(r.p99 <= benchTargetP99))
	} else {
		fmt.Fprintf(w, "  alert p99 <= %.0f ms at %d msgs/s: p99 %.1f ms at %d msgs/s: not judged (run with --load %d)\n",
			benchTargetP99, benchTargetLoad, r.p99, s.load, benchTargetLoad)
	}
	fmt.Fprintf(w, "  analysis <= %.0f MiB per 10,000 patients: %.2f MiB: %s\n", benchTargetMemMiB, memMiB10k, met(memMiB10k <= benchTargetMemMiB))
	r.printCPU(w, s, lower)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "method: each phase runs its own fresh Mosquitto and influxd (loopback, temporary directories).")
	fmt.Fprintf(w, "  (a) and (c) send the same %d messages (%d heart-rate samples each) from %d devices, QoS 1, %d awaiting PUBACK per device;\n",
		s.messages, benchPerMessage, s.devices, benchInFlight)
	fmt.Fprintln(w, "  (a) ends when the subscriber has every message; (c) when serve (in process, defaults) has written every point,")
	fmt.Fprintln(w, "  which an InfluxQL count then confirms; (b) writes as many points as serve's sink does (line protocol, 5000, uncompressed, 2 at once).")
	fmt.Fprintln(w, "  (d): critical threshold rule, --alert-fire-after 0s --analysis-interval 100ms --analysis-min-wear-hours 1,")
	fmt.Fprintln(w, "  an on-call console on /v1/ws with an API token, 50 alarms a second among the load.")
	fmt.Fprintln(w, "  (e): heap after GC held by an analysis.Evaluator (exported API) that has loaded and evaluated the simulated")
	fmt.Fprintln(w, "  cohort (its personas and plan templates, 90 days each, read from an in-memory source), scaled to 10,000.")
	if len(s.serveArgs) > 0 {
		fmt.Fprintf(w, "  serve's extra flags in (c) and (d): %s\n", strings.Join(s.serveArgs, " "))
	}
	fmt.Fprintln(w, "  On a shared machine figures vary between runs: compare only figures from one run.")
}

// printCPU writes where each of (a), (b) and (c) spent CPU time, and the
// rate that the CPU time of (a) and (b) allows (c) on this machine: every
// message of (c) takes the broker's work of (a) (devices, Mosquitto, a
// subscriber) and the storage work of (b) (a writer, influxd), on the
// same CPUs.
func (r *benchResults) printCPU(w io.Writer, s benchSettings, lower float64) {
	if !r.cpuA.ok || !r.cpuB.ok || !r.cpuC.ok {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "CPU time in each phase's timed window (%d CPUs; \"bench\" is this process: the clients, and serve in (c)):\n", runtime.NumCPU())
	fmt.Fprintln(w, "| phase | bench | mosquitto | influxd | CPU per message | CPUs busy, all processes |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, p := range []struct {
		name string
		cpu  benchCPU
	}{{"broker (a)", r.cpuA}, {"InfluxDB (b)", r.cpuB}, {"pipeline (c)", r.cpuC}} {
		fmt.Fprintf(w, "| %s | %.2f s | %.2f s | %.2f s | %.1f µs | %.0f%% |\n", p.name, p.cpu.bench.Seconds(),
			p.cpu.mosquitto.Seconds(), p.cpu.influxd.Seconds(), micros(p.cpu.perMessage(s.messages)), p.cpu.busy*100)
	}
	need := r.cpuA.perMessage(s.messages) + r.cpuB.perMessage(s.messages)
	ceiling := float64(runtime.NumCPU()) / need.Seconds()
	fmt.Fprintf(w, "ceiling for (c) from CPU: %d CPUs / (%.1f µs of (a) + %.1f µs of (b) per message) = %.0f msgs/s = %.0f%% of the lower of (a) and (b);\n",
		runtime.NumCPU(), micros(r.cpuA.perMessage(s.messages)), micros(r.cpuB.perMessage(s.messages)), ceiling, ceiling/lower*100)
	fmt.Fprintf(w, "  (c) reached %.0f%% of that ceiling, spending %.1f µs a message beyond (a)'s and (b)'s.\n",
		r.pipeMsgs/ceiling*100, micros(r.cpuC.perMessage(s.messages)-need))
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
