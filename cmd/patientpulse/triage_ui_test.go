package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDashboardTriageListSaysWhy: the patient list says why a patient
// needs attention (the most urgent alert's sentence and age), and tells a
// new alert from an acknowledged one (by whom) and a snoozed one (until
// when), live as the alert changes. Screenshots: triage-new,
// triage-acknowledged, triage-snoozed.
func TestDashboardTriageListSaysWhy(t *testing.T) {
	c := startDashClinic(t, "triage")
	alertID := c.critical(t)
	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	signIn(t, ctx, c.srv.url, c.doctor, "#patients a")
	row := `#patients tr[data-patient="` + c.patient + `"]`
	state := func(key string) {
		t.Helper()
		waitJS(t, ctx, "the alert "+key+" on the list", fmt.Sprintf(`document.querySelector('%s .why').dataset.alertState === %q`, row, key))
	}
	state("new")
	if s := plainText(t, ctx, row+" .why .sentence"); !strings.HasPrefix(s, "1-day max heart rate 150 bpm is above the plan's 120 bpm") {
		t.Errorf("the row's reason: %q", s)
	}
	if s := plainText(t, ctx, row+" .alert-state"); !strings.HasPrefix(s, "New: nobody has acknowledged it · opened ") || !strings.HasSuffix(s, " ago") && !strings.HasSuffix(s, "just now") {
		t.Errorf("a new alert's state on the list: %q", s)
	}
	screenshot(t, ctx, "triage-new")

	act := func(action string, body map[string]any) {
		t.Helper()
		if st, doc := call(t, c.client, c.srv.url, c.token, "POST", fmt.Sprintf("/v1/alerts/%d/%s", alertID, action), body); st != http.StatusOK {
			t.Fatalf("%s: %d %v", action, st, doc)
		}
	}
	act("ack", map[string]any{"note": "seen"})
	state("acknowledged")
	if s := plainText(t, ctx, row+" .alert-state"); !strings.HasPrefix(s, "Acknowledged by "+c.doctor+" · opened ") {
		t.Errorf("an acknowledged alert's state on the list: %q", s)
	}
	screenshot(t, ctx, "triage-acknowledged")

	act("snooze", map[string]any{"until": time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)})
	state("snoozed")
	if s := plainText(t, ctx, row+" .alert-state"); !regexp.MustCompile(`^Snoozed until \d\d:\d\d · opened `).MatchString(s) {
		t.Errorf("a snoozed alert's state on the list: %q", s)
	}
	screenshot(t, ctx, "triage-snoozed")
}
