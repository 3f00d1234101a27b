package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patientpulse/patientpulse/notify"
	"github.com/patientpulse/patientpulse/registry"
)

// pagingZone is the clinic's time zone in the paging tests, and their
// rota's.
const pagingZone = "Europe/London"

// pagingRota is an on-call rota with a member on call round the clock in
// each of two tiers: an on-call nurse in primary, at once; the admin (a
// small clinic's lead) in secondary, after 15 minutes.
const pagingRota = `timezone: ` + pagingZone + `
tiers:
  - name: primary
    after: 0m
    shifts:
      - {staff: [on-first], days: [all], from: "00:00", to: "24:00"}
  - name: secondary
    after: 15m
    shifts:
      - {staff: [boss], days: [all], from: "00:00", to: "24:00"}
`

// pagingClinic is a running patientpulse over HTTPS with pagingRota's
// staff (on-first, on call; boss, admin) and a patient whose plan's
// critical rule (no vitals for a day) fires as soon as serve starts, and
// is escalated to the primary tier.
type pagingClinic struct {
	srv     *instance
	client  *http.Client
	admin   string // the admin's API token
	patient string
	name    string // the patient's
	alert   int64  // the patient's critical alert
	links   *notify.Links
}

// silentVitals is a plan whose only rule fires at once for a patient who
// never sent vitals.
func silentVitals() map[string]any {
	return map[string]any{"effective": ts(time.Now().Add(-3 * 24 * time.Hour)),
		"rules": []any{map[string]any{"id": "vitals-silent", "kind": "silence", "metric": "vitals", "for": "24h", "severity": "critical"}}}
}

// startPagingClinic starts the clinic; staff are added by role (username
// → role) beside the rota's.
func startPagingClinic(t *testing.T, group string, staff map[string]string, extra ...string) *pagingClinic {
	t.Helper()
	needServices(t)
	c := &pagingClinic{client: insecureClient(), patient: "p-" + group, name: "Wendy Paged"}
	dir := newDataDir(t)
	cli(t, dir, "patients", "add", "--id", c.patient, "--name", c.name)
	c.admin = staffToken(t, dir, "boss", "admin")
	mustStaff(t, dir, staffPassword+"\n", "staff", "add", "--username", "on-first", "--role", "oncall")
	for u, role := range staff {
		mustStaff(t, dir, staffPassword+"\n", "staff", "add", "--username", u, "--role", role)
	}
	// The key serve signs page links with: the registry makes it on the
	// first ask, and serve finds it there.
	reg, err := registry.Open(t.Context(), registryDSN(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	key, err := reg.ServerKey(t.Context(), notify.LinkKeyName, 32)
	reg.Close()
	if err != nil {
		t.Fatal(err)
	}
	c.links = notify.NewLinks(key, "")
	rota := filepath.Join(t.TempDir(), "oncall.yaml")
	if err := os.WriteFile(rota, []byte(pagingRota), 0o600); err != nil {
		t.Fatal(err)
	}
	c.srv = startServeOver(t, c.client, "https", dir, "t-"+group, append([]string{"--tls-self-signed", "--timezone", pagingZone,
		"--alert-fire-after", "0s", "--analysis-interval", "100ms", "--oncall-schedule", rota}, extra...)...)
	c.alert = c.firing(t, c.patient, silentVitals())
	return c
}

// firing applies plan to patient and returns its critical alert once it
// fires and is escalated to the primary tier.
func (c *pagingClinic) firing(t *testing.T, patient string, plan map[string]any) int64 {
	t.Helper()
	if st, doc := call(t, c.client, c.srv.url, c.admin, "PUT", "/v1/patients/"+patient+"/plan", plan); st != http.StatusCreated {
		t.Fatalf("PUT plan of %s: %d %v", patient, st, doc)
	}
	var id int64
	waitUntil(t, 20*time.Second, "the critical alert of "+patient+", escalated to the primary tier", func() bool {
		_, doc := call(t, c.client, c.srv.url, c.admin, "GET", "/v1/alerts?state=firing&patient="+patient, nil)
		list, _ := doc["alerts"].([]any)
		for _, v := range list {
			if a := v.(map[string]any); a["rule"] == "vitals-silent" && a["tier"] == "primary" {
				id = int64(a["id"].(float64))
				return true
			}
		}
		return false
	})
	return id
}

// alertDoc returns the alert as the admin sees it, and its steps.
func (c *pagingClinic) alertDoc(t *testing.T, id int64) (map[string]any, []any) {
	t.Helper()
	st, doc := call(t, c.client, c.srv.url, c.admin, "GET", fmt.Sprintf("/v1/alerts/%d", id), nil)
	if st != http.StatusOK {
		t.Fatalf("GET alert %d: %d %v", id, st, doc)
	}
	events, _ := doc["events"].([]any)
	return doc["alert"].(map[string]any), events
}

// openAs signs username in, in a browser context of its own.
func openAs(t *testing.T, parent context.Context, base, username, landing string) (context.Context, func() []string) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	problems := consoleProblems(t, ctx)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 1000)); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, base, username, landing)
	return ctx, problems
}

// plainText is an element's text with the narrow and no-break spaces some
// locales put in dates and times made plain.
func plainText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).textContent.replace(/[\u202f\u00a0]/g, " ")`, sel))
}

// TestConsoleSaysWhoIsPaged: the consoles of the two tiers' members (an
// on-call nurse in primary, the admin in secondary). The critical alert
// escalated to the primary tier says "Escalated to you (tier primary)" on
// the primary member's console, in a banner and on its row, and not on
// the secondary member's; so does one that fires while the consoles are
// open, without a reload. Both consoles list who is on call now, tier by
// tier. An alert snoozed from the API moves to the snoozed section with
// its wake time, and out of the banner. The admin's console lists the
// deliveries that failed (a webhook that answers 404); the nurse's does
// not. Screenshots: paged-primary, paged-secondary, paged-snoozed.
func TestConsoleSaysWhoIsPaged(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such hook", http.StatusNotFound) // final: the delivery fails at once
	}))
	defer hook.Close()
	c := startPagingClinic(t, "paged", nil, "--webhook-url", hook.URL, "--webhook-secret", "a webhook secret of the clinic")
	root := browser(t)
	root, cancel := context.WithTimeout(root, 90*time.Second)
	defer cancel()
	first, firstProblems := openAs(t, root, c.srv.url, "on-first", "#sound")
	second, secondProblems := openAs(t, root, c.srv.url, "boss", "#patients")
	if err := chromedp.Do(second, chromedp.Navigate(c.srv.url+"/oncall")); err != nil {
		t.Fatal(err)
	}

	row := fmt.Sprintf(`#group-critical tr[data-alert-id="%d"]`, c.alert)
	for _, ctx := range []context.Context{first, second} {
		waitJS(t, ctx, "the alert and the rota on the console", fmt.Sprintf(`document.querySelector('%s') !== null && document.querySelector("#rota").dataset.tiers === "2"`, row))
	}
	waitJS(t, first, "the banner, with the patient's name", fmt.Sprintf(`!document.querySelector("#paged").hidden && document.querySelector('#paged li[data-alert-id="%d"]').textContent.includes(%q)`, c.alert, c.name))
	if b := text(t, first, "#paged"); !strings.HasPrefix(b, "Escalated to you (tier primary): "+c.name) || !strings.Contains(b, "vitals-silent") {
		t.Errorf("the primary member's banner: %q", b)
	}
	if cell := text(t, first, row+" td.tier"); cell != "Escalated to you (tier primary)" {
		t.Errorf("the primary member's row says %q", cell)
	}
	rota := text(t, first, "#rota")
	for _, want := range []string{"primary", "as soon as an alert opens", "on-first (you)", "secondary", "after 15 min", "boss"} {
		if !strings.Contains(rota, want) {
			t.Errorf("the on-call panel lacks %q: %q", want, rota)
		}
	}
	if mine := eval[[]string](t, first, `[...document.querySelectorAll("#rota li.mine")].map((li) => li.dataset.tier)`); len(mine) != 1 || mine[0] != "primary" {
		t.Errorf("tiers marked as the primary member's own: %q", mine)
	}
	screenshot(t, first, "paged-primary")
	if shown := eval[bool](t, second, `!document.querySelector("#paged").hidden`); shown {
		t.Errorf("the secondary member's console shows the banner: %q", text(t, second, "#paged"))
	}
	if cell := text(t, second, row+" td.tier"); cell != "Tier primary" {
		t.Errorf("the secondary member's row says %q, want Tier primary", cell)
	}
	if r := text(t, second, "#rota"); !strings.Contains(r, "boss (you)") || !strings.Contains(r, "on-first") {
		t.Errorf("the secondary member's on-call panel: %q", r)
	}

	// An alert that fires while the consoles are open.
	eval[bool](t, first, `window.stillTheSamePage = true`)
	other := "p-paged-too"
	if st, doc := call(t, c.client, c.srv.url, c.admin, "POST", "/v1/patients", map[string]any{"id": other, "name": "Vera Late"}); st != http.StatusCreated {
		t.Fatalf("POST patient: %d %v", st, doc)
	}
	late := c.firing(t, other, silentVitals())
	waitJS(t, first, "the second alert in the banner", fmt.Sprintf(`document.querySelector('#paged li[data-alert-id="%d"]') !== null && document.querySelector("#paged").dataset.count === "2"`, late))
	waitJS(t, second, "the second alert on the other console", fmt.Sprintf(`document.querySelector('#group-critical tr[data-alert-id="%d"]') !== null`, late))
	if !eval[bool](t, first, `window.stillTheSamePage === true`) {
		t.Error("the console was reloaded")
	}
	if shown := eval[bool](t, second, `!document.querySelector("#paged").hidden`); shown {
		t.Errorf("the secondary member's console shows the banner after the second alert: %q", text(t, second, "#paged"))
	}

	// Snoozed for two hours: listed apart with its wake time, out of the
	// banner.
	until := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	if st, doc := call(t, c.client, c.srv.url, c.admin, "POST", fmt.Sprintf("/v1/alerts/%d/snooze", c.alert),
		map[string]any{"until": until.Format(time.RFC3339), "note": "seen in clinic"}); st != http.StatusOK {
		t.Fatalf("snooze: %d %v", st, doc)
	}
	snoozedRow := fmt.Sprintf(`#snoozed tr[data-alert-id="%d"]`, c.alert)
	waitJS(t, first, "the snoozed section", fmt.Sprintf(`document.querySelector('%s') !== null && document.querySelector('%s') === null && !document.querySelector("#snoozed").hidden`, snoozedRow, row))
	london, _ := time.LoadLocation(pagingZone)
	if wake := plainText(t, first, snoozedRow+" td.wake"); !strings.HasPrefix(wake, "snoozed until ") || !strings.Contains(wake, until.In(london).Format("15:04")) {
		t.Errorf("the snoozed alert's wake time: %q, want the clinic's %s", wake, until.In(london).Format("15:04"))
	}
	if h := text(t, first, "#snoozed-title"); h != "Snoozed (1)" {
		t.Errorf("the snoozed section's title: %q", h)
	}
	waitJS(t, first, "the snoozed alert out of the banner", fmt.Sprintf(`document.querySelector("#paged").dataset.count === "1" && document.querySelector('#paged li[data-alert-id="%d"]') === null`, c.alert))
	if counts := text(t, first, "#counts"); counts != "1 active, 1 not acknowledged, 1 snoozed; 1 nobody has reviewed" {
		t.Errorf("the console's counts: %q", counts)
	}
	screenshot(t, first, "paged-snoozed")

	// The admin's console, read again: the webhook's deliveries failed.
	waitUntil(t, 20*time.Second, "a failed delivery", func() bool {
		_, doc := call(t, c.client, c.srv.url, c.admin, "GET", "/v1/notify/deliveries?state=failed", nil)
		list, _ := doc["deliveries"].([]any)
		return len(list) > 0
	})
	if err := chromedp.Do(second, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, second, "the failed deliveries", `!document.querySelector("#failed").hidden && Number(document.querySelector("#failed").dataset.count) > 0`)
	if f := text(t, second, "#failed"); !strings.Contains(f, "webhook (clinic-wide)") || !strings.Contains(f, "1 attempt,") || !strings.Contains(f, "HTTP 404") {
		t.Errorf("the failed deliveries panel: %q", f)
	}
	screenshot(t, second, "paged-secondary")
	if shown := eval[bool](t, first, `!document.querySelector("#failed").hidden`); shown {
		t.Error("an on-call member's console shows the failed deliveries")
	}

	if p := append(firstProblems(), secondProblems()...); len(p) > 0 {
		t.Errorf("the console reports: %v", p)
	}
}

// TestPageLinkAcknowledges: a page's link opened signed out leads to the
// sign-in form and back; the alert is shown and one tap acknowledges it
// as the staff member, audited, with the escalation stopped. Opened again
// it says who acknowledged; an expired or forged link says so; a
// clinician whose care the patient is not in is told so. Screenshots:
// ack-page, ack-done, ack-expired.
func TestPageLinkAcknowledges(t *testing.T) {
	c := startPagingClinic(t, "acklink", map[string]string{"dr-elsewhere": "clinician"})
	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	problems := consoleProblems(t, ctx)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil { // a phone
		t.Fatal(err)
	}
	link := c.links.Ack(c.alert, time.Now())
	if err := chromedp.Do(ctx, chromedp.Navigate(c.srv.url+link)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the sign-in form", `location.pathname === "/signin" && document.readyState === "complete"`)
	if next := eval[string](t, ctx, `new URLSearchParams(location.search).get("next")`); next != link {
		t.Errorf("the sign-in form's next: %q, want %q", next, link)
	}
	user, pass := chromedp.CSS("#username"), chromedp.CSS("#password")
	err := chromedp.Do(ctx, chromedp.WaitVisible(user), chromedp.SendKeys(user, "on-first"), chromedp.SendKeys(pass, staffPassword), chromedp.Submit(pass))
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the alert, back on the link", fmt.Sprintf(`location.pathname === %q && !document.querySelector("#ack").hidden`, link))
	for sel, want := range map[string]string{"#alert-rule": "vitals-silent", "#alert-severity": "Critical", "#alert-state": "Firing", "#alert-tier": "Tier primary"} {
		if got := text(t, ctx, sel); got != want {
			t.Errorf("%s: %q, want %q", sel, got, want)
		}
	}
	if p := text(t, ctx, "#alert-patient"); p != c.name+" ("+c.patient+")" {
		t.Errorf("patient shown: %q", p)
	}
	if w := eval[[]int](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth, document.querySelector("#ack").getBoundingClientRect().height]`); w[0] > w[1] || w[2] < 60 {
		t.Errorf("on a phone: page %d px wide in %d px, button %d px tall", w[0], w[1], w[2])
	}
	screenshot(t, ctx, "ack-page")
	axeCheck(t, ctx, "the page link's page, on a phone")

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#ack"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the acknowledgement", `!document.querySelector("#ack-done").hidden`)
	a, events := c.alertDoc(t, c.alert)
	ackedAt, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(a["acked_at"]))
	london, _ := time.LoadLocation(pagingZone)
	if done := plainText(t, ctx, "#ack-done"); done != "Acknowledged by you at "+ackedAt.In(london).Format("15:04")+" — escalation stopped." {
		t.Errorf("after the tap: %q", done)
	}
	if a["state"] != "acknowledged" || a["acked_by"] != "on-first" {
		t.Errorf("the alert after the tap: state %v, acknowledged by %v", a["state"], a["acked_by"])
	}
	var noted bool
	for _, e := range events {
		e := e.(map[string]any)
		noted = noted || (e["kind"] == "ack" || e["kind"] == "acknowledged") && e["actor"] == "on-first" && e["note"] == "acknowledged from a page link"
	}
	if !noted {
		t.Errorf("no acknowledgement by on-first from a page link among the alert's steps: %v", events)
	}
	st, doc := call(t, c.client, c.srv.url, c.admin, "GET", "/v1/audit?actor=on-first&action="+registry.ActionAlertAck, nil)
	entries, _ := doc["entries"].([]any)
	if st != http.StatusOK || len(entries) != 1 || entries[0].(map[string]any)["patient"] != c.patient ||
		!strings.Contains(fmt.Sprint(entries[0].(map[string]any)["target"]), fmt.Sprint(c.alert)) {
		t.Errorf("audit of the acknowledgement: %d %v", st, doc)
	}
	screenshot(t, ctx, "ack-done")

	// Opened again: who acknowledged, and nothing to tap.
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the settled alert", `document.querySelector("#status").dataset.outcome === "settled"`)
	if s := text(t, ctx, "#status"); !strings.HasPrefix(s, "Already acknowledged by you at ") || eval[bool](t, ctx, `!document.querySelector("#ack").hidden`) {
		t.Errorf("the link opened again: %q, button shown %v", s, eval[bool](t, ctx, `!document.querySelector("#ack").hidden`))
	}

	// Links that are no good.
	for _, l := range []struct{ name, path, want string }{
		{"expired", c.links.Ack(c.alert, time.Now().Add(-notify.LinkTTL-time.Minute)), "This page link has expired: open the alert from the console."},
		{"forged", "/a/" + url.PathEscape("not-a-token"), "Not a valid page link."},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(c.srv.url+l.path)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the "+l.name+" link's message", `document.querySelector("#status").dataset.outcome === "error"`)
		if s := text(t, ctx, "#status"); s != l.want || !eval[bool](t, ctx, `document.querySelector("#to-console") !== null && document.querySelector("#alert").hidden`) {
			t.Errorf("an %s link: %q, want %q with the way to the console", l.name, s, l.want)
		}
		if l.name == "expired" {
			screenshot(t, ctx, "ack-expired")
		}
	}

	// A clinician whose care the patient is not in.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(user)); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, c.srv.url, "dr-elsewhere", "#status")
	if err := chromedp.Do(ctx, chromedp.Navigate(c.srv.url+link)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the refusal", `document.querySelector("#status").dataset.outcome === "error"`)
	if s := text(t, ctx, "#status"); s != "You cannot open this alert: its patient is not in your care." {
		t.Errorf("a clinician of another care team: %q", s)
	}

	if p := problems(); len(p) > 0 {
		t.Errorf("the console reports: %v", p)
	}
}
