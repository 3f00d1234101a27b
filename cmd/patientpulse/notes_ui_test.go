package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardAlertNotesStay: a clinician acknowledges an alert with a
// note on the patient's page; after a reload the note is still on the
// alert, and an on-call member's page shows it too, with who wrote it.
// The clinician then resolves it with a note, which stays with it among
// the recently resolved. GET /v1/alerts carries the notes. Screenshots:
// notes-acknowledged, notes-oncall, notes-resolved.
func TestDashboardAlertNotesStay(t *testing.T) {
	c := startDashClinic(t, "notes")
	c.critical(t)
	root := browser(t)
	root, cancel := context.WithTimeout(root, 120*time.Second)
	defer cancel()
	doctor, cancelDoctor := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelDoctor()
	problems := consoleProblems(t, doctor)
	signIn(t, doctor, c.srv.url, c.doctor, "#patients a")
	patientPage := c.srv.url + "/patient?id=" + c.patient
	item := `#alert-list li[data-rule="hr-high"]`
	open := func(ctx context.Context) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(patientPage)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "the page drawn", `document.querySelector("#charts").dataset.ready === "true"`)
	}
	open(doctor)
	waitJS(t, doctor, "the firing alert", fmt.Sprintf(`document.querySelector('%s[data-state="firing"]') !== null`, item))

	const ackNote = "Called her: resting, rate settling"
	if err := chromedp.Do(doctor,
		chromedp.SendKeys(item+" input[name=note]", ackNote),
		chromedp.Click(item+" button.ack"),
	); err != nil {
		t.Fatal(err)
	}
	wantAck := "Acknowledged by " + c.doctor + ", "
	waitJS(t, doctor, "the note on the alert", fmt.Sprintf(`document.querySelector('%s .notes').textContent.includes(%q)`, item, ackNote))
	open(doctor) // a reload
	waitJS(t, doctor, "the acknowledged alert", fmt.Sprintf(`document.querySelector('%s[data-state="acknowledged"]') !== null`, item))
	if s := plainText(t, doctor, item+" .notes"); !strings.HasPrefix(s, wantAck) || !strings.HasSuffix(s, ": “"+ackNote+"”") {
		t.Errorf("after a reload the alert's notes say %q, want %q… %q", s, wantAck, ackNote)
	}
	screenshot(t, doctor, "notes-acknowledged")

	oncall, cancelOncall := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelOncall()
	signIn(t, oncall, c.srv.url, c.oncall, "#sound")
	waitJS(t, oncall, "the note on the console's row", fmt.Sprintf(`[...document.querySelectorAll("td.state")].some((td) => td.textContent.includes(%q))`, ackNote))
	open(oncall)
	if s := plainText(t, oncall, item+" .notes"); !strings.Contains(s, ackNote) || !strings.Contains(s, c.doctor) {
		t.Errorf("the on-call member's page shows the notes %q", s)
	}
	screenshot(t, oncall, "notes-oncall")

	const resolveNote = "Rate back to 70s on recheck"
	if err := chromedp.Do(doctor,
		chromedp.SendKeys(item+" input[name=note]", resolveNote),
		chromedp.Click(item+" button.resolve"),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "the alert resolved", fmt.Sprintf(`document.querySelector('%s') === null`, item))
	open(doctor)
	if err := chromedp.Do(doctor, chromedp.Click("#resolved summary")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, doctor, "the resolved alert's notes", `document.querySelector("#resolved .notes") !== null`)
	if s := plainText(t, doctor, "#resolved .notes"); !strings.Contains(s, ackNote) || !strings.Contains(s, "Resolved by "+c.doctor) || !strings.Contains(s, resolveNote) {
		t.Errorf("the recently resolved alert's notes say %q", s)
	}
	screenshot(t, doctor, "notes-resolved")

	_, doc := call(t, c.client, c.srv.url, c.token, "GET", "/v1/alerts?state=resolved&patient="+c.patient, nil)
	list, _ := doc["alerts"].([]any)
	if len(list) != 1 {
		t.Fatalf("resolved alerts: %v", doc)
	}
	notes, _ := list[0].(map[string]any)["notes"].([]any)
	if got := fmt.Sprint(notes); len(notes) != 2 || !strings.Contains(got, "change:acknowledged") || !strings.Contains(got, "change:resolved") {
		t.Errorf("GET /v1/alerts gives the notes %v, want the acknowledgement's and the resolution's", notes)
	}
	if p := problems(); len(p) > 0 {
		t.Errorf("the browser's console: %q", p)
	}
}
