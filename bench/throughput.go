package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	neturl "net/url"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
)

// makeMessages builds n messages spread over the devices: payloads[d]
// holds device d's, seq 1, 2, ... Sample times step back 1ms from a
// minute before now, distinct per device (and no device id is in a
// payload, so (a) and (c) send the very same bytes).
func makeMessages(n, devices int, now time.Time) [][][]byte {
	base := now.UTC().Add(-time.Minute).Truncate(time.Second)
	payloads := make([][][]byte, devices)
	var buf []byte
	for i := range n {
		d, k := i%devices, i/devices
		buf = fmt.Appendf(buf[:0], `{"seq": %d, "samples": [`, k+1)
		for j := range samplesPerMessage {
			if j > 0 {
				buf = append(buf, ", "...)
			}
			at := base.Add(-time.Duration(k*samplesPerMessage+j) * time.Millisecond)
			buf = fmt.Appendf(buf, `{"type": "heart_rate", "time": %q, "bpm": %d}`, at.Format(time.RFC3339Nano), 55+(k+j)%40)
		}
		buf = append(buf, "]}"...)
		payloads[d] = append(payloads[d], slices.Clone(buf))
	}
	return payloads
}

// connectDevices connects one MQTT client per id, under the pprof label
// role=devices (which paho's own goroutines inherit). The caller
// disconnects them.
func connectDevices(ctx context.Context, url string, ids []string) ([]mqtt.Client, error) {
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
		disconnectAll(clients)
		return nil, err
	}
	return clients, nil
}

func disconnectAll(clients []mqtt.Client) {
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.Disconnect(100) })
	}
	wg.Wait()
}

// publishAll publishes every device's payloads with QoS 1, each device
// keeping up to inFlight publishes awaiting their PUBACK, and
// returns once the broker has acknowledged them all. It fails when no
// PUBACK comes for a minute.
func publishAll(ctx context.Context, clients []mqtt.Client, topics []string, payloads [][][]byte) error {
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
				window := make([]mqtt.Token, inFlight)
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
					if !wait(window[i%inFlight]) {
						return
					}
					window[i%inFlight] = c.Publish(topics[d], 1, false, p)
				}
				for _, tok := range window {
					if !wait(tok) {
						return
					}
				}
			})
		})
	}
	_, err := waitFor(pctx, "PUBACKs", want, func() (int64, error) { return acked.Load(), nil })
	cancel()
	wg.Wait()
	if e, ok := failed.Load().(error); ok {
		return fmt.Errorf("publish: %w", e)
	}
	return err
}

// waitFor polls count every 50ms until it reaches want, and returns
// when it did. It fails only when count stops moving for a minute (then
// something is lost or stuck, which is a fault, not a slow run) or ctx
// ends.
func waitFor(ctx context.Context, what string, want int64, count func() (int64, error)) (time.Time, error) {
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
		if now.Sub(moved) > stuckAfter {
			return now, fmt.Errorf("%s: stuck at %d of %d for %s (last error: %v)", what, n, want, stuckAfter, err)
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
func (b *bencher) broker(ctx context.Context, sv *phaseServices, payloads [][][]byte, res *Results) error {
	b.logf("(a) Mosquitto QoS 1: %d messages from %d publishers to a plain subscriber", b.s.Messages, b.s.Devices)
	subs, err := connectDevices(ctx, sv.mq.URL, []string{"bench-subscriber"})
	if err != nil {
		return err
	}
	defer disconnectAll(subs)
	var received atomic.Int64
	tok := subs[0].Subscribe("bench/+/data", 1, func(mqtt.Client, mqtt.Message) { received.Add(1) })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	ids, topics := make([]string, b.s.Devices), make([]string, b.s.Devices)
	for d := range ids {
		ids[d] = fmt.Sprintf("bench-broker-d%d", d)
		topics[d] = "bench/" + ids[d] + "/data"
	}
	clients, err := connectDevices(ctx, sv.mq.URL, ids)
	if err != nil {
		return err
	}
	defer disconnectAll(clients)

	cpu := startCPUMeter(sv)
	start := time.Now()
	if err := publishAll(ctx, clients, topics, payloads); err != nil {
		return err
	}
	end, err := waitFor(ctx, "messages received", int64(b.s.Messages), func() (int64, error) { return received.Load(), nil })
	if err != nil {
		return err
	}
	res.cpuA = cpu.since()
	res.brokerSecs = end.Sub(start).Seconds()
	res.brokerMsgs = float64(b.s.Messages) / res.brokerSecs
	return nil
}

// influxWrite is (b): the same number of points as (a)'s messages hold,
// written as the pipeline writes them: its line protocol
// (ingest.AppendLine), through its sink (ingest.Influx, uncompressed as
// serve sends by default), in batches of 5000, two writes in flight; then
// every point is counted.
func (b *bencher) influxWrite(ctx context.Context, sv *phaseServices, res *Results) error {
	points := b.s.Messages * samplesPerMessage
	b.logf("(b) InfluxDB write: %d points in batches of %d, %d in flight", points, batchPoints, writesInFlight)
	const prefix = "bench-influx-"
	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	var batches [][]byte
	for i := 0; i < points; i += batchPoints {
		var batch []byte
		for j := i; j < min(i+batchPoints, points); j++ {
			d, k := j%b.s.Devices, j/b.s.Devices
			p := ingest.Point{Measurement: "heart_rate", Fields: []ingest.Field{{Key: "bpm", Value: float64(55 + k%40)}},
				Time: base.Add(-time.Duration(k) * time.Millisecond)}
			batch = ingest.AppendLine(batch, &p, prefix+"p", prefix+"d"+strconv.Itoa(d), int64(k/samplesPerMessage+1))
			batch = append(batch, '\n')
		}
		batches = append(batches, batch)
	}
	sink := ingest.NewInflux(ingest.InfluxConfig{URL: sv.in.URL, Bucket: bucket, Timeout: 30 * time.Second})
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
	errs := make([]error, writesInFlight)
	var wg sync.WaitGroup
	for w := range writesInFlight {
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
	if err := checkStored(ctx, sv.in.URL, prefix, int64(points)); err != nil {
		return err
	}
	res.influxSecs = elapsed.Seconds()
	res.influxMsgs = float64(b.s.Messages) / res.influxSecs
	return nil
}

// checkStored checks that InfluxDB holds want bpm values of the
// devices whose ids start with prefix. A count that differs is taken
// again, once a second, for up to 30 seconds before it is an error.
func checkStored(ctx context.Context, url, prefix string, want int64) error {
	var n int64
	for range 30 {
		var err error
		if n, err = countStored(ctx, url, prefix); err != nil {
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

// countStored counts the stored bpm values of the devices whose ids start
// with prefix, with one InfluxQL query. (Not Flux: after a burst of
// writes, influxd 1.8's Flux reads were seen here to count a few points
// in a thousand twice, for more than 30 seconds, where InfluxQL counts
// each once.)
func countStored(ctx context.Context, url, prefix string) (int64, error) {
	q := neturl.Values{"db": {bucket}, "q": {fmt.Sprintf(`SELECT count(bpm) FROM heart_rate WHERE device =~ /^%s/`, prefix)}}
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
// With --consoles, (c) runs a second time, from fresh services, with
// that many admin consoles on serve's websocket, each subscribed to the
// devices' patient: every stored sample goes to every console. The CPU
// profile of --cpuprofile covers both runs.
func (b *bencher) pipeline(ctx context.Context, payloads [][][]byte, res *Results) error {
	stopProfile, err := b.startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	if res.pipe, err = b.pipelineRun(ctx, payloads, 0); err != nil {
		return err
	}
	if b.s.Consoles > 0 {
		if res.pipeConsoles, err = b.pipelineRun(ctx, payloads, b.s.Consoles); err != nil {
			return fmt.Errorf("with %d consoles: %w", b.s.Consoles, err)
		}
	}
	return nil
}

// pipelineRun is one run of (c), from fresh services, with n consoles
// connected from before the first publish (none when n is 0). Its goroutines, serve's
// among them, carry the pprof label consoles=none or consoles=connected.
func (b *bencher) pipelineRun(ctx context.Context, payloads [][][]byte, n int) (pipeFigures, error) {
	var f pipeFigures
	if n == 0 {
		b.logf("(c) pipeline end to end: %d messages from %d devices, QoS 1, into serve, stored and counted", b.s.Messages, b.s.Devices)
		ctx = pprof.WithLabels(ctx, pprof.Labels("consoles", "none"))
	} else {
		b.logf("(c) again, with %d admin consoles on /v1/ws, each subscribed to the devices' patient", n)
		ctx = pprof.WithLabels(ctx, pprof.Labels("consoles", "connected"))
	}
	sv, err := startServices()
	if err != nil {
		return f, err
	}
	defer sv.close()
	dir := sv.dir
	const prefix = "bench-pipe-"
	ids, _, err := enrolDevices(ctx, dir, prefix, b.s.Devices)
	if err != nil {
		return f, err
	}
	var token string
	if n > 0 {
		if token, err = addStaffIn(ctx, dir, "bench-admin", registry.RoleAdmin); err != nil {
			return f, err
		}
	}
	topics := make([]string, len(ids))
	for d := range ids {
		topics[d] = "pp/v1/devices/" + ids[d] + "/data"
	}
	srv, err := b.startServe(ctx, sv, dir, "--device-rate=0") // a few devices at full speed: no per-device limit
	if err != nil {
		return f, err
	}
	defer srv.stop()
	want := int64(b.s.Messages) * samplesPerMessage
	var cs *consoles
	if n > 0 {
		if cs, err = openConsoles(ctx, srv.url, token, []string{patientOf(prefix)}, n); err != nil {
			return f, err
		}
		defer cs.close() // before serve stops
	}
	clients, err := connectDevices(ctx, sv.mq.URL, ids)
	if err != nil {
		return f, err
	}
	defer disconnectAll(clients)

	cpu := startCPUMeter(sv)
	start := time.Now()
	err = publishAll(ctx, clients, topics, payloads)
	pubacked := time.Since(start)
	var end time.Time
	if err == nil {
		end, err = waitFor(ctx, "points written", want, func() (int64, error) { return pointsWritten(srv.url) })
	}
	f.cpu = cpu.since()
	// A message that came twice (QoS 1 is at least once) is written twice:
	// the metric may reach want before every point is stored. Then the
	// end is when InfluxDB's count reaches it.
	var count int64
	if err == nil {
		if count, err = countStored(ctx, sv.in.URL, prefix); err == nil && count < want {
			end, err = waitFor(ctx, "points counted in InfluxDB", want, func() (int64, error) {
				return countStored(ctx, sv.in.URL, prefix)
			})
		}
	}
	if err == nil && cs != nil {
		var last time.Time
		last, err = cs.drain(ctx, want, 10*time.Second)
		f.consolesLag = last.Sub(end).Seconds()
	}
	if err != nil {
		return f, fmt.Errorf("%w\n%s", err, srv.logs.tail())
	}
	if err := checkStored(ctx, sv.in.URL, prefix, want); err != nil {
		return f, err
	}
	if cs != nil {
		if err := cs.figures(&f, start); err != nil {
			b.logf("a console was disconnected, not for falling behind: %v", err)
		}
		cs.close()
		f.feedDropped, _ = serveMetric(srv.url, "patientpulse_ws_samples_dropped_total")
	}
	f.counted = want
	f.written, _ = pointsWritten(srv.url)
	f.secs = end.Sub(start).Seconds()
	f.msgs = float64(b.s.Messages) / f.secs
	f.pubackMsgs = float64(b.s.Messages) / pubacked.Seconds()
	return f, srv.stop()
}
