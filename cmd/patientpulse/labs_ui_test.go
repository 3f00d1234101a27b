package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardLabPanel: a patient with no lab results has an empty lab
// panel; after a lab feed posts estradiol (one result in pg/mL, converted
// to pmol/L, above its reference range), a total testosterone and a
// hematocrit above the plan's 54 % over POST /v1/ingest, the patient's
// page shows one chart per analyte, labelled and in the units of the
// catalog, with the flagged results marked in words; the timeline lists
// the results; and the plan editor offers labs.<analyte> by the catalog's
// label. Screenshots: labs, labs-panel.
func TestDashboardLabPanel(t *testing.T) {
	c := startDashClinic(t, "labs")
	now := time.Now().UTC().Truncate(time.Second)
	v3 := map[string]any{"effective": ts(now.Add(-time.Hour)),
		"regimen": []any{map[string]any{"medication": "testosterone", "route": "intramuscular", "amount": 100, "unit": "mg", "schedule": "weekly"}},
		"rules": []any{map[string]any{"id": "hct-high", "kind": "threshold", "metric": "labs.hematocrit", "over": "90d",
			"aggregate": "latest", "above": 54, "severity": "critical"}}}
	if st, doc := call(t, c.client, c.srv.url, c.token, "PUT", "/v1/patients/"+c.patient+"/plan", v3); st != http.StatusCreated {
		t.Fatalf("PUT plan with a lab rule: %d %v", st, doc)
	}
	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	problems := consoleProblems(t, ctx)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 1000)); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, c.srv.url, c.doctor, "#patients a")
	page := c.srv.url + "/patient?id=" + c.patient
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the lab panel", `document.querySelector("#labs").dataset.ready === "true"`)
	if empty := text(t, ctx, "#labs .empty"); empty != "No lab results in this period." {
		t.Errorf("the empty lab panel says %q", empty)
	}

	results := []string{
		fmt.Sprintf(`{"type": "lab", "time": %q, "analyte": "estradiol", "value": 412, "unit": "pmol/L", "ref_low": 98, "ref_high": 571}`, ts(now.Add(-60*24*time.Hour))),
		fmt.Sprintf(`{"type": "lab", "time": %q, "analyte": "estradiol", "value": 250, "unit": "pg/mL", "ref_low": 26.6, "ref_high": 155.6}`, ts(now.Add(-10*24*time.Hour))),
		fmt.Sprintf(`{"type": "lab", "time": %q, "analyte": "testosterone", "value": 15, "unit": "nmol/L", "ref_low": 8.6, "ref_high": 29}`, ts(now.Add(-10*24*time.Hour))),
		fmt.Sprintf(`{"type": "lab", "time": %q, "analyte": "hematocrit", "value": 0.56, "unit": "L/L", "ref_low": 0.40, "ref_high": 0.50}`, ts(now.Add(-5*24*time.Hour))),
	}
	body := []byte(fmt.Sprintf(`{"seq": 1, "samples": [%s]}`, strings.Join(results, ",")))
	if st, doc, _, err := postWith(c.client, c.srv.url, c.deviceToken, "application/json", body); err != nil || st != http.StatusAccepted {
		t.Fatalf("POST /v1/ingest of lab results: %d %v %v", st, doc, err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the lab charts", `document.querySelector("#labs").dataset.analytes === "estradiol,testosterone,hematocrit"`)

	type labChart struct {
		Title, Summary, Legend string
		Rows                   []struct{ Text, Flag string }
		Targets                string
	}
	got := eval[map[string]labChart](t, ctx, `Object.fromEntries([...document.querySelectorAll("#labs .chart")].map((s) => [s.id, {
		title: s.querySelector("h3").textContent, summary: s.querySelector(".summary:not(.muted)").textContent,
		legend: s.querySelector(".legend").textContent,
		targets: s.dataset.targets,
		rows: [...s.querySelectorAll("tbody tr")].map((r) => ({text: r.textContent, flag: r.dataset.flag}))}]))`)
	// The titles are the catalog's labels ("Testosterone, total" is
	// written nowhere in the web app), the units its canonical ones.
	for id, title := range map[string]string{"chart-lab-estradiol": "Estradiol", "chart-lab-testosterone": "Testosterone, total", "chart-lab-hematocrit": "Hematocrit"} {
		if got[id].Title != title {
			t.Errorf("%s: title %q, want %q", id, got[id].Title, title)
		}
	}
	e := got["chart-lab-estradiol"]
	if len(e.Rows) != 2 || e.Rows[0].Flag != "H" || !strings.Contains(e.Rows[0].Text, "917.75 pmol/L") ||
		!strings.Contains(e.Rows[0].Text, "High: above the reference range") || !strings.Contains(e.Rows[0].Text, "250") ||
		e.Rows[1].Flag != "" || !strings.Contains(e.Rows[1].Text, "412 pmol/L") || !strings.Contains(e.Rows[1].Text, "98–571 pmol/L") ||
		!strings.Contains(e.Rows[1].Text, "within range") {
		t.Errorf("estradiol's results: %+v", e.Rows)
	}
	if !strings.Contains(e.Legend, "Estradiol 917.75 pmol/L") || !strings.Contains(e.Summary, "Latest estradiol: 917.75 pmol/L") || !strings.Contains(e.Summary, "1 of 2 results flagged") {
		t.Errorf("estradiol's chart: legend %q, summary %q", e.Legend, e.Summary)
	}
	if tt := got["chart-lab-testosterone"]; len(tt.Rows) != 1 || tt.Rows[0].Flag != "" || !strings.Contains(tt.Rows[0].Text, "15 nmol/L") {
		t.Errorf("testosterone's results: %+v", tt.Rows)
	}
	h := got["chart-lab-hematocrit"]
	if len(h.Rows) != 1 || h.Rows[0].Flag != "HH" || !strings.Contains(h.Rows[0].Text, "56 %") ||
		!strings.Contains(h.Rows[0].Text, "Above the plan's 54 %") || !strings.Contains(h.Targets, `"high":54`) {
		t.Errorf("hematocrit: rows %+v, plan bands %s", h.Rows, h.Targets)
	}
	if f := eval[string](t, ctx, `document.querySelector("#labs").dataset.flagged`); f != "2" {
		t.Errorf("flagged results on the panel: %s, want 2", f)
	}

	timeline := eval[[]string](t, ctx, `[...document.querySelectorAll("#timeline-list li")].map((li) => li.dataset.kind + "|" + li.dataset.flag + "|" + li.textContent)`)
	var labs []string
	for _, li := range timeline {
		if strings.HasPrefix(li, "lab|") {
			labs = append(labs, li)
		}
	}
	if len(labs) != 4 || !strings.HasPrefix(labs[0], "lab|HH|") || !strings.Contains(labs[0], "Hematocrit 56 % (ref 40–50)") ||
		!strings.HasPrefix(labs[3], "lab||") || !strings.Contains(labs[3], "Estradiol 412 pmol/L (ref 98–571)") {
		t.Errorf("lab results in the timeline, newest first: %q", labs)
	}
	screenshot(t, ctx, "labs")
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("#labs")))
	if err == nil {
		err = os.WriteFile(filepath.Join(t.ArtifactDir(), "labs-panel.png"), png, 0o644)
	}
	if err != nil {
		t.Errorf("screenshot of the lab panel: %v", err)
	}

	// The plan editor offers each analyte by its label; a rule added on
	// one shows its bounds in the analyte's unit.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#plan-edit")), chromedp.WaitVisible(chromedp.CSS("#new-rule-metric"))); err != nil {
		t.Fatal(err)
	}
	if o := eval[string](t, ctx, `document.querySelector('#new-rule-metric option[value="labs.free_testosterone"]').textContent`); o != "Testosterone, free" {
		t.Errorf("the editor offers labs.free_testosterone as %q", o)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#new-rule-metric"), "labs.estradiol"), chromedp.Click(chromedp.CSS("#add-rule"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the new rule's row", `document.querySelector('#rule-rows [data-rule="estradiol-threshold"] [name="above"]')`)
	if u := text(t, ctx, `#rule-rows [data-rule="estradiol-threshold"] .unit`); u != "pmol/L" {
		t.Errorf("the new estradiol rule's bound is in %q, want pmol/L", u)
	}
	if w := text(t, ctx, `#rule-rows [data-rule="estradiol-threshold"] .words`); !strings.Contains(w, "Estradiol (labs.estradiol)") {
		t.Errorf("the new rule's row says %q", w)
	}
	if p := problems(); len(p) > 0 {
		t.Errorf("the browser's console: %q", p)
	}
}
