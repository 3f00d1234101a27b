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
	item := `#alert-list li[data-rule="hr-high"]`
	c.openPatient(t, doctor)
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
	c.openPatient(t, doctor) // a reload
	waitJS(t, doctor, "the acknowledged alert", fmt.Sprintf(`document.querySelector('%s[data-state="acknowledged"]') !== null`, item))
	if s := plainText(t, doctor, item+" .notes"); !strings.HasPrefix(s, wantAck) || !strings.HasSuffix(s, ": “"+ackNote+"”") {
		t.Errorf("after a reload the alert's notes say %q, want %q… %q", s, wantAck, ackNote)
	}
	screenshot(t, doctor, "notes-acknowledged")

	oncall, cancelOncall := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelOncall()
	signIn(t, oncall, c.srv.url, c.oncall, "#sound")
	waitJS(t, oncall, "the note on the console's row", fmt.Sprintf(`[...document.querySelectorAll("td.state")].some((td) => td.textContent.includes(%q))`, ackNote))
	c.openPatient(t, oncall)
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
	c.openPatient(t, doctor)
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

// TestDashboardPatientNotes: a clinician leaves two notes on the patient's
// page, one of two lines; they are listed newest first with who wrote them,
// a note of nothing but spaces is refused with the server's reason, and
// after a reload they are still there. An on-call member (the patient has
// an active alert) reads them and adds a handover, on a tablet held
// upright; the clinician sees it on the next load. Screenshots:
// patient-notes, patient-notes-tablet.
func TestDashboardPatientNotes(t *testing.T) {
	c := startDashClinic(t, "pnotes")
	c.critical(t)
	root := browser(t)
	root, cancel := context.WithTimeout(root, 120*time.Second)
	defer cancel()
	doctor, cancelDoctor := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelDoctor()
	problems := consoleProblems(t, doctor)
	if err := chromedp.Do(doctor, chromedp.EmulateViewport(1366, 1000)); err != nil {
		t.Fatal(err)
	}
	signIn(t, doctor, c.srv.url, c.doctor, "#patients a")
	add := func(ctx context.Context, note string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.SendKeys("#patient-note", note), chromedp.Click("#patient-notes button[type=submit]")); err != nil {
			t.Fatal(err)
		}
	}
	// notes answers the listed notes as "author|text", in page order.
	notes := func(ctx context.Context) []string {
		t.Helper()
		return eval[[]string](t, ctx, `[...document.querySelectorAll(".patient-notes li")].map((li) =>
			li.querySelector(".note-meta strong").textContent + "|" + li.querySelector(".note-text").textContent)`)
	}
	c.openPatient(t, doctor)
	if s := plainText(t, doctor, "#patient-notes"); !strings.Contains(s, "No notes yet.") {
		t.Errorf("a patient without notes: the panel says %q", s)
	}

	const first, second = "Patch site rash: asked her to rotate sites\nReview at the March visit", "PSA due in March"
	add(doctor, first)
	waitJS(t, doctor, "the first note", `document.querySelectorAll(".patient-notes li").length === 1`)
	add(doctor, second)
	waitJS(t, doctor, "the second note", `document.querySelectorAll(".patient-notes li").length === 2`)
	want := []string{c.doctor + "|" + second, c.doctor + "|" + first}
	if got := notes(doctor); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the notes listed are %q, want %q (newest first)", got, want)
	}
	if s := plainText(t, doctor, ".patient-notes .note-meta"); !strings.HasPrefix(s, c.doctor+", ") || len(s) < len(c.doctor)+10 {
		t.Errorf("a note's byline is %q, want its author and time", s)
	}
	if eval[bool](t, doctor, `document.querySelector("#patient-notes .empty").checkVisibility()`) {
		t.Error(`"No notes yet." is still shown beside two notes`)
	}

	add(doctor, "   ")
	waitJS(t, doctor, "the refusal", `!document.querySelector("#patient-notes .error").hidden`)
	if s := plainText(t, doctor, "#patient-notes .error"); !strings.Contains(s, "not kept") || !strings.Contains(s, "write something") {
		t.Errorf("a blank note is answered %q", s)
	}
	c.openPatient(t, doctor) // a reload
	waitJS(t, doctor, "the notes after a reload", `document.querySelectorAll(".patient-notes li").length === 2`)
	if got := notes(doctor); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after a reload the notes are %q, want %q", got, want)
	}
	screenshot(t, doctor, "patient-notes")

	oncall, cancelOncall := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelOncall()
	if err := chromedp.Do(oncall, chromedp.EmulateViewport(800, 1280)); err != nil {
		t.Fatal(err)
	}
	signIn(t, oncall, c.srv.url, c.oncall, "#sound")
	c.openPatient(t, oncall)
	waitJS(t, oncall, "the clinician's notes", `document.querySelectorAll(".patient-notes li").length === 2`)
	const handover = "Night shift: rate 150 at 02:10, called her, resting; recheck at 08:00"
	add(oncall, handover)
	waitJS(t, oncall, "the handover", `document.querySelectorAll(".patient-notes li").length === 3`)
	if got := notes(oncall)[0]; got != c.oncall+"|"+handover {
		t.Errorf("the newest note on the on-call member's page is %q", got)
	}
	if err := chromedp.Do(oncall, chromedp.ScrollIntoView("#patient-notes")); err != nil {
		t.Fatal(err)
	}
	if w := eval[[]int](t, oncall, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		t.Errorf("on a tablet the page is %d px wide in a %d px window", w[0], w[1])
	}
	screenshot(t, oncall, "patient-notes-tablet")

	c.openPatient(t, doctor)
	waitJS(t, doctor, "the handover on the clinician's page", `document.querySelectorAll(".patient-notes li").length === 3`)
	if got := notes(doctor)[0]; got != c.oncall+"|"+handover {
		t.Errorf("the clinician's newest note is %q, want the on-call member's handover", got)
	}
	if p := problems(); len(p) > 0 {
		t.Errorf("the browser's console: %q", p)
	}
}
