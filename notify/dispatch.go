package notify

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/registry"
)

// Mail PHI settings (--mail-phi).
const (
	MailPHIMinimal = "minimal" // no patient name, rule or sentence: that there is an alert, and the link
	MailPHIFull    = "full"    // patient, rule, sentence, severity, tier and the link
)

// DispatchConfig sets up delivery from the outbox.
type DispatchConfig struct {
	// GiveUp: a delivery still failing this long after its event is
	// marked failed (counted, logged and listed for admins).
	GiveUp time.Duration
	// Waits between attempts: exponential from MinBackoff with full
	// jitter, at most MaxBackoff. A receiver's Retry-After replaces the
	// wait, capped at MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	Timeout                time.Duration // one attempt
	Workers                int           // attempts at once
	Poll                   time.Duration // how often the outbox is read when nothing wakes the dispatcher
	MailPHI                string        // MailPHIMinimal or MailPHIFull
	// Holder is the dispatcher's name on its claims: serve's is its
	// cluster member id, so that a survivor can free a dead instance's
	// claims (registry.ReleaseClaimsOf). Empty: a random one.
	Holder string
}

// DefaultDispatchConfig is the usual setup.
func DefaultDispatchConfig() DispatchConfig {
	return DispatchConfig{GiveUp: 24 * time.Hour, MinBackoff: time.Second, MaxBackoff: 5 * time.Minute,
		Timeout: 30 * time.Second, Workers: 4, Poll: time.Second, MailPHI: MailPHIMinimal}
}

// Validate reports every problem at once.
func (c DispatchConfig) Validate() error {
	var errs []error
	if c.GiveUp < time.Minute {
		errs = append(errs, errors.New("notify-give-up must be at least 1m"))
	}
	if c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff {
		errs = append(errs, errors.New("notify backoffs must be positive, the maximum at least the minimum"))
	}
	if c.Timeout <= 0 || c.Timeout > 5*time.Minute {
		errs = append(errs, errors.New("notify-timeout must be above 0 and at most 5m"))
	}
	if c.Workers < 1 || c.Workers > 64 {
		errs = append(errs, errors.New("notify workers must be between 1 and 64"))
	}
	if c.Poll < 10*time.Millisecond {
		errs = append(errs, errors.New("notify poll must be at least 10ms"))
	}
	if c.MailPHI != MailPHIMinimal && c.MailPHI != MailPHIFull {
		errs = append(errs, fmt.Errorf("mail-phi must be %s or %s", MailPHIMinimal, MailPHIFull))
	}
	return errors.Join(errs...)
}

// Dispatcher delivers the outbox's pending deliveries on their channels,
// at least once each: it records every attempt with the delivery, retries
// with backoff, and gives up (marking the delivery failed) only after
// GiveUp. A delivery waits for the earlier ones of its alert on the same
// channel to the same recipient (see registry.DueDeliveries), so a pager
// hears of an alert's trigger before its acknowledgement. After a restart
// or a kill it resumes what is pending; one cut short by a kill is sent
// again with the same delivery id, which receivers de-duplicate.
//
// Several dispatchers may run on one registry (one per instance): each
// delivery is claimed by one of them before its attempt
// (registry.ClaimDue), for longer than an attempt can take (claimFor); a
// claim of a dispatcher that died runs out, and another attempts the
// delivery then, or sooner when serve sees its instance leave the cluster
// (registry.ReleaseClaimsOf).
type Dispatcher struct {
	cfg      DispatchConfig
	reg      *registry.Registry
	channels map[string]Channel
	links    *Links
	log      *slog.Logger
	now      func() time.Time
	wake     chan struct{}
	holder   string // this dispatcher's name on its claims

	mu       sync.Mutex
	inflight map[string]bool // delivery ids being attempted; guarded by mu

	outcomes *prometheus.CounterVec
	states   *prometheus.GaugeVec
	seconds  *prometheus.HistogramVec
}

// NewDispatcher returns a dispatcher of the channels given by name (a
// delivery on a channel not among them fails at once: it is not set up
// any more). Its metrics are registered with promReg when not nil.
func NewDispatcher(cfg DispatchConfig, reg *registry.Registry, channels map[string]Channel, links *Links,
	log *slog.Logger, promReg prometheus.Registerer) *Dispatcher {
	d := &Dispatcher{cfg: cfg, reg: reg, channels: channels, links: links, log: log, now: time.Now,
		wake: make(chan struct{}, 1), inflight: map[string]bool{}, holder: cmp.Or(cfg.Holder, crand.Text()),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_notify_attempts_total",
			Help: "Delivery attempts, by channel and outcome: delivered, retrying, or failed (refused, or given up after --notify-give-up).",
		}, []string{"channel", "outcome"}),
		states: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "patientpulse_notify_deliveries",
			Help: "Deliveries in the outbox, by state: pending, delivered, failed.",
		}, []string{"state"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "patientpulse_notify_attempt_seconds", Help: "Time of one delivery attempt, by channel.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}, []string{"channel"}),
	}
	for name := range channels { // every series from the start, so that rate() sees the first attempt
		for _, outcome := range []string{"delivered", "retrying", "failed"} {
			d.outcomes.WithLabelValues(name, outcome)
		}
	}
	if promReg != nil {
		promReg.MustRegister(d.outcomes, d.states, d.seconds)
	}
	return d
}

// Wake tells the dispatcher deliveries were written. It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then waits for the attempts in flight to
// end (an attempt cut short stays pending) and returns nil.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, d.cfg.Workers)
	counted := time.Time{}
	for {
		if time.Since(counted) >= 10*d.cfg.Poll {
			d.count(ctx)
			counted = time.Now()
		}
		started := 0
		now := d.now()
		due, err := d.reg.ClaimDue(ctx, now, d.cfg.Workers, d.inFlight(), d.holder, now.Add(d.claimFor()))
		if err != nil && ctx.Err() == nil {
			d.log.Warn("reading the outbox failed; retrying", "err", err)
		}
		for _, it := range due {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			d.mu.Lock()
			d.inflight[it.ID] = true
			d.mu.Unlock()
			started++
			wg.Go(func() {
				defer func() {
					d.mu.Lock()
					delete(d.inflight, it.ID)
					d.mu.Unlock()
					<-slots
					d.Wake() // a delivery waiting behind this one may go now
				}()
				d.attempt(ctx, it)
			})
		}
		wait := d.cfg.Poll
		if started == 0 {
			if next, ok, err := d.reg.NextDue(ctx, d.inFlight()); err == nil && ok {
				wait = min(wait, max(next.Sub(d.now()), d.cfg.Poll/10))
			}
		} else {
			wait = 0 // read again: there may be more due
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-d.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// claimFor is how long a delivery is claimed for its attempt: the
// attempt's time-out, then the time to record it, with room for the
// instances' clocks to differ.
func (d *Dispatcher) claimFor() time.Duration {
	return 2*d.cfg.Timeout + 30*time.Second
}

func (d *Dispatcher) inFlight() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]string, 0, len(d.inflight))
	for id := range d.inflight {
		ids = append(ids, id)
	}
	return ids
}

// count sets the gauge of deliveries by state.
func (d *Dispatcher) count(ctx context.Context) {
	counts, err := d.reg.DeliveryCounts(ctx)
	if err != nil {
		return
	}
	for state, n := range counts {
		d.states.WithLabelValues(state).Set(float64(n))
	}
}

// attempt makes one attempt at it and records it.
func (d *Dispatcher) attempt(ctx context.Context, it registry.Due) {
	var res Result
	m, err := d.message(ctx, it)
	ch := d.channels[it.Channel]
	start := time.Now() // the attempt's duration, on the wall clock whatever d.now is
	switch {
	case ch == nil:
		res = Result{Err: "the " + it.Channel + " channel is not set up"}
	case err != nil:
		res = Result{Err: err.Error(), Retry: ctx.Err() == nil}
	default:
		actx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		res = ch.Send(actx, m)
		cancel()
		d.seconds.WithLabelValues(it.Channel).Observe(time.Since(start).Seconds())
	}
	if !res.Delivered() && ctx.Err() != nil {
		// Shutting down: it stays pending, unclaimed, and the next start
		// (or another instance) sends it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := d.reg.ReleaseClaim(rctx, it.ID, d.holder); err != nil {
			d.log.Warn("delivery claim not released; it runs out", "channel", it.Channel, "err", err)
		}
		return
	}
	now := d.now()
	a := registry.Attempt{Delivery: it.ID, AlertID: it.AlertID, Channel: it.Channel, Event: it.Event.Kind,
		Attempt: it.Attempts + 1, At: now, Status: res.Status, Error: res.Err}
	state, next := registry.DeliveryPending, time.Time{}
	giveUpAt := it.CreatedAt.Add(d.cfg.GiveUp)
	switch {
	case res.Delivered():
		state, a.Outcome = registry.DeliveryDelivered, "delivered"
	case !res.Retry:
		state, a.Outcome = registry.DeliveryFailed, "failed"
	case !now.Before(giveUpAt):
		state, a.Outcome = registry.DeliveryFailed, "failed"
		a.Error = shorten("gave up after "+d.cfg.GiveUp.String()+": "+res.Err, nil)
	default:
		a.Outcome = "retrying"
		next = now.Add(d.backoff(a.Attempt, res))
		if next.After(giveUpAt) {
			next = giveUpAt
		}
	}
	d.outcomes.WithLabelValues(it.Channel, a.Outcome).Inc()
	logArgs := []any{"channel", it.Channel, "recipient", it.Recipient, "change", it.Event.Kind, "attempt", a.Attempt,
		"status", res.Status, "err", a.Error}
	switch a.Outcome {
	case "failed":
		d.log.Error("delivery failed", logArgs...)
	case "retrying":
		d.log.Warn("delivery attempt failed; retrying", append(logArgs, "at", next.Format(time.RFC3339))...)
	default:
		d.log.Debug("delivered", logArgs...)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.reg.FinishAttempt(rctx, a, state, next); err != nil {
		// It stays pending as it was: the next attempt sends it again,
		// with the same id.
		d.log.Error("delivery attempt not recorded", "channel", it.Channel, "attempt", a.Attempt, "err", err)
	}
}

// message is what the channel of it sends.
func (d *Dispatcher) message(ctx context.Context, it registry.Due) (Message, error) {
	m := Message{Delivery: it.OutboxDelivery, FullPHI: d.cfg.MailPHI == MailPHIFull}
	if it.Event.AlertID == 0 {
		var dg Digest
		if err := json.Unmarshal(it.Event.Body, &dg); err != nil {
			return m, fmt.Errorf("decode digest: %w", err)
		}
		m.Digest, m.Link = &dg, d.links.Console()
		return m, nil
	}
	ev, ok := alertEvent(it.Event)
	if !ok {
		return m, errors.New("decode event: not an alert's event")
	}
	m.Event, m.Link = ev, d.links.Ack(ev.Alert.ID, d.now())
	if m.FullPHI && it.Channel == ChannelEmail {
		p, err := d.reg.Patient(ctx, ev.Alert.Patient)
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			return m, errors.New("read the patient: " + registry.Redact(err, ev.Alert.Patient))
		}
		m.PatientName = p.Name
	}
	return m, nil
}

// backoff is the wait after the attempt-th attempt failed: the receiver's
// Retry-After, or a random wait up to MinBackoff·2^(attempt-1) (full
// jitter), both at most MaxBackoff.
func (d *Dispatcher) backoff(attempt int, res Result) time.Duration {
	if res.RetryAfter > 0 {
		return min(res.RetryAfter, d.cfg.MaxBackoff)
	}
	ceil := d.cfg.MinBackoff
	for i := 1; i < attempt && ceil < d.cfg.MaxBackoff; i++ {
		ceil *= 2
	}
	ceil = min(ceil, d.cfg.MaxBackoff)
	return max(rand.N(ceil+1), d.cfg.MinBackoff/10)
}
