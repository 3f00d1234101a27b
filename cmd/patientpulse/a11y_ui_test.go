package main

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardAccessibility runs axe-core on each page as its user sees
// it, at desktop and tablet widths: the sign-in form, the clinician's
// patient list and a patient's page with a critical alert, and the
// on-call console. A serious or critical violation fails the test.
func TestDashboardAccessibility(t *testing.T) {
	c := startDashClinic(t, "a11y")
	c.seed(t)
	c.critical(t)
	root := browser(t)
	root, cancel := context.WithTimeout(root, 150*time.Second)
	defer cancel()
	for _, width := range []struct {
		name          string
		width, height int64
	}{{"desktop", 1366, 1000}, {"tablet", 800, 1280}} {
		t.Run(width.name, func(t *testing.T) {
			doctor, cancelDoctor := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
			defer cancelDoctor()
			if err := chromedp.Do(doctor, chromedp.EmulateViewport(width.width, width.height), chromedp.Navigate(c.srv.url+"/signin"), chromedp.WaitVisible("#username")); err != nil {
				t.Fatal(err)
			}
			axeCheck(t, doctor, "the sign-in form")
			signIn(t, doctor, c.srv.url, c.doctor, "#patients a")
			waitJS(t, doctor, "the list's reasons", `document.querySelector("#patients .why") !== null`)
			axeCheck(t, doctor, "the patient list")
			if err := chromedp.Do(doctor, chromedp.Navigate(c.srv.url+"/patient?id="+c.patient)); err != nil {
				t.Fatal(err)
			}
			waitJS(t, doctor, "the page drawn", `document.querySelector("#charts").dataset.ready === "true" && document.querySelector("#alert-list li") !== null`)
			axeCheck(t, doctor, "the patient's page")

			oncall, cancelOncall := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
			defer cancelOncall()
			if err := chromedp.Do(oncall, chromedp.EmulateViewport(width.width, width.height)); err != nil {
				t.Fatal(err)
			}
			signIn(t, oncall, c.srv.url, c.oncall, "#sound")
			waitJS(t, oncall, "the alert on the console", `document.querySelector("td.state") !== null`)
			axeCheck(t, oncall, "the on-call console")
		})
	}
}
