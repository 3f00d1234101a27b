package alerts

import (
	"context"
	"encoding/json"
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

// Messages, server to client.
type (
	helloMsg struct {
		Type     string        `json:"type"` // hello
		Username string        `json:"username"`
		Role     registry.Role `json:"role"`
		Patients []string      `json:"patients"` // whom you may see and subscribe to
	}
	snapshotMsg struct {
		Type   string  `json:"type"` // snapshot
		Alerts []Alert `json:"alerts"`
	}
	alertMsg struct {
		Type string `json:"type"` // alert
		Event
	}
	sampleMsg struct {
		Type        string             `json:"type"` // sample
		Patient     string             `json:"patient"`
		Measurement string             `json:"measurement"`
		Time        time.Time          `json:"time"`
		Tags        map[string]string  `json:"tags,omitempty"`
		Fields      map[string]float64 `json:"fields"`
	}
	statusMsg struct {
		Type    string `json:"type"` // patient_status
		Patient string `json:"patient"`
		Status  string `json:"status"` // fine, attention or critical
	}
	errorMsg struct {
		Type    string `json:"type"` // error
		Request string `json:"request,omitempty"`
		Error   string `json:"error"`
	}
	ackedMsg struct {
		Type    string `json:"type"` // acked
		AlertID int64  `json:"alert_id"`
	}
	subscribedMsg struct {
		Type     string   `json:"type"` // subscribed
		Patients []string `json:"patients"`
	}
)

// request is what a client sends.
type request struct {
	Type     string   `json:"type"` // subscribe or ack
	Patients []string `json:"patients"`
	AlertID  int64    `json:"alert_id"`
	Note     string   `json:"note"`
}

// client is one connected console.
type client struct {
	hub     *Hub
	conn    *websocket.Conn
	who     *auth.Principal
	address string // the client's IP address, for the audit log
	send    chan []byte
	done    chan struct{} // closed when the client goes
	recheck chan struct{} // its access changed: check credentials and scope (Hub.accessChanged)

	mu       sync.Mutex
	scope    auth.Scope // guarded by mu, as are the fields below
	scoped   time.Time  // when scope was read
	scopeGen int        // changes of access seen: a scope read before the latest is stale
	readGen  int        // the scopeGen scope was read at
	subs     map[string]bool
	evicted  bool
	tokens   float64   // subscribes the client may still send now
	tokensAt time.Time // when tokens was reckoned
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

// sees reports whether the patient is in the client's scope, read again
// every Refresh.
func (c *client) sees(patient string) bool {
	return c.currentScope().Includes(patient)
}

// currentScope returns the client's scope, reading it again when it is
// older than Refresh or its access has changed since (without holding the
// client's lock meanwhile). A scope that cannot be read again while its
// access has changed is empty: a change may have taken patients away.
func (c *client) currentScope() auth.Scope {
	c.mu.Lock()
	scope, gen := c.scope, c.scopeGen
	changed := c.readGen != gen
	stale := changed || time.Since(c.scoped) > c.hub.cfg.Refresh
	c.mu.Unlock()
	if !stale {
		return scope
	}
	s, err := c.hub.auth.Scope(context.Background(), c.who)
	if err != nil {
		if changed {
			return auth.Scope{}
		}
		return scope
	}
	c.mu.Lock()
	if c.scopeGen == gen { // no change came in while reading
		c.scope, c.scoped, c.readGen = s, time.Now(), gen
	}
	c.mu.Unlock()
	return s
}

// refreshAccess checks the client's credentials and scope after a change
// of its access, and drops the subscriptions it may no longer have.
func (c *client) refreshAccess() bool {
	if !c.stillValid() {
		return false
	}
	scope := c.currentScope()
	c.mu.Lock()
	for p := range c.subs {
		if !scope.Includes(p) {
			delete(c.subs, p)
		}
	}
	c.mu.Unlock()
	return true
}

// queue hands a message to the client's writer; a client whose queue is
// full is disconnected rather than allowed to hold anything up.
func (c *client) queue(typ string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	select {
	case c.send <- b:
		c.hub.sent.WithLabelValues(typ).Inc()
	case <-c.done:
	default:
		c.mu.Lock()
		first := !c.evicted
		c.evicted = true
		c.mu.Unlock()
		if first {
			c.hub.evictions.Inc()
			c.hub.log.Info("websocket client too slow: disconnected", "role", c.who.Role)
			go c.close(websocket.ClosePolicyViolation, "too slow: reconnect to get a snapshot")
		}
	}
}

// close ends the client once, with a close frame when it can.
func (c *client) close(code int, reason string) {
	c.hub.mu.Lock()
	_, present := c.hub.clients[c]
	delete(c.hub.clients, c)
	c.hub.clientsG.Set(float64(len(c.hub.clients)))
	c.hub.mu.Unlock()
	if !present {
		return
	}
	close(c.done)
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	c.conn.Close()
}

// writeLoop sends queued messages and pings.
func (c *client) writeLoop() {
	ping := time.NewTicker(c.hub.cfg.Ping)
	defer ping.Stop()
	recheck := time.NewTicker(c.hub.cfg.Refresh)
	defer recheck.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-recheck.C:
			if !c.stillValid() {
				return
			}
		case <-c.recheck:
			if !c.refreshAccess() {
				return
			}
		case b := <-c.send:
			_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				c.close(websocket.CloseAbnormalClosure, "")
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second)); err != nil {
				c.close(websocket.CloseAbnormalClosure, "")
				return
			}
		}
	}
}

// stillValid checks the client's credentials (its session or token, its
// account) and ends the connection when they no longer hold: a sign-out,
// an ended session or a disabled account closes the console within
// Refresh.
func (c *client) stillValid() bool {
	err := c.hub.auth.Revalidate(context.Background(), c.who)
	if err == nil {
		return true
	}
	if errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrDisabled) || errors.Is(err, auth.ErrSessionEnded) {
		c.close(websocket.ClosePolicyViolation, "signed out: sign in again")
		return false
	}
	return true // the registry is busy: try again at the next check
}

// readLoop handles the client's requests until it goes.
func (c *client) readLoop(ctx context.Context) {
	defer c.close(websocket.CloseNormalClosure, "")
	// Room for a subscribe of MaxSubscribe ids of the longest kind (64 bytes, quoted, a comma).
	c.conn.SetReadLimit(int64(c.hub.cfg.MaxSubscribe)*(64+3) + 4<<10)
	deadline := func() { _ = c.conn.SetReadDeadline(time.Now().Add(2*c.hub.cfg.Ping + 10*time.Second)) }
	deadline()
	c.conn.SetPongHandler(func(string) error { deadline(); return nil })
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		deadline()
		if !c.stillValid() {
			return
		}
		var req request
		if err := json.Unmarshal(data, &req); err != nil {
			c.queue("error", errorMsg{Type: "error", Error: "a request is a JSON object with a type"})
			continue
		}
		switch req.Type {
		case "subscribe":
			c.subscribe(ctx, req.Patients)
		case "ack":
			c.ack(ctx, req)
		default:
			c.queue("error", errorMsg{Type: "error", Request: req.Type, Error: "unknown request: want subscribe or ack"})
		}
	}
}

// allowSubscribe takes one of the client's subscribe tokens: it has
// SubscribeBurst, and gets one back every SubscribeEvery.
func (c *client) allowSubscribe(now time.Time) bool {
	cfg := c.hub.cfg
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tokens = min(float64(cfg.SubscribeBurst), c.tokens+float64(now.Sub(c.tokensAt))/float64(cfg.SubscribeEvery))
	c.tokensAt = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// subscribe replaces the client's subscriptions, if it may see every
// patient asked for (repeats count once). It writes one audit entry: the
// read, naming the patients, or the refusal. A client that subscribes too
// often, or names more than MaxSubscribe patients, is refused.
func (c *client) subscribe(ctx context.Context, patients []string) {
	refuse := func(reason, target, msg string) {
		c.hub.refuse(ctx, reason, c.who, c.address, registry.AuditEntry{Target: target})
		c.queue("error", errorMsg{Type: "error", Request: "subscribe", Error: msg})
	}
	if !c.allowSubscribe(time.Now()) {
		refuse("subscribe_rate", "websocket subscribe: too often",
			"too many subscribe requests: wait "+c.hub.cfg.SubscribeEvery.String()+" and try again")
		return
	}
	ids := slices.Clone(patients)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if max := c.hub.cfg.MaxSubscribe; len(ids) > max {
		refuse("subscribe_size", "websocket subscribe: "+strconv.Itoa(len(ids))+" patients",
			"at most "+strconv.Itoa(max)+" patients in one subscribe")
		return
	}
	actx := registry.WithActor(ctx, registry.Actor{Name: c.who.Username, Address: c.address})
	c.mu.Lock()
	c.scoped = time.Time{} // read the scope afresh
	c.mu.Unlock()
	scope := c.currentScope()
	for _, p := range ids {
		if !scope.Includes(p) {
			c.hub.refuse(actx, "not_in_care", c.who, c.address, registry.AuditEntry{Patient: p, Target: "websocket subscribe"})
			c.queue("error", errorMsg{Type: "error", Request: "subscribe", Error: "patient " + p + " is not in your care"})
			return
		}
	}
	if len(ids) > 0 {
		e := registry.AuditEntry{Action: registry.ActionPatientRead, Target: "websocket samples"}
		if len(ids) == 1 {
			e.Patient = ids[0]
		} else {
			e.Target = "websocket samples of " + strconv.Itoa(len(ids)) + " patients: " + strings.Join(ids, ",")
		}
		if err := c.hub.alerts.reg.Audit(actx, e); err != nil {
			c.queue("error", errorMsg{Type: "error", Request: "subscribe", Error: "cannot record this access now: try again"})
			return
		}
	}
	c.mu.Lock()
	c.subs = map[string]bool{}
	for _, p := range ids {
		c.subs[p] = true
	}
	c.mu.Unlock()
	c.queue("subscribed", subscribedMsg{Type: "subscribed", Patients: ids})
}

// ack acknowledges an alert the client may see.
func (c *client) ack(ctx context.Context, req request) {
	actx := registry.WithActor(ctx, registry.Actor{Name: c.who.Username, Address: c.address})
	a, _, err := c.hub.alerts.Get(actx, req.AlertID)
	if err == nil {
		if err = c.hub.auth.Check(actx, c.who, auth.HandleAlert, a.Patient); errors.Is(err, auth.ErrForbidden) {
			c.hub.refuse(actx, "not_in_care", c.who, c.address, registry.AuditEntry{Patient: a.Patient, Target: "websocket ack"})
		}
	}
	if err == nil {
		_, err = c.hub.alerts.Ack(actx, req.AlertID, c.who.Username, req.Note)
	}
	if err != nil {
		c.queue("error", errorMsg{Type: "error", Request: "ack", Error: ActionError(err)})
		return
	}
	c.queue("acked", ackedMsg{Type: "acked", AlertID: req.AlertID})
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
