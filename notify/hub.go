package notify

import (
	"context"
	"encoding/json"
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

	"github.com/patientpulse/patientpulse/alerts"
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
	SendQueue int           // messages waiting for one client (a device message's samples, up to 500, are one); a client that lets it fill is disconnected
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
	// Samples is how many stored device messages' points may wait for
	// Run to fan them out; beyond, the live feed drops them (counted:
	// they are stored, and a chart reads them on its next load).
	Samples int
	// SampleLinger is how long a client's writer holds live samples for
	// more to join them in one write (fewer, larger writes: less CPU per
	// sample); alert messages are never held. 0: not at all.
	SampleLinger time.Duration
}

// DefaultHubConfig is the usual setup.
func DefaultHubConfig() HubConfig {
	return HubConfig{SendQueue: 1024, Ping: 25 * time.Second, Refresh: 30 * time.Second, ChangePoll: 2 * time.Second,
		MaxSubscribe: 1000, SubscribeBurst: 5, SubscribeEvery: 2 * time.Second, Samples: 4096, SampleLinger: 20 * time.Millisecond}
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
	if c.Samples <= 0 {
		c.Samples = d.Samples
	}
	return c
}

// Hub is the websocket endpoint (GET /v1/ws) of the staff consoles: it
// greets each client with who they are and a snapshot of the active
// alerts they may see, then pushes every alert change, the samples of the
// patients they subscribe to, and each patient's status. It reads the
// alert changes from the registry's outbox (woken at once by Wake after a
// change in this process, within ChangePoll after one in another), and
// takes samples from Sample without blocking; Run fans both out, so that
// neither the alert manager nor ingest ever waits on the registry or a
// console for it.
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
	alerts  *alerts.Manager
	reg     *registry.Registry
	log     *slog.Logger
	upgrade websocket.Upgrader
	// accessFrom is the audit log's last id when the hub was made
	// (accessKnown: it could be read), where pollAccess starts.
	accessFrom  int64
	accessKnown bool
	wake        chan struct{}    // buffered: an alert change is in the outbox
	samples     chan sampleBatch // stored points waiting to be fanned out

	mu      sync.RWMutex
	clients map[*client]struct{}
	closed  bool

	// pushMu orders the alert pushes with consoles joining: a console's
	// snapshot, and the events pushed while it was read (kept by its
	// joiner), are queued under it, before any later event.
	pushMu  sync.Mutex
	joiners map[*joiner]struct{} // guarded by pushMu

	afterSnapshot func() // tests: runs between a joining console's snapshot and its joining

	clientsG  prometheus.Gauge
	evictions prometheus.Counter
	sent      *prometheus.CounterVec
	refused   *prometheus.CounterVec
	dropped   prometheus.Counter
}

type sampleBatch struct {
	patient string
	points  []ingest.Point
}

// NewHub returns a hub; its metrics are registered with promReg when it
// is not nil. Mount it behind a.Authenticate.
func NewHub(cfg HubConfig, a *auth.Auth, manager *alerts.Manager, log *slog.Logger, promReg prometheus.Registerer) *Hub {
	cfg = cfg.withDefaults()
	h := &Hub{cfg: cfg, auth: a, alerts: manager, reg: manager.Registry(), log: log, clients: map[*client]struct{}{},
		wake: make(chan struct{}, 1), samples: make(chan sampleBatch, cfg.Samples),
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
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "patientpulse_ws_samples_dropped_total",
			Help: "Stored device messages whose points the live feed dropped because consoles fell behind (they stay stored).",
		}),
	}
	h.upgrade = websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096, CheckOrigin: h.originAllowed}
	if promReg != nil {
		promReg.MustRegister(h.clientsG, h.evictions, h.sent, h.refused, h.dropped)
	}
	h.reg.OnAccessChange(h.accessChanged)
	// Where the audit log stands before any client can connect: every
	// change after it that another process makes reaches the clients
	// (pollAccess), however late Run starts polling.
	var err error
	if h.accessFrom, _, err = h.reg.AccessChanges(context.Background(), 0); err != nil {
		log.Warn("reading access changes failed; polled from Run's start", "err", err)
	} else {
		h.accessKnown = true
	}
	return h
}

// Wake tells the hub an alert change is in the outbox. It never blocks.
func (h *Hub) Wake() {
	select {
	case h.wake <- struct{}{}:
	default: // one is pending already
	}
}

// Run fans out alert changes from the outbox and stored samples, and
// applies the care-team and credential changes other processes make, until
// ctx ends. It returns nil then.
func (h *Hub) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { h.fanSamples(ctx) })
	wg.Go(func() { h.pollAccess(ctx) })
	h.fanEvents(ctx)
	return nil
}

// fanEvents pushes each alert change of the outbox, in order, from the
// first written after it starts.
func (h *Hub) fanEvents(ctx context.Context) {
	last := int64(-1) // not read yet
	t := time.NewTicker(h.cfg.ChangePoll)
	defer t.Stop()
	for {
		if last < 0 {
			var err error
			if last, err = h.reg.LastOutboxEvent(ctx); err != nil {
				last = -1
				if ctx.Err() == nil {
					h.log.Warn("reading the outbox failed; retrying", "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
		case <-t.C:
		}
		if last < 0 {
			continue
		}
		for {
			evs, err := h.reg.OutboxEvents(ctx, last, 500)
			if err != nil {
				if ctx.Err() == nil {
					h.log.Warn("reading the outbox failed", "err", err)
				}
				break
			}
			for _, e := range evs {
				last = e.ID
				if ev, ok := alertEvent(e); ok {
					h.push(e.ID, ev)
				}
			}
			if len(evs) < 500 {
				break
			}
		}
	}
}

// alertEvent decodes an outbox event of an alert.
func alertEvent(e registry.OutboxEvent) (alerts.Event, bool) {
	var ev alerts.Event
	if e.AlertID == 0 || json.Unmarshal(e.Body, &ev) != nil {
		return ev, false
	}
	ev.Alert.ID = e.AlertID // an opening's event is written before its alert has an id
	return ev, true
}

// fanSamples pushes the samples Sample queued.
func (h *Hub) fanSamples(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-h.samples:
			for _, b := range h.queued(b) {
				h.pushSamples(b.patient, b.points)
			}
		}
	}
}

// queued returns b and the batches queued behind it now, up to Samples
// in all (an InfluxDB write stores hundreds of device messages at once),
// each patient's points in one batch, in the order they came.
func (h *Hub) queued(b sampleBatch) []sampleBatch {
	out := []sampleBatch{b}
	var at map[string]int // a patient's batch in out
	var own map[string]bool
	for range h.cfg.Samples - 1 {
		select {
		case b := <-h.samples:
			if at == nil {
				at, own = map[string]int{out[0].patient: 0}, map[string]bool{}
			}
			i, ok := at[b.patient]
			switch {
			case !ok:
				at[b.patient] = len(out)
				out = append(out, b)
			case !own[b.patient]: // copy: never append into Sample's caller's array
				out[i].points, own[b.patient] = append(slices.Clip(out[i].points), b.points...), true
			default:
				out[i].points = append(out[i].points, b.points...)
			}
		default:
			return out
		}
	}
	return out
}

// pollAccess reads the care-team and credential changes that other
// processes make, every ChangePoll, and applies them to the clients.
func (h *Hub) pollAccess(ctx context.Context) {
	last := h.accessFrom
	if !h.accessKnown {
		var err error
		if last, _, err = h.reg.AccessChanges(ctx, 0); err != nil {
			h.log.Warn("reading access changes failed", "err", err)
		}
	}
	t := time.NewTicker(h.cfg.ChangePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next, names, err := h.reg.AccessChanges(ctx, last)
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
	// The snapshot holds every change up to the outbox's last event at
	// least (ids are given in commit order): the console gets no older
	// one, even if this hub pushes it later, and every later one, after
	// the snapshot (those pushed while it is read are kept by the joiner
	// meanwhile). A later change that the snapshot holds already comes
	// again, in order, so the console ends where the alert is.
	j := h.join()
	defer h.leave(j)
	last, err := h.reg.LastOutboxEvent(ctx)
	if err != nil {
		httpx.Error(w, http.StatusServiceUnavailable, "cannot read the alerts now: try again")
		return
	}
	active, err := h.alerts.Active(ctx)
	if err != nil {
		httpx.Error(w, http.StatusServiceUnavailable, "cannot read the alerts now: try again")
		return
	}
	snap := []alerts.Alert{}
	audited := map[string]bool{}
	actx := registry.WithActor(ctx, registry.Actor{Name: who.Username, Address: address})
	for _, a := range active {
		if !scope.Includes(a.Patient) {
			continue
		}
		snap = append(snap, a)
		if !audited[a.Patient] {
			audited[a.Patient] = true
			if err := h.reg.Audit(actx, registry.AuditEntry{Action: registry.ActionPatientRead, Patient: a.Patient,
				Target: "websocket snapshot"}); err != nil {
				httpx.Error(w, http.StatusServiceUnavailable, "cannot record this access now: try again")
				return
			}
		}
	}
	if err := h.alerts.WithNotes(ctx, snap); err != nil {
		httpx.Error(w, http.StatusServiceUnavailable, "cannot read the alerts now: try again")
		return
	}
	if h.afterSnapshot != nil {
		h.afterSnapshot()
	}
	cw := &corkingWriter{ResponseWriter: w}
	conn, err := h.upgrade.Upgrade(cw, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := &client{hub: h, conn: conn, corked: cw.conn, who: who, address: address, send: make(chan outgoing, h.cfg.SendQueue),
		done: make(chan struct{}), recheck: make(chan struct{}, 1), after: last,
		scope: scope, scoped: time.Now(), subs: map[string]bool{}, tokens: float64(h.cfg.SubscribeBurst), tokensAt: time.Now()}
	patients, _ := h.visiblePatients(ctx, who, scope, active)
	h.pushMu.Lock()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.pushMu.Unlock()
		conn.Close()
		return
	}
	h.clients[c] = struct{}{}
	h.clientsG.Set(float64(len(h.clients)))
	h.mu.Unlock()
	c.queue("hello", helloMsg{Type: "hello", Username: who.Username, Role: who.Role, Patients: patients})
	c.queue("snapshot", snapshotMsg{Type: "snapshot", Alerts: snap})
	for _, e := range j.events {
		if e.id > last {
			c.pushAlert(e.ev, e.status)
		}
	}
	delete(h.joiners, j)
	h.pushMu.Unlock()
	go c.writeLoop()
	c.readLoop(context.WithoutCancel(ctx))
}

// visiblePatients lists the patients the staff member may subscribe to.
func (h *Hub) visiblePatients(ctx context.Context, who *auth.Principal, scope auth.Scope, active []alerts.Alert) ([]string, error) {
	var out []string
	if scope.All() {
		ps, err := h.reg.ListPatients(ctx)
		if err != nil {
			return []string{}, err
		}
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out, nil
	}
	if who.Role == registry.RoleClinician {
		return h.reg.AssignedPatients(ctx, who.Username)
	}
	for _, a := range active {
		out = append(out, a.Patient)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// joiner keeps the alert changes pushed while a joining console's
// snapshot is read: those the snapshot is too old to hold follow it.
type joiner struct{ events []pushed }

// pushed is an alert change as push sent it: its outbox event's id, and
// the patient's status then.
type pushed struct {
	id     int64
	ev     alerts.Event
	status string
}

// push sends an alert change (outbox event id) to every client that may
// see its patient, and the patient's status with it, and keeps it for
// the consoles joining.
func (h *Hub) push(id int64, ev alerts.Event) {
	status := h.status(ev.Alert.Patient)
	h.pushMu.Lock()
	defer h.pushMu.Unlock()
	for j := range h.joiners {
		j.events = append(j.events, pushed{id, ev, status})
	}
	for _, c := range h.snapshot() {
		if id > c.after {
			c.pushAlert(ev, status)
		}
	}
}

// pushAlert queues an alert change, and the patient's status ("": not
// known) with it, when c may see it.
func (c *client) pushAlert(ev alerts.Event, status string) {
	// On-call staff see the patients behind active alerts: every active
	// alert, and the end of one they saw.
	onCall := c.who.Role == registry.RoleOnCall && (ev.Alert.Active() || ev.Change == alerts.ChangeResolved)
	if onCall || c.sees(ev.Alert.Patient) {
		c.queue("alert", alertMsg{Type: "alert", Event: ev})
		if status != "" {
			c.queue("patient_status", statusMsg{Type: "patient_status", Patient: ev.Alert.Patient, Status: status})
		}
	}
}

// join starts keeping the alert changes pushed from now on, for a
// console whose snapshot is about to be read; leave stops it.
func (h *Hub) join() *joiner {
	j := &joiner{}
	h.pushMu.Lock()
	defer h.pushMu.Unlock()
	if h.joiners == nil {
		h.joiners = map[*joiner]struct{}{}
	}
	h.joiners[j] = struct{}{}
	return j
}

func (h *Hub) leave(j *joiner) {
	h.pushMu.Lock()
	defer h.pushMu.Unlock()
	delete(h.joiners, j)
}

// status is the patient's worst active alert: critical, attention
// (warning or info) or fine; "" when it cannot be read.
func (h *Hub) status(patient string) string {
	rows, err := h.reg.Alerts(context.Background(), registry.AlertFilter{Patient: patient,
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

// Sample queues a patient's stored points for the clients subscribed to
// them. It never blocks: when the queue is full the points are left out
// of the live feed, and counted.
func (h *Hub) Sample(patient string, points []ingest.Point) {
	select {
	case h.samples <- sampleBatch{patient, points}:
	default:
		h.dropped.Inc()
	}
}

// pushSamples sends a patient's stored points to the clients subscribed
// to them: one samples message to those that asked for batches, a sample
// message a point to the others; each message is encoded once for all.
func (h *Hub) pushSamples(patient string, points []ingest.Point) {
	var batch, single []*client
	for _, c := range h.snapshot() {
		c.mu.Lock()
		subscribed, batched := c.subs[patient], c.batch
		c.mu.Unlock()
		if !subscribed || !c.sees(patient) { // the care team may have changed since
			continue
		}
		if batched {
			batch = append(batch, c)
		} else {
			single = append(single, c)
		}
	}
	if len(batch)+len(single) == 0 {
		return
	}
	if len(batch) > 0 {
		b := appendSamples(make([]byte, 0, 64+128*len(points)), patient, points)
		for _, c := range batch {
			c.queueEncoded("samples", b)
		}
	}
	if len(single) > 0 {
		for _, p := range points {
			b := appendSample(nil, patient, p)
			for _, c := range single {
				c.queueEncoded("sample", b)
			}
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
