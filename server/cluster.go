package server

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/cluster"
	"github.com/patientpulse/patientpulse/notify"
	"github.com/patientpulse/patientpulse/registry"
)

// joinCluster returns who acts for what. With a Postgres registry (and
// --cluster) this instance joins the clinic's cluster (membership and
// leases in the same database); otherwise it is alone and owns everything.
func joinCluster(ctx context.Context, c *Config, log *slog.Logger) (cluster.Membership, error) {
	if !c.Clustered() {
		return cluster.NewSingle(c.Cluster), nil
	}
	m, err := cluster.Join(ctx, c.DB, c.Cluster, log) // which logs that it joined
	if err != nil {
		return nil, err
	}
	return m, nil
}

// ownership hands every change of what this instance owns to the stages
// that act on it: the MQTT sessions it holds, the partitions analysis and
// alerts act for.
type ownership struct {
	m         cluster.Membership
	listeners []func()
	departed  []func(ids []string)
	holders   map[string]bool // instances holding partitions at the last change
	log       *slog.Logger
	owned     *prometheus.GaugeVec
	members   prometheus.Gauge
}

func newOwnership(m cluster.Membership, log *slog.Logger, promReg prometheus.Registerer) *ownership {
	o := &ownership{
		m:   m,
		log: log.With("component", "cluster"),
		owned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "patientpulse_cluster_owned_slots",
			Help: "Slots this instance holds a lease on, by set (partitions of the patients, MQTT sessions).",
		}, []string{"set"}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patientpulse_cluster_members",
			Help: "Instances holding partitions at this instance's last heartbeat.",
		}),
	}
	promReg.MustRegister(o.owned, o.members)
	return o
}

// onChange adds fn to what is called, from Run's goroutine, on every
// change (and once at the start): fn must not block.
func (o *ownership) onChange(fn func()) { o.listeners = append(o.listeners, fn) }

// onDeparted adds fn to what is called, from Run's goroutine, with the
// instances that held partitions at the previous change and hold none
// now: they died, were paused past their leases or left (an instance's
// fair share is never 0 while there are no more instances than
// partitions). fn must not block.
func (o *ownership) onDeparted(fn func(ids []string)) { o.departed = append(o.departed, fn) }

// Run passes on the membership's changes until ctx ends.
func (o *ownership) Run(ctx context.Context) error {
	o.changed()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.m.Changes():
			o.changed()
		}
	}
}

func (o *ownership) changed() {
	parts, sessions := o.m.Owned(cluster.SetPartitions), o.m.Owned(cluster.SetSessions)
	o.owned.WithLabelValues(cluster.SetPartitions).Set(float64(len(parts)))
	o.owned.WithLabelValues(cluster.SetSessions).Set(float64(len(sessions)))
	holders := map[string]bool{}
	for p := range o.m.Partitions() {
		if id, ok := o.m.OwnerOf(cluster.SetPartitions, p); ok {
			holders[id] = true
		}
	}
	o.members.Set(float64(len(holders)))
	o.log.Info("ownership", "partitions", len(parts), "sessions", len(sessions), "members", len(holders))
	for _, fn := range o.listeners {
		fn()
	}
	var gone []string
	for id := range o.holders {
		if !holders[id] && id != o.m.Self() {
			gone = append(gone, id)
		}
	}
	o.holders = holders
	if len(gone) > 0 {
		slices.Sort(gone)
		for _, fn := range o.departed {
			fn(gone)
		}
	}
}

// freeClaims releases the delivery claims of the departed instances'
// dispatchers (each claims in its instance's member id), so that the
// pages they were attempting when they died are attempted again now, not
// when the claims run out (notify.Dispatcher.claimFor: 90 s by default).
func freeClaims(ctx context.Context, reg *registry.Registry, d *notify.Dispatcher, ids []string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := reg.ReleaseClaimsOf(ctx, ids)
	switch {
	case err != nil:
		log.Warn("cannot free the delivery claims of instances that left; they run out on their own", "instances", ids, "err", err)
	case n > 0:
		log.Info("freed the delivery claims of instances that left", "instances", ids, "claims", n)
		d.Wake()
	}
}

// runMembership heartbeats until ctx ends, then gives every lease back
// (a graceful leave: the others take over at once, not after the TTL).
func runMembership(ctx context.Context, m cluster.Membership, log *slog.Logger) error {
	err := m.Run(ctx)
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if cerr := m.Close(closeCtx); cerr != nil {
		log.Warn("leaving the cluster", "err", cerr)
	}
	return err
}

// feedGated is the membership as analysis sees it with several
// instances: it owns no partition until the partition feed is first
// subscribed, so that no sample stored between a partition's load from
// InfluxDB and the subscription is missed. Until then the lists answer
// for its patients from the registry, as for any other instance's.
type feedGated struct {
	cluster.Membership
	up atomic.Bool
}

func (g *feedGated) Owned(set string) map[int]int64 {
	if set == cluster.SetPartitions && !g.up.Load() {
		return map[int]int64{}
	}
	return g.Membership.Owned(set)
}

// subscribed says the feed is subscribed; it reports whether it was
// before (a resubscription, after which what was lost must be reloaded).
func (g *feedGated) subscribed() (again bool) { return g.up.Swap(true) }

// errNeedsBroker: several instances hand samples to each other over the
// broker.
var errNeedsBroker = errors.New("mqtt=false needs cluster=false with a postgres:// db: several instances hand samples to each other over the broker")
