package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardTriageListSaysWhy: the patient list says why a patient
// needs attention (the most urgent alert's sentence and age), and tells a
// new alert from an acknowledged one (by whom) and a snoozed one (until
// when), live as the alert changes. Screenshots: triage-new,
// triage-acknowledged, triage-snoozed.
func TestDashboardTriageListSaysWhy(t *testing.T) {
	c := startDashClinic(t, "triage")
	alertID := c.critical(t)
	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	signIn(t, ctx, c.srv.url, c.doctor, "#patients a")
	row := `#patients tr[data-patient="` + c.patient + `"]`
	state := func(key string) {
		t.Helper()
		waitJS(t, ctx, "the alert "+key+" on the list", fmt.Sprintf(`document.querySelector('%s .why').dataset.alertState === %q`, row, key))
	}
	state("new")
	if s := plainText(t, ctx, row+" .why .sentence"); !strings.HasPrefix(s, "1-day max heart rate 150 bpm is above the plan's 120 bpm") {
		t.Errorf("the row's reason: %q", s)
	}
	if s := plainText(t, ctx, row+" .alert-state"); !strings.HasPrefix(s, "New: nobody has acknowledged it · opened ") || !strings.HasSuffix(s, " ago") && !strings.HasSuffix(s, "just now") {
		t.Errorf("a new alert's state on the list: %q", s)
	}
	screenshot(t, ctx, "triage-new")

	act := func(action string, body map[string]any) {
		t.Helper()
		if st, doc := call(t, c.client, c.srv.url, c.token, "POST", fmt.Sprintf("/v1/alerts/%d/%s", alertID, action), body); st != http.StatusOK {
			t.Fatalf("%s: %d %v", action, st, doc)
		}
	}
	act("ack", map[string]any{"note": "seen"})
	state("acknowledged")
	if s := plainText(t, ctx, row+" .alert-state"); !strings.HasPrefix(s, "Acknowledged by "+c.doctor+" · opened ") {
		t.Errorf("an acknowledged alert's state on the list: %q", s)
	}
	screenshot(t, ctx, "triage-acknowledged")

	act("snooze", map[string]any{"until": time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)})
	state("snoozed")
	if s := plainText(t, ctx, row+" .alert-state"); !regexp.MustCompile(`^Snoozed until \d\d:\d\d · opened `).MatchString(s) {
		t.Errorf("a snoozed alert's state on the list: %q", s)
	}
	screenshot(t, ctx, "triage-snoozed")
}

// TestDashboardTriageFreshness: the watch of a patient went silent 61 hours
// ago while her phone app logged a dose 5 hours ago and her last lab came
// 40 days ago. The list gives each stream its own time and flags the watch
// alone, where one "last data" would have said "5 h ago". Filtered to
// silent streams, the row is there; when the watch sends again, the flag
// goes and the row leaves the filtered list, without a reload.
// Screenshots: triage-freshness, triage-freshness-tablet.
func TestDashboardTriageFreshness(t *testing.T) {
	c := startDashClinic(t, "fresh")
	now := time.Now().UTC().Truncate(time.Second)
	mosquittoPub(t, c.device, fmt.Sprintf(`{"seq": 1, "samples": [
		{"type": "heart_rate", "time": %q, "bpm": 64},
		{"type": "dose", "time": %q, "medication": "estradiol", "route": "transdermal", "amount": 0.05, "unit": "mg"},
		{"type": "lab", "time": %q, "analyte": "estradiol", "value": 412, "unit": "pmol/L"}]}`,
		ts(now.Add(-61*time.Hour)), ts(now.Add(-5*time.Hour)), ts(now.Add(-40*24*time.Hour))))
	// The list is not asked before the message is stored, so serve reads
	// each stream's last data from InfluxDB (then keeps it current).
	waitUntil(t, 20*time.Second, "the samples stored", func() bool {
		_, doc := call(t, c.client, c.srv.url, c.token, "GET", "/v1/patients/"+c.patient+"/series?type=dose", nil)
		pts, _ := doc["points"].([]any)
		return len(pts) == 1
	})
	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 900)); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, c.srv.url, c.doctor, "#patients a")
	row := `#patients tr[data-patient="` + c.patient + `"]`
	stream := func(key string) (fresh, text string) {
		t.Helper()
		li := fmt.Sprintf(`%s li[data-stream=%q]`, row, key)
		return eval[string](t, ctx, fmt.Sprintf(`document.querySelector('%s').dataset.fresh`, li)), plainText(t, ctx, li)
	}
	for _, want := range []struct{ key, fresh, text string }{
		{"watch", "stale", "Watch: 2 days ago · silent for over a day"},
		{"phone", "fresh", "Phone: 5 h ago"},
		{"labs", "fresh", "Labs: 40 days ago"},
	} {
		if fresh, text := stream(want.key); fresh != want.fresh || text != want.text {
			t.Errorf("%s: %s %q, want %s %q", want.key, fresh, text, want.fresh, want.text)
		}
	}
	screenshot(t, ctx, "triage-freshness")

	choose := func(value string) { // as a user picks an option
		t.Helper()
		eval[bool](t, ctx, fmt.Sprintf(`(() => { const s = document.querySelector("#data-filter"); s.value = %q; return s.dispatchEvent(new Event("input", {bubbles: true})) })()`, value))
	}

	choose("stale")
	waitJS(t, ctx, "the filtered list", `document.querySelector("#patients").dataset.rows === "1" && location.search.includes("data=stale")`)
	mosquittoPub(t, c.device, fmt.Sprintf(`{"seq": 2, "samples": [{"type": "heart_rate", "time": %q, "bpm": 66}]}`, ts(time.Now().Add(-time.Minute))))
	waitJS(t, ctx, "the row gone from the silent streams", `document.querySelector("#patients").dataset.rows === "0"`)
	if s := plainText(t, ctx, "#status"); !strings.Contains(s, "none match the filter") {
		t.Errorf("the list's status with nothing shown: %q", s)
	}
	choose("")
	waitJS(t, ctx, "the row back", `document.querySelector("#patients").dataset.rows === "1"`)
	if fresh, text := stream("watch"); fresh != "fresh" || (text != "Watch: 1 min ago" && text != "Watch: just now") {
		t.Errorf("the watch after it sent again: %s %q", fresh, text)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(800, 1280), chromedp.Sleep(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if w := eval[[]int](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		t.Errorf("on a tablet the list is %d px wide in a %d px window", w[0], w[1])
	}
	screenshot(t, ctx, "triage-freshness-tablet")
}

// TestDashboardAssignToMe: the on-call member's console narrowed to the
// worklist of alerts nobody has reviewed shows the firing alert; "Assign
// to me" takes it on, so it leaves the worklist and is under "Assigned to
// me", and the clinician's list says who has it, live. On the patient's
// page the clinician takes it over; the console says so without a
// reload, and the on-call member's worklist stays empty until the
// clinician gives it up. Screenshots: assign-worklist, assign-mine,
// assign-patient.
func TestDashboardAssignToMe(t *testing.T) {
	c := startDashClinic(t, "assign")
	id := c.critical(t)
	root := browser(t)
	root, cancel := context.WithTimeout(root, 120*time.Second)
	defer cancel()
	oncall, cancelOncall := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelOncall()
	problems := consoleProblems(t, oncall)
	if err := chromedp.Do(oncall, chromedp.EmulateViewport(1366, 900)); err != nil {
		t.Fatal(err)
	}
	signIn(t, oncall, c.srv.url, c.oncall, "#sound")
	if err := chromedp.Do(oncall, chromedp.Navigate(c.srv.url+"/oncall?show=unreviewed")); err != nil {
		t.Fatal(err)
	}
	row := fmt.Sprintf(`#row-%d`, id)
	waitJS(t, oncall, "the alert on the worklist", fmt.Sprintf(`document.querySelector('%s') !== null`, row))
	if s := plainText(t, oncall, row+" td.state"); s != "Firing: nobody has reviewed it" {
		t.Errorf("the worklist's row says %q", s)
	}
	if s := plainText(t, oncall, "#counts"); !strings.HasSuffix(s, "; 1 nobody has reviewed") {
		t.Errorf("the console's counts: %q", s)
	}
	screenshot(t, oncall, "assign-worklist")

	doctor, cancelDoctor := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelDoctor()
	signIn(t, doctor, c.srv.url, c.doctor, "#patients a")
	listRow := `#patients tr[data-patient="` + c.patient + `"]`
	waitJS(t, doctor, "the alert on the list", fmt.Sprintf(`document.querySelector('%s .alert-state') !== null`, listRow))

	if err := chromedp.Do(oncall, chromedp.Click(row+" button.assign")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, oncall, "the alert off the worklist", fmt.Sprintf(`document.querySelector('%s') === null && document.querySelector("#status").textContent.startsWith("Nobody's review is waiting")`, row))
	if err := chromedp.Do(oncall, chromedp.SetValue("#show", "mine")); err != nil {
		t.Fatal(err)
	}
	eval[bool](t, oncall, `document.querySelector("#show").dispatchEvent(new Event("change"))`)
	waitJS(t, oncall, "the alert under assigned to me", fmt.Sprintf(`document.querySelector('%s .assignee') !== null && location.search === "?show=mine"`, row))
	if s := plainText(t, oncall, row+" .assignee"); s != "Assigned to you" {
		t.Errorf("the on-call member's row says %q", s)
	}
	if s := plainText(t, oncall, row+" button.assign"); s != "Give it up" {
		t.Errorf("the button of one's own alert: %q", s)
	}
	screenshot(t, oncall, "assign-mine")
	waitJS(t, doctor, "who has it, on the clinician's list", fmt.Sprintf(`document.querySelector('%s .alert-state').textContent.includes("assigned to %s")`, listRow, c.oncall))

	// The clinician takes it over from the patient's page.
	item := fmt.Sprintf(`#alert-%d`, id)
	c.openPatient(t, doctor)
	waitJS(t, doctor, "the alert's assignee", fmt.Sprintf(`document.querySelector('%s .assignee').textContent.startsWith("Assigned to %s")`, item, c.oncall))
	if err := chromedp.Do(doctor, chromedp.Click(item+" button.assign")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "the alert taken over", fmt.Sprintf(`document.querySelector('%s .assignee').textContent.startsWith("Assigned to you")`, item))
	// The live connection may draw the change before the answer comes.
	waitJS(t, doctor, "the focus on the alert's button", `document.activeElement.textContent === "Give it up"`)
	screenshot(t, doctor, "assign-patient")
	waitJS(t, oncall, "the clinician's name on the console", fmt.Sprintf(`document.querySelector('%s') === null && document.querySelector("#status").textContent === "No active alert is assigned to you."`, row))
	_, doc := call(t, c.client, c.srv.url, c.token, "GET", fmt.Sprintf("/v1/alerts/%d", id), nil)
	if a, _ := doc["alert"].(map[string]any); a["assignee"] != c.doctor {
		t.Errorf("GET /v1/alerts/%d: %v, want the clinician as its assignee", id, a)
	}
	if err := chromedp.Do(doctor, chromedp.Click(item+" button.assign")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "the alert given up", fmt.Sprintf(`document.querySelector('%s .assignee').textContent.startsWith("Nobody has taken it on")`, item))
	if p := problems(); len(p) > 0 {
		t.Errorf("the browser's console: %q", p)
	}
}

// TestDashboardTriageFollowUps: the patient's plan (started 20 days ago)
// wants an estradiol result 2 weeks after it and a check-in every 14
// days; the list shows the result overdue, then the check-in due, and
// its follow-up filter keeps the patient for "Overdue" until the result
// comes. Screenshot: triage-follow-ups.
func TestDashboardTriageFollowUps(t *testing.T) {
	c := startDashClinic(t, "follow")
	_, plan := call(t, c.client, c.srv.url, c.token, "GET", "/v1/patients/"+c.patient+"/plan", nil)
	v3 := map[string]any{"effective": ts(time.Now().Add(-time.Minute)), "regimen": plan["regimen"],
		"rules": append(plan["rules"].([]any),
			map[string]any{"id": "labs-recheck", "kind": "followup", "metric": "labs.estradiol", "due_after": "2w", "grace": "3d", "severity": "warning"},
			map[string]any{"id": "checkins", "kind": "followup", "metric": "symptoms", "every": "14d", "severity": "info"})}
	if st, doc := call(t, c.client, c.srv.url, c.token, "PUT", "/v1/patients/"+c.patient+"/plan", v3); st != http.StatusCreated {
		t.Fatalf("PUT plan v3: %d %v", st, doc)
	}
	followUp := func() any {
		_, doc := call(t, c.client, c.srv.url, c.token, "GET", "/v1/patients/"+c.patient+"/verdicts", nil)
		for _, v := range doc["verdicts"].([]any) {
			if v := v.(map[string]any); v["rule"] == "labs-recheck" {
				return v["follow_up"]
			}
		}
		return nil
	}
	waitUntil(t, 30*time.Second, "the follow-up overdue", func() bool { return followUp() == "overdue" })
	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 900)); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, c.srv.url, c.doctor, "#patients a")
	row := `#patients tr[data-patient="` + c.patient + `"]`
	waitJS(t, ctx, "the follow-ups", fmt.Sprintf(`document.querySelectorAll('%s .follow-ups li').length === 2`, row))
	got := eval[[]string](t, ctx, fmt.Sprintf(`[...document.querySelectorAll('%s .follow-ups li')].map((li) => li.dataset.followUp + " " + li.textContent)`, row))
	if len(got) != 2 || !strings.HasPrefix(got[0], "overdue Overdue: an estradiol result, due ") || !strings.HasPrefix(got[1], "due Due: a symptom check-in, by ") {
		t.Errorf("the follow-ups: %q", got)
	}
	screenshot(t, ctx, "triage-follow-ups")
	axeCheck(t, ctx, "the patient list with follow-ups")

	choose := func(value string) {
		t.Helper()
		eval[bool](t, ctx, fmt.Sprintf(`(() => { const s = document.querySelector("#followup-filter"); s.value = %q; return s.dispatchEvent(new Event("input", {bubbles: true})) })()`, value))
	}
	choose("overdue")
	waitJS(t, ctx, "the overdue filter", `document.querySelector("#patients").dataset.rows === "1" && location.search.includes("followups=overdue")`)
	mosquittoPub(t, c.device, fmt.Sprintf(`{"seq": 1, "samples": [{"type": "lab", "time": %q, "analyte": "estradiol", "value": 412, "unit": "pmol/L"}]}`,
		ts(time.Now().Add(-time.Hour))))
	waitUntil(t, 30*time.Second, "the result judged", func() bool { return followUp() == "done" })
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "nothing overdue", `document.querySelector("#patients").dataset.rows === "0"`)
	choose("due")
	waitJS(t, ctx, "the check-in still due", fmt.Sprintf(`document.querySelector("#patients").dataset.rows === "1" && document.querySelectorAll('%s .follow-ups li').length === 1`, row))
}
