package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// poppler returns the path of one of poppler-utils' tools (make tools
// installs them).
func poppler(t *testing.T, tool string) string {
	t.Helper()
	bin, err := exec.LookPath(tool)
	if err != nil {
		testservices.Require(t, fmt.Errorf("%s (Debian's poppler-utils, which make tools installs): %w", tool, testservices.ErrMissingBinary))
	}
	return bin
}

// TestDashboardVisitReport: the patient's page offers the visit report
// over the days chosen; the PDF it links to downloads with the session,
// opens (pdftotext reads it) and holds the patient, the plan's regimen,
// the charts, the critical alert with its acknowledgement note, the
// staff's note and the lab result; its first page is drawn as a PNG in
// the test's output. Printed, the page drops its controls and keeps the
// charts.
func TestDashboardVisitReport(t *testing.T) {
	pdftotext, pdftoppm := poppler(t, "pdftotext"), poppler(t, "pdftoppm")
	c := startDashClinic(t, "report")
	c.seed(t)
	alert := c.critical(t)
	if st, doc := call(t, c.client, c.srv.url, c.token, "POST", fmt.Sprintf("/v1/alerts/%d/ack", alert), map[string]string{"note": "called her, resting"}); st != http.StatusOK {
		t.Fatalf("ack: %d %v", st, doc)
	}
	if st, doc := call(t, c.client, c.srv.url, c.token, "POST", "/v1/patients/"+c.patient+"/notes", map[string]string{"note": "Review estradiol at the March visit"}); st != http.StatusCreated {
		t.Fatalf("note: %d %v", st, doc)
	}
	labAt := time.Now().UTC().Add(-4 * 24 * time.Hour).Truncate(time.Second)
	if st, doc, _, err := postWith(c.client, c.srv.url, c.deviceToken, "application/json", []byte(fmt.Sprintf(
		`{"seq": 9, "samples": [{"type": "lab", "time": %q, "analyte": "hematocrit", "value": 0.56, "unit": "L/L", "ref_low": 0.40, "ref_high": 0.50}]}`, ts(labAt)))); err != nil || st != http.StatusAccepted {
		t.Fatalf("lab: %d %v %v", st, doc, err)
	}

	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	problems := consoleProblems(t, ctx)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 1000)); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, c.srv.url, c.doctor, "#patients a")
	c.openPatient(t, ctx)
	href := eval[string](t, ctx, `document.querySelector("#report-pdf").getAttribute("href")`)
	if !strings.HasPrefix(href, "/v1/patients/"+c.patient+"/report?from=") || !strings.Contains(href, "&to=") {
		t.Fatalf("the report link is %q", href)
	}
	// The link downloads with the session alone, as a PDF attachment.
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`fetch(document.querySelector("#report-pdf").href).then((r) =>
		[String(r.status), r.headers.get("content-type"), r.headers.get("content-disposition")])`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "200" || got[1] != "application/pdf" || !strings.HasPrefix(got[2], `attachment; filename="visit-report-`+c.patient) {
		t.Errorf("the report link answers %q", got)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue("#report-from", "2026-01-10"), chromedp.SetValue("#report-to", "2026-01-01")); err != nil {
		t.Fatal(err)
	}
	eval[bool](t, ctx, `document.querySelector("#report-to").dispatchEvent(new Event("input"))`)
	if s := plainText(t, ctx, "#report .error"); !strings.Contains(s, "must not be after") {
		t.Errorf("a span that ends before it starts is answered %q", s)
	}

	// The PDF itself, as the clinician downloads it.
	req, _ := http.NewRequest("GET", c.srv.url+href, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pdf, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Fatalf("the report: %d, %d bytes starting %q", resp.StatusCode, len(pdf), pdf[:min(len(pdf), 20)])
	}
	dir := t.ArtifactDir()
	path := filepath.Join(dir, "visit-report.pdf")
	if err := os.WriteFile(path, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(pdftotext, "-layout", path, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext cannot read the report: %v: %s", err, out)
	}
	text := string(out)
	_, alertDoc := call(t, c.client, c.srv.url, c.token, "GET", fmt.Sprintf("/v1/alerts/%d", alert), nil)
	al, _ := alertDoc["alert"].(map[string]any)
	sentence, _ := al["sentence"].(string)
	for _, want := range []string{"Visit report: " + c.own, c.patient, "Plan and regimen", "estradiol", "Charts", "Sleep, each night",
		"Heart rate, daily mean", "Hematocrit", "Alerts", "critical", "called her, resting", "Review estradiol at the March visit", "56 %", "40–50"} {
		if !strings.Contains(text, want) {
			t.Errorf("the report does not say %q", want)
		}
	}
	if sentence == "" || !strings.Contains(strings.Join(strings.Fields(text), " "), sentence[:min(len(sentence), 40)]) {
		t.Errorf("the report does not hold the alert's sentence %q", sentence)
	}
	first, err := exec.Command(pdftotext, "-f", "1", "-l", "1", path, "-").Output()
	if err != nil || !strings.Contains(string(first), "Sleep, each night") {
		t.Errorf("the first page has no chart: %v\n%s", err, first)
	}
	if out, err := exec.Command(pdftoppm, "-png", "-r", "90", "-f", "1", "-l", "1", "-singlefile", path, filepath.Join(dir, "visit-report-page1")).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v: %s", err, out)
	}
	pngFile, err := os.Open(filepath.Join(dir, "visit-report-page1.png"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(pngFile)
	pngFile.Close()
	if err != nil {
		t.Fatal(err)
	}
	blue := 0 // the charts' lines and bands are drawn in the accent blue
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if b > 0x9000 && r < 0x6000 && g < 0x8000 {
				blue++
			}
		}
	}
	if blue < 500 {
		t.Errorf("the first page has %d accent-blue pixels: no chart drawn", blue)
	}
	t.Logf("visit report: %s, first page %s (%d bytes of PDF)", path, filepath.Join(dir, "visit-report-page1.png"), len(pdf))

	// Printed, the page is the record without its controls.
	printMedia := chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"})
		return err
	})
	if err := chromedp.Do(ctx, printMedia); err != nil {
		t.Fatal(err)
	}
	hidden := eval[[]bool](t, ctx, `["header.bar", "#report", "#patient-notes form", ".zoom", "#chart-sleep"].map((s) => getComputedStyle(document.querySelector(s)).display === "none")`)
	if fmt.Sprint(hidden) != "[true true true true false]" {
		t.Errorf("printed, hidden are (bar, report panel, note form, zoom, sleep chart) %v, want the controls hidden and the chart shown", hidden)
	}
	screenshot(t, ctx, "patient-printed")

	// On a tablet the report panel fits the window.
	screen := chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "screen"})
		return err
	})
	if err := chromedp.Do(ctx, screen, chromedp.EmulateViewport(800, 1280), chromedp.ScrollIntoView("#report")); err != nil {
		t.Fatal(err)
	}
	if w := eval[[]int](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		t.Errorf("on a tablet the page is %d px wide in a %d px window", w[0], w[1])
	}
	screenshot(t, ctx, "visit-report-panel-tablet")
	if p := problems(); len(p) > 0 {
		t.Errorf("the browser's console: %q", p)
	}
}
