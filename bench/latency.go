package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/registry"
)

// latency is (d): --alerts patients each have a plan with a critical
// heart-rate threshold (max above 120 bpm over 24h) and a watch; serve
// runs with --alert-fire-after 0s, --analysis-interval 100ms and
// --analysis-min-wear-hours 1; an on-call console holds the websocket
// with an API token. While load devices publish --load ordinary messages
// a second, each watch in turn publishes one 150 bpm reading (50 a
// second), and the time from just before its publish to the alert's
// "opened" message on the websocket is its latency.
func (b *bencher) latency(ctx context.Context, res *Results) error {
	b.logf("(d) alert latency: %d alerts, publish to websocket, under %d messages/s of load", b.s.Alerts, b.s.Load)
	sv, err := startServices(ctx, b.s.Postgres)
	if err != nil {
		return err
	}
	defer sv.close()
	const prefix = "bench-alert-"
	loadDevices := min(b.s.Devices, b.s.Load)
	token, err := func() (string, error) {
		reg, err := registry.Open(ctx, sv.db)
		if err != nil {
			return "", err
		}
		defer reg.Close()
		above := 120.0
		for i := range b.s.Alerts {
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
		return addStaff(ctx, reg, "bench-oncall", registry.RoleOnCall)
	}()
	if err != nil {
		return err
	}
	srv, err := b.startServe(ctx, sv, "--alert-fire-after", "0s", "--analysis-interval", "100ms",
		"--analysis-min-wear-hours", "1", "--device-rate=0") // the load comes from a few devices
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
	arrived := make(map[string]time.Time, b.s.Alerts)
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
	load, err := connectDevices(ctx, sv.mq.URL, loadIDs)
	if err != nil {
		return err
	}
	defer disconnectAll(load)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var loadSent atomic.Int64
	var loadDone sync.WaitGroup
	defer func() { stopLoad(); loadDone.Wait() }()
	for d, c := range load {
		loadDone.Go(func() {
			pprof.Do(loadCtx, pprof.Labels("role", "devices"), func(context.Context) {
				tick := time.NewTicker(time.Second * time.Duration(len(load)) / time.Duration(b.s.Load))
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

	alarms, err := connectDevices(ctx, sv.mq.URL, []string{prefix + "alarm"})
	if err != nil {
		return err
	}
	defer disconnectAll(alarms)
	sent := make(map[string]time.Time, b.s.Alerts)
	loadFrom, start := loadSent.Load(), time.Now()
	tick := time.NewTicker(20 * time.Millisecond) // 50 alarms a second, among the load
	for i := range b.s.Alerts {
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
	end, err := waitFor(ctx, "alerts on the websocket", int64(b.s.Alerts), func() (int64, error) { return arrivedN.Load(), nil })
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
