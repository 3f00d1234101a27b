package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardTreatments: with a chemical peel in the clinic's
// catalogue, and a plan that wants none within 28 days of starting
// estradiol, the patient's clinician records one as planned (this
// morning, not yet marked done) on the patient's page, is warned by the
// plan, sees it listed and marked on the charts, then marks it done and
// sees the rule hold; an on-call member reads it on a tablet and is offered
// no form.
func TestDashboardTreatments(t *testing.T) {
	c := startDashClinic(t, "treat")
	c.seed(t)
	if st, doc := call(t, c.client, c.srv.url, c.adminToken, "POST", "/v1/procedure-types",
		map[string]any{"id": "chemical_peel", "name": "Chemical peel", "category": "Skin", "recovery_days": 7}); st != http.StatusCreated {
		t.Fatalf("catalogue: %d %v", st, doc)
	}
	// Plan v3 adds a timing rule: no peel within 28 days of starting
	// estradiol (v1, 20 days ago).
	_, plan := call(t, c.client, c.srv.url, c.token, "GET", "/v1/patients/"+c.patient+"/plan", nil)
	v3 := map[string]any{"effective": ts(time.Now().Add(-time.Minute)), "regimen": plan["regimen"],
		"rules": append(plan["rules"].([]any), map[string]any{"id": "peel-after-start", "kind": "timing", "procedure": "chemical_peel",
			"at_least": "28d", "after": map[string]any{"medication": "estradiol", "started": true}, "severity": "warning"})}
	if st, doc := call(t, c.client, c.srv.url, c.token, "PUT", "/v1/patients/"+c.patient+"/plan", v3); st != http.StatusCreated {
		t.Fatalf("PUT plan v3: %d %v", st, doc)
	}
	root := browser(t)
	root, cancel := context.WithTimeout(root, 120*time.Second)
	defer cancel()
	ctx, cancelTab := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelTab()
	problems := consoleProblems(t, ctx)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 1000)); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, c.srv.url, c.doctor, "#patients a")
	c.openPatient(t, ctx)
	if s := plainText(t, ctx, "#procedures .empty"); s != "None recorded." {
		t.Errorf("a patient without treatments: %q", s)
	}
	planned := time.Now().UTC().Add(-2 * time.Hour).Format("2006-01-02T15:04") // in the clinic's zone, UTC here
	err := chromedp.Do(ctx,
		chromedp.SetValue("#procedure-at", planned),
		chromedp.SendKeys("#procedure-by", "Dr Lee"),
		chromedp.SendKeys("#procedure-notes", "Two weeks after the patch change"),
		chromedp.Click("#procedure-form button[type=submit]"))
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the procedure listed", `document.querySelector(".procedure-list li[data-status=planned]")`)
	if s := plainText(t, ctx, ".procedure-list li"); !strings.Contains(s, "Chemical peel planned for") || !strings.Contains(s, "By Dr Lee") ||
		!strings.Contains(s, "Two weeks after the patch change") || !strings.Contains(s, "Recorded by "+c.doctor) {
		t.Errorf("the procedure says %q", s)
	}
	// The plan's timing rule warns at once, and in the rule's verdict.
	waitJS(t, ctx, "the timing warning", `!document.querySelector("#procedures .timing-warnings").hidden`)
	if s := plainText(t, ctx, "#procedures .timing-warnings"); !strings.Contains(s, "The plan's timing rules warn:") ||
		!strings.Contains(s, "days after the start of estradiol on") || !strings.Contains(s, "the plan wants no chemical peel less than 28 days after the start of estradiol") {
		t.Errorf("the timing warning says %q", s)
	}
	waitJS(t, ctx, "the rule's warning", `document.querySelector('#rules li[data-rule="peel-after-start"] .verdict').textContent.startsWith("Warning: the chemical peel planned for")`)
	waitJS(t, ctx, "the chart's marker", `JSON.parse(document.querySelector("#chart-sleep").dataset.treatments)[0] === "Chemical peel (planned)"`)
	if s := plainText(t, ctx, "#chart-sleep .summary:not(.muted)"); !strings.Contains(s, "Treatments: Chemical peel (planned)") {
		t.Errorf("the sleep chart's summary says %q", s)
	}
	if err := chromedp.Do(ctx, chromedp.Click(".procedure-list li button")); err != nil { // "Mark done"
		t.Fatal(err)
	}
	waitJS(t, ctx, "the procedure done", `document.querySelector(".procedure-list li[data-status=done]")`)
	if !eval[bool](t, ctx, `document.activeElement === document.querySelector(".procedure-list li[data-status=done]")`) {
		t.Error("after 'Mark done' the keyboard focus is not on the procedure")
	}
	if s := plainText(t, ctx, "#procedures .timing-warnings"); !strings.Contains(s, "the chemical peel done on") {
		t.Errorf("marked done, the timing warning says %q", s)
	}
	waitJS(t, ctx, "the rule holding", `document.querySelector('#rules li[data-rule="peel-after-start"]').dataset.holds === "true"`)
	waitJS(t, ctx, "the marker done", `JSON.parse(document.querySelector("#chart-sleep").dataset.treatments)[0] === "Chemical peel"`)
	_, doc := call(t, c.client, c.srv.url, c.token, "GET", "/v1/patients/"+c.patient+"/procedures", nil)
	if list, _ := doc["procedures"].([]any); len(list) != 1 || list[0].(map[string]any)["status"] != "done" || list[0].(map[string]any)["performed_by"] != "Dr Lee" {
		t.Errorf("the stored procedures: %v", doc)
	}
	screenshot(t, ctx, "treatments")

	c.critical(t) // lets the on-call member open the patient
	oncall, cancelOncall := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelOncall()
	if err := chromedp.Do(oncall, chromedp.EmulateViewport(800, 1280)); err != nil {
		t.Fatal(err)
	}
	signIn(t, oncall, c.srv.url, c.oncall, "#sound")
	c.openPatient(t, oncall)
	waitJS(t, oncall, "the procedure", `document.querySelector(".procedure-list li[data-status=done]")`)
	if eval[bool](t, oncall, `document.querySelector("#procedure-form").hidden === false || Boolean(document.querySelector(".procedure-list button"))`) {
		t.Error("an on-call member is offered to record or change procedures")
	}
	if err := chromedp.Do(oncall, chromedp.ScrollIntoView("#procedures")); err != nil {
		t.Fatal(err)
	}
	if w := eval[[]int](t, oncall, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		t.Errorf("on a tablet the page is %d px wide in a %d px window", w[0], w[1])
	}
	screenshot(t, oncall, "treatments-tablet")
	if p := problems(); len(p) > 0 {
		t.Errorf("the browser's console: %q", p)
	}
}
