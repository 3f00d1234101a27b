package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patientpulse/patientpulse/dashboards"
)

// dashClinic is a running patientpulse over HTTPS with a clinician, an
// on-call account, one of the clinician's patients with a plan (two
// versions) and another clinic's patient, for the browser tests.
type dashClinic struct {
	srv                  *instance
	client               *http.Client
	doctor, oncall       string // usernames; their password is staffPassword
	token                string // the clinician's API token
	adminToken           string // an admin's API token
	deviceToken          string // the patient's device's token, for POST /v1/ingest
	patient, device, own string // own: the patient's name
	other                string // a patient not in the clinician's care
}

func startDashClinic(t *testing.T, prefix string, extra ...string) *dashClinic {
	t.Helper()
	needServices(t)
	c := &dashClinic{client: insecureClient(), doctor: "dr-" + prefix, oncall: "on-" + prefix,
		patient: "p-" + prefix, device: "w-" + prefix, own: "Dora Example", other: "p-" + prefix + "-else"}
	dir := newDataDir(t)
	cli(t, dir, "patients", "add", "--id", c.patient, "--name", c.own)
	c.deviceToken = strings.TrimSpace(cli(t, dir, "devices", "enroll", "--patient", c.patient, "--device", c.device))
	cli(t, dir, "patients", "add", "--id", c.other, "--name", "Not Her Patient")
	c.token = staffToken(t, dir, c.doctor, "clinician")
	c.adminToken = staffToken(t, dir, "ad-"+prefix, "admin")
	mustStaff(t, dir, "", "staff", "assign", "--username", c.doctor, "--patient", c.patient)
	staffToken(t, dir, c.oncall, "oncall")
	c.srv = startServeOver(t, c.client, "https", dir, "t-"+prefix, append([]string{"--tls-self-signed",
		"--alert-fire-after", "0s", "--analysis-interval", "100ms", "--analysis-min-wear-hours", "1"}, extra...)...)

	now := time.Now()
	v1 := map[string]any{"effective": ts(now.Add(-20 * 24 * time.Hour)),
		"regimen": []any{map[string]any{"medication": "estradiol", "route": "transdermal", "amount": 0.05, "unit": "mg", "schedule": "twice_weekly"}},
		"rules": []any{map[string]any{"id": "sleep-short", "kind": "threshold", "metric": "sleep.total_min", "per_day": "sum",
			"over": "7d", "aggregate": "mean", "below": 420, "min_days": 1, "severity": "warning"}}}
	v2 := map[string]any{"effective": ts(now.Add(-2 * 24 * time.Hour)), "regimen": v1["regimen"],
		"rules": append(v1["rules"].([]any),
			map[string]any{"id": "hr-high", "kind": "threshold", "metric": "heart_rate.bpm", "over": "1d", "aggregate": "max",
				"above": 120, "min_days": 1, "severity": "critical"},
			map[string]any{"id": "steps-low", "kind": "threshold", "metric": "activity.steps", "per_day": "sum", "over": "7d",
				"aggregate": "mean", "below": 1000, "min_days": 1, "severity": "info"},
			map[string]any{"id": "flushes-high", "kind": "threshold", "metric": "symptoms.hot_flushes", "instrument": "mrs",
				"over": "7d", "aggregate": "mean", "above": 3, "min_days": 1, "severity": "warning"},
			map[string]any{"id": "mrs-severe", "kind": "score", "instrument": "mrs", "score": "total", "band": "severe", "severity": "critical"})}
	for _, plan := range []map[string]any{v1, v2} {
		if st, doc := call(t, c.client, c.srv.url, c.token, "PUT", "/v1/patients/"+c.patient+"/plan", plan); st != http.StatusCreated {
			t.Fatalf("PUT plan: %d %v", st, doc)
		}
	}
	return c
}

// seed publishes a few days of every kind of data, inside the plan's
// targets, and waits until it is stored.
func (c *dashClinic) seed(t *testing.T) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	var samples []string
	for d := 1; d <= 3; d++ {
		end := now.Add(-time.Duration(d) * 24 * time.Hour)
		samples = append(samples, fmt.Sprintf(`{"type": "sleep", "start": %q, "end": %q, "total_min": %d, "deep_min": 80, "rem_min": 100, "light_min": 270, "awake_min": 30, "resting_hr": 58, "hrv_rmssd_ms": %d}`,
			ts(end.Add(-9*time.Hour)), ts(end), 460+10*d, 40+d),
			fmt.Sprintf(`{"type": "activity", "start": %q, "end": %q, "steps": 3000, "active_min": 25, "energy_kcal": 150}`,
				ts(end.Add(-time.Hour)), ts(end.Add(-30*time.Minute))))
	}
	for i := 1; i <= 5; i++ {
		samples = append(samples, fmt.Sprintf(`{"type": "heart_rate", "time": %q, "bpm": %d}`, ts(now.Add(-time.Duration(i)*10*time.Minute)), 65+i))
	}
	at := ts(now.Add(-2 * 24 * time.Hour))
	samples = append(samples,
		fmt.Sprintf(`{"type": "symptoms", "time": %q, "instrument": "mrs", "items": {"hot_flushes": 2, "heart_discomfort": 1, "sleep_problems": 1, "joint_muscle": 1, "depressive_mood": 1, "irritability": 1, "anxiety": 1, "exhaustion": 1, "sexual_problems": 1, "bladder": 0, "vaginal_dryness": 1}}`, at),
		fmt.Sprintf(`{"type": "dose", "time": %q, "medication": "estradiol", "route": "transdermal", "amount": 0.05, "unit": "mg"}`, at),
		fmt.Sprintf(`{"type": "vitals", "time": %q, "weight_kg": 68.2, "systolic": 121, "diastolic": 79}`, at))
	mosquittoPub(t, c.device, fmt.Sprintf(`{"seq": 1, "samples": [%s]}`, strings.Join(samples, ",")))
	waitUntil(t, 20*time.Second, "the seed data stored", func() bool {
		st, doc := call(t, c.client, c.srv.url, c.token, "GET", "/v1/patients/"+c.patient+"/series?type=heart_rate", nil)
		pts, _ := doc["points"].([]any)
		return st == http.StatusOK && len(pts) == 5
	})
}

// critical publishes a heart rate of 150 (above the plan's 120: the
// critical hr-high) and returns the alert's id once it fires.
func (c *dashClinic) critical(t *testing.T) int {
	t.Helper()
	mosquittoPub(t, c.device, fmt.Sprintf(`{"seq": 1, "samples": [{"type": "heart_rate", "time": %q, "bpm": 150}]}`, ts(time.Now().Add(-time.Minute))))
	var id float64
	waitUntil(t, 20*time.Second, "the critical alert", func() bool {
		_, doc := call(t, c.client, c.srv.url, c.token, "GET", "/v1/alerts?state=firing&patient="+c.patient, nil)
		if list, _ := doc["alerts"].([]any); len(list) > 0 {
			id, _ = list[0].(map[string]any)["id"].(float64)
		}
		return id != 0
	})
	return int(id)
}

// openPatient opens the patient's page and waits until it is drawn.
func (c *dashClinic) openPatient(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(c.srv.url+"/patient?id="+c.patient)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the page drawn", `document.querySelector("#charts").dataset.ready === "true"`)
}

// signIn signs in through the form and waits for the page it lands on.
func signIn(t *testing.T, ctx context.Context, base, user, landing string) {
	t.Helper()
	user2, pass := chromedp.CSS("#username"), chromedp.CSS("#password")
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/signin"),
		chromedp.WaitVisible(user2),
		chromedp.SendKeys(user2, user),
		chromedp.SendKeys(pass, staffPassword),
		chromedp.Submit(pass),
		chromedp.WaitVisible(chromedp.CSS(landing)),
	)
	if err != nil {
		t.Fatalf("sign in as %s: %v", user, err)
	}
}

// eval runs a JavaScript expression in the page and decodes its value.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until the expression is true in the page (an exception,
// such as of an element not there yet, counts as false).
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	expr = "(() => { try { return Boolean(" + expr + ") } catch { return false } })()"
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil {
			return
		}
		// A page that is being left or loaded has no context to poll in
		// for a moment ("Cannot find context", "Inspected target
		// navigated"): poll again in the next one.
		if ctx.Err() != nil || time.Now().After(deadline) {
			t.Fatalf("waiting for %s (%s): %v", what, expr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// chartState is what a chart's section says of itself.
type chartState struct {
	Points  int `json:"points"`
	Markers int `json:"markers"`
	Targets []struct {
		Series string   `json:"series"`
		Low    *float64 `json:"low"`
		High   *float64 `json:"high"`
	} `json:"targets"`
	Summary string `json:"summary"`
}

const chartsJS = `Object.fromEntries([...document.querySelectorAll("#charts .chart")].filter((s) => !s.hidden).map((s) => [s.id,
	{points: +s.dataset.points, markers: +s.dataset.planMarkers, targets: JSON.parse(s.dataset.targets),
	 summary: s.querySelector(".summary:not(.muted)").textContent}]))`

func charts(t *testing.T, ctx context.Context) map[string]chartState {
	t.Helper()
	return eval[map[string]chartState](t, ctx, chartsJS)
}

// band returns a chart's band of the series as "low..high" (open ends
// empty), or "none".
func band(c chartState, series string) string {
	for _, tg := range c.Targets {
		if tg.Series == series {
			f := func(v *float64) string {
				if v == nil {
					return ""
				}
				return fmt.Sprint(*v)
			}
			return f(tg.Low) + ".." + f(tg.High)
		}
	}
	return "none"
}

// consoleProblems collects what the page reports of exceptions and of
// anything the Content-Security-Policy refused.
func consoleProblems(t *testing.T, ctx context.Context) func() []string {
	t.Helper()
	var mu sync.Mutex
	var found []string
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Refused to") {
				mu.Lock()
				found = append(found, m.String())
				mu.Unlock()
			}
		}
	}()
	get := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), found...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the browser's console: %q", get())
		}
	})
	return get
}

// unlabelledJS lists the form controls of the page with no label.
const unlabelledJS = `[...document.querySelectorAll("input, select, textarea")]
	.filter((e) => e.type !== "hidden" && !(e.labels && e.labels.length) && !e.getAttribute("aria-label"))
	.map((e) => e.id || e.name || e.outerHTML)`

// TestDashboardPatientPage: a clinician signs in and sees only their own
// patients, filters the list, opens the patient and sees every chart with
// the plan's target bands and plan-change markers; a sample published over
// MQTT appears on the open chart without a reload; a plan change from the
// form moves the band, and a plan with a problem is refused with the
// server's reason on the page. Screenshots: patients, patient,
// patient-7days, plan-problems, patient-tablet.
func TestDashboardPatientPage(t *testing.T) {
	c := startDashClinic(t, "dash1")
	c.seed(t)
	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	problems := consoleProblems(t, ctx)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 1000)); err != nil { // a laptop, or a tablet held sideways
		t.Fatal(err)
	}

	signIn(t, ctx, c.srv.url, c.doctor, "#patients")
	waitJS(t, ctx, "the live connection", `document.querySelector("#live").dataset.state === "live"`)
	if rows, table := text(t, ctx, "#patients"), eval[string](t, ctx, `document.querySelector("#patients").dataset.rows`); rows == "" ||
		!strings.Contains(rows, c.own) || strings.Contains(rows, "Not Her Patient") || table != "1" {
		t.Errorf("patient list: %s rows %q; want %s only", table, rows, c.own)
	}
	if status := eval[string](t, ctx, `document.querySelector("#patients tbody tr").dataset.status`); status != "fine" {
		t.Errorf("status in the list: %q, want fine", status)
	}
	if last := text(t, ctx, "#patients td.last"); strings.Contains(last, "No data") || !strings.Contains(last, "ago") {
		t.Errorf("last data in the list: %q", last)
	}
	screenshot(t, ctx, "patients")

	// Filtering, kept in the address.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#q"), "zzz")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "nothing matching", `document.querySelector("#patients").dataset.rows === "0"`)
	if s := text(t, ctx, "#status"); !strings.Contains(s, "none match") {
		t.Errorf("status when nothing matches: %q", s)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(c.srv.url+"/?q=dora&sort=name"), chromedp.WaitVisible(chromedp.CSS("#patients a"))); err != nil {
		t.Fatal(err)
	}
	if sort := eval[string](t, ctx, `document.querySelector("#patients th[data-sort=name]").getAttribute("aria-sort")`); sort != "ascending" {
		t.Errorf("sorted by name from the address: aria-sort %q", sort)
	}

	// The patient's page.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#patients a"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the charts", `document.querySelector("#charts").dataset.ready === "true"`)
	if loc := location(t, ctx); !strings.HasSuffix(loc, "/patient?id="+c.patient) {
		t.Errorf("the patient's page is at %s", loc)
	}
	got := charts(t, ctx)
	for _, w := range []struct{ chart, series, band string }{
		{"chart-sleep", "Total sleep", "7.."}, // 420 min, in hours; the label is the catalog's
		{"chart-heart", "Heart rate", "..120"},
		{"chart-activity", "Steps", "1000.."},
		{"chart-items-mrs", "hot flushes", "..3"},
		{"chart-scores", "MRS total", "..17"}, // the severe band's floor
		{"chart-doses", "estradiol (mg)", "0.05..0.05"},
	} {
		if b := band(got[w.chart], w.series); b != w.band {
			t.Errorf("%s: band of %s %s, want %s", w.chart, w.series, b, w.band)
		}
	}
	for chart, points := range map[string]int{"chart-sleep": 3, "chart-heart": 8, "chart-activity": 3, "chart-doses": 1, "chart-bp": 1, "chart-weight": 1, "chart-items-mrs": 1, "chart-scores": 1} {
		if got[chart].Points != points {
			t.Errorf("%s: %d points, want %d", chart, got[chart].Points, points)
		}
		if got[chart].Markers != 2 {
			t.Errorf("%s: %d plan markers over 30 days, want 2 (v1 and v2)", chart, got[chart].Markers)
		}
	}
	if s := got["chart-sleep"].Summary; !strings.Contains(s, "Plan target: Total sleep at least 7 h") {
		t.Errorf("sleep chart's summary: %q", s)
	}
	if _, ok := got["chart-items-ams"]; ok {
		t.Error("an AMS chart for a patient with no AMS check-in or rule")
	}
	rules := text(t, ctx, "#rules")
	for _, want := range []string{"sleep-short", "Alert when the 7-day mean of sleep (daily sum) is below 7 h", "hr-high", "mrs-severe"} {
		if !strings.Contains(rules, want) {
			t.Errorf("the plan's rules in words lack %q: %q", want, rules)
		}
	}
	if v := text(t, ctx, `#rules li[data-rule="sleep-short"] .verdict`); !strings.HasPrefix(v, "Now: 7-day mean sleep ") ||
		!strings.Contains(v, " h is back within the plan's 7 h") {
		t.Errorf("what sleep-short says now: %q", v)
	}
	if r := text(t, ctx, "#regimen"); !strings.Contains(r, "Estradiol 0.05 mg transdermal, twice weekly") {
		t.Errorf("regimen in words: %q", r)
	}
	if n := eval[[]string](t, ctx, unlabelledJS); len(n) > 0 {
		t.Errorf("controls without a label: %v", n)
	}
	screenshot(t, ctx, "patient")

	// 7 days: v1 took effect before them.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("label[for=days-7]"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "7 days", `document.querySelector("#chart-sleep").dataset.planMarkers === "1" && document.querySelector("#charts").dataset.ready === "true"`)
	if loc := location(t, ctx); !strings.Contains(loc, "days=7") {
		t.Errorf("the range is not in the address: %s", loc)
	}
	screenshot(t, ctx, "patient-7days")

	// A sample over MQTT reaches the open chart, without a reload.
	waitJS(t, ctx, "the subscription", `document.body.dataset.subscribed === "`+c.patient+`"`)
	before := charts(t, ctx)["chart-heart"].Points
	eval[bool](t, ctx, `window.stillTheSamePage = true`)
	mosquittoPub(t, c.device, fmt.Sprintf(`{"seq": 2, "samples": [{"type": "heart_rate", "time": %q, "bpm": 97}]}`, ts(time.Now().Add(-30*time.Second))))
	waitJS(t, ctx, "the new heart rate on the chart", fmt.Sprintf(`document.querySelector("#chart-heart").dataset.points === "%d"`, before+1))
	if s := charts(t, ctx)["chart-heart"].Summary; !strings.Contains(s, "Latest heart rate: 97 bpm") {
		t.Errorf("heart chart's summary after the sample: %q", s)
	}
	if !eval[bool](t, ctx, `window.stillTheSamePage === true`) {
		t.Error("the page was reloaded")
	}

	// A plan change from the form (sleep in hours: 7.5 h is 450 min),
	// previewed, then saved: a new version, the band moves.
	err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#plan-edit")),
		chromedp.WaitVisible(chromedp.CSS("#rule-rows [data-rule=sleep-short] [name=below]")),
		chromedp.SetValue(chromedp.CSS("#rule-rows [data-rule=sleep-short] [name=below]"), "7.5"),
		chromedp.Click(chromedp.CSS("#plan-save")),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the preview", `!document.querySelector("#plan-preview").hidden`)
	err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#plan-save")))
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "version 3", `document.querySelector("#plan").dataset.version === "3"`)
	waitJS(t, ctx, "the new band", `JSON.parse(document.querySelector("#chart-sleep").dataset.targets)[0].low === 7.5`)
	if m := charts(t, ctx)["chart-sleep"].Markers; m != 2 {
		t.Errorf("plan markers over 7 days after v3: %d, want 2", m)
	}
	if s := text(t, ctx, "#plan-saved"); !strings.Contains(s, "Saved as version 3") {
		t.Errorf("after saving: %q", s)
	}

	// A rule the server refuses: every problem shown, nothing saved.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#plan-edit")),
		chromedp.Click(chromedp.CSS("label[for=plan-mode-json]")),
		chromedp.WaitVisible(chromedp.CSS("#plan-json")),
	)
	if err != nil {
		t.Fatal(err)
	}
	eval[bool](t, ctx, `(() => { const t = document.querySelector("#plan-json"); const p = JSON.parse(t.value);
		p.rules.push({id: "naps", kind: "threshold", metric: "sleep.nap_min", over: "7d", aggregate: "mean", below: 30, severity: "info"});
		t.value = JSON.stringify(p, null, 2); return true })()`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#plan-save")), chromedp.WaitVisible(chromedp.CSS("#plan-problems"))); err != nil {
		t.Fatal(err)
	}
	if p := text(t, ctx, "#plan-problems"); !strings.Contains(p, `unknown metric "sleep.nap_min"`) {
		t.Errorf("problems shown: %q", p)
	}
	if v := eval[string](t, ctx, `document.querySelector("#plan").dataset.version`); v != "3" {
		t.Errorf("plan version after a refused change: %s", v)
	}
	screenshot(t, ctx, "plan-problems")

	// A clinic tablet, upright: one column, nothing wider than the screen.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#plan-cancel")), chromedp.EmulateViewport(800, 1280), chromedp.Sleep(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if w := eval[[]int](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		t.Errorf("on a tablet the page is %d px wide in a %d px window", w[0], w[1])
	}
	screenshot(t, ctx, "patient-tablet")

	if p := problems(); len(p) > 0 {
		t.Errorf("the console reports: %v", p)
	}
	c.srv.stop()
	for _, s := range []string{c.patient, c.device, c.own} {
		if strings.Contains(c.srv.logs.String(), s) {
			t.Errorf("serve's log mentions %q", s)
		}
	}
}

// TestDashboardAlertAcknowledged: an on-call console is open in one
// browser session and a clinician's patient page in another. A heart rate
// over MQTT breaks the plan: the alert appears on both, the console cues
// it; the clinician acknowledges it from the page with a note, and the
// console shows who did and the note. A second alert is acknowledged from
// the console's list. Screenshots: oncall-empty, patient-alert,
// oncall-new-critical, patient-acknowledged, oncall-acknowledged.
func TestDashboardAlertAcknowledged(t *testing.T) {
	const zone = "America/New_York"
	c := startDashClinic(t, "dash2", "--timezone", zone)
	mosquittoPub(t, c.device, fmt.Sprintf(`{"seq": 1, "samples": [{"type": "heart_rate", "time": %q, "bpm": 70}]}`, ts(time.Now().Add(-5*time.Minute))))
	waitUntil(t, 20*time.Second, "the first heart rate stored", func() bool {
		_, doc := call(t, c.client, c.srv.url, c.token, "GET", "/v1/patients/"+c.patient+"/series?type=heart_rate", nil)
		pts, _ := doc["points"].([]any)
		return len(pts) == 1
	})
	doctor := browser(t)
	doctor, cancel := context.WithTimeout(doctor, 90*time.Second)
	defer cancel()
	oncall, cancelOncall := chromedp.NewContext(doctor, chromedp.WithNewBrowserContext())
	defer cancelOncall()
	problems := consoleProblems(t, doctor)
	oncallProblems := consoleProblems(t, oncall)

	signIn(t, oncall, c.srv.url, c.oncall, "#sound")
	if loc := location(t, oncall); !strings.HasSuffix(loc, "/oncall") {
		t.Errorf("on-call staff land on %s, want /oncall", loc)
	}
	waitJS(t, oncall, "the console live and empty", `document.querySelector("#live").dataset.state === "live" && document.querySelector("#status").textContent === "No active alerts."`)
	screenshot(t, oncall, "oncall-empty")

	signIn(t, doctor, c.srv.url, c.doctor, "#patients a")
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS("#patients a"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "the patient's page, live", `document.querySelector("#charts").dataset.ready === "true" && document.body.dataset.subscribed === "`+c.patient+`"`)
	if n := text(t, doctor, "#alerts-empty"); n != "No active alerts." {
		t.Errorf("alert panel before: %q", n)
	}
	before := charts(t, doctor)["chart-heart"].Points

	mosquittoPub(t, c.device, fmt.Sprintf(`{"seq": 2, "samples": [{"type": "heart_rate", "time": %q, "bpm": 150}]}`, ts(time.Now().Add(-time.Minute))))
	item := `#alert-list li[data-rule="hr-high"]`
	waitJS(t, doctor, "the alert on the patient's page", fmt.Sprintf(`document.querySelector('%s[data-state="firing"]') !== null`, item))
	waitJS(t, doctor, "the critical status", `document.querySelector("#patient-status").dataset.status === "critical"`)
	if s := text(t, doctor, item+" .sentence"); !strings.HasPrefix(s, "1-day max heart rate 150 bpm is above the plan's 120 bpm") {
		t.Errorf("the alert's sentence: %q", s)
	}
	waitJS(t, doctor, "the sample on the heart chart", fmt.Sprintf(`document.querySelector("#chart-heart").dataset.points === "%d"`, before+1))
	screenshot(t, doctor, "patient-alert")

	row := `#group-critical tr[data-patient="` + c.patient + `"]`
	waitJS(t, oncall, "the alert on the console", fmt.Sprintf(`document.querySelector('%s[data-state="firing"]') !== null`, row))
	waitJS(t, oncall, "the patient's name on the console", fmt.Sprintf(`document.querySelector('%s').textContent.includes(%q) && document.querySelector("#cue-text").textContent.startsWith(%q)`, row, c.own, c.own))
	if cue := eval[[]string](t, oncall, `(() => { const c = document.querySelector("#cue"); return [String(getComputedStyle(c).display === "none"), c.dataset.count, c.dataset.beeps || "0", document.querySelector("#cue-text").textContent, document.title] })()`); cue[0] != "false" ||
		cue[1] != "1" || cue[2] != "1" || !strings.HasPrefix(cue[3], c.own+": 1-day max heart rate 150 bpm") || !strings.HasPrefix(cue[4], "(!)") {
		t.Errorf("the cue of a new critical alert (hidden, count, beeps, text, title): %q", cue)
	}
	if tier := text(t, oncall, row+" td.tier"); tier != "Not yet" {
		t.Errorf("escalation shown: %q, want Not yet (no rota)", tier)
	}
	if age := text(t, oncall, row+" .age"); !strings.HasSuffix(age, " s") && !strings.HasSuffix(age, " min") {
		t.Errorf("age shown: %q", age)
	}
	screenshot(t, oncall, "oncall-new-critical")

	// The clinician acknowledges from the page; the console hears of it.
	err := chromedp.Do(doctor,
		chromedp.SendKeys(chromedp.CSS(item+" input[name=note]"), "calling her now"),
		chromedp.Click(chromedp.CSS(item+" button.ack")),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "acknowledged on the page", fmt.Sprintf(`document.querySelector('%s[data-state="acknowledged"]') !== null`, item))
	waitJS(t, doctor, "the note on the page", fmt.Sprintf(`document.querySelector('%s .notes') !== null`, item))
	if s := text(t, doctor, item+" .notes"); !strings.HasPrefix(s, "Acknowledged by "+c.doctor) || !strings.Contains(s, "“calling her now”") {
		t.Errorf("acknowledgement on the page: %q", s)
	}
	screenshot(t, doctor, "patient-acknowledged")
	waitJS(t, oncall, "acknowledged on the console", fmt.Sprintf(`document.querySelector('%s[data-state="acknowledged"]') !== null`, row))
	if s := text(t, oncall, row+" td.state"); !strings.HasPrefix(s, "Acknowledged by "+c.doctor) || !strings.Contains(s, "“calling her now”") {
		t.Errorf("acknowledgement on the console: %q", s)
	}
	if shown := eval[string](t, oncall, `getComputedStyle(document.querySelector("#cue")).display`); shown != "none" {
		t.Errorf("the cue stays (display %s) after the alert was acknowledged", shown)
	}
	screenshot(t, oncall, "oncall-acknowledged")

	// A second alert, acknowledged from the console's list.
	mosquittoPub(t, c.device, fmt.Sprintf(`{"seq": 3, "samples": [{"type": "symptoms", "time": %q, "instrument": "mrs", "items": {"hot_flushes": 4, "heart_discomfort": 2, "sleep_problems": 2, "joint_muscle": 2, "depressive_mood": 2, "irritability": 2, "anxiety": 2, "exhaustion": 2, "sexual_problems": 1, "bladder": 1, "vaginal_dryness": 1}}]}`,
		ts(time.Now().Add(-time.Minute))))
	second := `#group-critical tr[data-state="firing"]`
	waitJS(t, oncall, "the second alert", fmt.Sprintf(`document.querySelector('%s') !== null && document.querySelector("#cue").dataset.count === "2"`, second))
	err = chromedp.Do(oncall,
		chromedp.SendKeys(chromedp.CSS(second+" input[name=note]"), "MRS reviewed"),
		chromedp.Click(chromedp.CSS(second+" td.actions button")),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, oncall, "both acknowledged", `document.querySelectorAll('#group-critical tr[data-state="acknowledged"]').length === 2`)
	st, doc := call(t, c.client, c.srv.url, c.token, "GET", "/v1/alerts?state=acknowledged&patient="+c.patient, nil)
	var by []string
	for _, a := range doc["alerts"].([]any) {
		m := a.(map[string]any)
		by = append(by, fmt.Sprintf("%s:%s", m["rule"], m["acked_by"]))
	}
	if want := fmt.Sprintf("mrs-severe:%s,hr-high:%s", c.oncall, c.doctor); st != http.StatusOK || strings.Join(by, ",") != want {
		t.Errorf("acknowledged alerts: %d %v, want %s", st, by, want)
	}
	waitJS(t, doctor, "the second alert on the page, acknowledged", `document.querySelector('#alert-list li[data-rule="mrs-severe"][data-state="acknowledged"]') !== null`)

	// Times are the clinic's, whatever the browser's zone.
	if z := text(t, oncall, "#zone"); z != "Times in "+zone {
		t.Errorf("zone shown: %q", z)
	}
	_, first := call(t, c.client, c.srv.url, c.token, "GET", "/v1/alerts?rule=hr-high&patient="+c.patient+"&state=acknowledged", nil)
	var opened time.Time
	for _, a := range first["alerts"].([]any) {
		if m := a.(map[string]any); m["rule"] == "hr-high" {
			opened, _ = time.Parse(time.RFC3339Nano, m["opened_at"].(string))
		}
	}
	ny, _ := time.LoadLocation(zone)
	since := eval[string](t, oncall, fmt.Sprintf(`document.querySelector('%s .age-cell .sub').textContent.replace(/[\u202f\u00a0]/g, " ")`, row))
	if want := opened.In(ny).Format("15:04"); !strings.Contains(since, want) {
		t.Errorf("opened at %s, shown %q: want the clinic's %s", opened.UTC().Format(time.Kitchen), since, want)
	}

	// The clinician snoozes one critical alert (off the console until
	// then) and resolves the other (off both, and into the recently
	// resolved); the check-in's warning (hot flushes) stays.
	err = chromedp.Do(doctor,
		chromedp.SendKeys(chromedp.CSS(`#alert-list li[data-rule="mrs-severe"] input[name=note]`), "review at clinic"),
		chromedp.Click(chromedp.CSS(`#alert-list li[data-rule="mrs-severe"] button.snooze-btn`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "snoozed on the page", `document.querySelector('#alert-list li[data-rule="mrs-severe"] .meta').textContent.includes("snoozed until")`)
	waitJS(t, oncall, "the snoozed alert off the console", `document.querySelectorAll("#group-critical tr[data-alert-id]").length === 1`)
	if err := chromedp.Do(doctor, chromedp.Click(chromedp.CSS(item+" button.resolve"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "resolved on the page", `document.querySelector('#alert-list li[data-rule="hr-high"]') === null && document.querySelector("#resolved ol").textContent.includes("resolved")`)
	waitJS(t, oncall, "no critical alert left on the console", `document.querySelector("#group-critical") === null && document.querySelector("#group-warning tr[data-alert-id]") !== null`)

	if p := append(problems(), oncallProblems()...); len(p) > 0 {
		t.Errorf("the console reports: %v", p)
	}
}

// TestDashboardNoticeWithoutBundle: a build without `make web` serves, for
// the app's pages, a page that says how to build it, and the sign-in form
// all the same; with the bundle, the pages. No folder is listed, and only
// GET and HEAD are answered.
func TestDashboardNoticeWithoutBundle(t *testing.T) {
	page := func(name string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("<!doctype html><title>" + name + "</title>")}
	}
	files := fstest.MapFS{"index.html": page("list"), "signin.html": page("signin"), "patient.html": page("patient"),
		"oncall.html": page("oncall"), "app.css": {Data: []byte("body{}")}, "js/list.js": {Data: []byte("//")}}
	get := func(h http.Handler, method, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(body)
	}
	bare := dashboards.HandlerFS(files)
	for _, path := range []string{"/", "/patient?id=p-1", "/oncall", "/index.html", "/patient.html"} {
		if code, body := get(bare, "GET", path); code != http.StatusServiceUnavailable || !strings.Contains(body, "make web") {
			t.Errorf("GET %s without the bundle: %d %q", path, code, body)
		}
	}
	for path, want := range map[string]string{"/signin": "signin", "/app.css": "body{}"} {
		if code, body := get(bare, "GET", path); code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s without the bundle: %d %q", path, code, body)
		}
	}

	files["vendor/uPlot.iife.min.js"] = &fstest.MapFile{Data: []byte("var uPlot")}
	files["vendor/uPlot.min.css"] = &fstest.MapFile{Data: []byte(".uplot{}")}
	full := dashboards.HandlerFS(files)
	for path, want := range map[string]string{"/": "list", "/patient?id=p-1": "patient", "/oncall": "oncall", "/signin": "signin", "/vendor/uPlot.iife.min.js": "var uPlot"} {
		if code, body := get(full, "GET", path); code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d %q, want %q", path, code, body, want)
		}
	}
	for _, c := range []struct {
		method, path string
		code         int
	}{{"GET", "/js/", 404}, {"GET", "/vendor/", 404}, {"GET", "/nothing.js", 404}, {"POST", "/", 405}, {"HEAD", "/", 200}} {
		if code, _ := get(full, c.method, c.path); code != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, code, c.code)
		}
	}
	rec := httptest.NewRecorder()
	full.ServeHTTP(rec, httptest.NewRequest("GET", "/app.css", nil))
	req := httptest.NewRequest("GET", "/app.css", nil)
	req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	again := httptest.NewRecorder()
	full.ServeHTTP(again, req)
	if rec.Header().Get("ETag") == "" || again.Code != http.StatusNotModified {
		t.Errorf("revalidating an asset: ETag %q, then %d", rec.Header().Get("ETag"), again.Code)
	}
}
