package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestPlanEditor: the plan editor speaks clinicians' units and sends the
// plan's own. Sleep bounds show in hours and adherence in percent, each
// with its unit; pressing save first shows what the draft would have done
// over the last 30 days (the server's summary and a line per rule), an
// edit takes that preview away, and a second press saves the very draft
// previewed: the 6.5 h typed arrives as 390 minutes. A bound outside its
// metric's range is refused with the server's sentence naming the rule.
// Screenshots: plan-preview (a tablet held upright), plan-out-of-range.
func TestPlanEditor(t *testing.T) {
	c := startDashClinic(t, "pled")
	base := "/v1/patients/" + c.patient

	// Six short nights (5.5 h) a week ago and better ones since: a 6.5 h
	// floor would have fired, then cleared.
	now := time.Now().UTC().Truncate(time.Second)
	var nights []string
	for d := 10; d >= 1; d-- {
		total := 480
		if d >= 5 {
			total = 330
		}
		end := now.Add(-time.Duration(d) * 24 * time.Hour)
		nights = append(nights, fmt.Sprintf(`{"type": "sleep", "start": %q, "end": %q, "total_min": %d}`, ts(end.Add(-9*time.Hour)), ts(end), total))
	}
	mosquittoPub(t, c.device, fmt.Sprintf(`{"seq": 1, "samples": [%s]}`, strings.Join(nights, ",")))
	waitUntil(t, 20*time.Second, "the nights stored", func() bool {
		st, doc := call(t, c.client, c.srv.url, c.token, "GET", base+"/series?type=sleep", nil)
		pts, _ := doc["points"].([]any)
		return st == http.StatusOK && len(pts) == len(nights)
	})

	// v3: v2 and an adherence rule that judges only days since its version.
	st, plan := call(t, c.client, c.srv.url, c.token, "GET", base+"/plan", nil)
	if st != http.StatusOK {
		t.Fatalf("GET plan: %d %v", st, plan)
	}
	v3 := map[string]any{"effective": ts(now.Add(-24 * time.Hour)), "regimen": plan["regimen"],
		"rules": append(plan["rules"].([]any), map[string]any{"id": "estradiol-adherence", "kind": "adherence",
			"medication": "estradiol", "over": "14d", "below": 0.8, "since": "change", "severity": "warning"})}
	if st, doc := call(t, c.client, c.srv.url, c.token, "PUT", base+"/plan", v3); st != http.StatusCreated {
		t.Fatalf("PUT plan v3: %d %v", st, doc)
	}

	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	problems := consoleProblems(t, ctx)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(800, 1280)); err != nil { // a clinic tablet, upright
		t.Fatal(err)
	}
	signIn(t, ctx, c.srv.url, c.doctor, "#patients a")
	if err := chromedp.Do(ctx, chromedp.Navigate(c.srv.url+"/patient?id="+c.patient)); err != nil {
		t.Fatal(err)
	}
	// Clicks wait for the charts: drawing them moves the plan panel.
	waitJS(t, ctx, "the plan, v3, and the charts", `document.querySelector("#plan").dataset.version === "3" && document.querySelector("#charts").dataset.ready === "true"`)
	row := func(rule, sel string) string { return fmt.Sprintf(`#rule-rows [data-rule=%q] %s`, rule, sel) }
	err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#plan-edit")),
		chromedp.WaitVisible(chromedp.CSS(row("sleep-short", "[name=below]"))),
	)
	if err != nil {
		t.Fatal(err)
	}

	// Clinicians' units, each shown beside its input.
	shown := eval[map[string]string](t, ctx, `(() => {
		const r = (rule, name) => document.querySelector('#rule-rows [data-rule="' + rule + '"] [name="' + name + '"]');
		const num = (rule, name) => { const i = r(rule, name); const u = document.getElementById(i.id + "-unit"); return i.value + " " + (u ? u.textContent : "(no unit)"); };
		return {
			sleep: num("sleep-short", "below"), window: r("sleep-short", "over").value + " " + r("sleep-short", "over-unit").selectedOptions[0].text,
			adherence: num("estradiol-adherence", "below"), since: String(r("estradiol-adherence", "since").checked),
			flushes: num("flushes-high", "above"), heart: num("hr-high", "above"),
		};
	})()`)
	for key, want := range map[string]string{
		"sleep": "7 h", "window": "7 days", "adherence": "80 %", "since": "true", "flushes": "3 points", "heart": "120 bpm",
	} {
		if got := shown[key]; got != want {
			t.Errorf("the editor shows %s as %q, want %q", key, got, want)
		}
	}
	if n := eval[[]string](t, ctx, unlabelledJS); len(n) > 0 {
		t.Errorf("controls without a label: %v", n)
	}

	// The clinician types 6.5 h; the first press previews.
	eval[bool](t, ctx, `(() => { window.sent = []; const f = window.fetch;
		window.fetch = (u, init) => { window.sent.push({url: String(u), method: (init && init.method) || "GET", body: (init && init.body) || ""}); return f(u, init) };
		return true })()`)
	below := chromedp.CSS(row("sleep-short", "[name=below]"))
	if err := chromedp.Do(ctx, chromedp.SetValue(below, ""), chromedp.SendKeys(below, "6.5"), chromedp.Click(chromedp.CSS("#plan-save"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the preview", `!document.querySelector("#plan-preview").hidden`)
	sent := eval[[]struct{ URL, Method, Body string }](t, ctx, `window.sent`)
	if len(sent) != 1 || sent[0].Method != "POST" || !strings.HasSuffix(sent[0].URL, base+"/plan/preview?days=30") {
		t.Fatalf("the first press sent %+v, want one POST of the preview", sent)
	}
	var draft map[string]any
	if err := json.Unmarshal([]byte(sent[0].Body), &draft); err != nil {
		t.Fatal(err)
	}
	if got := ruleField(draft, "sleep-short", "below"); got != "390" {
		t.Errorf("the preview was sent sleep-short.below %s, want 390 (minutes)", got)
	}
	st, want := call(t, c.client, c.srv.url, c.token, "POST", base+"/plan/preview?days=30", draft)
	if st != http.StatusOK {
		t.Fatalf("POST the same draft to the preview: %d %v", st, want)
	}
	if got := text(t, ctx, "#plan-preview .summary"); got == "" || got != want["summary"] {
		t.Errorf("the preview's summary on the page: %q, want the server's %q", got, want["summary"])
	}
	line := text(t, ctx, `#plan-preview li[data-rule="sleep-short"]`)
	nowSentence := ""
	fired := false
	for _, r := range want["rules"].([]any) {
		r := r.(map[string]any)
		if r["rule"] != "sleep-short" {
			continue
		}
		nowSentence, _ = r["now"].(map[string]any)["sentence"].(string)
		for _, tr := range r["transitions"].([]any) {
			fired = fired || tr.(map[string]any)["change"] == "fired"
		}
	}
	if nowSentence == "" || !strings.Contains(line, "Now: "+nowSentence) {
		t.Errorf("sleep-short's line in the preview: %q, want its verdict now %q", line, nowSentence)
	}
	if !fired || !strings.Contains(line, "Would have: alerted ") {
		t.Errorf("sleep-short's line in the preview: %q (the server has it fire: %v); want the alert it would have raised", line, fired)
	}
	if b := text(t, ctx, "#plan-save"); b != "Save this version" {
		t.Errorf("after the preview the button says %q", b)
	}
	if w := eval[[]int](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		t.Errorf("on a tablet the page is %d px wide in a %d px window", w[0], w[1])
	}
	if err := chromedp.Do(ctx, chromedp.ScrollIntoView(chromedp.CSS("#plan-preview"))); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "plan-preview")

	// An edit takes the preview away; the next press previews again, and
	// the one after saves.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(row("estradiol-adherence", "[name=since]")))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the preview gone", `document.querySelector("#plan-preview").hidden && document.querySelector("#plan-save").textContent === "Preview, then save"`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#plan-save"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the second preview", `!document.querySelector("#plan-preview").hidden && document.querySelector("#plan-save").textContent === "Save this version"`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#plan-save"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "version 4", `document.querySelector("#plan").dataset.version === "4"`)
	if n := eval[int](t, ctx, `window.sent.filter((s) => s.method === "PUT").length`); n != 1 {
		t.Errorf("%d PUTs of the plan, want 1", n)
	}
	st, saved := call(t, c.client, c.srv.url, c.token, "GET", base+"/plan", nil)
	if st != http.StatusOK {
		t.Fatalf("GET plan: %d %v", st, saved)
	}
	// The server writes a duration in its largest unit (7d: 1w).
	for _, w := range []struct{ rule, field, want string }{
		{"sleep-short", "below", "390"}, {"sleep-short", "over", "1w"}, {"hr-high", "over", "1d"}, {"flushes-high", "above", "3"},
		{"estradiol-adherence", "below", "0.8"}, {"estradiol-adherence", "over", "2w"}, {"estradiol-adherence", "since", "<nil>"},
	} {
		if got := ruleField(saved, w.rule, w.field); got != w.want {
			t.Errorf("saved %s.%s: %s, want %s", w.rule, w.field, got, w.want)
		}
	}

	// A bound outside the metric's range: the server's sentence, naming
	// the rule; nothing saved.
	above := chromedp.CSS(row("flushes-high", "[name=above]"))
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#plan-edit")),
		chromedp.WaitVisible(above),
		chromedp.SetValue(above, ""), chromedp.SendKeys(above, "99"),
		chromedp.Click(chromedp.CSS("#plan-save")),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the problems", `!document.querySelector("#plan-problems").hidden`)
	if p := text(t, ctx, "#plan-problems"); !regexp.MustCompile(`rules\[3\] \(flushes-high\)\.above: 99 is outside `).MatchString(p) {
		t.Errorf("problems shown: %q, want rules[3] (flushes-high).above: 99 is outside …", p)
	}
	if v, hidden := eval[string](t, ctx, `document.querySelector("#plan").dataset.version`), eval[bool](t, ctx, `document.querySelector("#plan-preview").hidden`); v != "4" || !hidden {
		t.Errorf("after a refused bound: version %s, preview hidden %v; want 4, hidden", v, hidden)
	}
	screenshot(t, ctx, "plan-out-of-range")

	if p := problems(); len(p) > 0 {
		t.Errorf("the console reports: %v", p)
	}
}

// ruleField is field of the rule id in a plan document, as fmt prints it
// ("<nil>" when absent).
func ruleField(plan map[string]any, id, field string) string {
	rules, _ := plan["rules"].([]any)
	for _, r := range rules {
		if m, _ := r.(map[string]any); m["id"] == id {
			return fmt.Sprint(m[field])
		}
	}
	return "no rule " + id
}
