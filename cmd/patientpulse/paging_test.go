package main

import (
	"fmt"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// mailPagingRota pages pager-1 at once, pager-2 a minute on and pager-3 two
// minutes on, round the clock.
const mailPagingRota = `timezone: UTC
tiers:
  - name: primary
    after: 0m
    shifts: [{staff: [pager-1], days: [all], from: "00:00", to: "24:00"}]
  - name: secondary
    after: 1m
    shifts: [{staff: [pager-2], days: [all], from: "00:00", to: "24:00"}]
  - name: consultant
    after: 2m
    shifts: [{staff: [pager-3], days: [all], from: "00:00", to: "24:00"}]
`

// TestPagingByMail: with no console open, a critical MRS check-in over
// MQTT is mailed to the first tier within 5 s; unacknowledged, the second
// tier is mailed a minute on; the second tier's mail link, opened in a
// browser, asks them to sign in and then acknowledges the alert in one
// tap, audited as them; the third tier is never paged.
func TestPagingByMail(t *testing.T) {
	needServices(t)
	mp, err := testservices.StartMailpit()
	testservices.Require(t, err)
	t.Cleanup(func() { mp.Close() })

	dir := newDataDir(t)
	enroll(t, dir, "p-page", "app-page")
	plan := filepath.Join(t.TempDir(), "plan.yaml")
	if err := os.WriteFile(plan, []byte("patient: p-page\neffective: 2026-11-01T00:00:00Z\nrules:\n"+
		"  - {id: mrs-severe, kind: score, instrument: mrs, score: total, band: severe, severity: critical}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustStaff(t, dir, "", "plans", "apply", "-f", plan)
	for _, u := range []string{"pager-1", "pager-2", "pager-3"} {
		mustStaff(t, dir, staffPassword+"\n", "staff", "add", "--username", u, "--role", "oncall")
		mustStaff(t, dir, "", "staff", "contact", "--username", u, "--email", u+"@clinic.test")
	}
	admin := staffToken(t, dir, "admin-page", "admin")
	rota := filepath.Join(t.TempDir(), "oncall.yaml")
	if err := os.WriteFile(rota, []byte(mailPagingRota), 0o600); err != nil {
		t.Fatal(err)
	}
	// A patient is evaluated at most every --analysis-interval (30s by
	// default): serve has just evaluated p-page at its start, which a
	// clinic's serve has not.
	srv := startServe(t, dir, "t-paging", "--alert-fire-after", "0s", "--analysis-interval", "1s", "--oncall-schedule", rota,
		"--smtp-url", "smtp://"+mp.SMTPAddr(), "--smtp-from", "patientpulse@clinic.test")

	sent := time.Now()
	mosquittoPub(t, "app-page", fmt.Sprintf(`{"seq": 1, "samples": [{"type": "symptoms", "time": %q, "instrument": "mrs", "items": {"hot_flushes": 4, "heart_discomfort": 2, "sleep_problems": 2, "joint_muscle": 2, "depressive_mood": 2, "irritability": 2, "anxiety": 2, "exhaustion": 2, "sexual_problems": 1, "bladder": 1, "vaginal_dryness": 1}}]}`,
		time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)))
	to := func(addr string) func(testservices.Message) bool {
		return func(m testservices.Message) bool {
			return slices.ContainsFunc(m.To, func(a mail.Address) bool { return a.Address == addr })
		}
	}
	first := mp.WaitForMessage(t, 5*time.Second, to("pager-1@clinic.test"))
	t.Logf("tier 1 mailed %v after the check-in", time.Since(sent).Round(time.Millisecond))
	if !strings.Contains(first.Subject, "critical") || !strings.Contains(first.Subject, "escalated to you (tier primary)") {
		t.Errorf("tier 1's subject: %q", first.Subject)
	}
	for _, part := range []string{first.Text, first.HTML, first.Subject} {
		if strings.Contains(part, "p-page") || strings.Contains(part, "mrs-severe") {
			t.Errorf("a minimal page names the patient or rule: %q", part)
		}
	}
	if !strings.Contains(first.Text, "one of your patients") || first.MessageID == "" {
		t.Errorf("tier 1's mail: Message-ID %q, text %q", first.MessageID, first.Text)
	}

	_, doc := call(t, http.DefaultClient, srv.url, admin, "GET", "/v1/alerts?patient=p-page", nil)
	alertsList, _ := doc["alerts"].([]any)
	if len(alertsList) != 1 {
		t.Fatalf("alerts of p-page: %v", doc)
	}
	alert := alertsList[0].(map[string]any)
	opened, _ := time.Parse(time.RFC3339Nano, alert["opened_at"].(string))

	second := mp.WaitForMessage(t, 90*time.Second, to("pager-2@clinic.test"))
	if wait := time.Since(opened); wait < 55*time.Second {
		t.Errorf("tier 2 mailed %v after the alert opened, before its 1m delay", wait)
	}
	link := regexp.MustCompile(`http://[^\s"<>]+/a/[A-Za-z0-9_-]+`).FindString(second.Text)
	if link == "" || !strings.HasPrefix(link, srv.url) {
		t.Fatalf("tier 2's mail has no page link to %s: %q", srv.url, second.Text)
	}

	// The link asks pager-2 to sign in, then acknowledges in one tap.
	ctx := browser(t)
	err = chromedp.Do(ctx,
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "pager-2"),
		chromedp.SendKeys(chromedp.CSS("#password"), staffPassword),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(chromedp.CSS("#ack")),
	)
	if err != nil {
		t.Fatalf("open the page link and sign in: %v", err)
	}
	if loc := location(t, ctx); !strings.HasPrefix(link, loc) && loc != link {
		t.Errorf("after sign-in the browser is at %s, want the page link %s", loc, link)
	}
	screenshot(t, ctx, "page-link")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#ack")), chromedp.WaitVisible(chromedp.CSS("#ack-done"))); err != nil {
		t.Fatalf("tap acknowledge: %v", err)
	}
	screenshot(t, ctx, "page-link-acknowledged")
	_, doc = call(t, http.DefaultClient, srv.url, admin, "GET", fmt.Sprintf("/v1/alerts/%v", alert["id"]), nil)
	if a, _ := doc["alert"].(map[string]any); a == nil || a["state"] != "acknowledged" || a["acked_by"] != "pager-2" {
		t.Fatalf("after the tap the alert is %v, want acknowledged by pager-2", doc)
	}
	reg := openRegistry(t, dir)
	acks, err := reg.AuditEntries(t.Context(), registry.AuditFilter{Action: registry.ActionAlertAck, Patient: "p-page"})
	if err != nil || len(acks) != 1 || acks[0].Actor != "pager-2" {
		t.Errorf("audit of the acknowledgement: %+v (err %v), want one by pager-2", acks, err)
	}

	// The third tier was due two minutes after the opening: the
	// acknowledgement stopped it.
	time.Sleep(time.Until(opened.Add(2*time.Minute + 5*time.Second)))
	for _, m := range mp.Messages(t) {
		if slices.ContainsFunc(m.To, func(a mail.Address) bool { return a.Address == "pager-3@clinic.test" }) {
			t.Errorf("tier 3 was paged after the acknowledgement: %q", m.Subject)
		}
	}
	paged, err := reg.Deliveries(t.Context(), registry.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var to2 []string
	for _, d := range paged {
		to2 = append(to2, d.Channel+":"+d.Recipient+":"+d.State)
	}
	slices.Sort(to2)
	if want := []string{"email:pager-1:delivered", "email:pager-2:delivered"}; !slices.Equal(to2, want) {
		t.Errorf("deliveries %v, want %v", to2, want)
	}
}
