package alerts

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// HubConfig sets up the websocket hub.
type HubConfig struct {
	// Origins are the origins (scheme://host[:port]) besides the server's
	// own from which a browser may connect.
	Origins   []string
	SendQueue int           // messages waiting for one client (one device message may bring 500 samples); a client that lets it fill is disconnected
	Ping      time.Duration // how often clients are pinged; one that does not answer within 2 pings is dropped
	Refresh   time.Duration // how often a client's patients (its care team) are read again
	// ChangePoll is how often the registry is asked for care-team and
	// credential changes made by another process (the admin commands);
	// those this process makes reach the hub at once.
	ChangePoll time.Duration
	// MaxSubscribe is the most patients one subscribe may name (after
	// repeats are removed); a larger one is refused.
	MaxSubscribe int
	// A client may send SubscribeBurst subscribes at once, then one every
	// SubscribeEvery; beyond, a subscribe is refused (answered, counted
	// and audited).
	SubscribeBurst int
	SubscribeEvery time.Duration
}

// DefaultHubConfig is the usual setup.
func DefaultHubConfig() HubConfig {
	return HubConfig{SendQueue: 1024, Ping: 25 * time.Second, Refresh: 30 * time.Second, ChangePoll: 2 * time.Second,
		MaxSubscribe: 1000, SubscribeBurst: 5, SubscribeEvery: 2 * time.Second}
}

// withDefaults fills the zero settings of c with the defaults.
func (c HubConfig) withDefaults() HubConfig {
	d := DefaultHubConfig()
	if c.ChangePoll <= 0 {
		c.ChangePoll = d.ChangePoll
	}
	if c.MaxSubscribe <= 0 {
		c.MaxSubscribe = d.MaxSubscribe
	}
	if c.SubscribeBurst <= 0 {
		c.SubscribeBurst = d.SubscribeBurst
	}
	if c.SubscribeEvery <= 0 {
		c.SubscribeEvery = d.SubscribeEvery
	}
	return c
}

// Hub is the websocket endpoint (GET /v1/ws) of the staff consoles: it
// greets each client with who they are and a snapshot of the active
// alerts they may see, then pushes every alert change, the samples of the
// patients they subscribe to, and each patient's status. Its inputs,
// Notify and Sample, are all another instance's hub would need: a message
// bus can feed them.
//
// A client sees a patient while the patient is in its scope (auth.Scope).
// The scope is read again every Refresh, and at once after a change of the
// client's care team or credentials: one this process makes (the API, via
// registry.OnAccessChange) before the call that made it returns, so that
// no sample of a patient taken from a clinician's care team reaches their
// console after that; one another process makes (the admin commands)
// within ChangePoll, read from the audit log by Run.
type Hub struct {
	cfg     HubConfig
	auth    *auth.Auth
	alerts  *Manager
	log     *slog.Logger
	upgrade websocket.Upgrader

	mu      sync.RWMutex
	clients map[*client]struct{}
	closed  bool

	clientsG  prometheus.Gauge
	evictions prometheus.Counter
	sent      *prometheus.CounterVec
	refused   *prometheus.CounterVec
}

// NewHub returns a hub; its metrics are registered with promReg when it
// is not nil. Mount it behind a.Authenticate.
func NewHub(cfg HubConfig, a *auth.Auth, alerts *Manager, log *slog.Logger, promReg prometheus.Registerer) *Hub {
	cfg = cfg.withDefaults()
	h := &Hub{cfg: cfg, auth: a, alerts: alerts, log: log, clients: map[*client]struct{}{},
		clientsG: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "patientpulse_ws_clients", Help: "Websocket clients connected.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_ws_evictions_total", Help: "Websocket clients disconnected for not keeping up.",
		}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_ws_messages_sent_total", Help: "Websocket messages queued for clients, by type.",
		}, []string{"type"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patientpulse_ws_refused_total",
			Help: "Websocket connections and requests refused, by reason (origin, subscribe_rate, subscribe_size, not_in_care).",
		}, []string{"reason"}),
	}
	h.upgrade = websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096, CheckOrigin: h.originAllowed}
	if promReg != nil {
		promReg.MustRegister(h.clientsG, h.evictions, h.sent, h.refused)
	}
	alerts.reg.OnAccessChange(h.accessChanged)
	return h
}

// Run reads the care-team and credential changes that other processes
// make, every ChangePoll, and applies them to the clients, until ctx
// ends. It returns nil then.
func (h *Hub) Run(ctx context.Context) error {
	last, _, err := h.alerts.reg.AccessChanges(ctx, 0)
	if err != nil {
		h.log.Warn("reading access changes failed", "err", err)
	}
	t := time.NewTicker(h.cfg.ChangePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		next, names, err := h.alerts.reg.AccessChanges(ctx, last)
		if err != nil {
			if ctx.Err() == nil {
				h.log.Warn("reading access changes failed", "err", err)
			}
			continue
		}
		if last > 0 {
			for _, name := range names {
				h.accessChanged(name)
			}
		}
		last = next
	}
}

// accessChanged marks the scope of every client of username as stale, so
// that the next sample or alert for them reads it again, and asks each to
// check its credentials and subscriptions. It does not block.
func (h *Hub) accessChanged(username string) {
	for _, c := range h.snapshot() {
		if c.who.Username != username {
			continue
		}
		c.mu.Lock()
		c.scopeGen++
		c.mu.Unlock()
		select {
		case c.recheck <- struct{}{}:
		default: // one is pending already
		}
	}
}

// refuse counts a refusal and writes it to the audit log, as made by who
// from address (bounded per staff member by auth.AuditStaffRefusal).
func (h *Hub) refuse(ctx context.Context, reason string, who *auth.Principal, address string, e registry.AuditEntry) {
	h.refused.WithLabelValues(reason).Inc()
	e.Action = registry.ActionAccessDenied
	h.auth.AuditStaffRefusal(ctx, who.Username, address, e)
}

// originAllowed accepts the server's own origin and the configured ones.
// A request without Origin is not from a browser.
func (h *Hub) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return slices.ContainsFunc(h.cfg.Origins, func(o string) bool { return strings.EqualFold(strings.TrimSuffix(o, "/"), origin) })
}

// ServeHTTP upgrades an authenticated request to a websocket.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	who, ok := auth.FromContext(r.Context())
	if !ok {
		httpx.Error(w, http.StatusUnauthorized, "sign in first")
		return
	}
	ctx := r.Context()
	address := httpx.ClientIP(r)
	if !h.originAllowed(r) {
		origin := r.Header.Get("Origin")
		h.refuse(ctx, "origin", who, address, registry.AuditEntry{Target: "GET /v1/ws: origin " + strconv.Quote(origin[:min(len(origin), 100)])})
		httpx.Error(w, http.StatusForbidden, "this origin may not connect")
		return
	}
	scope, err := h.auth.Scope(ctx, who)
	if err != nil {
		httpx.Error(w, http.StatusServiceUnavailable, "cannot read your patients now: try again")
		return
	}
	active, err := h.alerts.Active(ctx)
	if err != nil {
		httpx.Error(w, http.StatusServiceUnavailable, "cannot read the alerts now: try again")
		return
	}
	snap := []Alert{}
	audited := map[string]bool{}
	actx := registry.WithActor(ctx, registry.Actor{Name: who.Username, Address: address})
	for _, a := range active {
		if !scope.Includes(a.Patient) {
			continue
		}
		snap = append(snap, a)
		if !audited[a.Patient] {
			audited[a.Patient] = true
			if err := h.alerts.reg.Audit(actx, registry.AuditEntry{Action: registry.ActionPatientRead, Patient: a.Patient,
				Target: "websocket snapshot"}); err != nil {
				httpx.Error(w, http.StatusServiceUnavailable, "cannot record this access now: try again")
				return
			}
		}
	}
	conn, err := h.upgrade.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := &client{hub: h, conn: conn, who: who, address: address, send: make(chan []byte, h.cfg.SendQueue),
		done: make(chan struct{}), recheck: make(chan struct{}, 1),
		scope: scope, scoped: time.Now(), subs: map[string]bool{}, tokens: float64(h.cfg.SubscribeBurst), tokensAt: time.Now()}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		conn.Close()
		return
	}
	h.clients[c] = struct{}{}
	h.clientsG.Set(float64(len(h.clients)))
	h.mu.Unlock()

	patients, _ := h.visiblePatients(ctx, who, scope, active)
	c.queue("hello", helloMsg{Type: "hello", Username: who.Username, Role: who.Role, Patients: patients})
	c.queue("snapshot", snapshotMsg{Type: "snapshot", Alerts: snap})
	go c.writeLoop()
	c.readLoop(context.WithoutCancel(ctx))
}

// visiblePatients lists the patients the staff member may subscribe to.
func (h *Hub) visiblePatients(ctx context.Context, who *auth.Principal, scope auth.Scope, active []Alert) ([]string, error) {
	var out []string
	if scope.All() {
		ps, err := h.alerts.reg.ListPatients(ctx)
		if err != nil {
			return []string{}, err
		}
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out, nil
	}
	if who.Role == registry.RoleClinician {
		return h.alerts.reg.AssignedPatients(ctx, who.Username)
	}
	for _, a := range active {
		out = append(out, a.Patient)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Notify pushes an alert change to every client that may see its patient,
// and the patient's status with it.
func (h *Hub) Notify(ev Event) {
	status := h.status(ev.Alert.Patient)
	for _, c := range h.snapshot() {
		// On-call staff see the patients behind active alerts: every
		// active alert, and the end of one they saw.
		onCall := c.who.Role == registry.RoleOnCall && (ev.Alert.Active() || ev.Change == ChangeResolved)
		if onCall || c.sees(ev.Alert.Patient) {
			c.queue("alert", alertMsg{Type: "alert", Event: ev})
			if status != "" {
				c.queue("patient_status", statusMsg{Type: "patient_status", Patient: ev.Alert.Patient, Status: status})
			}
		}
	}
}

// status is the patient's worst active alert: critical, attention
// (warning or info) or fine; "" when it cannot be read.
func (h *Hub) status(patient string) string {
	rows, err := h.alerts.reg.Alerts(context.Background(), registry.AlertFilter{Patient: patient,
		States: []string{registry.AlertFiring, registry.AlertAcknowledged}})
	if err != nil {
		return ""
	}
	status := "fine"
	for _, r := range rows {
		if r.Severity == "critical" {
			return "critical"
		}
		status = "attention"
	}
	return status
}

// Sample pushes a patient's stored points to the clients subscribed to
// them. It never blocks.
func (h *Hub) Sample(patient string, points []ingest.Point) {
	var targets []*client
	for _, c := range h.snapshot() {
		c.mu.Lock()
		subscribed := c.subs[patient]
		c.mu.Unlock()
		if subscribed && c.sees(patient) { // the care team may have changed since
			targets = append(targets, c)
		}
	}
	if len(targets) == 0 {
		return
	}
	for _, p := range points {
		msg := sampleMsg{Type: "sample", Patient: patient, Measurement: p.Measurement, Time: p.Time, Fields: map[string]float64{}}
		for _, t := range p.Tags {
			if msg.Tags == nil {
				msg.Tags = map[string]string{}
			}
			msg.Tags[t.Key] = t.Value
		}
		for _, f := range p.Fields {
			msg.Fields[f.Key] = f.Value
		}
		for _, c := range targets {
			c.queue("sample", msg)
		}
	}
}

func (h *Hub) snapshot() []*client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	cs := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		cs = append(cs, c)
	}
	return cs
}

// Close says goodbye to every client (close code 1001, going away) and
// refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	cs := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		cs = append(cs, c)
	}
	h.mu.Unlock()
	for _, c := range cs {
		c.close(websocket.CloseGoingAway, "server shutting down")
	}
}

// ActionError is the sentence for a staff action that failed; it names no
// patient.
func ActionError(err error) string {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return "no such alert"
	case errors.Is(err, auth.ErrForbidden):
		return "this alert's patient is not in your care"
	case errors.Is(err, ErrNotActive), errors.Is(err, ErrAcked), errors.Is(err, registry.ErrConflict), IsBadRequest(err):
		return err.Error()
	}
	return "cannot do that now: try again"
}
