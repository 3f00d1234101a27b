package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestChangeWorkingSimulated: the simulated responding patient sleeps
// better over her first four weeks (380 minutes a night rising to 450);
// her clinician raised her estradiol two weeks in (simulate's plan v2). Compared over the 14
// days either side of that change, sleep improved, with a 95% confidence
// interval clear of 0, toward the plan's 7 h: through the API, on the
// patient page (screenshot change-working) and in the visit report. The
// clinic's audit groups her under her new regimen.
func TestChangeWorkingSimulated(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	admin := staffToken(t, dir, "cw-admin", "admin")
	srv := startServe(t, dir, "t-change", "--analysis-interval", "100ms")
	var stdout, stderr bytes.Buffer
	args := append([]string{"simulate", "--data-dir", dir, "--mqtt-url", broker.URL, "--url", srv.url,
		"--patients", "1", "--backfill", "720h", "--seed", "3", "--once"}, registryArgs(t, dir)...)
	if code := run(context.Background(), args, nil, &stdout, &stderr, func(string) string { return "" }); code != 0 {
		t.Fatalf("simulate: exit %d: %s", code, stderr.String())
	}
	st, doc := call(t, http.DefaultClient, srv.url, admin, "GET", "/v1/patients/sim-p001/comparison?version=2&days=14", nil)
	if st != http.StatusOK || fmt.Sprint(doc["changes"]) != "[estradiol 0.05 mg transdermal, twice weekly → estradiol 0.075 mg transdermal, twice weekly]" {
		t.Fatalf("comparison: %d %v", st, doc)
	}
	var sleep map[string]any
	for _, c := range doc["comparisons"].([]any) {
		if c := c.(map[string]any); c["metric"] == "sleep.total_min" {
			sleep = c
		}
	}
	if sleep == nil {
		t.Fatalf("no sleep comparison: %v", doc["comparisons"])
	}
	before, after := sleep["before"].(map[string]any), sleep["after"].(map[string]any)
	diff, lo, hi := sleep["difference"].(float64), sleep["ci_low"].(float64), sleep["ci_high"].(float64)
	// The ramp gives about 396 minutes before and 431 after.
	if sleep["outcome"] != "improved" || before["days"] != 14.0 || after["days"] != 14.0 || !(lo > 0 && lo < diff && diff < hi) ||
		diff < 20 || diff > 50 || sleep["target"] != "higher" || !strings.Contains(fmt.Sprint(sleep["sentence"]), "(95% CI +") {
		t.Errorf("sleep: %v", sleep)
	}
	t.Logf("sleep: %s", sleep["sentence"])
	if st, doc := call(t, http.DefaultClient, srv.url, admin, "GET", "/v1/patients/sim-p001/comparison?days=500", nil); st != http.StatusBadRequest {
		t.Errorf("500 days a side: %d %v, want 400", st, doc)
	}

	// The visit report over the four weeks says the same.
	req, _ := http.NewRequest("GET", srv.url+"/v1/patients/sim-p001/report", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pdf, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	path := filepath.Join(t.ArtifactDir(), "visit-report-change.pdf")
	if err := os.WriteFile(path, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(poppler(t, "pdftotext"), "-layout", path, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v: %s", err, out)
	}
	text := strings.Join(strings.Fields(string(out)), " ")
	for _, want := range []string{"Is the change working?", "Plan v2, from", "estradiol 0.05 mg transdermal, twice weekly → estradiol 0.075 mg", "Improved: sleep:"} {
		if !strings.Contains(text, want) {
			t.Errorf("the report lacks %q", want)
		}
	}

	// The clinic's audit: her regimen, one patient, sleep improved.
	_, doc = call(t, http.DefaultClient, srv.url, admin, "GET", "/v1/comparisons?days=14", nil)
	regimens, _ := doc["regimens"].([]any)
	if len(regimens) != 1 || !strings.Contains(fmt.Sprint(regimens[0].(map[string]any)["regimen"]), "estradiol 0.075 mg") {
		t.Fatalf("the clinic's comparisons: %v", doc)
	}
	for _, m := range regimens[0].(map[string]any)["metrics"].([]any) {
		if m := m.(map[string]any); m["metric"] == "sleep.total_min" && (m["patients"] != 1.0 || m["improved"] != 1.0 || m["mean_difference"] != diff ||
			!strings.HasPrefix(fmt.Sprint(m["summary"]), "+")) {
			t.Errorf("the clinic's sleep: %v", m)
		}
	}

	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 1000)); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, srv.url, "cw-admin", "#patients a")
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.url+"/patient?id=sim-p001")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the comparison", `document.querySelector("#change").dataset.ready === "true"`)
	if v := eval[string](t, ctx, `document.querySelector("#change-version").value`); v != "2" {
		t.Errorf("the version compared first: %q, want the newest, 2", v)
	}
	eval[bool](t, ctx, `(() => { const s = document.querySelector("#change-days"); s.value = "14"; return s.dispatchEvent(new Event("change", {bubbles: true})) })()`)
	waitJS(t, ctx, "14 days a side", `document.querySelector("#change .change-what").textContent.includes("14 days before it")`)
	row := `#change tr[data-metric="sleep.total_min"]`
	if s := plainText(t, ctx, row); !strings.Contains(s, "Sleep") || !strings.Contains(s, "Improved") || !strings.Contains(s, "95% CI +") {
		t.Errorf("the sleep row says %q", s)
	}
	if s := plainText(t, ctx, "#change .change-what"); !strings.Contains(s, "Plan v2 took effect on") || !strings.Contains(s, "0.075 mg") {
		t.Errorf("the panel says %q", s)
	}
	if err := chromedp.Do(ctx, chromedp.ScrollIntoView("#change")); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "change-working")
	axeCheck(t, ctx, "the patient page with the comparison")

	// The admin page's audit across the clinic.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.url+"/admin")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the admin page", `document.body.dataset.ready === "true"`)
	if err := chromedp.Do(ctx, chromedp.Click("#compare-form button[type=submit]")); err != nil {
		t.Fatal(err)
	}
	sleepRow := `#compare-admin tr[data-metric="sleep.total_min"]`
	waitJS(t, ctx, "the clinic's comparison", fmt.Sprintf(`document.querySelector('%s')`, sleepRow))
	cells := eval[[]string](t, ctx, fmt.Sprintf(`[...document.querySelectorAll('%s > *')].map((c) => c.textContent)`, sleepRow))
	if len(cells) != 7 || cells[0] != "Sleep" || cells[1] != "1" || cells[2] != "1" || !strings.HasPrefix(cells[6], "+") {
		t.Errorf("the clinic's sleep row: %q", cells)
	}
	if err := chromedp.Do(ctx, chromedp.ScrollIntoView("#compare-admin")); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "change-clinic")
	axeCheck(t, ctx, "the admin page with the clinic's comparison")
}
