package ingest

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// SessionClientID is the MQTT client id of session slot k: "<base>-s<k>".
// With several instances, every instance has the same base and the
// cluster leases the slots, so that each client id is connected by at
// most one instance and a dead instance's persistent session, with what
// the broker queued for it, is taken over by a survivor.
func SessionClientID(base string, slot int) string { return base + "-s" + strconv.Itoa(slot) }

// Sessions runs one MQTT collector per session slot this instance holds,
// each with client id SessionClientID(cfg.ClientID, k), a persistent
// session and the collector's shared subscription and bounds. Set says
// which slots are held; a collector is started for each new one, and
// stopped for each no longer held. Stopping a collector finishes the
// messages in hand and disconnects without unsubscribing: the broker
// keeps the session and queues its share of the devices' messages for
// whichever instance holds the slot next. Every (re)connect of a
// collector is lease-gated: it asks held(k) first, and does not connect a
// slot that is not held (a paused instance whose lease lapsed, say, does
// not take the client id back when it resumes).
//
// A single instance does not use Sessions: it runs one MQTT collector
// under --mqtt-client-id.
type Sessions struct {
	held   func(slot int) bool
	newMQT func(slot int) *MQTT
	log    *slog.Logger

	mu      sync.Mutex
	want    map[int]int64         // the slots held, as Set last said; guarded by mu
	active  map[int]chan struct{} // slot → closed when its collector's Run returned; guarded by mu
	running map[int]*MQTT         // slot → its collector while it runs; guarded by mu
	changed chan struct{}         // Set was called; 1 buffered
	gauge   prometheus.Gauge      // the metrics' BrokerConnected

	brokerChecked atomic.Bool // a collector was told to check the broker
}

// NewSessions returns a runner of collectors built as NewMQTT builds one,
// from cfg (cfg.ClientID is the base of the slots' client ids), asking
// held before every connection attempt of slot k's collector (with the
// cluster: whether Membership.Owned(cluster.SetSessions) lists k).
func NewSessions(cfg MQTTConfig, held func(slot int) bool, intake *Intake, w *Writer, m *Metrics, log *slog.Logger) *Sessions {
	s := &Sessions{
		held:    held,
		log:     log.With("component", "mqtt-sessions"),
		want:    map[int]int64{},
		active:  map[int]chan struct{}{},
		running: map[int]*MQTT{},
		changed: make(chan struct{}, 1),
		gauge:   m.BrokerConnected,
	}
	// One device's messages reach all of this instance's sessions: they
	// share its rate limit.
	limits := newDeviceLimits(cfg.DeviceRate, cfg.DeviceBurst)
	s.newMQT = func(slot int) *MQTT {
		c := cfg
		c.ClientID = SessionClientID(cfg.ClientID, slot)
		col := NewMQTT(c, intake, w, m, log.With("slot", slot))
		col.limits = limits
		col.gate = func() bool { return held(slot) }
		col.report = s.report
		// One broker check (and its warning) per instance, not per slot.
		col.checked = s.brokerChecked.Swap(true)
		return col
	}
	return s
}

// held reports whether the collector may connect: always, unless it runs
// a session slot that is not held now.
func (c *MQTT) held() bool {
	if c.gate == nil || c.gate() {
		return true
	}
	c.log.Info("session slot not held; not connecting")
	return false
}

// Set makes the held session slots owned (slot → epoch, as
// Membership.Owned(cluster.SetSessions) gives them). It does not block:
// Run starts and stops the collectors.
func (s *Sessions) Set(owned map[int]int64) {
	s.mu.Lock()
	s.want = maps.Clone(owned)
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Active returns the slots whose collector runs, or is still stopping,
// sorted.
func (s *Sessions) Active() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.active))
}

// Run starts and stops collectors as Set says until ctx ends, then stops
// them all and returns once every one has (each within the collector's
// own bound). It returns nil, or the first error of a collector (TLS
// settings that cannot be loaded).
func (s *Sessions) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	stops := map[int]context.CancelFunc{} // the collectors started and not told to stop
	errs := make(chan error, 1)
	defer func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	}()
	for {
		select {
		case <-s.changed:
		case err := <-errs:
			return err
		case <-ctx.Done():
			return nil
		}
		s.mu.Lock()
		want := s.want
		s.mu.Unlock()
		for slot, stop := range stops {
			if _, ok := want[slot]; !ok {
				stop()
				delete(stops, slot)
				s.log.Info("session slot released; disconnecting", "slot", slot)
			}
		}
		for slot := range want {
			if _, ok := stops[slot]; ok {
				continue
			}
			slotCtx, stop := context.WithCancel(ctx)
			stops[slot] = stop
			wg.Go(func() {
				if err := s.run(slotCtx, slot); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			})
		}
	}
}

// run runs slot's collector until ctx ends, once the previous collector
// of that slot (one told to stop moments ago) has returned: two
// connections with one client id would take the session from each other.
func (s *Sessions) run(ctx context.Context, slot int) error {
	done := make(chan struct{})
	defer close(done)
	for {
		s.mu.Lock()
		prev, busy := s.active[slot]
		if !busy {
			s.active[slot] = done
		}
		s.mu.Unlock()
		if !busy {
			break
		}
		select {
		case <-prev:
		case <-ctx.Done():
			return nil
		}
	}
	col := s.newMQT(slot)
	s.mu.Lock()
	s.running[slot] = col
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.active, slot)
		delete(s.running, slot)
		s.mu.Unlock()
		s.report()
	}()
	s.log.Info("session slot held; connecting", "slot", slot)
	return col.Run(ctx)
}

// report sets BrokerConnected for the whole instance: 1 while every
// session collector it runs is connected and subscribed (and while it
// runs none), 0 while one is not. Each collector calls it when its
// connection changes, instead of setting the gauge to its own state,
// which would say whatever the last of them to change said.
func (s *Sessions) report() {
	s.mu.Lock()
	defer s.mu.Unlock() // so that an older state is never set after a newer one
	up := 1.0
	for _, c := range s.running {
		if !c.Connected() {
			up = 0
		}
	}
	s.gauge.Set(up)
}
