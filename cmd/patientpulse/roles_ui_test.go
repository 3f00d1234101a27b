package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardOnCallPatientPage: an on-call member opens the patient of
// a critical alert and sees the whole page, without the plan editor their
// role may not use; once the alert is resolved the page still works (for
// a day, to follow up), saying there is no active alert. A patient they
// may not see, or one outside a clinician's care, gets a plain sentence
// and a way back instead of a half-drawn page. Screenshots: oncall-patient,
// oncall-resolved, oncall-not-yours, clinician-not-yours.
func TestDashboardOnCallPatientPage(t *testing.T) {
	c := startDashClinic(t, "rolepage")
	alertID := c.critical(t)

	root := browser(t)
	root, cancel := context.WithTimeout(root, 120*time.Second)
	defer cancel()
	oncall, cancelOncall := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelOncall()
	problems := consoleProblems(t, oncall)
	signIn(t, oncall, c.srv.url, c.oncall, "#sound")

	page := func(ctx context.Context, patient string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(c.srv.url+"/patient?id="+patient)); err != nil {
			t.Fatal(err)
		}
	}
	// loading is the visible text of elements still saying "Loading…".
	const loading = `[...document.querySelectorAll("main *")].filter((e) => e.children.length === 0 && e.offsetParent !== null && e.textContent.includes("Loading")).length`

	page(oncall, c.patient)
	waitJS(t, oncall, "the page drawn with its alert", `document.querySelector("#charts").dataset.ready === "true" && document.querySelector('#alert-list li[data-rule="hr-high"]') !== null`)
	if got := eval[[]bool](t, oncall, `["#plan-edit", "#plan-form"].map((s) => document.querySelector(s).offsetParent !== null)`); got[0] || got[1] {
		t.Errorf("the plan editor is offered to on-call staff (button, form shown): %v", got)
	}
	if s := text(t, oncall, "#plan-who"); s != "The patient's clinicians and admins change the plan." {
		t.Errorf("the plan panel says %q to on-call staff", s)
	}
	if eval[float64](t, oncall, `document.querySelectorAll("#rules li").length`) == 0 {
		t.Error("on-call staff do not see the plan's rules")
	}
	waitJS(t, oncall, "nothing left loading", loading+" === 0")
	screenshot(t, oncall, "oncall-patient")

	if st, doc := call(t, c.client, c.srv.url, c.token, "POST", fmt.Sprintf("/v1/alerts/%d/resolve", alertID), map[string]any{"note": "rate settled"}); st != http.StatusOK {
		t.Fatalf("resolve: %d %v", st, doc)
	}
	page(oncall, c.patient) // a reload: no active alert now
	waitJS(t, oncall, "the page drawn without an active alert", `document.querySelector("#charts").dataset.ready === "true" && document.querySelector("#resolved li") !== null`)
	if s := text(t, oncall, "#alerts-empty"); s != "No active alerts." {
		t.Errorf("the alerts panel says %q", s)
	}
	if s := eval[string](t, oncall, `document.querySelector("#resolved ol").textContent`); !strings.Contains(s, "by "+c.doctor) {
		t.Errorf("recently resolved: %q, want the alert resolved by %s", s, c.doctor)
	}
	waitJS(t, oncall, "nothing left loading", loading+" === 0")
	screenshot(t, oncall, "oncall-resolved")

	page(oncall, c.other) // never an alert
	waitJS(t, oncall, "the page saying why", `document.body.dataset.forbidden === "true"`)
	if s := text(t, oncall, "#status"); !strings.HasPrefix(s, "On-call staff can open a patient's page while the patient has an active alert") || !strings.HasSuffix(s, "Open the alerts console") {
		t.Errorf("an on-call member's page of a patient without an alert says %q", s)
	}
	if n := eval[float64](t, oncall, loading); n != 0 {
		t.Errorf("%v elements still say Loading…", n)
	}
	if eval[bool](t, oncall, `[".layout", "#patient-status"].some((s) => document.querySelector(s).offsetParent !== null)`) {
		t.Error("the page's panels or a status are drawn for a patient the member may not see")
	}
	screenshot(t, oncall, "oncall-not-yours")
	if p := problems(); len(p) > 0 {
		t.Errorf("the browser's console: %q", p)
	}

	doctor, cancelDoctor := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelDoctor()
	signIn(t, doctor, c.srv.url, c.doctor, "#patients a")
	page(doctor, c.other)
	waitJS(t, doctor, "the page saying why", `document.body.dataset.forbidden === "true"`)
	if s := text(t, doctor, "#status"); s != "This patient is not in your care: an admin can add you to their care team. Back to your patients" {
		t.Errorf("a clinician's page of another clinic's patient says %q", s)
	}
	screenshot(t, doctor, "clinician-not-yours")
}
