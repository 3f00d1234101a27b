package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// chartBand is one plan version's band of a series, as a chart's
// data-bands says it.
type chartBand struct {
	Series  string   `json:"series"`
	Version int      `json:"version"`
	From    float64  `json:"from"`
	To      *float64 `json:"to"`
	Low     *float64 `json:"low"`
	High    *float64 `json:"high"`
}

// chartView is the x range (ms) a chart shows.
func chartView(t *testing.T, ctx context.Context, chart string) [2]float64 {
	t.Helper()
	return eval[[2]float64](t, ctx, fmt.Sprintf(`JSON.parse(document.querySelector(%q).dataset.view)`, "#"+chart))
}

// drag presses the mouse at the fraction a of the chart's plot width,
// moves it to b, and lets go, as a user selecting a time range does.
func drag(t *testing.T, ctx context.Context, chart string, a, b float64) {
	t.Helper()
	box := eval[[4]float64](t, ctx, fmt.Sprintf(`(() => { const r = document.querySelector("#%s .u-over").getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`, chart))
	y := box[1] + box[3]/2
	x0, x1 := box[0]+box[2]*a, box[0]+box[2]*b
	err := chromedp.Do(ctx,
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x0, y),
		chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, x0, y, chromedp.ButtonLeft, chromedp.ClickCount(1)),
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, (x0+x1)/2, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x1, y, chromedp.ButtonLeft),
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, x1, y, chromedp.ButtonLeft, chromedp.ClickCount(1)),
	)
	if err != nil {
		t.Fatalf("drag across %s: %v", chart, err)
	}
}

// TestDashboardChartsReadable: each plan version's target band covers its
// own span (v3's 7.5 h of sleep from its change on, v1's and v2's 7 h
// before), each medication has its own lane and scale (progesterone
// 100 mg beside estradiol 0.05 mg), hematocrit has its own chart apart
// from weight; the buttons zoom and move every chart together, a drag
// across one chart zooms all of them to it, and pointing at a chart
// reads its values under the legend.
func TestDashboardChartsReadable(t *testing.T) {
	c := startDashClinic(t, "charts")
	c.seed(t)
	now := time.Now().UTC()
	v3From := now.Add(-24 * time.Hour).Truncate(time.Second)
	v3 := map[string]any{"effective": ts(v3From),
		"regimen": []any{
			map[string]any{"medication": "estradiol", "route": "transdermal", "amount": 0.05, "unit": "mg", "schedule": "twice_weekly"},
			map[string]any{"medication": "progesterone", "route": "oral", "amount": 100, "unit": "mg", "schedule": "daily"}},
		"rules": []any{map[string]any{"id": "sleep-short", "kind": "threshold", "metric": "sleep.total_min", "per_day": "sum",
			"over": "7d", "aggregate": "mean", "below": 450, "min_days": 1, "severity": "warning"}}}
	if st, doc := call(t, c.client, c.srv.url, c.token, "PUT", "/v1/patients/"+c.patient+"/plan", v3); st != http.StatusCreated {
		t.Fatalf("PUT plan v3: %d %v", st, doc)
	}
	at := now.Add(-3 * time.Hour).Truncate(time.Second)
	mosquittoPub(t, c.device, fmt.Sprintf(`{"seq": 2, "samples": [%s, %s]}`,
		fmt.Sprintf(`{"type": "dose", "time": %q, "medication": "progesterone", "route": "oral", "amount": 100, "unit": "mg"}`, ts(at)),
		fmt.Sprintf(`{"type": "vitals", "time": %q, "hematocrit_pct": 52.5}`, ts(at))))
	waitUntil(t, 20*time.Second, "the dose and hematocrit stored", func() bool {
		_, doc := call(t, c.client, c.srv.url, c.token, "GET", "/v1/patients/"+c.patient+"/series?type=dose", nil)
		pts, _ := doc["points"].([]any)
		return len(pts) == 2
	})

	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	problems := consoleProblems(t, ctx)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 1000)); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, c.srv.url, c.doctor, "#patients a")
	c.openPatient(t, ctx)

	// Each version's sleep band over its own span.
	var bands []chartBand
	if err := json.Unmarshal([]byte(eval[string](t, ctx, `document.querySelector("#chart-sleep").dataset.bands`)), &bands); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bands {
		to := "now"
		if b.To != nil {
			to = time.UnixMilli(int64(*b.To)).UTC().Format(time.RFC3339)
		}
		got = append(got, fmt.Sprintf("v%d %s..%s below %v", b.Version, time.UnixMilli(int64(b.From)).UTC().Format(time.RFC3339), to, *b.Low))
	}
	_, hist := call(t, c.client, c.srv.url, c.token, "GET", "/v1/patients/"+c.patient+"/plan/history", nil)
	var eff []string
	for _, v := range hist["versions"].([]any) {
		e, _ := time.Parse(time.RFC3339Nano, v.(map[string]any)["effective"].(string))
		eff = append(eff, e.UTC().Format(time.RFC3339))
	}
	if len(eff) != 3 || eff[2] != ts(v3From) {
		t.Fatalf("the plan's versions take effect at %v", eff)
	}
	want := []string{ // v1's span starts 20 days back, before the 7 days shown, and is listed all the same
		fmt.Sprintf("v1 %s..%s below 7", eff[0], eff[1]),
		fmt.Sprintf("v2 %s..%s below 7", eff[1], eff[2]),
		fmt.Sprintf("v3 %s..now below 7.5", eff[2]),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the sleep chart's bands are %q, want %q", got, want)
	}
	if s := plainText(t, ctx, "#chart-sleep .legend"); !strings.Contains(s, "target at least 7.5 h") {
		t.Errorf("the sleep legend says %q, want the current plan's 7.5 h", s)
	}

	// One lane per medication; hematocrit on its own chart.
	if lanes := eval[[]string](t, ctx, `JSON.parse(document.querySelector("#chart-doses").dataset.lanes)`); fmt.Sprint(lanes) != "[estradiol (mg) progesterone (mg)]" {
		t.Errorf("the dose lanes are %q", lanes)
	}
	for chart, points := range map[string]string{"chart-hematocrit": "1", "chart-weight": "1", "chart-doses": "2"} {
		if n := eval[string](t, ctx, fmt.Sprintf(`document.querySelector("#%s").dataset.points`, chart)); n != points {
			t.Errorf("%s has %s points, want %s", chart, n, points)
		}
	}
	if s := plainText(t, ctx, "#chart-hematocrit .summary:not(.muted)"); !strings.Contains(s, "52.5") {
		t.Errorf("the hematocrit chart says %q", s)
	}

	// Pointing at the heart-rate chart reads its value there.
	latest := plainText(t, ctx, "#chart-heart .legend output")
	if err := chromedp.Do(ctx, chromedp.ScrollIntoView("#chart-heart")); err != nil {
		t.Fatal(err)
	}
	box := eval[[4]float64](t, ctx, `(() => { const r = document.querySelector("#chart-heart .u-over").getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`)
	if err := chromedp.Do(ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, box[0]+box[2]*0.6, box[1]+box[3]/2)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the readout under the cursor", `document.querySelector("#chart-heart .legend output").textContent !== `+fmt.Sprintf("%q", latest))
	if s := plainText(t, ctx, "#chart-heart .legend output"); !strings.Contains(s, "bpm") && s != "–" {
		t.Errorf("the readout says %q", s)
	}

	// Zoom and pan, every chart together.
	whole := chartView(t, ctx, "chart-sleep")
	if err := chromedp.Do(ctx, chromedp.Click("#zoom-in")); err != nil {
		t.Fatal(err)
	}
	zoomed := chartView(t, ctx, "chart-sleep")
	if span, full := zoomed[1]-zoomed[0], whole[1]-whole[0]; span > full*0.55 || span < full*0.45 {
		t.Errorf("zoomed in, the sleep chart shows %v ms of %v", span, full)
	}
	if v := chartView(t, ctx, "chart-heart"); v != zoomed {
		t.Errorf("the heart chart shows %v, the sleep chart %v", v, zoomed)
	}
	if err := chromedp.Do(ctx, chromedp.Click("#pan-earlier")); err != nil {
		t.Fatal(err)
	}
	if v := chartView(t, ctx, "chart-doses"); v[0] >= zoomed[0] || v[1]-v[0] != zoomed[1]-zoomed[0] {
		t.Errorf("moved earlier, the doses chart shows %v (was %v)", v, zoomed)
	}
	if s := plainText(t, ctx, "#zoom-state"); !strings.HasPrefix(s, "Showing ") || strings.Contains(s, "whole") {
		t.Errorf("the zoom says %q", s)
	}
	if err := chromedp.Do(ctx, chromedp.Click("#zoom-reset")); err != nil {
		t.Fatal(err)
	}
	if v := chartView(t, ctx, "chart-sleep"); v[0] != whole[0] {
		t.Errorf("after 'Whole period' the sleep chart shows %v, want from %v", v, whole[0])
	}
	if err := chromedp.Do(ctx, chromedp.ScrollIntoView("#chart-activity")); err != nil {
		t.Fatal(err)
	}
	drag(t, ctx, "chart-activity", 0.5, 0.75)
	waitJS(t, ctx, "the charts zoomed to the drag", `JSON.parse(document.querySelector("#chart-bp").dataset.view)[0] > `+fmt.Sprint(whole[0]))
	v := chartView(t, ctx, "chart-bp")
	if span, full := v[1]-v[0], whole[1]-whole[0]; span > full*0.3 || span < full*0.2 {
		t.Errorf("a drag over a quarter of the chart shows %v ms of %v", span, full)
	}
	screenshot(t, ctx, "charts-zoomed")
	if err := chromedp.Do(ctx, chromedp.Click("#zoom-reset")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.ScrollIntoView("#chart-doses")); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "charts-bands-lanes")
	if p := problems(); len(p) > 0 {
		t.Errorf("the browser's console: %q", p)
	}
}
