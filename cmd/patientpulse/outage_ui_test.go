package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDashboardOutageBanner stops serve under a clinician's open patient
// list: the page says plainly that its data may be out of date since when
// (on the 24-hour clock of the default locale), and greys out the list's
// freshness; once serve is back on the same address the banner goes and
// the page is live again.
func TestDashboardOutageBanner(t *testing.T) {
	c := startDashClinic(t, "outage")
	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	signIn(t, ctx, c.srv.url, c.doctor, "#patients a")
	waitJS(t, ctx, "the list live", `document.querySelector("#live").dataset.state === "live"`)
	if eval[bool](t, ctx, `document.querySelector("#outage") !== null || "stale" in document.body.dataset`) {
		t.Fatal("an outage banner while serve runs")
	}

	stopped := time.Now()
	c.srv.stop()
	waitJS(t, ctx, "the outage banner", `document.querySelector("#outage").textContent.includes("may be out of date since")`)
	banner := text(t, ctx, "#outage")
	if !strings.HasPrefix(banner, "The live connection to patientpulse is lost.") || !strings.HasSuffix(banner, "trying again…") {
		t.Errorf("the banner says %q", banner)
	}
	if since := eval[string](t, ctx, `document.body.dataset.stale`); !regexp.MustCompile(`^\d\d:\d\d$`).MatchString(since) || !strings.Contains(banner, "since "+since+";") {
		t.Errorf("the banner %q does not give the time the page went stale (%q) on the 24-hour clock", banner, since)
	}
	if role := eval[string](t, ctx, `document.querySelector("#outage").getAttribute("role")`); role != "alert" {
		t.Errorf("the banner's role is %q, want alert (read out at once)", role)
	}
	if op := eval[string](t, ctx, `getComputedStyle(document.querySelector("#patients td.last")).opacity`); op == "1" {
		t.Error("the list's last-data cells are not greyed out during the outage")
	}
	if got := eval[bool](t, ctx, `document.querySelector("#outage").getBoundingClientRect().top < document.querySelector("#patients").getBoundingClientRect().top`); !got {
		t.Error("the banner is not above the list")
	}
	screenshot(t, ctx, "outage")
	t.Logf("the banner shown %v after serve stopped", time.Since(stopped).Round(time.Millisecond))

	addr := strings.TrimPrefix(c.srv.url, "https://")
	runServe(t, c.client, "https", c.srv.dataDir, c.srv.group, "/readyz", 30*time.Second,
		"--tls-self-signed", "--http-addr", addr)
	waitJS(t, ctx, "the banner gone once serve is back", `document.querySelector("#outage") === null && !("stale" in document.body.dataset) && document.querySelector("#live").dataset.state === "live"`)
	if op := eval[string](t, ctx, `getComputedStyle(document.querySelector("#patients td.last")).opacity`); op != "1" {
		t.Errorf("the last-data cells stay greyed (opacity %s) after the outage", op)
	}
	screenshot(t, ctx, "recovered")
}
