package registry

import (
	"context"
	crand "crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Delivery states, as stored.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Outbox is an alert change as delivery sees it, written in the change's
// transaction: the event (which the consoles read) and one delivery per
// channel and recipient.
type Outbox struct {
	Kind       string // the alert's change, or "digest"
	At         time.Time
	Body       []byte // the event as JSON
	Deliveries []OutboxDelivery
}

// OutboxEvent is one stored event of the outbox.
type OutboxEvent struct {
	ID      int64
	AlertID int64 // 0 for a digest
	Patient string
	Kind    string
	At      time.Time
	Body    []byte
}

// OutboxDelivery is one delivery of an event on one channel to one
// recipient. ID is the delivery id every attempt carries; a new delivery
// gets one when it is written without.
type OutboxDelivery struct {
	ID        string
	EventID   int64
	AlertID   int64
	Channel   string // email, webhook, pagerduty, slack, teams, ntfy
	Recipient string // a staff username; "" for a clinic-wide channel
	Target    string // an address, topic URL or key; "" for a clinic-wide channel
	State     string
	Attempts  int
	CreatedAt time.Time
	NextAt    time.Time // when the next attempt is due
	DoneAt    time.Time // zero while pending
	LastError string
}

// Attempt is one attempt at a delivery, as recorded.
type Attempt struct {
	ID       int64
	Delivery string // the delivery's id
	AlertID  int64
	Channel  string
	Event    string // the event's kind
	Attempt  int
	At       time.Time
	Status   int    // the HTTP or SMTP status; 0 when there was no answer
	Outcome  string // delivered, retrying or failed
	Error    string
}

// addOutbox writes out (when not nil) for the alert alertID of patient.
func (r *Registry) addOutbox(ctx context.Context, tx *sql.Tx, alertID int64, patient string, out *Outbox) error {
	if out == nil {
		return nil
	}
	var eventID int64
	err := tx.QueryRowContext(ctx, r.q(`INSERT INTO outbox_events (alert_id, patient_id, kind, at, body) VALUES (?, ?, ?, ?, ?) RETURNING id`),
		alertID, patient, out.Kind, formatTime(out.At), string(out.Body)).Scan(&eventID)
	if err != nil {
		return err
	}
	if err := r.notifyEvent(ctx, tx, eventID); err != nil {
		return err
	}
	for _, d := range out.Deliveries {
		if d.ID == "" {
			d.ID = crand.Text()
		}
		next := d.NextAt
		if next.IsZero() {
			next = out.At
		}
		_, err := tx.ExecContext(ctx, r.q(`INSERT INTO outbox_deliveries (id, event_id, alert_id, channel, recipient, target,
			state, created_at, next_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)`),
			d.ID, eventID, alertID, d.Channel, d.Recipient, d.Target, formatTime(out.At), formatTime(next))
		if err != nil {
			return err
		}
	}
	return nil
}

// AddOutbox writes an event that is no alert's (a digest) with its
// deliveries. A delivery whose id is stored already makes it a no-op: it
// returns false then, so that a digest is written once.
func (r *Registry) AddOutbox(ctx context.Context, out Outbox) (bool, error) {
	added := false
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		for _, d := range out.Deliveries {
			var n int
			if err := tx.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM outbox_deliveries WHERE id = ?`), d.ID).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
		}
		added = true
		return r.addOutbox(ctx, tx, 0, "", &out)
	})
	if err != nil {
		return false, fmt.Errorf("add outbox %s: %w", out.Kind, err)
	}
	return added, nil
}

// LastOutboxEvent returns the id of the newest outbox event, 0 when there
// is none.
func (r *Registry) LastOutboxEvent(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := r.db.QueryRowContext(ctx, `SELECT MAX(id) FROM outbox_events`).Scan(&id); err != nil {
		return 0, fmt.Errorf("last outbox event: %w", err)
	}
	return id.Int64, nil
}

// OutboxEvents returns at most limit events after the id after, oldest
// first.
func (r *Registry) OutboxEvents(ctx context.Context, after int64, limit int) ([]OutboxEvent, error) {
	return queryAll(ctx, r, "outbox events", `SELECT id, alert_id, patient_id, kind, at, body FROM outbox_events
		WHERE id > ? ORDER BY id LIMIT ?`, []any{after, limit}, scanOutboxEvent)
}

func scanOutboxEvent(s scanner) (OutboxEvent, error) {
	var e OutboxEvent
	var at, body string
	if err := s.Scan(&e.ID, &e.AlertID, &e.Patient, &e.Kind, &at, &body); err != nil {
		return e, err
	}
	e.Body = []byte(body)
	var err error
	e.At, err = parseTime(at)
	return e, err
}

// Due is a delivery due for an attempt, with its event.
type Due struct {
	OutboxDelivery
	Event OutboxEvent
}

const deliveryColumns = `d.id, d.event_id, d.alert_id, d.channel, d.recipient, d.target, d.state, d.attempts,
	d.created_at, d.next_at, d.done_at, d.last_error`

// DueDeliveries returns at most limit pending deliveries whose next
// attempt is due at now, soonest first (then by event, then by id, so
// that every store gives one order), leaving out those in skip (in
// flight) and each that waits behind an earlier pending delivery of the
// same alert on the same channel to the same recipient and target, so
// that a pager hears of an alert's changes in their order.
func (r *Registry) DueDeliveries(ctx context.Context, now time.Time, limit int, skip []string) ([]Due, error) {
	where, args := readyWhere(skip)
	args = append([]any{formatTime(now)}, append(args, limit)...)
	return queryAll(ctx, r, "due deliveries", `SELECT `+deliveryColumns+`, e.id, e.alert_id, e.patient_id, e.kind, e.at, e.body
		FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id
		WHERE d.next_at <= ? AND `+where+`
		ORDER BY d.next_at, d.event_id, d.id LIMIT ?`, args,
		func(s scanner) (Due, error) {
			var d Due
			var at, body string
			var err error
			d.OutboxDelivery, err = scanDelivery(s, &d.Event.ID, &d.Event.AlertID, &d.Event.Patient, &d.Event.Kind, &at, &body)
			if err != nil {
				return d, err
			}
			d.Event.Body = []byte(body)
			d.Event.At, err = parseTime(at)
			return d, err
		})
}

// readyWhere is the condition, with its arguments, on the deliveries d
// that DueDeliveries returns once they are due: pending, not in skip, and
// waiting behind no earlier pending delivery.
func readyWhere(skip []string) (string, []any) {
	where := `d.state = 'pending'`
	var args []any
	if len(skip) > 0 {
		where += " AND d.id NOT IN (?" + strings.Repeat(", ?", len(skip)-1) + ")"
		for _, id := range skip {
			args = append(args, id)
		}
	}
	return where + `
		AND NOT EXISTS (SELECT 1 FROM outbox_deliveries p WHERE p.state = 'pending' AND d.alert_id <> 0
			AND p.alert_id = d.alert_id AND p.channel = d.channel AND p.recipient = d.recipient AND p.target = d.target
			AND p.event_id < d.event_id)`, args
}

// NextDue returns when the soonest delivery DueDeliveries would return
// (given the same skip) is due, and false when there is none: a delivery
// in flight or waiting behind an earlier one is not.
func (r *Registry) NextDue(ctx context.Context, skip []string) (time.Time, bool, error) {
	where, args := readyWhere(skip)
	var next sql.NullString
	// A delivery another dispatcher claimed is due again when its claim
	// runs out, if it is still pending then.
	if err := r.db.QueryRowContext(ctx, r.q(`SELECT MIN(CASE WHEN d.claimed_until > d.next_at THEN d.claimed_until ELSE d.next_at END)
		FROM outbox_deliveries d WHERE `+where), args...).Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("next due delivery: %w", err)
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	t, err := parseTime(next.String)
	return t, err == nil, err
}

// FinishAttempt records an attempt at the pending delivery a.Delivery and
// moves it on, in one transaction: to state (delivered or failed, with
// the attempt's time as its end), or, while state is pending, to its next
// attempt at next. It ends the delivery's claim (ClaimDue).
func (r *Registry) FinishAttempt(ctx context.Context, a Attempt, state string, next time.Time) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		done := any(nil)
		if state != DeliveryPending {
			done = formatTime(a.At)
		}
		if next.IsZero() {
			next = a.At
		}
		err := r.execOne(ctx, tx, ErrConflict, `UPDATE outbox_deliveries SET state = ?, attempts = attempts + 1, next_at = ?,
			done_at = ?, last_error = ?, claimed_by = '', claimed_until = NULL WHERE id = ? AND state = 'pending'`,
			state, formatTime(next), done, a.Error, a.Delivery)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, r.q(`INSERT INTO delivery_attempts (delivery, alert_id, channel, event, attempt, at, status, outcome, error)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`), a.Delivery, a.AlertID, a.Channel, a.Event, a.Attempt, formatTime(a.At), a.Status, a.Outcome, a.Error)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish delivery attempt: %w", err)
	}
	return nil
}

// DeliveryFilter selects deliveries; zero fields select everything.
type DeliveryFilter struct {
	State   string
	AlertID int64
	Channel string
	Limit   int // at most this many, newest first (default and maximum 1000)
}

// Deliveries returns the deliveries f selects, newest first.
func (r *Registry) Deliveries(ctx context.Context, f DeliveryFilter) ([]OutboxDelivery, error) {
	var where []string
	var args []any
	if f.State != "" {
		where, args = append(where, "d.state = ?"), append(args, f.State)
	}
	if f.AlertID != 0 {
		where, args = append(where, "d.alert_id = ?"), append(args, f.AlertID)
	}
	if f.Channel != "" {
		where, args = append(where, "d.channel = ?"), append(args, f.Channel)
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 1000
	}
	query := `SELECT ` + deliveryColumns + ` FROM outbox_deliveries d`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY d.created_at DESC, d.event_id DESC LIMIT ?"
	return queryAll(ctx, r, "deliveries", query, append(args, f.Limit), func(s scanner) (OutboxDelivery, error) {
		return scanDelivery(s)
	})
}

// DeliveryCounts returns how many deliveries are in each state.
func (r *Registry) DeliveryCounts(ctx context.Context) (map[string]int, error) {
	type count struct {
		state string
		n     int
	}
	rows, err := queryAll(ctx, r, "delivery counts", `SELECT state, COUNT(*) FROM outbox_deliveries GROUP BY state`, nil,
		func(s scanner) (count, error) {
			var c count
			return c, s.Scan(&c.state, &c.n)
		})
	if err != nil {
		return nil, err
	}
	out := map[string]int{DeliveryPending: 0, DeliveryDelivered: 0, DeliveryFailed: 0}
	for _, c := range rows {
		out[c.state] = c.n
	}
	return out, nil
}

// Attempts returns the attempts at an alert's deliveries, oldest first.
func (r *Registry) Attempts(ctx context.Context, alertID int64) ([]Attempt, error) {
	return queryAll(ctx, r, fmt.Sprintf("delivery attempts of %d", alertID), `SELECT id, delivery, channel, event, attempt, at, status, outcome, error
		FROM delivery_attempts WHERE alert_id = ? ORDER BY id`, []any{alertID},
		func(s scanner) (Attempt, error) {
			a := Attempt{AlertID: alertID}
			var at string
			if err := s.Scan(&a.ID, &a.Delivery, &a.Channel, &a.Event, &a.Attempt, &at, &a.Status, &a.Outcome, &a.Error); err != nil {
				return a, err
			}
			var err error
			a.At, err = parseTime(at)
			return a, err
		})
}

// scanDelivery scans a row of deliveryColumns followed by extra.
func scanDelivery(s scanner, extra ...any) (OutboxDelivery, error) {
	var d OutboxDelivery
	var created, next string
	var done sql.NullString
	dst := append([]any{&d.ID, &d.EventID, &d.AlertID, &d.Channel, &d.Recipient, &d.Target, &d.State, &d.Attempts,
		&created, &next, &done, &d.LastError}, extra...)
	if err := s.Scan(dst...); err != nil {
		return d, err
	}
	var err error
	if d.CreatedAt, err = parseTime(created); err != nil {
		return d, err
	}
	if d.NextAt, err = parseTime(next); err != nil {
		return d, err
	}
	if done.Valid {
		d.DoneAt, err = parseTime(done.String)
	}
	return d, err
}

// StaffContact is where a staff member is paged.
type StaffContact struct {
	Username     string
	Email        string
	NtfyURL      string
	PagerDutyKey string
	DigestHour   int // the local hour of the daily digest of warnings; -1 for none
	UpdatedAt    time.Time
}

// SetStaffContact stores c (replacing the member's earlier contact) and
// audits the change as the context's actor; it names which channels are
// set, never their addresses.
func (r *Registry) SetStaffContact(ctx context.Context, c StaffContact) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if err := r.checkStaff(ctx, tx, c.Username, false); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, r.q(`INSERT INTO staff_contacts (username, email, ntfy_url, pagerduty_key, digest_hour, updated_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (username) DO UPDATE SET email = excluded.email, ntfy_url = excluded.ntfy_url,
			pagerduty_key = excluded.pagerduty_key, digest_hour = excluded.digest_hour, updated_at = excluded.updated_at`),
			c.Username, c.Email, c.NtfyURL, c.PagerDutyKey, c.DigestHour, formatTime(now()))
		if err != nil {
			return err
		}
		var set []string
		for _, ch := range []struct{ name, v string }{{"email", c.Email}, {"ntfy", c.NtfyURL}, {"pagerduty", c.PagerDutyKey}} {
			if ch.v != "" {
				set = append(set, ch.name)
			}
		}
		if c.DigestHour >= 0 {
			set = append(set, fmt.Sprintf("digest at %02d:00", c.DigestHour))
		}
		if len(set) == 0 {
			set = []string{"none"}
		}
		return r.record(ctx, tx, ActionStaffContact, "", c.Username+" ("+strings.Join(set, ", ")+")")
	})
	if err != nil {
		return fmt.Errorf("set contact of %s: %w", c.Username, err)
	}
	return nil
}

// StaffContacts returns the contacts of the staff named (of every member
// who has one when names is empty), by username. Members without one are
// left out.
func (r *Registry) StaffContacts(ctx context.Context, names ...string) (map[string]StaffContact, error) {
	query := `SELECT c.username, c.email, c.ntfy_url, c.pagerduty_key, c.digest_hour, c.updated_at FROM staff_contacts c
		JOIN staff s ON s.username = c.username WHERE s.disabled_at IS NULL`
	var args []any
	if len(names) > 0 {
		query += " AND c.username IN (?" + strings.Repeat(", ?", len(names)-1) + ")"
		for _, n := range names {
			args = append(args, n)
		}
	}
	rows, err := queryAll(ctx, r, "staff contacts", query, args, func(s scanner) (StaffContact, error) {
		var c StaffContact
		var at string
		if err := s.Scan(&c.Username, &c.Email, &c.NtfyURL, &c.PagerDutyKey, &c.DigestHour, &at); err != nil {
			return c, err
		}
		var err error
		c.UpdatedAt, err = parseTime(at)
		return c, err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]StaffContact, len(rows))
	for _, c := range rows {
		out[c.Username] = c
	}
	return out, nil
}

// ServerKey returns the key stored under name, making a random one of
// size bytes the first time it is asked for. Every process on the
// registry gets the same key.
func (r *Registry) ServerKey(ctx context.Context, name string, size int) ([]byte, error) {
	key := make([]byte, size)
	if _, err := crand.Read(key); err != nil {
		return nil, err
	}
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, r.q(`INSERT INTO server_keys (name, key, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`),
			name, key, formatTime(now())); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, r.q(`SELECT key FROM server_keys WHERE name = ?`), name).Scan(&key)
	})
	if err != nil {
		return nil, fmt.Errorf("server key %s: %w", name, err)
	}
	if len(key) != size {
		return nil, errors.New("server key " + name + ": stored with another size")
	}
	return key, nil
}
