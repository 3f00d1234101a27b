package notify

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/registry"
)

// Messages, server to client; the samples and sample messages of the
// live feed are written by appendSamples and appendSample.
type (
	helloMsg struct {
		Type     string        `json:"type"` // hello
		Username string        `json:"username"`
		Role     registry.Role `json:"role"`
		Patients []string      `json:"patients"` // whom you may see and subscribe to
	}
	snapshotMsg struct {
		Type   string         `json:"type"` // snapshot
		Alerts []alerts.Alert `json:"alerts"`
	}
	alertMsg struct {
		Type string `json:"type"` // alert
		alerts.Event
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
	Batch    bool     `json:"batch"` // subscribe: a device message's points in one samples message, not a sample message each
}

// client is one connected console of the Hub: its websocket, its scope
// and subscriptions, and the loops that read its requests and write its
// messages.
type client struct {
	hub     *Hub
	conn    *websocket.Conn
	corked  *corkConn // conn's connection
	who     *auth.Principal
	address string        // the client's IP address, for the audit log
	send    chan outgoing // encoded messages, which the writer only reads
	done    chan struct{} // closed when the client goes
	recheck chan struct{} // its access changed: check credentials and scope (Hub.accessChanged)
	after   int64         // the outbox event its snapshot holds the changes up to: older ones are not pushed

	mu       sync.Mutex
	scope    auth.Scope // guarded by mu, as are the fields below
	scoped   time.Time  // when scope was read
	scopeGen int        // changes of access seen: a scope read before the latest is stale
	readGen  int        // the scopeGen scope was read at
	subs     map[string]bool
	batch    bool // samples in one message per device message (subscribe's batch)
	evicted  bool
	tokens   float64   // subscribes the client may still send now
	tokensAt time.Time // when tokens was reckoned
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

// queue encodes a message and hands it to the client's writer.
func (c *client) queue(typ string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	c.queueEncoded(typ, b)
}

// queueEncoded hands an encoded message to the client's writer, which
// only reads it (the hub hands the same bytes to every client); a client
// whose queue is full is disconnected rather than allowed to hold
// anything up.
func (c *client) queueEncoded(typ string, b []byte) {
	select {
	case c.send <- outgoing{b, typ == "samples" || typ == "sample"}:
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
		case m := <-c.send:
			if err := c.writeQueued(m); err != nil {
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

// outgoing is a message queued for a client.
type outgoing struct {
	b    []byte // encoded: the same bytes may go to several clients
	live bool   // a sample or samples message of the live feed
}

// burstBytes is about the most the writer sends in one system call.
const burstBytes = 64 << 10

// writeQueued writes m, then the messages queued behind it, in one
// system call of up to about burstBytes: a burst of messages costs one
// write rather than one a message. While it has only live samples to
// send, it waits up to SampleLinger for more to join them; any other
// message goes at once.
func (c *client) writeQueued(m outgoing) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	c.corked.cork()
	var linger <-chan time.Time
	if m.live && c.hub.cfg.SampleLinger > 0 {
		t := time.NewTimer(c.hub.cfg.SampleLinger)
		defer t.Stop()
		linger = t.C
	}
	err := c.conn.WriteMessage(websocket.TextMessage, m.b)
	for n := len(m.b); err == nil && n < burstBytes; n += len(m.b) {
		var ok bool
		if m, ok = c.next(linger); !ok {
			break
		}
		if !m.live {
			linger = nil
		}
		err = c.conn.WriteMessage(websocket.TextMessage, m.b)
	}
	if uerr := c.corked.uncork(); err == nil {
		err = uerr
	}
	return err
}

// next returns the next queued message, waiting for one until linger
// fires (nil: not at all) or the client goes.
func (c *client) next(linger <-chan time.Time) (outgoing, bool) {
	select {
	case m := <-c.send:
		return m, true
	default:
	}
	if linger == nil {
		return outgoing{}, false
	}
	select {
	case m := <-c.send:
		return m, true
	case <-linger:
	case <-c.done:
	}
	return outgoing{}, false
}

// corkConn is a websocket's connection whose writes the client's writer
// may hold (cork) and then send in one system call (uncork). A write
// from elsewhere meanwhile (a close frame) joins the held ones, in order.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	held   []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork sends the held writes.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if len(c.held) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	if cap(c.held) > 4*burstBytes { // after one large message, do not keep its room
		c.held = nil
	}
	return err
}

// corkingWriter hands the websocket upgrader a corkConn when it takes
// over the connection.
type corkingWriter struct {
	http.ResponseWriter
	conn *corkConn
}

func (w *corkingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be taken over")
	}
	conn, rw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &corkConn{Conn: conn}
	return w.conn, rw, nil
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
			c.subscribe(ctx, req.Patients, req.Batch)
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
// often, or names more than MaxSubscribe patients, is refused. batch asks
// for each stored device message's points in one samples message.
func (c *client) subscribe(ctx context.Context, patients []string, batch bool) {
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
		if err := c.hub.reg.Audit(actx, e); err != nil {
			c.queue("error", errorMsg{Type: "error", Request: "subscribe", Error: "cannot record this access now: try again"})
			return
		}
	}
	c.mu.Lock()
	c.subs, c.batch = map[string]bool{}, batch
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
		c.queue("error", errorMsg{Type: "error", Request: "ack", Error: alerts.ActionError(err)})
		return
	}
	c.queue("acked", ackedMsg{Type: "acked", AlertID: req.AlertID})
}
