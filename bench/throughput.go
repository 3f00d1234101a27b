package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	neturl "net/url"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/patientpulse/patientpulse/ingest"
)

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

// publishAll publishes every client's payloads with QoS 1, client d's
// k-th on topic(d, k), each client keeping up to inFlight publishes
// awaiting their PUBACK, and returns once the broker has acknowledged
// them all. It fails when no PUBACK comes for a minute.
func publishAll(ctx context.Context, clients []mqtt.Client, topic func(d, k int) string, payloads [][][]byte) error {
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
					window[i%inFlight] = c.Publish(topic(d, i), 1, false, p)
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
	if err := publishAll(ctx, clients, func(d, _ int) string { return topics[d] }, payloads); err != nil {
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

// influxWrite is (b): the very points of (c), of the same patients and
// wearables, written as the pipeline writes them: its line protocol
// (ingest.AppendLine), through its sink (ingest.Influx, uncompressed as
// serve sends by default), in batches of 5000, two writes in flight;
// then every point is counted.
func (b *bencher) influxWrite(ctx context.Context, sv *phaseServices, res *Results) error {
	points := b.s.Messages * samplesPerMessage
	b.logf("(b) InfluxDB write: %d points in batches of %d, %d in flight", points, batchPoints, writesInFlight)
	const prefix = "bench-influx-"
	f := newFleet(b.s)
	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	var batches [][]byte
	var batch []byte
	inBatch := 0
	for i := range b.s.Messages {
		d, k := i%f.conns, i/f.conns
		w, seq := f.message(d, k)
		patient, device := patientID(prefix, f.patientOf(w)), deviceID(prefix, w)
		for j := range samplesPerMessage {
			at, bpm := sampleAt(base, k, j)
			p := ingest.Point{Measurement: "heart_rate", Fields: []ingest.Field{{Key: "bpm", Value: bpm}}, Time: at}
			batch = ingest.AppendLine(batch, &p, patient, device, seq)
			batch = append(batch, '\n')
			if inBatch++; inBatch == batchPoints {
				batches, batch, inBatch = append(batches, batch), nil, 0
			}
		}
	}
	if inBatch > 0 {
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
