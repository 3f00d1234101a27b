package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// dispatchPatientName is the name of the dispatch tests' patient p-1:
// only mail under --mail-phi=full may carry it, and no log.
const dispatchPatientName = "Jane Dispatchtest"

// dispatchRig is a registry file with patient p-1, on which the tests
// write alerts' outbox rows and run dispatchers.
type dispatchRig struct {
	t     *testing.T
	path  string
	reg   *registry.Registry
	links *Links
	log   *testservices.LogBuffer
	at    time.Time // the last change's time
}

func newDispatchRig(t *testing.T) *dispatchRig {
	t.Helper()
	path := testservices.RegistryDSN(t)
	reg, err := registry.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	if err := reg.AddPatient(t.Context(), registry.Patient{ID: "p-1", Name: dispatchPatientName}); err != nil {
		t.Fatal(err)
	}
	r := &dispatchRig{t: t, path: path, reg: reg, links: NewLinks([]byte("0123456789abcdef0123456789abcdef"), "https://pp.example"),
		log: &testservices.LogBuffer{}, at: time.Now().UTC().Add(-time.Minute)}
	t.Cleanup(func() {
		if strings.Contains(r.log.String(), dispatchPatientName) {
			t.Errorf("the dispatcher logged the patient's name:\n%s", r.log)
		}
	})
	return r
}

// dispatchConfig is a quick configuration: attempts retry within
// milliseconds.
func dispatchConfig() DispatchConfig {
	cfg := DefaultDispatchConfig()
	cfg.MinBackoff, cfg.MaxBackoff, cfg.Poll, cfg.Timeout = 5*time.Millisecond, 20*time.Millisecond, 20*time.Millisecond, 10*time.Second
	return cfg
}

// dispatchAlert is an alert of p-1 stored in the rig's registry.
type dispatchAlert struct {
	rig *dispatchRig
	row registry.AlertRow
}

func dispatchDelivery(id, channel, recipient, target string) registry.OutboxDelivery {
	return registry.OutboxDelivery{ID: id, Channel: channel, Recipient: recipient, Target: target}
}

// open stores a critical alert of p-1 under key with its opening's
// deliveries.
func (r *dispatchRig) open(key string, ds ...registry.OutboxDelivery) *dispatchAlert {
	r.t.Helper()
	r.at = r.at.Add(time.Millisecond)
	a := &dispatchAlert{rig: r, row: registry.AlertRow{Patient: "p-1", Key: key, State: registry.AlertFiring,
		Severity: analysis.SeverityCritical, OpenedAt: r.at, UpdatedAt: r.at, Tier: -1, Body: []byte("{}")}}
	var err error
	a.row.ID, err = r.reg.OpenAlert(r.t.Context(), a.row, registry.AlertEvent{At: r.at, Kind: alerts.ChangeOpened},
		a.outbox(alerts.ChangeOpened, ds))
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

// change stores a change of the alert with its deliveries.
func (a *dispatchAlert) change(change string, ds ...registry.OutboxDelivery) {
	t := a.rig.t
	t.Helper()
	a.rig.at = a.rig.at.Add(time.Millisecond)
	prev := a.row.UpdatedAt
	a.row.UpdatedAt = a.rig.at
	err := a.rig.reg.UpdateAlert(t.Context(), a.row, prev, registry.AlertEvent{At: a.rig.at, Kind: change}, nil, a.outbox(change, ds))
	if err != nil {
		t.Fatal(err)
	}
}

// outbox is the change's outbox rows as the alert manager writes them:
// the event's body is the alerts.Event, without the id at an opening.
func (a *dispatchAlert) outbox(change string, ds []registry.OutboxDelivery) *registry.Outbox {
	ev := alerts.Event{Change: change, At: a.rig.at, Alert: alerts.Alert{ID: a.row.ID, Patient: "p-1", Rule: a.row.Key,
		State: a.row.State, Severity: a.row.Severity, Sentence: "the condition of " + a.row.Key, OpenedAt: a.row.OpenedAt, UpdatedAt: a.rig.at}}
	body, err := json.Marshal(ev)
	if err != nil {
		a.rig.t.Fatal(err)
	}
	return &registry.Outbox{Kind: change, At: a.rig.at, Body: body, Deliveries: ds}
}

// dispatcher returns a dispatcher over the rig's registry (reg when not
// nil) with its own metrics registry, which it returns too.
func (r *dispatchRig) dispatcher(cfg DispatchConfig, channels map[string]Channel, reg *registry.Registry) (*Dispatcher, *prometheus.Registry) {
	if reg == nil {
		reg = r.reg
	}
	prom := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return NewDispatcher(cfg, reg, channels, r.links, log, prom), prom
}

// run runs d until the returned stop is called (or the test ends); stop
// returns once Run has.
func (r *dispatchRig) run(d *Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				r.t.Errorf("Run: %v", err)
			}
		})
	}
	r.t.Cleanup(stop)
	return stop
}

// deliveries returns the deliveries as stored, by id.
func (r *dispatchRig) deliveries() map[string]registry.OutboxDelivery {
	r.t.Helper()
	ds, err := r.reg.Deliveries(r.t.Context(), registry.DeliveryFilter{})
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]registry.OutboxDelivery{}
	for _, d := range ds {
		out[d.ID] = d
	}
	return out
}

// delivery returns the delivery id as stored.
func (r *dispatchRig) delivery(id string) registry.OutboxDelivery {
	r.t.Helper()
	d, ok := r.deliveries()[id]
	if !ok {
		r.t.Fatalf("no delivery %s", id)
	}
	return d
}

// settled waits until the deliveries ids are no longer pending and
// returns them.
func (r *dispatchRig) settled(ids ...string) []registry.OutboxDelivery {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := r.deliveries()
		var out []registry.OutboxDelivery
		for _, id := range ids {
			if d, ok := all[id]; ok && d.State != registry.DeliveryPending {
				out = append(out, d)
			}
		}
		if len(out) == len(ids) {
			return out
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("deliveries %v still pending after 10s:\n%s", ids, r.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// attempts returns the attempts recorded for delivery id, oldest first.
func (r *dispatchRig) attempts(alertID int64, id string) []registry.Attempt {
	r.t.Helper()
	all, err := r.reg.Attempts(r.t.Context(), alertID)
	if err != nil {
		r.t.Fatal(err)
	}
	return slices.DeleteFunc(all, func(a registry.Attempt) bool { return a.Delivery != id })
}

// recordingChannel is a Channel that keeps what it is sent, when, and
// answers as answer says (delivered when answer is nil).
type recordingChannel struct {
	answer func(ctx context.Context, m Message, n int) Result // n: the attempt at m's delivery, from 1

	mu        sync.Mutex
	sent      []sentMessage
	inFlight  int
	maxAtOnce int
}

// sentMessage is one Send.
type sentMessage struct {
	Message
	at time.Time
}

func (c *recordingChannel) Send(ctx context.Context, m Message) Result {
	c.mu.Lock()
	n := 1
	for _, s := range c.sent {
		if s.Delivery.ID == m.Delivery.ID {
			n++
		}
	}
	c.sent = append(c.sent, sentMessage{m, time.Now()})
	c.inFlight++
	c.maxAtOnce = max(c.maxAtOnce, c.inFlight)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()
	if c.answer == nil {
		return Result{Status: 200}
	}
	return c.answer(ctx, m, n)
}

// sends returns what was sent so far.
func (c *recordingChannel) sends() []sentMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sent)
}

// atOnce returns the most sends that were in progress at once.
func (c *recordingChannel) atOnce() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxAtOnce
}

// attemptsCounted reads patientpulse_notify_attempts_total of channel and
// outcome from a metrics registry.
func attemptsCounted(t *testing.T, g prometheus.Gatherer, channel, outcome string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "patientpulse_notify_attempts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["channel"] == channel && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// attemptSeconds reads patientpulse_notify_attempt_seconds from a metrics
// registry: how many attempts it observed, and their total time.
func attemptSeconds(t *testing.T, g prometheus.Gatherer) (uint64, float64) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var n uint64
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "patientpulse_notify_attempt_seconds" {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return n, sum
}

// TestDispatchRetries: a delivery that fails is tried again after a
// backoff (the receiver's Retry-After, capped at MaxBackoff) with the
// same delivery id, every attempt recorded, until it is delivered.
func TestDispatchRetries(t *testing.T) {
	r := newDispatchRig(t)
	a := r.open("mrs", dispatchDelivery("d-hook", ChannelWebhook, "", ""))
	ch := &recordingChannel{answer: func(_ context.Context, m Message, n int) Result {
		switch n {
		case 1:
			return Result{Status: 503, Err: "HTTP 503", Retry: true}
		case 2:
			return Result{Status: 429, Err: "HTTP 429", Retry: true, RetryAfter: time.Hour}
		}
		return Result{Status: 200}
	}}
	cfg := dispatchConfig()
	cfg.MaxBackoff = 150 * time.Millisecond
	d, prom := r.dispatcher(cfg, map[string]Channel{ChannelWebhook: ch}, nil)
	r.run(d)
	got := r.settled("d-hook")[0]
	if got.State != registry.DeliveryDelivered || got.Attempts != 3 || got.LastError != "" || got.DoneAt.IsZero() {
		t.Errorf("delivery = %+v, want delivered at the third attempt", got)
	}
	sent := ch.sends()
	if len(sent) != 3 {
		t.Fatalf("%d sends, want 3", len(sent))
	}
	for i, s := range sent {
		if s.Delivery.ID != "d-hook" || s.Event.Alert.ID != a.row.ID || s.Event.Change != alerts.ChangeOpened ||
			s.Event.Alert.Patient != "p-1" {
			t.Errorf("send %d: delivery %s of alert %d (%s of %s), want d-hook of alert %d, its opening",
				i+1, s.Delivery.ID, s.Event.Alert.ID, s.Event.Change, s.Event.Alert.Patient, a.row.ID)
		}
		if id, err := r.links.Verify(strings.TrimPrefix(s.Link, "https://pp.example/a/"), time.Now()); err != nil || id != a.row.ID {
			t.Errorf("send %d: link %s names alert %d (%v), want %d", i+1, s.Link, id, err, a.row.ID)
		}
	}
	if gap := sent[1].at.Sub(sent[0].at); gap < cfg.MinBackoff/10 {
		t.Errorf("second attempt %s after the first, want a backoff of at least %s", gap, cfg.MinBackoff/10)
	}
	if gap := sent[2].at.Sub(sent[1].at); gap < cfg.MaxBackoff || gap > 5*time.Second {
		t.Errorf("third attempt %s after the second, want Retry-After capped at %s", gap, cfg.MaxBackoff)
	}
	var outcomes []string
	for i, at := range r.attempts(a.row.ID, "d-hook") {
		outcomes = append(outcomes, fmt.Sprintf("%d %s %d %s", at.Attempt, at.Outcome, at.Status, at.Error))
		if at.Channel != ChannelWebhook || at.Event != alerts.ChangeOpened || at.AlertID != a.row.ID {
			t.Errorf("attempt %d = %+v, want the webhook's at the opening of %d", i+1, at, a.row.ID)
		}
	}
	if want := []string{"1 retrying 503 HTTP 503", "2 retrying 429 HTTP 429", "3 delivered 200 "}; !slices.Equal(outcomes, want) {
		t.Errorf("attempts %q, want %q", outcomes, want)
	}
	if n := attemptsCounted(t, prom, ChannelWebhook, "retrying"); n != 2 {
		t.Errorf("%v retrying attempts counted, want 2", n)
	}
	if n := attemptsCounted(t, prom, ChannelWebhook, "delivered"); n != 1 {
		t.Errorf("%v delivered attempts counted, want 1", n)
	}
}

// TestDispatchBackoff: the wait after a failed attempt is random up to
// MinBackoff doubled per attempt, at most MaxBackoff, and at least a tenth
// of MinBackoff; a Retry-After replaces it, capped at MaxBackoff.
func TestDispatchBackoff(t *testing.T) {
	cfg := DefaultDispatchConfig()
	cfg.MinBackoff, cfg.MaxBackoff = time.Second, 20*time.Second
	d := &Dispatcher{cfg: cfg}
	for attempt, ceil := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second,
		6: 20 * time.Second, 40: 20 * time.Second} {
		var longest time.Duration
		for range 2000 {
			w := d.backoff(attempt, Result{Retry: true})
			if w < cfg.MinBackoff/10 || w > ceil {
				t.Fatalf("backoff after attempt %d = %s, want within [%s, %s]", attempt, w, cfg.MinBackoff/10, ceil)
			}
			longest = max(longest, w)
		}
		if longest < ceil/2 {
			t.Errorf("backoffs after attempt %d at most %s, want up to %s (full jitter)", attempt, longest, ceil)
		}
	}
	for after, want := range map[time.Duration]time.Duration{3 * time.Second: 3 * time.Second, time.Hour: 20 * time.Second} {
		if got := d.backoff(1, Result{Retry: true, RetryAfter: after}); got != want {
			t.Errorf("backoff with Retry-After %s = %s, want %s", after, got, want)
		}
	}
}

// TestDispatchFinalFailure: a refusal that no retry can change fails the
// delivery at its first attempt; so does a channel not set up.
func TestDispatchFinalFailure(t *testing.T) {
	r := newDispatchRig(t)
	a := r.open("mrs", dispatchDelivery("d-hook", ChannelWebhook, "", ""), dispatchDelivery("d-ntfy", ChannelNtfy, "", ""))
	ch := &recordingChannel{answer: func(context.Context, Message, int) Result {
		return Result{Status: 400, Err: "HTTP 400: bad request"}
	}}
	d, prom := r.dispatcher(dispatchConfig(), map[string]Channel{ChannelWebhook: ch}, nil)
	r.run(d)
	got := r.settled("d-hook", "d-ntfy")
	if got[0].State != registry.DeliveryFailed || got[0].Attempts != 1 || got[0].LastError != "HTTP 400: bad request" {
		t.Errorf("refused delivery = %+v, want failed at its first attempt, with the refusal", got[0])
	}
	if got[1].State != registry.DeliveryFailed || got[1].Attempts != 1 || !strings.Contains(got[1].LastError, "ntfy channel is not set up") {
		t.Errorf("delivery on ntfy = %+v, want failed: not set up", got[1])
	}
	if n := len(ch.sends()); n != 1 {
		t.Errorf("%d sends on the webhook, want 1", n)
	}
	for _, id := range []string{"d-hook", "d-ntfy"} {
		if atts := r.attempts(a.row.ID, id); len(atts) != 1 || atts[0].Outcome != "failed" {
			t.Errorf("attempts of %s = %+v, want one, failed", id, atts)
		}
	}
	if n := attemptsCounted(t, prom, ChannelWebhook, "failed"); n != 1 {
		t.Errorf("%v failed webhook attempts counted, want 1", n)
	}
	if n := attemptsCounted(t, prom, ChannelNtfy, "failed"); n != 1 {
		t.Errorf("%v failed ntfy attempts counted, want 1", n)
	}
}

// TestDispatchGiveUp: a delivery that still fails GiveUp after its event
// is marked failed, saying it gave up, and counted; its last wait before
// is cut short so that it gives up on time.
func TestDispatchGiveUp(t *testing.T) {
	r := newDispatchRig(t)
	a := r.open("mrs", dispatchDelivery("d-old", ChannelWebhook, "", ""))
	failing := func(context.Context, Message, int) Result { return Result{Status: 503, Err: "HTTP 503", Retry: true} }
	hook, pager := &recordingChannel{answer: failing}, &recordingChannel{answer: failing}

	// d-old is 25 hours old by the dispatcher's clock.
	cfg := dispatchConfig()
	d, prom := r.dispatcher(cfg, map[string]Channel{ChannelWebhook: hook}, nil)
	d.now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	stop := r.run(d)
	got := r.settled("d-old")[0]
	stop()
	if got.State != registry.DeliveryFailed || got.Attempts != 1 || !strings.Contains(got.LastError, "gave up after 24h0m0s: HTTP 503") {
		t.Errorf("old delivery = %+v, want failed at its first attempt: gave up after 24h, with the error", got)
	}
	if atts := r.attempts(a.row.ID, "d-old"); len(atts) != 1 || atts[0].Outcome != "failed" || !strings.Contains(atts[0].Error, "gave up") {
		t.Errorf("attempts = %+v, want one, failed, gave up", atts)
	}
	if n := attemptsCounted(t, prom, ChannelWebhook, "failed"); n != 1 {
		t.Errorf("%v failed attempts counted, want 1", n)
	}
	if n := attemptsCounted(t, prom, ChannelWebhook, "retrying"); n != 0 {
		t.Errorf("%v retrying attempts counted, want 0", n)
	}
	if n, sum := attemptSeconds(t, prom); n != 1 || sum < 0 || sum > 10 {
		t.Errorf("attempt seconds: %d observations summing to %gs, want 1 of the attempt's time on the wall clock", n, sum)
	}

	// d-near gives up 3 s from now by the dispatcher's clock, before its
	// backoff (at least 12 s) would end: its retry comes at the give-up.
	b := r.open("hr", dispatchDelivery("d-near", ChannelPagerDuty, "", ""))
	cfg.GiveUp, cfg.MinBackoff, cfg.MaxBackoff = time.Hour, 2*time.Minute, 2*time.Minute
	d, prom = r.dispatcher(cfg, map[string]Channel{ChannelPagerDuty: pager}, nil)
	created := r.delivery("d-near").CreatedAt
	offset := created.Add(cfg.GiveUp - 3*time.Second).Sub(time.Now())
	d.now = func() time.Time { return time.Now().Add(offset) }
	r.run(d)
	got = r.settled("d-near")[0]
	if got.State != registry.DeliveryFailed || got.Attempts != 2 || !strings.Contains(got.LastError, "gave up after 1h0m0s") {
		t.Errorf("delivery near its give-up = %+v, want failed at its second attempt, given up", got)
	}
	atts := r.attempts(b.row.ID, "d-near")
	if len(atts) != 2 || atts[0].Outcome != "retrying" || atts[1].Outcome != "failed" || atts[1].At.Before(created.Add(cfg.GiveUp)) {
		t.Errorf("attempts = %+v, want retrying, then failed at %s", atts, created.Add(cfg.GiveUp))
	}
	if sent := pager.sends(); len(sent) == 2 && sent[1].at.Sub(sent[0].at) > 10*time.Second {
		t.Errorf("second attempt %s after the first, want at the give-up, at most 3 s after", sent[1].at.Sub(sent[0].at))
	}
	if n := attemptsCounted(t, prom, ChannelPagerDuty, "failed"); n != 1 {
		t.Errorf("%v failed attempts counted, want 1", n)
	}
}

// TestDispatchOrderPerAlert: with several workers, an alert's
// acknowledgement reaches a pager only after its trigger was delivered,
// however often the trigger has to be retried; other alerts' deliveries
// go meanwhile.
func TestDispatchOrderPerAlert(t *testing.T) {
	r := newDispatchRig(t)
	var ids []string
	var alertsOpened []*dispatchAlert
	for i := range 6 {
		key := fmt.Sprintf("rule-%d", i)
		a := r.open(key, dispatchDelivery(key+"-trigger", ChannelPagerDuty, "alice", "key-alice"),
			dispatchDelivery(key+"-hook-opened", ChannelWebhook, "", ""))
		alertsOpened = append(alertsOpened, a)
		ids = append(ids, key+"-trigger", key+"-hook-opened")
	}
	for i, a := range alertsOpened {
		key := fmt.Sprintf("rule-%d", i)
		a.change(alerts.ChangeAcknowledged, dispatchDelivery(key+"-ack", ChannelPagerDuty, "alice", "key-alice"),
			dispatchDelivery(key+"-hook-ack", ChannelWebhook, "", ""))
		ids = append(ids, key+"-ack", key+"-hook-ack")
	}
	// Every opening fails twice; each send takes a little while, so that
	// the workers overlap.
	answer := func(_ context.Context, m Message, n int) Result {
		time.Sleep(2 * time.Millisecond)
		if m.Event.Change == alerts.ChangeOpened && n <= 2 {
			return Result{Status: 503, Err: "HTTP 503", Retry: true}
		}
		return Result{Status: 202}
	}
	pager, hook := &recordingChannel{answer: answer}, &recordingChannel{answer: answer}
	cfg := dispatchConfig()
	cfg.Workers = 4
	d, _ := r.dispatcher(cfg, map[string]Channel{ChannelPagerDuty: pager, ChannelWebhook: hook}, nil)
	r.run(d)
	for _, dl := range r.settled(ids...) {
		if dl.State != registry.DeliveryDelivered {
			t.Errorf("delivery %s %s, want delivered", dl.ID, dl.State)
		}
	}
	for name, ch := range map[string]*recordingChannel{"pager": pager, "webhook": hook} {
		seq := map[int64][]string{} // an alert's sends in order
		for _, s := range ch.sends() {
			seq[s.Event.Alert.ID] = append(seq[s.Event.Alert.ID], s.Event.Change)
		}
		want := []string{alerts.ChangeOpened, alerts.ChangeOpened, alerts.ChangeOpened, alerts.ChangeAcknowledged}
		for _, a := range alertsOpened {
			if got := seq[a.row.ID]; !slices.Equal(got, want) {
				t.Errorf("%s: alert %d's sends %v, want %v", name, a.row.ID, got, want)
			}
		}
		if n := ch.atOnce(); n < 2 {
			t.Errorf("%s: at most %d sends at once, want the workers to overlap", name, n)
		}
	}
}

// TestDispatchResume: a dispatcher stopped in the middle of an attempt
// leaves the delivery pending and unrecorded; a new one on the same
// registry file (a restart) delivers it with the same id.
func TestDispatchResume(t *testing.T) {
	r := newDispatchRig(t)
	a := r.open("mrs", dispatchDelivery("", ChannelWebhook, "", ""))
	id := r.onlyDelivery(a.row.ID)
	entered, left := make(chan struct{}), make(chan struct{})
	blocking := &recordingChannel{answer: func(ctx context.Context, _ Message, _ int) Result {
		close(entered)
		defer close(left)
		<-ctx.Done()
		return Result{Err: "send: " + ctx.Err().Error(), Retry: true}
	}}
	d, _ := r.dispatcher(dispatchConfig(), map[string]Channel{ChannelWebhook: blocking}, nil)
	stop := r.run(d)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatalf("no attempt within 10s:\n%s", r.log)
	}
	stop()
	select {
	case <-left:
	default:
		t.Error("Run returned while its attempt was still sending")
	}
	if got := r.delivery(id); got.State != registry.DeliveryPending || got.Attempts != 0 || got.LastError != "" {
		t.Errorf("delivery after the stop = %+v, want pending, no attempt counted", got)
	}
	if atts := r.attempts(a.row.ID, id); len(atts) != 0 {
		t.Errorf("attempts recorded for the attempt cut short: %+v", atts)
	}

	reg, err := registry.Open(t.Context(), r.path)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	again := &recordingChannel{}
	d, _ = r.dispatcher(dispatchConfig(), map[string]Channel{ChannelWebhook: again}, reg)
	r.run(d)
	if got := r.settled(id)[0]; got.State != registry.DeliveryDelivered || got.Attempts != 1 {
		t.Errorf("delivery after the restart = %+v, want delivered at its first recorded attempt", got)
	}
	first, second := blocking.sends(), again.sends()
	if len(first) != 1 || len(second) != 1 || first[0].Delivery.ID != id || second[0].Delivery.ID != id {
		t.Errorf("sends before and after the restart: %d and %d, want one each with delivery id %s", len(first), len(second), id)
	}
}

// onlyDelivery returns the id of the alert's only delivery.
func (r *dispatchRig) onlyDelivery(alertID int64) string {
	r.t.Helper()
	ds, err := r.reg.Deliveries(r.t.Context(), registry.DeliveryFilter{AlertID: alertID})
	if err != nil || len(ds) != 1 || ds[0].ID == "" {
		r.t.Fatalf("deliveries of alert %d: %+v, %v; want one with an id", alertID, ds, err)
	}
	return ds[0].ID
}

// TestDispatchMailPHI: under --mail-phi=full a mail's message names the
// patient; under minimal it does not; other channels never do.
func TestDispatchMailPHI(t *testing.T) {
	for _, phi := range []string{MailPHIFull, MailPHIMinimal} {
		t.Run(phi, func(t *testing.T) {
			r := newDispatchRig(t)
			r.open("mrs", dispatchDelivery("d-mail", ChannelEmail, "alice", "alice@example.org"),
				dispatchDelivery("d-hook", ChannelWebhook, "", ""), dispatchDelivery("d-ntfy", ChannelNtfy, "alice", "https://ntfy.example/a"))
			chans := map[string]*recordingChannel{ChannelEmail: {}, ChannelWebhook: {}, ChannelNtfy: {}}
			cfg := dispatchConfig()
			cfg.MailPHI = phi
			d, _ := r.dispatcher(cfg, map[string]Channel{ChannelEmail: chans[ChannelEmail], ChannelWebhook: chans[ChannelWebhook],
				ChannelNtfy: chans[ChannelNtfy]}, nil)
			r.run(d)
			r.settled("d-mail", "d-hook", "d-ntfy")
			for name, ch := range chans {
				sent := ch.sends()
				if len(sent) != 1 {
					t.Fatalf("%s: %d sends, want 1", name, len(sent))
				}
				m := sent[0].Message
				wantName := ""
				if name == ChannelEmail && phi == MailPHIFull {
					wantName = dispatchPatientName
				}
				if m.PatientName != wantName {
					t.Errorf("%s: patient name %q, want %q", name, m.PatientName, wantName)
				}
				if name == ChannelEmail {
					if m.FullPHI != (phi == MailPHIFull) || strings.Contains(m.Text(), dispatchPatientName) != (phi == MailPHIFull) {
						t.Errorf("mail under %s: FullPHI %v, text\n%s", phi, m.FullPHI, m.Text())
					}
					if !strings.Contains(m.Text(), m.Link) || !strings.HasPrefix(m.Link, "https://pp.example/a/") {
						t.Errorf("mail under %s without its page link %q:\n%s", phi, m.Link, m.Text())
					}
				}
				if strings.Contains(m.Minimal(), dispatchPatientName) {
					t.Errorf("%s: minimal text names the patient: %s", name, m.Minimal())
				}
			}
		})
	}
}

// TestDispatchDigest: a digest is sent as itself, with the console's link.
func TestDispatchDigest(t *testing.T) {
	r := newDispatchRig(t)
	body, err := json.Marshal(Digest{Username: "alice", Date: "2026-01-02", Alerts: []alerts.Alert{{Patient: "p-1", Rule: "sleep"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.reg.AddOutbox(t.Context(), registry.Outbox{Kind: "digest", At: r.at, Body: body,
		Deliveries: []registry.OutboxDelivery{dispatchDelivery("digest-alice", ChannelEmail, "alice", "alice@example.org")}}); err != nil {
		t.Fatal(err)
	}
	mail := &recordingChannel{}
	d, _ := r.dispatcher(dispatchConfig(), map[string]Channel{ChannelEmail: mail}, nil)
	r.run(d)
	if got := r.settled("digest-alice")[0]; got.State != registry.DeliveryDelivered {
		t.Errorf("digest delivery %s, want delivered", got.State)
	}
	sent := mail.sends()
	if len(sent) != 1 || sent[0].Digest == nil || sent[0].Digest.Username != "alice" || len(sent[0].Digest.Alerts) != 1 ||
		sent[0].Link != "https://pp.example/" || sent[0].Event.Change != "" {
		t.Errorf("sent %+v, want alice's digest with the console's link", sent)
	}
}
