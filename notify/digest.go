package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/registry"
)

// DigestKind is the outbox kind of a daily digest.
const DigestKind = "digest"

// digestPage is how many alerts a digest reads at a time.
const digestPage = 1000

// Digester writes the daily digests of warnings that staff members opt
// in to (registry.StaffContact.DigestHour): at a member's hour in the
// clinic's time zone (or at the first look after it that day, when serve
// was down at the hour), once a day, a mail listing the warnings opened
// in the day before the hour for the patients in their care team, in
// whatever state they are now. Each warning so falls in one digest. A day
// without such warnings sends no digest. The digest is written to the
// outbox with the delivery id digest-<username>-<date>, so that it is
// written once however often it is looked for, across restarts and
// instances; the Dispatcher mails it.
type Digester struct {
	alerts *alerts.Manager
	reg    *registry.Registry
	loc    *time.Location
	wake   func() // after a digest is written; nil for none
	log    *slog.Logger
	now    func() time.Time
	// done is the local date of each member's digest last settled
	// (written, or found needless); only check touches it.
	done map[string]string
}

// NewDigester returns a digester of the alerts m keeps, at hours of loc,
// that calls wake (the Dispatcher's Wake; nil for none) after it writes a
// digest.
func NewDigester(m *alerts.Manager, loc *time.Location, wake func(), log *slog.Logger) *Digester {
	return &Digester{alerts: m, reg: m.Registry(), loc: loc, wake: wake, log: log, now: time.Now, done: map[string]string{}}
}

// Run looks for digests due at once and then every minute until ctx
// ends, and returns nil.
func (d *Digester) Run(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		d.check(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// check writes the digests due now: of each member with a mail address
// and a digest hour that has come today, and no digest yet today.
func (d *Digester) check(ctx context.Context) {
	contacts, err := d.reg.StaffContacts(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("reading staff contacts for digests failed; retrying in a minute", "err", err)
		}
		return
	}
	now := d.now().In(d.loc)
	today := now.Format(time.DateOnly)
	for _, c := range contacts {
		if c.Email == "" || c.DigestHour < 0 || now.Hour() < c.DigestHour || d.done[c.Username] == today {
			continue
		}
		at := time.Date(now.Year(), now.Month(), now.Day(), c.DigestHour, 0, 0, 0, d.loc)
		since := time.Date(now.Year(), now.Month(), now.Day()-1, c.DigestHour, 0, 0, 0, d.loc)
		if err := d.write(ctx, c, today, since, at); err != nil {
			if ctx.Err() == nil {
				d.log.Warn("writing a digest failed; retrying in a minute", "username", c.Username, "err", err)
			}
			continue
		}
		d.done[c.Username] = today
	}
}

// write writes c's digest of date, of the warnings opened in [since,
// until) for the patients in c's care team, when there are any.
func (d *Digester) write(ctx context.Context, c registry.StaffContact, date string, since, until time.Time) error {
	patients, err := d.reg.AssignedPatients(ctx, c.Username)
	if err != nil || len(patients) == 0 {
		return err
	}
	warnings, err := d.warnings(ctx, patients, since, until)
	if err != nil || len(warnings) == 0 {
		return err
	}
	body, err := json.Marshal(Digest{Username: c.Username, Date: date, Alerts: warnings})
	if err != nil {
		return fmt.Errorf("encode digest: %w", err)
	}
	added, err := d.reg.AddOutbox(ctx, registry.Outbox{Kind: DigestKind, At: d.now(), Body: body,
		Deliveries: []registry.OutboxDelivery{{ID: "digest-" + c.Username + "-" + date, Channel: ChannelEmail,
			Recipient: c.Username, Target: c.Email}}})
	if err != nil {
		return err
	}
	if added {
		d.log.Info("digest written", "username", c.Username, "date", date, "warnings", len(warnings))
		if d.wake != nil {
			d.wake()
		}
	}
	return nil
}

// warnings returns the warnings of patients opened in [since, until),
// oldest first.
func (d *Digester) warnings(ctx context.Context, patients []string, since, until time.Time) ([]alerts.Alert, error) {
	var out []alerts.Alert
	f := registry.AlertFilter{Severity: analysis.SeverityWarning, Scoped: true, Within: patients, Limit: digestPage}
	for {
		page, err := d.alerts.List(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, a := range page {
			if !a.OpenedAt.Before(since) && a.OpenedAt.Before(until) {
				out = append(out, a)
			}
		}
		// Pages come newest first: the last one needed is the first to
		// reach back before since.
		if len(page) < digestPage || page[len(page)-1].OpenedAt.Before(since) {
			break
		}
		f.Before = page[len(page)-1].ID
	}
	slices.Reverse(out)
	return out, nil
}
