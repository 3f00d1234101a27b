package api

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the schedule's zone, wherever the test runs

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/notify"
	"github.com/patientpulse/patientpulse/registry"
)

// pdKey is a PagerDuty integration key as PagerDuty shows one.
const pdKey = "R0UT1NGkeyOfCleoS0wnService32chr"

// contactDoc is the API's answer about a contact.
type contactDoc struct {
	Username        string `json:"username"`
	Email           string `json:"email"`
	NtfyURL         string `json:"ntfy_url"`
	PagerDutyKeySet bool   `json:"pagerduty_key_set"`
	DigestHour      int    `json:"digest_hour"`
}

func decodeContact(t *testing.T, body string) contactDoc {
	t.Helper()
	var c contactDoc
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatalf("contact answer %q: %v", body, err)
	}
	return c
}

// TestStaffContact: a staff member sets and reads their own contact, an
// admin anyone's; nobody else's; the key is never shown; each change is
// audited as its author.
func TestStaffContact(t *testing.T) {
	ta := newTestAPI(t, nil)
	ada := ta.staff(t, "ada", registry.RoleAdmin)
	cleo := ta.staff(t, "cleo", registry.RoleClinician)
	otto := ta.staff(t, "otto", registry.RoleOnCall)
	const path = "/v1/staff/cleo/contact"

	// Nothing set yet: no channel, no digest.
	code, body := ta.send(t, cleo, "GET", path, "")
	if got := decodeContact(t, body); code != 200 || got != (contactDoc{Username: "cleo", DigestHour: -1}) {
		t.Fatalf("GET own blank contact: %d %+v", code, got)
	}

	code, body = ta.send(t, cleo, "PUT", path,
		`{"email": "cleo@clinic.example", "ntfy_url": "https://ntfy.sh/cleo-pages", "pagerduty_key": "`+pdKey+`", "digest_hour": 7}`)
	want := contactDoc{Username: "cleo", Email: "cleo@clinic.example", NtfyURL: "https://ntfy.sh/cleo-pages", PagerDutyKeySet: true, DigestHour: 7}
	if got := decodeContact(t, body); code != 200 || got != want {
		t.Fatalf("PUT own contact: %d %+v, want %+v", code, got, want)
	}
	if strings.Contains(body, pdKey) {
		t.Errorf("PUT answer shows the key: %s", body)
	}
	for who, tok := range map[string]string{"cleo": cleo, "ada": ada} {
		code, body := ta.send(t, tok, "GET", path, "")
		if got := decodeContact(t, body); code != 200 || got != want || strings.Contains(body, pdKey) {
			t.Errorf("GET cleo's contact as %s: %d %s, want %+v without the key", who, code, body, want)
		}
	}
	stored, err := ta.reg.StaffContacts(t.Context(), "cleo")
	if err != nil || stored["cleo"].PagerDutyKey != pdKey || stored["cleo"].DigestHour != 7 {
		t.Fatalf("stored contact = %+v, %v", stored, err)
	}

	// pagerduty_key left out keeps the key; digest_hour left out drops the digest.
	code, body = ta.send(t, cleo, "PUT", path, `{"email": "cleo@clinic.example"}`)
	if got := decodeContact(t, body); code != 200 || got != (contactDoc{Username: "cleo", Email: "cleo@clinic.example", PagerDutyKeySet: true, DigestHour: -1}) {
		t.Errorf("PUT without key and digest: %d %+v, want the key kept, ntfy and digest dropped", code, got)
	}
	// "" clears it; an admin may.
	code, body = ta.send(t, ada, "PUT", path, `{"email": "cleo@clinic.example", "pagerduty_key": "", "digest_hour": null}`)
	if got := decodeContact(t, body); code != 200 || got.PagerDutyKeySet || got.DigestHour != -1 {
		t.Errorf("admin's PUT with an empty key: %d %+v, want the key cleared", code, got)
	}
	if stored, _ := ta.reg.StaffContacts(t.Context(), "cleo"); stored["cleo"].PagerDutyKey != "" {
		t.Errorf("stored key after clearing = %q", stored["cleo"].PagerDutyKey)
	}

	// Refusals: another member's contact, before telling whether they exist.
	for _, c := range []struct {
		name, token, method, path, body string
		status                          int
	}{
		{"on-call reads a clinician's", otto, "GET", path, "", 403},
		{"on-call changes a clinician's", otto, "PUT", path, `{"email": "otto@evil.example"}`, 403},
		{"clinician reads the admin's", cleo, "GET", "/v1/staff/ada/contact", "", 403},
		{"clinician asks about nobody", cleo, "GET", "/v1/staff/nobody/contact", "", 403},
		{"admin asks about nobody", ada, "GET", "/v1/staff/nobody/contact", "", 404},
		{"admin changes nobody's", ada, "PUT", "/v1/staff/nobody/contact", `{"email": "x@clinic.example"}`, 404},
		{"not signed in", "", "GET", path, "", 401},
	} {
		code, body := ta.send(t, c.token, c.method, c.path, c.body)
		if code != c.status || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want %d with an error", c.name, code, body, c.status)
		}
	}
	if stored, _ := ta.reg.StaffContacts(t.Context(), "cleo"); stored["cleo"].Email != "cleo@clinic.example" {
		t.Errorf("cleo's email after the refusals = %q", stored["cleo"].Email)
	}
	// Anyone may set their own.
	if code, body := ta.send(t, otto, "PUT", "/v1/staff/otto/contact", `{"email": "otto@clinic.example"}`); code != 200 {
		t.Errorf("on-call sets their own contact: %d %s", code, body)
	}

	entries, err := ta.reg.AuditEntries(t.Context(), registry.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		if e.Action == registry.ActionStaffContact || e.Action == registry.ActionAccessDenied {
			got = append(got, e.Actor+" "+e.Action+" "+e.Target)
		}
		if strings.Contains(e.Target, pdKey) || strings.Contains(e.Target, "ntfy.sh") || strings.Contains(e.Target, "@") {
			t.Errorf("audit entry %+v names a channel's address or key", e)
		}
	}
	slices.Reverse(got) // oldest first
	wantAudit := []string{
		"cleo staff.contact cleo (email, ntfy, pagerduty, digest at 07:00)",
		"cleo staff.contact cleo (email, pagerduty)",
		"ada staff.contact cleo (email)",
		"otto access.denied GET /v1/staff/{username}/contact",
		"otto access.denied PUT /v1/staff/{username}/contact",
		"cleo access.denied GET /v1/staff/{username}/contact",
		"cleo access.denied GET /v1/staff/{username}/contact",
		"(unauthenticated) access.denied GET /v1/staff/{username}/contact: no credentials",
		"otto staff.contact otto (email)",
	}
	if !slices.Equal(got, wantAudit) {
		t.Errorf("audit entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantAudit, "\n"))
	}
}

// TestStaffContactBadInput: each problem is refused with what is wrong,
// all of them at once, never quoting the key; nothing is stored.
func TestStaffContactBadInput(t *testing.T) {
	ta := newTestAPI(t, nil)
	cleo := ta.staff(t, "cleo", registry.RoleClinician)
	const badKey = "short-key-with-dashes"
	tests := []struct {
		name string
		body string
		want []string // in the error
	}{
		{"display name", `{"email": "Cleo <cleo@clinic.example>"}`, []string{"email must be a bare address"}},
		{"header injection", `{"email": "cleo@clinic.example\r\nBcc: all@evil.example"}`, []string{"email must be one address"}},
		{"no address", `{"email": "cleo"}`, []string{"email must be a bare address"}},
		{"two addresses", `{"email": "cleo@clinic.example, x@evil.example"}`, []string{"email must be a bare address"}},
		{"ntfy over http", `{"ntfy_url": "http://ntfy.example/cleo"}`, []string{"ntfy URL must be https://"}},
		{"ntfy without topic", `{"ntfy_url": "https://ntfy.sh/"}`, []string{"ntfy URL must name a topic"}},
		{"short key", `{"pagerduty_key": "abc123"}`, []string{"PagerDuty integration key must be 20 to 64 letters and digits"}},
		{"key with symbols", `{"pagerduty_key": "` + badKey + `"}`, []string{"PagerDuty integration key"}},
		{"hour 24", `{"email": "cleo@clinic.example", "digest_hour": 24}`, []string{"digest hour must be 0 to 23"}},
		{"hour -2", `{"email": "cleo@clinic.example", "digest_hour": -2}`, []string{"digest hour must be 0 to 23"}},
		{"digest without mail", `{"digest_hour": 7}`, []string{"a daily digest needs an email address"}},
		{"hour as text", `{"digest_hour": "7"}`, []string{"body:"}},
		{"unknown field", `{"phone": "+44 20 7946 0000"}`, []string{`unknown field "phone"`}},
		{"every problem", `{"email": "cleo", "ntfy_url": "ftp://x.example/t", "pagerduty_key": "` + badKey + `", "digest_hour": 30}`,
			[]string{"email must be", "ntfy URL must be https://", "PagerDuty integration key", "digest hour must be 0 to 23"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := ta.send(t, cleo, "PUT", "/v1/staff/cleo/contact", tt.body)
			var p struct{ Error string }
			_ = json.Unmarshal([]byte(body), &p)
			if code != http.StatusBadRequest {
				t.Fatalf("%d %s, want 400", code, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(p.Error, w) {
					t.Errorf("error %q does not say %q", p.Error, w)
				}
			}
			if strings.Contains(body, badKey) || strings.Contains(body, "evil.example") {
				t.Errorf("error %q quotes what was sent", p.Error)
			}
		})
	}
	if stored, err := ta.reg.StaffContacts(t.Context()); err != nil || len(stored) != 0 {
		t.Errorf("stored contacts after bad input = %+v, %v; want none", stored, err)
	}
}

// TestOnCallNow: who is on call in each tier now, in the schedule's zone;
// no tiers without a schedule.
func TestOnCallNow(t *testing.T) {
	schedule, err := alerts.ParseOnCall([]byte(`timezone: Europe/London
tiers:
  - name: primary
    after: 15m
    shifts:
      - {staff: [otto], days: [weekdays], from: "08:00", to: "18:00"}
      - {staff: [nina], days: [weekdays], from: "18:00", to: "08:00"}
  - name: secondary
    after: 1h30m
    shifts:
      - {staff: [dr-lee, ada], days: [all], from: "00:00", to: "24:00"}
  - name: weekend
    after: 2h
    shifts:
      - {staff: [sam], days: [weekend], from: "00:00", to: "24:00"}
`))
	if err != nil {
		t.Fatal(err)
	}
	london, _ := time.LoadLocation("Europe/London")
	wednesday := time.Date(2026, 11, 4, 10, 30, 0, 0, london)
	ta := newTestAPIWith(t, nil, func(a *API) {
		a.cfg.Rota = &alerts.Rota{}
		a.cfg.Rota.Store(&alerts.RotaVersion{Schedule: schedule})
		a.now = func() time.Time { return wednesday }
	})
	otto := ta.staff(t, "otto", registry.RoleOnCall)
	code, body := ta.send(t, otto, "GET", "/v1/oncall", "")
	const weekdays, all = `["mon","tue","wed","thu","fri"]`, `["mon","tue","wed","thu","fri","sat","sun"]`
	const want = `{"timezone":"Europe/London","tiers":[{"name":"primary","after":"15m0s","on_call":["otto"],"shifts":[` +
		`{"staff":["otto"],"days":` + weekdays + `,"from":"08:00","to":"18:00"},{"staff":["nina"],"days":` + weekdays + `,"from":"18:00","to":"08:00"}]},` +
		`{"name":"secondary","after":"1h30m0s","on_call":["ada","dr-lee"],"shifts":[{"staff":["ada","dr-lee"],"days":` + all + `,"from":"00:00","to":"24:00"}]},` +
		`{"name":"weekend","after":"2h0m0s","on_call":[],"shifts":[{"staff":["sam"],"days":["sat","sun"],"from":"00:00","to":"24:00"}]}]}`
	if code != 200 || strings.TrimSpace(body) != want {
		t.Errorf("GET /v1/oncall: %d %s\nwant %s", code, body, want)
	}
	if code, _ := ta.send(t, "", "GET", "/v1/oncall", ""); code != 401 {
		t.Errorf("GET /v1/oncall signed out: %d, want 401", code)
	}

	bare := newTestAPI(t, nil)
	cleo := bare.staff(t, "cleo", registry.RoleClinician)
	if code, body := bare.send(t, cleo, "GET", "/v1/oncall", ""); code != 200 || strings.TrimSpace(body) != `{"tiers":[]}` {
		t.Errorf("GET /v1/oncall without a schedule: %d %s, want {\"tiers\":[]}", code, body)
	}
}

// TestDeliveriesForAdmins: admins see the deliveries and their counts by
// state, filtered and limited, and never where they go.
func TestDeliveriesForAdmins(t *testing.T) {
	ta := newTestAPI(t, nil)
	ctx := t.Context()
	ada := ta.staff(t, "ada", registry.RoleAdmin)
	cleo := ta.staff(t, "cleo", registry.RoleClinician)
	otto := ta.staff(t, "otto", registry.RoleOnCall)
	if err := ta.reg.AddPatient(ctx, registry.Patient{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	targets := []string{"otto@clinic.example", "https://ntfy.sh/otto-secret-topic", pdKey}
	opened := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	alertID, err := ta.reg.OpenAlert(ctx, registry.AlertRow{Patient: "p-1", Key: "k", State: registry.AlertFiring, Severity: "critical",
		OpenedAt: opened, UpdatedAt: opened, Tier: -1, Body: []byte(`{"rule": "k"}`)},
		registry.AlertEvent{At: opened, Kind: "opened"},
		&registry.Outbox{Kind: "opened", At: opened, Body: []byte(`{}`), Deliveries: []registry.OutboxDelivery{
			{ID: "d-mail", Channel: notify.ChannelEmail, Recipient: "otto", Target: targets[0]},
			{ID: "d-ntfy", Channel: notify.ChannelNtfy, Recipient: "otto", Target: targets[1]},
			{ID: "d-pd", Channel: notify.ChannelPagerDuty, Recipient: "otto", Target: targets[2]},
			{ID: "d-hook", Channel: notify.ChannelWebhook},
		}})
	if err != nil {
		t.Fatal(err)
	}
	done := opened.Add(time.Minute)
	finish := func(id, state, errText string) {
		t.Helper()
		if err := ta.reg.FinishAttempt(ctx, registry.Attempt{Delivery: id, AlertID: alertID, Channel: "x", Event: "opened", Attempt: 1,
			At: done, Status: 503, Outcome: state, Error: errText}, state, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	finish("d-mail", registry.DeliveryDelivered, "")
	finish("d-pd", registry.DeliveryFailed, "HTTP 400")

	type doc struct {
		Deliveries []struct {
			ID        string     `json:"id"`
			AlertID   int64      `json:"alert_id"`
			Channel   string     `json:"channel"`
			Recipient string     `json:"recipient"`
			State     string     `json:"state"`
			Attempts  int        `json:"attempts"`
			CreatedAt time.Time  `json:"created_at"`
			NextAt    time.Time  `json:"next_at"`
			DoneAt    *time.Time `json:"done_at"`
			LastError string     `json:"last_error"`
		} `json:"deliveries"`
		Counts map[string]int `json:"counts"`
	}
	wantCounts := map[string]int{"pending": 2, "delivered": 1, "failed": 1}
	for _, c := range []struct {
		query string
		ids   []string
	}{
		{"", []string{"d-hook", "d-mail", "d-ntfy", "d-pd"}},
		{"?state=failed", []string{"d-pd"}},
		{"?state=pending", []string{"d-hook", "d-ntfy"}},
		{"?state=delivered&limit=5", []string{"d-mail"}},
		{"?limit=1", nil}, // one of the four
	} {
		code, body := ta.send(t, ada, "GET", "/v1/notify/deliveries"+c.query, "")
		if code != 200 {
			t.Fatalf("GET deliveries%s: %d %s", c.query, code, body)
		}
		for _, tg := range targets {
			if strings.Contains(body, tg) || strings.Contains(body, "secret-topic") {
				t.Errorf("GET deliveries%s shows a target: %s", c.query, body)
			}
		}
		if strings.Contains(body, `"target"`) {
			t.Errorf("GET deliveries%s has a target field: %s", c.query, body)
		}
		var d doc
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(d.Counts, wantCounts) {
			t.Errorf("GET deliveries%s: counts %v, want %v", c.query, d.Counts, wantCounts)
		}
		var ids []string
		for _, v := range d.Deliveries {
			ids = append(ids, v.ID)
			if v.AlertID != alertID || !v.CreatedAt.Equal(opened) {
				t.Errorf("delivery %+v: want alert %d, created %v", v, alertID, opened)
			}
			switch v.ID {
			case "d-pd":
				if v.State != "failed" || v.Attempts != 1 || v.LastError != "HTTP 400" || v.DoneAt == nil || !v.DoneAt.Equal(done) ||
					v.Channel != "pagerduty" || v.Recipient != "otto" {
					t.Errorf("failed delivery = %+v", v)
				}
			case "d-hook":
				if v.State != "pending" || v.Attempts != 0 || v.DoneAt != nil || v.Recipient != "" || !v.NextAt.Equal(opened) {
					t.Errorf("pending delivery = %+v", v)
				}
			}
		}
		slices.Sort(ids)
		if c.ids == nil && len(ids) != 1 || c.ids != nil && !slices.Equal(ids, c.ids) {
			t.Errorf("GET deliveries%s: %v, want %v (one with limit=1)", c.query, ids, c.ids)
		}
	}

	for _, c := range []struct {
		name, token, query string
		status             int
	}{
		{"clinician", cleo, "", 403},
		{"on-call", otto, "", 403},
		{"unknown state", ada, "?state=lost", 400},
		{"bad limit", ada, "?limit=many", 400},
	} {
		if code, body := ta.send(t, c.token, "GET", "/v1/notify/deliveries"+c.query, ""); code != c.status || strings.Contains(body, "otto@") {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.status)
		}
	}
}

// TestAckLinks: a page's link names its alert to any signed-in staff
// member; a forged or altered one is 404, an expired one 410.
func TestAckLinks(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	links := notify.NewLinks(key, "https://pulse.clinic.example")
	ta := newTestAPIWith(t, nil, func(a *API) { a.cfg.Links = links })
	otto := ta.staff(t, "otto", registry.RoleOnCall)
	cleo := ta.staff(t, "cleo", registry.RoleClinician)
	now := time.Now()
	token := func(link string) string {
		t.Helper()
		tok, ok := strings.CutPrefix(link, "https://pulse.clinic.example/a/")
		if !ok {
			t.Fatalf("link %q is not under /a/", link)
		}
		return tok
	}
	good := token(links.Ack(42, now))
	for who, tok := range map[string]string{"otto": otto, "cleo": cleo} {
		code, body := ta.send(t, tok, "GET", "/v1/ack-links/"+good, "")
		if code != 200 || strings.TrimSpace(body) != `{"alert_id":42}` {
			t.Errorf("GET the link as %s: %d %s, want {\"alert_id\":42}", who, code, body)
		}
	}
	altered := []byte(good)
	altered[3] ^= 1
	if altered[3] == '-' || altered[3] == '_' {
		altered[3] = 'A'
	}
	other := token(notify.NewLinks([]byte("another key, another clinic....."), "https://pulse.clinic.example").Ack(42, now))
	for _, c := range []struct {
		name, token, path string
		status            int
		err               string
	}{
		{"altered", otto, "/v1/ack-links/" + string(altered), 404, "not a valid page link"},
		{"another key's", otto, "/v1/ack-links/" + other, 404, "not a valid page link"},
		{"not base64", otto, "/v1/ack-links/not*a*token", 404, "not a valid page link"},
		{"expired", otto, "/v1/ack-links/" + token(links.Ack(42, now.Add(-notify.LinkTTL-time.Minute))), 410, "expired"},
		{"signed out", "", "/v1/ack-links/" + good, 401, "sign in"},
	} {
		code, body := ta.send(t, c.token, "GET", c.path, "")
		var p struct{ Error string }
		_ = json.Unmarshal([]byte(body), &p)
		if code != c.status || !strings.Contains(p.Error, c.err) || strings.Contains(body, "42") {
			t.Errorf("%s: %d %s, want %d saying %q and no alert", c.name, code, body, c.status, c.err)
		}
	}

	// Without links set up, no link is valid.
	bare := newTestAPI(t, nil)
	ann := bare.staff(t, "ann", registry.RoleOnCall)
	if code, _ := bare.send(t, ann, "GET", "/v1/ack-links/"+good, ""); code != 404 {
		t.Errorf("GET a link without Links: %d, want 404", code)
	}
}
