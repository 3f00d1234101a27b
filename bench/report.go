package bench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// Print writes the table, the ratios and the targets of a run with s.
func (r *Results) Print(w io.Writer, s Settings) {
	points := func(msgs float64) float64 { return msgs * samplesPerMessage }
	memMiB10k := r.memBytes / float64(r.memPatients) * targetPatients / (1 << 20)
	fmt.Fprintf(w, "patientpulse bench, %s, %s/%s, %d CPUs, %s; every figure from this one run\n\n",
		r.started.Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	if s.Postgres != "" {
		fmt.Fprintf(w, "serve's registry in (c) and (d): Postgres, a fresh database each on %s; (e) and (f): SQLite\n\n", registry.Location(s.Postgres))
	} else {
		fmt.Fprint(w, "serve's registry: SQLite\n\n")
	}
	fmt.Fprintln(w, "| row | measurement | msgs/s | points/s | other |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | --- |")
	fmt.Fprintf(w, "| (a) | Mosquitto QoS 1, %d publishers → a plain subscriber | %.0f | %.0f | %d msgs of %d samples in %.2f s |\n",
		s.Devices, r.brokerMsgs, points(r.brokerMsgs), s.Messages, samplesPerMessage, r.brokerSecs)
	fmt.Fprintf(w, "| (b) | InfluxDB write, %d-point batches, %d in flight | %.0f | %.0f | %d points in %.2f s (msgs/s: points/%d) |\n",
		batchPoints, writesInFlight, r.influxMsgs, points(r.influxMsgs), s.Messages*samplesPerMessage, r.influxSecs, samplesPerMessage)
	fmt.Fprintf(w, "| (c) | pipeline end to end: QoS 1 publish → stored → acked, counted in InfluxDB | %.0f | %.0f | %d points counted (serve wrote %d), %.2f s; PUBACKs at %.0f msgs/s |\n",
		r.pipe.msgs, points(r.pipe.msgs), r.pipe.counted, r.pipe.written, r.pipe.secs, r.pipe.pubackMsgs)
	withConsoles := s.Consoles > 0
	fl := newFleet(s)
	if withConsoles {
		c := r.pipeConsoles
		fmt.Fprintf(w, "| (c+ws) | (c) with %d clinicians' consoles on /v1/ws, each subscribed to its care team (%d of %d patients) | %.0f | %.0f | %d points counted (serve wrote %d), %.2f s; PUBACKs at %.0f msgs/s; %s |\n",
			c.consoles, fl.teamSize, fl.patients, c.msgs, points(c.msgs), c.counted, c.written, c.secs, c.pubackMsgs, c.consolesSummary())
	}
	fmt.Fprintf(w, "| (d) | alert latency, publish → websocket, p50 / p95 / p99 | – | – | %.1f / %.1f / %.1f ms (%d alerts; load %d msgs/s asked, %.0f sent) |\n",
		r.p50, r.p95, r.p99, r.alerts, s.Load, r.loadAchieved)
	fmt.Fprintf(w, "| (e) | analysis heap after GC per 10,000 patients | – | – | %.2f MiB (%d patients, %d days; %.0f bytes/patient; %.1f s to load) |\n",
		memMiB10k, r.memPatients, historyDays, r.memBytes/float64(r.memPatients), r.memSecs)
	fmt.Fprintln(w, r.cold.row())
	fmt.Fprintf(w, "| (c)/(a) | pipeline / broker | %.2f | %.2f | |\n", r.pipe.msgs/r.brokerMsgs, points(r.pipe.msgs)/points(r.brokerMsgs))
	fmt.Fprintf(w, "| (c)/(b) | pipeline / InfluxDB | %.2f | %.2f | |\n", r.pipe.msgs/r.influxMsgs, points(r.pipe.msgs)/points(r.influxMsgs))
	if withConsoles {
		fmt.Fprintf(w, "| (c+ws)/(c) | pipeline with %d consoles / without | %.2f | %.2f | |\n",
			s.Consoles, r.pipeConsoles.msgs/r.pipe.msgs, points(r.pipeConsoles.msgs)/points(r.pipe.msgs))
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "ratios:")
	fmt.Fprintf(w, "  pipeline/broker:   %.2f (msgs/s %.0f / %.0f; points/s %.0f / %.0f)\n",
		r.pipe.msgs/r.brokerMsgs, r.pipe.msgs, r.brokerMsgs, points(r.pipe.msgs), points(r.brokerMsgs))
	fmt.Fprintf(w, "  pipeline/InfluxDB: %.2f (msgs/s %.0f / %.0f; points/s %.0f / %.0f)\n",
		r.pipe.msgs/r.influxMsgs, r.pipe.msgs, r.influxMsgs, points(r.pipe.msgs), points(r.influxMsgs))
	if withConsoles {
		c := r.pipeConsoles
		fmt.Fprintln(w)
		fmt.Fprintf(w, "consoles: (c) end to end with and without %d clinicians' consoles, each subscribed to its care team of %d of the %d patients "+
			"(each patient watched by one console), in this run:\n", c.consoles, fl.teamSize, fl.patients)
		fmt.Fprintf(w, "  with %d consoles: %.0f msgs/s (%.0f points/s); without: %.0f msgs/s (%.0f points/s); with/without: %.2f\n",
			c.consoles, c.msgs, points(c.msgs), r.pipe.msgs, points(r.pipe.msgs), c.msgs/r.pipe.msgs)
		fmt.Fprintf(w, "  sample messages received: %d of their care teams' %d; every one by %d of %d consoles; disconnected for falling behind: %d of %d%s\n",
			c.samples, c.expected, c.complete, c.consoles, c.evicted, c.consoles, c.evictedWhen())
		fmt.Fprintf(w, "  serve's live feed dropped the samples of %d device messages (patientpulse_ws_samples_dropped_total)\n", c.feedDropped)
	}

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
	share := r.pipe.msgs / lower
	fmt.Fprintln(w)
	fmt.Fprintln(w, "targets (issue 7, item 5):")
	fmt.Fprintf(w, "  pipeline >= %.0f%% of the lower of (a) and (b): %.0f%% of %s's %.0f msgs/s (%.0f points/s): %s\n",
		targetShare*100, share*100, lowerName, lower, points(lower), met(share >= targetShare))
	if s.Load == targetLoad {
		fmt.Fprintf(w, "  alert p99 <= %.0f ms at %d msgs/s: p99 %.1f ms: %s\n", targetP99, targetLoad, r.p99, met(r.p99 <= targetP99))
	} else {
		fmt.Fprintf(w, "  alert p99 <= %.0f ms at %d msgs/s: p99 %.1f ms at %d msgs/s: not judged (run with --load %d)\n",
			targetP99, targetLoad, r.p99, s.Load, targetLoad)
	}
	fmt.Fprintf(w, "  analysis <= %.0f MiB per 10,000 patients: %.2f MiB: %s\n", targetMemMiB, memMiB10k, met(memMiB10k <= targetMemMiB))
	fmt.Fprintln(w, r.cold.coldTarget(met))
	r.printCPU(w, s, lower)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "method: each phase runs its own fresh Mosquitto and influxd (loopback, temporary directories).")
	fmt.Fprintf(w, "  (a) and (c) send the same %d messages (%d heart-rate samples each) from %d devices, QoS 1, %d awaiting PUBACK per device;\n",
		s.Messages, samplesPerMessage, s.Devices, inFlight)
	fmt.Fprintf(w, "  in (c) the devices publish for %d wearables of %d patients, each device for its share of them in turn; (b) writes their points.\n",
		fl.wearables, fl.patients)
	fmt.Fprintln(w, "  (a) ends when the subscriber has every message; (c) when serve (in process, defaults) has written every point,")
	fmt.Fprintln(w, "  which an InfluxQL count then confirms; (b) writes as many points as serve's sink does (line protocol, 5000, uncompressed, 2 at once).")
	if withConsoles {
		fmt.Fprintf(w, "  (c+ws) is (c) again from fresh services, with %d consoles (gorilla/websocket, each a clinician's API token) on serve's /v1/ws,\n", s.Consoles)
		fmt.Fprintf(w, "  each subscribed to its care team of %d patients (dealt round-robin) and reading on its own goroutine from before the first publish to the end.\n",
			s.ConsolePatients)
	}
	fmt.Fprintln(w, "  (d): critical threshold rule, --alert-fire-after 0s --analysis-interval 100ms --analysis-min-wear-hours 1,")
	fmt.Fprintln(w, "  an on-call console on /v1/ws with an API token, 50 alarms a second among the load.")
	fmt.Fprintln(w, "  (e): heap after GC held by an analysis.Evaluator (exported API) that has loaded and evaluated the simulated")
	fmt.Fprintln(w, "  cohort (its personas and plan templates, 90 days each, read from an in-memory source), scaled to 10,000.")
	fmt.Fprintln(w, coldMethod)
	if len(s.ServeArgs) > 0 {
		fmt.Fprintf(w, "  serve's extra flags in (c) and (d): %s\n", strings.Join(s.ServeArgs, " "))
	}
	fmt.Fprintln(w, "  On a shared machine figures vary between runs: compare only figures from one run.")
}

// printCPU writes where each of (a), (b) and (c) spent CPU time, and the
// rate that the CPU time of (a) and (b) allows (c) on this machine: every
// message of (c) takes the broker's work of (a) (devices, Mosquitto, a
// subscriber) and the storage work of (b) (a writer, influxd), on the
// same CPUs.
func (r *Results) printCPU(w io.Writer, s Settings, lower float64) {
	if !r.cpuA.ok || !r.cpuB.ok || !r.pipe.cpu.ok {
		return
	}
	fmt.Fprintln(w)
	consoles := ""
	if s.Consoles > 0 {
		consoles = "; the consoles in (c+ws)"
	}
	fmt.Fprintf(w, "CPU time in each phase's timed window (%d CPUs; \"bench\" is this process: the clients, and serve in (c)%s):\n", runtime.NumCPU(), consoles)
	fmt.Fprintln(w, "| phase | bench | mosquitto | influxd | CPU per message | CPUs busy, all processes |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: |")
	type phase struct {
		name string
		cpu  cpuUse
	}
	phases := []phase{{"broker (a)", r.cpuA}, {"InfluxDB (b)", r.cpuB}, {"pipeline (c)", r.pipe.cpu}}
	if s.Consoles > 0 && r.pipeConsoles.cpu.ok {
		phases = append(phases, phase{fmt.Sprintf("pipeline, %d consoles (c+ws)", s.Consoles), r.pipeConsoles.cpu})
	}
	for _, p := range phases {
		fmt.Fprintf(w, "| %s | %.2f s | %.2f s | %.2f s | %.1f µs | %.0f%% |\n", p.name, p.cpu.bench.Seconds(),
			p.cpu.mosquitto.Seconds(), p.cpu.influxd.Seconds(), micros(p.cpu.perMessage(s.Messages)), p.cpu.busy*100)
	}
	need := r.cpuA.perMessage(s.Messages) + r.cpuB.perMessage(s.Messages)
	ceiling := float64(runtime.NumCPU()) / need.Seconds()
	fmt.Fprintf(w, "ceiling for (c) from CPU: %d CPUs / (%.1f µs of (a) + %.1f µs of (b) per message) = %.0f msgs/s = %.0f%% of the lower of (a) and (b);\n",
		runtime.NumCPU(), micros(r.cpuA.perMessage(s.Messages)), micros(r.cpuB.perMessage(s.Messages)), ceiling, ceiling/lower*100)
	fmt.Fprintf(w, "  (c) reached %.0f%% of that ceiling, spending %.1f µs a message beyond (a)'s and (b)'s.\n",
		r.pipe.msgs/ceiling*100, micros(r.pipe.cpu.perMessage(s.Messages)-need))
}

// consolesSummary is what the consoles of a run of (c) received, and
// how many of them serve disconnected.
func (f pipeFigures) consolesSummary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "consoles received %d of their care teams' %d sample messages (%d of %d consoles every one); disconnected for falling behind: %d of %d%s",
		f.samples, f.expected, f.complete, f.consoles, f.evicted, f.consoles, f.evictedWhen())
	if f.dropped > 0 {
		fmt.Fprintf(&b, ", otherwise: %d", f.dropped)
	}
	fmt.Fprintf(&b, "; serve's live feed dropped the samples of %d messages", f.feedDropped)
	if f.evicted+f.dropped < f.consoles {
		fmt.Fprintf(&b, "; the last sample reached those left %.2f s after the window", f.consolesLag)
	}
	return b.String()
}

// evictedWhen is when consoles were disconnected for falling behind, if
// any were: the window's figure is the rate with consoles only until
// then.
func (f pipeFigures) evictedWhen() string {
	switch f.evicted {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf(", %.2f s into the %.2f s window", f.firstEvicted, f.secs)
	}
	return fmt.Sprintf(", the first %.2f s and the last %.2f s into the %.2f s window", f.firstEvicted, f.lastEvicted, f.secs)
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
