package bench

import (
	"context"
	"fmt"
	"runtime/pprof"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// pipeline is (c): the run's messages, from the fleet's wearables
// enrolled in a fresh registry, published with QoS 1 by the clients of
// (a) to serve's broker; the rate is over publish start to the moment
// serve's points-written metric has them all. serve acknowledges a
// message to the broker only once its points are stored; InfluxDB's
// count of the points is checked after. With --consoles, (c) runs a
// second time, from fresh services, with that many clinicians' consoles
// on serve's websocket, each subscribed to its care team: every stored
// sample goes to the console that watches its patient. The CPU profile
// of --cpuprofile covers both runs.
func (b *bencher) pipeline(ctx context.Context, payloads [][][]byte, res *Results) error {
	stopProfile, err := b.startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	if res.pipe, err = b.pipelineRun(ctx, payloads, false); err != nil {
		return err
	}
	if b.s.Consoles > 0 {
		if res.pipeConsoles, err = b.pipelineRun(ctx, payloads, true); err != nil {
			return fmt.Errorf("with %d consoles: %w", b.s.Consoles, err)
		}
	}
	return nil
}

// pipelinePrefix starts the ids of (c)'s patients and wearables.
const pipelinePrefix = "bench-pipe-"

// pipelineRun is one run of (c), from fresh services, with the fleet's
// consoles connected from before the first publish when withConsoles.
// Its goroutines, serve's among them, carry the pprof label
// consoles=none or consoles=connected.
func (b *bencher) pipelineRun(ctx context.Context, payloads [][][]byte, withConsoles bool) (pipeFigures, error) {
	var f pipeFigures
	fl := newFleet(b.s)
	if !withConsoles {
		b.logf("(c) pipeline end to end: %d messages from %d devices (%d wearables of %d patients), QoS 1, into serve, stored and counted",
			b.s.Messages, fl.conns, fl.wearables, fl.patients)
		ctx = pprof.WithLabels(ctx, pprof.Labels("consoles", "none"))
	} else {
		b.logf("(c) again, with %d clinicians' consoles on /v1/ws, each subscribed to its care team of %d of the %d patients",
			fl.consoles, fl.teamSize, fl.patients)
		ctx = pprof.WithLabels(ctx, pprof.Labels("consoles", "connected"))
	}
	sv, err := startServices(ctx, b.s.Postgres)
	if err != nil {
		return f, err
	}
	defer sv.close()
	ids, _, err := enrolDevices(ctx, sv.db, pipelinePrefix, fl)
	if err != nil {
		return f, err
	}
	var staff []clinician
	if withConsoles {
		if staff, err = addClinicians(ctx, sv.db, pipelinePrefix, fl); err != nil {
			return f, err
		}
	}
	srv, err := b.startServe(ctx, sv, "--device-rate=0") // wearables at full speed: no per-device limit
	if err != nil {
		return f, err
	}
	defer srv.stop()
	var cs *consoles
	if withConsoles {
		if cs, err = openConsoles(ctx, srv.url, staff, fl.consoleSamples(b.s.Messages)); err != nil {
			return f, err
		}
		defer cs.close() // before serve stops
	}
	clients, err := connectDevices(ctx, sv.mq.URL, clientIDs(fl.conns))
	if err != nil {
		return f, err
	}
	defer disconnectAll(clients)
	topics := make([]string, len(ids))
	for w, id := range ids {
		topics[w] = "pp/v1/devices/" + id + "/data"
	}
	topic := func(d, k int) string { w, _ := fl.message(d, k); return topics[w] }
	if err := b.measure(ctx, sv, srv, clients, topic, payloads, cs, &f); err != nil {
		return f, err
	}
	return f, srv.stop()
}

// clientIDs are the MQTT client ids of (c)'s n clients, which publish
// for the wearables.
func clientIDs(n int) []string {
	ids := make([]string, n)
	for d := range ids {
		ids[d] = fmt.Sprintf("%sc%d", pipelinePrefix, d)
	}
	return ids
}

// measure times one run of (c): the clients publish the payloads, and
// the window ends when serve has written every point (or, were a message
// written twice, when InfluxDB counts them all). Then it waits for the
// consoles, if any, to have their samples, checks InfluxDB's count, and
// puts the figures into f.
func (b *bencher) measure(ctx context.Context, sv *phaseServices, srv *runningServe, clients []mqtt.Client,
	topic func(d, k int) string, payloads [][][]byte, cs *consoles, f *pipeFigures) error {
	want := int64(b.s.Messages) * samplesPerMessage
	cpu := startCPUMeter(sv)
	start := time.Now()
	err := publishAll(ctx, clients, topic, payloads)
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
		if count, err = countStored(ctx, sv.in.URL, pipelinePrefix); err == nil && count < want {
			end, err = waitFor(ctx, "points counted in InfluxDB", want, func() (int64, error) {
				return countStored(ctx, sv.in.URL, pipelinePrefix)
			})
		}
	}
	if err == nil && cs != nil {
		var last time.Time
		last, err = cs.drain(ctx, 10*time.Second)
		f.consolesLag = last.Sub(end).Seconds()
	}
	if err != nil {
		return fmt.Errorf("%w\n%s", err, srv.logs.tail())
	}
	if err := checkStored(ctx, sv.in.URL, pipelinePrefix, want); err != nil {
		return err
	}
	if cs != nil {
		if err := cs.figures(f, start); err != nil {
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
	return nil
}
