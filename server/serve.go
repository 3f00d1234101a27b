// Package server assembles the pipeline that `patientpulse serve` runs:
// the collectors, the writer, analysis, alerts, the staff API and the
// consoles, from one Config that the admin commands read too. The
// command, the benchmark and the simulation all start serve through it.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/api"
	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/cluster"
	"github.com/patientpulse/patientpulse/dashboards"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/notify"
	"github.com/patientpulse/patientpulse/registry"
)

// ConfigError marks errors in how serve is configured that only show
// once it runs (an on-call schedule naming unknown staff): the command
// exits as for a usage error.
type ConfigError struct{ Err error }

func (e ConfigError) Error() string { return e.Err.Error() }
func (e ConfigError) Unwrap() error { return e.Err }

// server is the running pipeline's parts.
type server struct {
	cfg    *Config
	log    *slog.Logger
	reg    *registry.Registry
	sink   *ingest.Influx
	writer *ingest.Writer
	mqtt   *ingest.MQTT // one instance's collector; nil with --mqtt=false or several instances
	// With several instances (a Postgres registry): the MQTT sessions
	// this instance holds, and the partition feed; nil otherwise.
	sessions *ingest.Sessions
	feed     *ingest.Feed
	probe    *registry.WriteProbe // whether the registry can write, for /readyz
	stored   atomic.Bool          // InfluxDB answered and the bucket exists
}

// Run runs serve with c (checked by Validate) until ctx ends, then stops
// in order: the collectors finish what they hold (acknowledging only
// what is stored), then the writer.
//
// Everything that does not need InfluxDB starts at once, so that serve
// starts degraded while InfluxDB or the broker is down: /healthz, the
// staff API and consoles (series answer 503), HTTPS ingest (503 with
// Retry-After while nothing can be stored), analysis (its rebuilds retry)
// and alerts. The MQTT collector connects only once InfluxDB has
// answered, so that the broker keeps the devices' messages meanwhile;
// see takeMQTT.
func Run(ctx context.Context, c *Config, log *slog.Logger) error {
	// Unlike the admin commands, serve creates its registry when there is
	// none: the first start of a deployment. It names the one it opened.
	reg, err := registry.Open(ctx, c.DSN())
	if err != nil {
		return err
	}
	defer reg.Close()
	log.Info("registry", "at", registry.Location(c.DSN()))
	if _, err := warnReservedDevices(ctx, reg, c, log); err != nil {
		return err
	}
	members, err := joinCluster(ctx, c, log)
	if err != nil {
		return err
	}
	if err := loadRota(ctx, c, reg, log); err != nil {
		return err
	}
	if err := useDevCertificate(c, log); err != nil {
		return err
	}
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := ingest.NewMetrics(promReg)
	s := &server{cfg: c, log: log, reg: reg, sink: ingest.NewInflux(c.Influx), probe: reg.WriteProbe(5 * time.Second)}
	defer s.sink.Close()
	s.writer = ingest.NewWriter(c.Writer, s.sink, log, metrics)
	intake := ingest.NewIntake(reg, c.DeviceTTL, c.Limits, metrics, log.With("component", "intake"))
	manager := alerts.NewManager(c.Alerts, reg, log.With("component", "alerts"), promReg)
	delivery, err := newDelivery(ctx, c, reg, members.Self(), log.With("component", "notify"), promReg)
	if err != nil {
		return err
	}
	if !c.Clustered() {
		if err := reg.ReleaseAllClaims(ctx); err != nil {
			return err
		}
	}
	evaluator := analysis.NewEvaluator(c.Analysis, reg, s.sink, log.With("component", "analysis"), promReg, manager.Transition)
	manager.SetMembership(members)
	own := newOwnership(members, log, promReg)
	own.onChange(evaluator.OwnershipChanged)
	own.onChange(manager.OwnershipChanged)
	own.onDeparted(func(ids []string) { go freeClaims(ctx, reg, delivery.Dispatcher, ids, log) })
	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	debugLn, err := listenDebug(c.DebugAddr)
	if err != nil {
		ln.Close()
		return err
	}
	c.Auth.Secure, c.Auth.Timezone, c.Auth.Locale = c.TLSCert != "", c.Timezone, c.Locale
	staffAuth := auth.New(reg, c.Auth, reg, log.With("component", "auth"), promReg)
	hub := notify.NewHub(c.Hub, staffAuth, manager, log.With("component", "hub"), promReg)
	manager.Deliver(delivery.router, func() { hub.Wake(); delivery.Wake() })
	deviceMQTT := c.DeviceMQTTURL
	if deviceMQTT == "" {
		deviceMQTT = c.MQTT.URL
	}
	summaries := &Summaries{Reg: reg, Src: s.sink, Analysis: c.Analysis, MQTT: c.MQTT, Owns: evaluator.Owns,
		Log: log.With("component", "summaries")}
	staffAPI := api.New(api.Config{Backfill: c.Limits.Backfill, Rota: c.Alerts.Rota, Links: delivery.links, Summaries: summaries,
		Devices:   Devices{Reg: reg, Config: c},
		Endpoints: api.DeviceEndpoints{MQTTURL: deviceMQTT, HTTPSURL: c.PublicURL + "/v1/ingest", SummaryURL: c.PublicURL + "/v1/device/summary"}, Location: c.Analysis.Location,
		MinWearHours: c.Analysis.MinWearHours},
		reg, staffAuth, s.sink, evaluator, manager, log.With("component", "api"))
	// Stored samples reach analysis (which takes only the patients it
	// acts for), the consoles and the patient lists: at once when alone;
	// with several instances through the partition feed, which every
	// instance hears, before the device is acknowledged.
	stored := func(patient string, points []ingest.Point) {
		evaluator.Feed(patient, points)
		hub.Sample(patient, points)
		staffAPI.Stored(patient, points)
	}
	switch {
	case c.Clustered():
		gated := &feedGated{Membership: members}
		evaluator.SetMembership(gated)
		s.feed = ingest.NewFeed(c.MQTT, members.Self(), members.PartitionOf, promReg, log)
		intake.OnStored(s.feed.Publish)
		s.feed.OnSubscribed(func() {
			if gated.subscribed() {
				evaluator.Reload() // what was published while the feed was down
			} else {
				evaluator.OwnershipChanged() // its partitions, from now on
			}
		})
		s.sessions = ingest.NewSessions(c.MQTT, func(slot int) bool {
			_, held := members.Owned(cluster.SetSessions)[slot]
			return held
		}, intake, s.writer, metrics, log)
		own.onChange(func() { s.sessions.Set(members.Owned(cluster.SetSessions)) })
	default:
		intake.OnStored(func(_ context.Context, patient string, points []ingest.Point) error {
			stored(patient, points)
			return nil
		})
		if c.MQTTOn {
			s.mqtt = ingest.NewMQTT(c.MQTT, intake, s.writer, metrics, log)
		}
	}
	mux := http.NewServeMux()
	collector := ingest.NewHTTP(c.HTTPIngest, intake, s.writer, metrics, log)
	mux.Handle("/v1/ingest", collector)
	mux.Handle(ingest.FHIRBase, collector)                // a Bundle
	mux.Handle(ingest.FHIRBase+"/Observation", collector) // one Observation
	staffAuth.Routes(mux)
	staffAPI.Routes(mux)
	mux.Handle("GET /v1/ws", staffAuth.Authenticate(hub))
	mux.Handle("/", dashboards.Handler())
	httpSrv := &http.Server{
		Handler:           s.routes(mux, promReg),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	httpSrv.RegisterOnShutdown(hub.Close) // websockets are hijacked: Shutdown does not close them

	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriter()
	var writerDone sync.WaitGroup
	writerDone.Go(func() { _ = s.writer.Run(writerCtx) })

	// The collectors stop together: when ctx ends, or when one fails.
	collectorsCtx, stopCollectors := context.WithCancel(ctx)
	defer stopCollectors()
	var collectors sync.WaitGroup
	errs := make([]error, 3)
	collectors.Go(func() {
		if errs[0] = s.takeMQTT(collectorsCtx, stored); errs[0] != nil {
			stopCollectors()
		}
	})
	collectors.Go(func() { errs[1] = s.serveHTTP(collectorsCtx, httpSrv, ln); stopCollectors() })
	if debugLn != nil {
		collectors.Go(func() { errs[2] = serveDebug(collectorsCtx, debugLn, log); stopCollectors() })
	}
	// Analysis, alerts and notify stop with the collectors (and stop
	// them if one fails to start): what analysis has not evaluated is
	// rebuilt from InfluxDB at the next start, and the alerts resume from
	// the recorded transitions.
	stagesCtx, stopStages := context.WithCancel(collectorsCtx)
	defer stopStages()
	var stages sync.WaitGroup
	stageErrs := make([]error, 11)
	stage := func(i int, run func(context.Context) error) {
		stages.Go(func() {
			if stageErrs[i] = run(stagesCtx); stageErrs[i] != nil {
				stopCollectors()
			}
		})
	}
	stage(0, evaluator.Run)
	stage(1, manager.Run)
	stage(2, delivery.Run)
	stage(3, hub.Run)
	purge := &purger{reg: reg, idle: c.Auth.IdleTimeout, maxAge: c.Auth.MaxAge, retention: c.Retention,
		interval: purgeInterval, log: log.With("component", "purge")}
	stage(4, purge.Run)
	stage(5, notify.NewDigester(manager, c.Analysis.Location, delivery.Wake, log.With("component", "digest")).Run)
	stage(6, own.Run)
	stage(9, func(ctx context.Context) error { watchRota(ctx, c.Alerts.Rota, reg, log, rotaPoll); return nil })
	if c.MQTTOn && c.Summaries {
		stage(10, summaries.Run) // each week's summaries, to the devices over MQTT
	}
	// Alert events committed by other instances wake this one's consoles
	// and deliveries (a no-op on SQLite).
	stage(7, func(ctx context.Context) error {
		return reg.Listen(ctx, func() { hub.Wake(); delivery.Wake() }, func(err error) {
			log.Warn("registry notifications lost; listening again", "err", err)
		})
	})
	// The membership outlives the stages: it gives its leases back only
	// once they have stopped acting for them.
	membersCtx, stopMembers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopMembers()
	var membersDone sync.WaitGroup
	membersDone.Go(func() { stageErrs[8] = runMembership(membersCtx, members, log) })
	log.Info("serving", "http", ln.Addr().String(), "tls", c.TLSCert != "", "mqtt", c.MQTTOn, "debug", c.DebugAddr)

	collectors.Wait()
	stopStages()
	stages.Wait()
	stopMembers()
	membersDone.Wait()
	stopWriter()
	writerDone.Wait()
	log.Info("stopped")
	return errors.Join(append(errs, stageErrs...)...)
}

// useDevCertificate points the TLS settings at the development
// certificate under <data-dir>/tls when --tls-self-signed asks for one.
func useDevCertificate(c *Config, log *slog.Logger) error {
	if !c.TLSSelfSigned {
		return nil
	}
	cert, key, fingerprint, err := DevCertificate(filepath.Join(c.DataDir, "tls"))
	if err != nil {
		return err
	}
	c.TLSCert, c.TLSKey = cert, key
	log.Warn("serving HTTPS with a self-signed development certificate", "sha256", fingerprint)
	return nil
}

// takeMQTT waits until InfluxDB answers and the bucket exists (a
// refused token or any other lasting problem ends serve), then, with
// --mqtt, makes sure of the pipeline's broker account and runs the MQTT
// collector (with several instances: the partition feed, which hands
// stored to every sample, and a collector per MQTT session held) until
// ctx ends. Until then the collector does not connect,
// so that the broker keeps the devices' messages in the pipeline's
// persistent session instead of handing them to a pipeline that cannot
// store them. Should InfluxDB go away later, the collector stays
// subscribed: the writer's bounds stop it taking more than
// --mqtt-max-inflight messages, the broker queues the rest, and
// unsubscribing would make the broker drop what arrives for a shared
// subscription no instance holds.
func (s *server) takeMQTT(ctx context.Context, stored func(string, []ingest.Point)) error {
	start := time.Now()
	err := s.untilReachable(ctx, "influxdb", ingest.ErrUnavailable, s.sink.EnsureBucket)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return err
	}
	s.stored.Store(true)
	s.log.Info("influxdb answers", "after", time.Since(start).Round(time.Millisecond))
	if s.mqtt == nil && s.sessions == nil {
		return nil
	}
	if s.cfg.BrokerAccounts {
		if err := s.ensurePipelineAccount(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	if s.sessions == nil {
		return s.mqtt.Run(ctx)
	}
	// Several instances: the partition feed (every instance hears every
	// partition's samples) and the MQTT sessions this instance holds.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var feedErr, sessionsErr error
	wg.Go(func() { feedErr = s.feed.Run(ctx, stored); stop() })
	wg.Go(func() { sessionsErr = s.sessions.Run(ctx); stop() })
	wg.Wait()
	return errors.Join(feedErr, sessionsErr)
}

// ensurePipelineAccount makes sure, with --broker-accounts, that the
// pipeline's own broker account (--mqtt-username) exists with its role.
// While the broker is unreachable it keeps trying (it may be starting next
// to us); a refused admin account or a foreign client of that name ends
// serve.
func (s *server) ensurePipelineAccount(ctx context.Context) error {
	return s.untilReachable(ctx, "broker accounts", ingest.ErrBrokerUnreachable, s.tryEnsurePipelineAccount)
}

// untilReachable runs try until it succeeds or fails with an error other
// than unreachable, waiting a little longer after each unreachable (200ms
// doubling to 2s: a service starting next to us, or coming back, is used
// within about two seconds of answering).
func (s *server) untilReachable(ctx context.Context, what string, unreachable error, try func(context.Context) error) error {
	for wait := 200 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		err := try(ctx)
		if err == nil || !errors.Is(err, unreachable) || ctx.Err() != nil {
			return err
		}
		s.log.Warn("service unreachable; retrying", "service", what, "err", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *server) tryEnsurePipelineAccount(ctx context.Context) error {
	accounts, err := ingest.DialBrokerAccounts(ctx, s.cfg.BrokerAdminConfig())
	if err != nil {
		return err
	}
	defer accounts.Close()
	if err := accounts.EnsurePipelineAccount(ctx, s.cfg.MQTT.Username, s.cfg.MQTT.Password); err != nil {
		return err
	}
	// Devices enrolled by an older patientpulse get the topics theirs
	// have now (their weekly summary); a failure is told, not fatal.
	devices, err := s.reg.ListDevices(ctx)
	var active []string
	for _, d := range devices {
		if d.Active() {
			active = append(active, d.ID)
		}
	}
	n := 0
	if err == nil {
		n, err = accounts.RefreshDeviceRoles(ctx, active)
	}
	if n > 0 {
		s.log.Info("device broker roles brought up to date", "devices", n)
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("device broker roles not brought up to date; the next start tries again", "err", err)
	}
	return nil
}

func (s *server) serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() {
		if s.cfg.TLSCert != "" {
			errc <- srv.ServeTLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	// In-flight requests finish: each waits at most http-write-wait.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.HTTPIngest.WriteWait+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// routes adds the operational endpoints to mux, which holds the /v1/
// ones, and gives every response the security headers.
func (s *server) routes(mux *http.ServeMux, promReg *prometheus.Registry) http.Handler {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(promReg, promhttp.HandlerOpts{}))
	return frontDoor(mux, s.cfg.TLSCert != "", s.cfg.Proxies)
}
