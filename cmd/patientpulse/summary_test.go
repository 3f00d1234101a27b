package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/internal/testservices"
)

// TestWeeklySummaryReachesOnlyItsDevice: two patients with a plan and a
// phone each, on a broker whose accounts patientpulse manages. serve
// publishes last week's summaries when it starts (the weeks it missed);
// each phone hears its own and is refused the other's topic. The phone
// sends last week's and the week before's nights over HTTPS; `summaries
// publish --patient` sends the new summary, which reaches the phone
// already listening and is what GET /v1/device/summary answers, and what
// the patient's own page shows. A revoked phone gets nothing more.
func TestWeeklySummaryReachesOnlyItsDevice(t *testing.T) {
	needServices(t)
	m, brokerFlags := dynsecBroker(t)
	dir := newDataDir(t)
	pipeline := append(brokerFlags, "--mqtt-username", "pipeline", "--mqtt-password", "pipeline-secret-of-the-tests")
	week := analysis.ClosedWeek(time.Now(), time.UTC)
	tokens := map[string]string{}
	for _, pd := range [][2]string{{"p-sum", "phone-sum"}, {"p-other", "phone-other"}} {
		cli(t, dir, "patients", "add", "--id", pd[0])
		code, out, errOut := cliRun(t, dir, "", append([]string{"devices", "enroll", "--patient", pd[0], "--device", pd[1]}, brokerFlags...)...)
		if code != 0 {
			t.Fatalf("enroll %s: exit %d: %s", pd[1], code, errOut)
		}
		tokens[pd[1]] = strings.TrimSpace(out)
		plan := fmt.Sprintf(`{"patient": %q, "effective": %q,
			"regimen": [{"medication": "estradiol", "route": "oral", "amount": 1, "unit": "mg", "schedule": "daily"}],
			"rules": [{"id": "sleep-low", "kind": "threshold", "severity": "warning", "metric": "sleep.total_min",
				"per_day": "sum", "over": "7d", "aggregate": "mean", "below": 420, "min_days": 1}]}`, pd[0], ts(week.From.AddDate(0, 0, -28)))
		file := filepath.Join(t.TempDir(), "plan.json")
		if err := os.WriteFile(file, []byte(plan), 0o600); err != nil {
			t.Fatal(err)
		}
		cli(t, dir, "plans", "apply", "-f", file)
	}
	srv := startServe(t, dir, "t-summary", pipeline...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(srv.logs.String())
		}
	})
	summaryOf := func(what string, msgs <-chan mqtt.Message) []byte {
		t.Helper()
		select {
		case msg := <-msgs:
			return msg.Payload()
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no summary within 30s", what)
			return nil
		}
	}
	lines := func(body []byte) string {
		t.Helper()
		var sum analysis.WeeklySummary
		if err := json.Unmarshal(body, &sum); err != nil || sum.Format != analysis.SummaryFormat || sum.Week != week.Name {
			t.Fatalf("summary %s: %v, want the format %s of week %s", body, err, analysis.SummaryFormat, week.Name)
		}
		var out []string
		for _, l := range sum.Lines {
			out = append(out, l.Text)
		}
		return strings.Join(out, "\n")
	}
	const nothing = "Sleep: nothing was recorded this week.\nYour estradiol: 0 of the 7 doses due this week were logged."

	// What serve published when it started, no night stored yet, reaches
	// each phone on its own topic; phone-other is refused phone-sum's.
	listenOwn := func(device string) (*testservices.Conn, <-chan mqtt.Message) {
		t.Helper()
		conn, err := connectDevice(t, m, device, device, tokens[device])
		if err != nil {
			t.Fatalf("%s refused: %v", device, err)
		}
		code, sums := conn.Listen(t, "pp/v1/devices/"+device+"/summary")
		if code != 1 {
			t.Fatalf("%s's subscription to its summary: SUBACK %#x, want 1", device, code)
		}
		if got := lines(summaryOf(device+", from serve's start", sums)); got != nothing {
			t.Errorf("%s's summary from serve's start:\n%s\nwant:\n%s", device, got, nothing)
		}
		return conn, sums
	}
	_, sums := listenOwn("phone-sum")
	other, _ := listenOwn("phone-other")
	if code, _ := other.Listen(t, "pp/v1/devices/phone-sum/summary"); code != 0x80 {
		t.Errorf("phone-other's subscription to phone-sum's summary: SUBACK %#x, want 0x80", code)
	}
	// A filter over every device's is refused, or passes on its own only.
	if code, heard := other.Listen(t, "pp/v1/devices/+/summary"); code == 1 {
		for deadline := time.After(2 * time.Second); ; {
			select {
			case msg := <-heard:
				if msg.Topic() != "pp/v1/devices/phone-other/summary" {
					t.Errorf("phone-other heard %s", msg.Topic())
				}
				continue
			case <-deadline:
			}
			break
		}
	}

	// Last week's nights at 8 h, the week before's at 6.5 h, each within a day.
	var nights []string
	for d := 0; d < 14; d++ {
		start, minutes := week.From.AddDate(0, 0, d-7).Add(time.Hour), 390
		if d >= 7 {
			minutes = 480
		}
		nights = append(nights, fmt.Sprintf(`{"type": "sleep", "start": %q, "end": %q, "total_min": %d}`,
			ts(start), ts(start.Add(time.Duration(minutes)*time.Minute)), minutes))
	}
	req, _ := http.NewRequest("POST", srv.url+"/v1/ingest", strings.NewReader(`{"seq": 1, "samples": [`+strings.Join(nights, ",")+`]}`))
	req.Header.Set("Authorization", "Bearer "+tokens["phone-sum"])
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingest the nights: %v %v", resp, err)
	}

	exit, out, errOut := cliRun(t, dir, "", append([]string{"summaries", "publish", "--patient", "p-sum",
		"--influx-url", influx.URL, "--influx-bucket", "patientpulse"}, pipeline...)...)
	if want := fmt.Sprintf("published the summary of %s (", week.Name); exit != 0 || !strings.Contains(out, want) || !strings.Contains(out, "for 1 patients, to 1 devices") {
		t.Fatalf("summaries publish: exit %d: %s%s", exit, out, errOut)
	}
	published := summaryOf("phone-sum, from summaries publish", sums)
	want := "Sleep: 8 h on average this week (7 days with data); the week before, 6.5 h. Your plan's target is at least 7 h: on target.\n" +
		"Your estradiol: 0 of the 7 doses due this week were logged."
	if got := lines(published); got != want {
		t.Errorf("phone-sum's summary from summaries publish:\n%s\nwant:\n%s", got, want)
	}

	// Over HTTPS, with each phone's own token: the same as published.
	get := func(token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.url+"/v1/device/summary", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	if st, body := get(tokens["phone-sum"]); st != http.StatusOK || !bytes.Equal(body, published) {
		t.Errorf("GET /v1/device/summary as phone-sum: %d %s, want 200 and what was published", st, body)
	}
	if st, body := get(tokens["phone-other"]); st != http.StatusOK || lines(body) != nothing {
		t.Errorf("GET /v1/device/summary as phone-other: %d %s, want its own", st, body)
	}
	if st, _ := get(""); st != http.StatusUnauthorized {
		t.Errorf("GET /v1/device/summary without a token: %d, want 401", st)
	}

	// The patient's own page, opened by their app with the token.
	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.url+"/me#token="+url.QueryEscape(tokens["phone-sum"]))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the summary shown", `!document.querySelector("#summary").hidden`)
	if got, want := text(t, ctx, "#week"), week.From.Format("Mon, Jan 2")+" to "+week.To.AddDate(0, 0, -1).Format("Mon, Jan 2"); got != want {
		t.Errorf("the page's week is %q, want %q", got, want)
	}
	if got := text(t, ctx, "#lines"); !strings.Contains(got, "Sleep: 8 h on average this week") {
		t.Errorf("the page shows %q", got)
	}
	if u := location(t, ctx); strings.Contains(u, "token") {
		t.Errorf("the token stays in the address: %s", u)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#lines li.met").length`); n != 1 {
		t.Errorf("%d lines marked on target, want 1", n)
	}
	axeCheck(t, ctx, "/me")
	screenshot(t, ctx, "me")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#forget"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the code asked for", `!document.querySelector("#pair").hidden && document.querySelector("#summary").hidden`)
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#code"), "ppd_not-a-token"), chromedp.Click(chromedp.CSS("#pair button"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "a wrong code explained", `document.querySelector("#error").textContent.includes("not known")`)

	// A revoked phone is answered 403 and loses its broker account.
	if code, _, errOut := cliRun(t, dir, "", append([]string{"devices", "revoke", "--device", "phone-other"}, brokerFlags...)...); code != 0 {
		t.Fatalf("revoke: exit %d: %s", code, errOut)
	}
	if st, _ := get(tokens["phone-other"]); st != http.StatusForbidden {
		t.Errorf("GET /v1/device/summary as a revoked phone: %d, want 403", st)
	}
}
