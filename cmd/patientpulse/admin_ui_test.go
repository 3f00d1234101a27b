package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// adminRota is the on-call rota of TestDashboardAdminScreens.
const adminRota = `timezone: Europe/London
tiers:
  - name: primary
    after: 0m
    shifts:
      - {staff: [on-admin], days: [all], from: "00:00", to: "24:00"}
  - name: consultant
    after: 45m
    shifts:
      - {staff: [boss-admin], days: [weekdays], from: "08:00", to: "18:00"}
`

// tabTo presses Tab until the keyboard focus is on the element sel
// selects, as a keyboard user would, and fails when it is not reached
// within 60 presses.
func tabTo(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	for range 60 {
		if eval[bool](t, ctx, fmt.Sprintf(`document.activeElement === document.querySelector(%q)`, sel)) {
			return
		}
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("60 presses of Tab do not reach %s (the focus is on %s)", sel,
		eval[string](t, ctx, `document.activeElement.id || document.activeElement.outerHTML.slice(0, 80)`))
}

// typeKeys types into the focused element.
func typeKeys(t *testing.T, ctx context.Context, s string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.KeyEvent(s)); err != nil {
		t.Fatal(err)
	}
}

// enrolmentQR is what the enrolment QR code holds.
type enrolmentQR struct {
	Format       string `json:"format"`
	Device       string `json:"device"`
	Patient      string `json:"patient"`
	Token        string `json:"token"`
	MQTTURL      string `json:"mqtt_url"`
	MQTTUsername string `json:"mqtt_username"`
	MQTTTopic    string `json:"mqtt_topic"`
	HTTPSURL     string `json:"https_url"`
}

// readQR decodes the QR code the image sel shows with jsQR (npm, which
// make web installs), as a phone's camera would read it.
func readQR(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "dashboards", "node_modules", "jsqr", "dist", "jsQR.js"))
	if err != nil {
		t.Fatalf("jsQR: %v (make web installs it)", err)
	}
	got := eval[string](t, ctx, `(() => { const module = {exports: {}}; const exports = module.exports;`+string(src)+`
		const img = document.querySelector(`+fmt.Sprintf("%q", sel)+`);
		const c = document.createElement("canvas");
		c.width = img.naturalWidth; c.height = img.naturalHeight;
		const g = c.getContext("2d");
		g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
		g.drawImage(img, 0, 0);
		const px = g.getImageData(0, 0, c.width, c.height);
		const found = (module.exports.default || module.exports)(px.data, c.width, c.height);
		return found ? found.data : ""; })()`)
	if got == "" {
		t.Fatalf("no QR code could be read from %s", sel)
	}
	return got
}

// TestDashboardAdminScreens is an admin's whole round, by keyboard alone
// (Tab, typing, Enter, Space), at desktop width: from the patient list to
// the administration page, adding a patient, enrolling a device whose QR
// code (read with jsQR, as a phone would) holds its token and endpoints,
// and that device's first sample (sent with what the code holds) shows on
// the patient's page and as the device's last seen; adding a clinician,
// giving her the patient, setting her password, disabling her; the rota
// with who is on call now; the audit log filtered to the admin, naming
// the enrolment and never the token; deactivating the patient, which
// revokes the device. The page passes axe-core at desktop and tablet
// widths, and a clinician is offered no administration.
func TestDashboardAdminScreens(t *testing.T) {
	needServices(t)
	client := insecureClient()
	dir := newDataDir(t)
	const admin, doctor = "boss-admin", "dr-admin"
	staffToken(t, dir, admin, "admin")
	staffToken(t, dir, "on-admin", "oncall")
	doctorToken := staffToken(t, dir, doctor, "clinician")
	rota := filepath.Join(t.TempDir(), "oncall.yaml")
	if err := os.WriteFile(rota, []byte(adminRota), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServeOver(t, client, "https", dir, "t-admin", "--tls-self-signed", "--oncall-schedule", rota,
		"--device-mqtt-url", "mqtts://mqtt.clinic.example:8883")

	root := browser(t)
	root, cancel := context.WithTimeout(root, 180*time.Second)
	defer cancel()
	ctx, cancelTab := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelTab()
	problems := consoleProblems(t, ctx)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 1000)); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, srv.url, admin, "#filters")
	waitJS(t, ctx, "the Admin link", `document.querySelector('.bar nav a[href="/admin"]')`)
	tabTo(t, ctx, `.bar nav a[href="/admin"]`)
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the administration page", `document.body.dataset.ready === "true"`)

	// A patient, added with the keyboard.
	const patient, name, contact, device = "p-admin-0001", "Nadia Newcomer", "+44 20 7946 0001", "watch-admin-01"
	tabTo(t, ctx, "#new-patient-id")
	typeKeys(t, ctx, patient)
	tabTo(t, ctx, "#new-patient-name")
	typeKeys(t, ctx, name)
	tabTo(t, ctx, "#new-patient-contact")
	typeKeys(t, ctx, contact)
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the new patient's panel", `!document.querySelector("#manage-patient").hidden`)
	if s := text(t, ctx, "#manage-patient-title"); s != name+" ("+patient+")" {
		t.Errorf("the patient's panel is titled %q", s)
	}
	if s := plainText(t, ctx, "#admin-patients tbody"); !strings.Contains(s, name) || !strings.Contains(s, contact) || !strings.Contains(s, "Monitored") {
		t.Errorf("the patients table says %q, want the new patient, her contact, monitored", s)
	}
	if s := plainText(t, ctx, "#no-devices"); s != "No devices yet." {
		t.Errorf("a patient without devices: %q", s)
	}

	// Her device, enrolled with the keyboard: the QR code holds the token
	// and where to send, and the same is written beside it.
	tabTo(t, ctx, "#new-device-id")
	typeKeys(t, ctx, device)
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the enrolment", `!document.querySelector("#enrolment").hidden && document.querySelector("#enrolment-qr").complete`)
	if !eval[bool](t, ctx, `document.activeElement === document.querySelector("#enrolment")`) {
		t.Error("the keyboard focus is not moved to the enrolment")
	}
	var qr enrolmentQR
	if err := json.Unmarshal([]byte(readQR(t, ctx, "#enrolment-qr")), &qr); err != nil {
		t.Fatalf("the QR code holds no enrolment: %v", err)
	}
	shownToken := text(t, ctx, "#enrolment-token")
	if qr.Format != "patientpulse-enrolment/v1" || qr.Device != device || qr.Token != shownToken || !strings.HasPrefix(qr.Token, "ppd_") ||
		qr.MQTTURL != "mqtts://mqtt.clinic.example:8883" || qr.MQTTUsername != device || qr.MQTTTopic != "pp/v1/devices/"+device+"/data" ||
		qr.HTTPSURL != srv.url+"/v1/ingest" || qr.Patient != "" {
		t.Errorf("the QR code holds %+v (the page shows token %q)", qr, shownToken)
	}
	if s := plainText(t, ctx, "#enrolment"); !strings.Contains(s, "shown this once") || !strings.Contains(s, qr.MQTTURL) || !strings.Contains(s, qr.HTTPSURL) {
		t.Errorf("the enrolment says %q", s)
	}
	axeCheck(t, ctx, "the administration page with an enrolment")
	screenshot(t, ctx, "admin-enrolment")
	tabTo(t, ctx, "#enrolment-done")
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the token hidden", `document.querySelector("#enrolment").hidden && document.querySelector("#enrolment-token").textContent === ""`)

	// The device sends its first sample with what the code holds.
	sampleAt := time.Now().UTC().Add(-2 * time.Minute).Truncate(time.Second)
	body := fmt.Sprintf(`{"seq": 1, "samples": [{"type": "heart_rate", "time": %q, "bpm": 71}]}`, ts(sampleAt))
	if st, doc, _, err := postWith(client, strings.TrimSuffix(qr.HTTPSURL, "/v1/ingest"), qr.Token, "application/json", []byte(body)); err != nil || st != http.StatusAccepted && st != http.StatusOK {
		t.Fatalf("the enrolled device's first sample: %d %v %v", st, doc, err)
	}
	tabTo(t, ctx, "#manage-patient-link")
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the patient's page", `document.querySelector("#charts").dataset.ready === "true"`)
	if s := plainText(t, ctx, "#last-data"); !strings.Contains(s, "ago") && !strings.Contains(s, "just now") {
		t.Errorf("the patient's page says last data %q after the first sample", s)
	}
	if got := eval[int](t, ctx, `+document.querySelector("#chart-heart").dataset.points`); got != 1 {
		t.Errorf("the heart-rate chart has %d points, want the one sample", got)
	}
	screenshot(t, ctx, "admin-first-sample")
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.url+"/admin")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the administration page again", `document.body.dataset.ready === "true"`)
	tabTo(t, ctx, fmt.Sprintf(`#admin-patients tr[data-patient=%q] button`, patient))
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the device listed", fmt.Sprintf(`document.querySelector('#patient-devices tr[data-device=%q] .last-seen time')`, device))
	if s := plainText(t, ctx, fmt.Sprintf(`#patient-devices tr[data-device=%q]`, device)); !strings.Contains(s, "heart rate:") || strings.Contains(s, "Never") {
		t.Errorf("the device's row says %q, want its last seen and heart-rate stream", s)
	}

	// A clinician, added with the keyboard, given the patient, a new
	// password, then disabled.
	const newDoctor = "dr-newcomer"
	tabTo(t, ctx, "#new-staff-username")
	typeKeys(t, ctx, newDoctor)
	tabTo(t, ctx, "#new-staff-password")
	typeKeys(t, ctx, "short")
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the weak password refused", `document.querySelector("#add-staff .form-result").classList.contains("error")`)
	if !eval[bool](t, ctx, `document.activeElement === document.querySelector("#new-staff-password")`) {
		t.Error("after a refused password the focus is not on the password")
	}
	typeKeys(t, ctx, strings.Repeat(kb.Backspace, len("short"))+staffPassword+kb.Enter)
	waitJS(t, ctx, "the clinician's panel", `!document.querySelector("#manage-staff").hidden && document.querySelector("#manage-staff-title").textContent.startsWith("`+newDoctor+`")`)
	tabTo(t, ctx, "#reset-password-input")
	typeKeys(t, ctx, staffPassword+"-2")
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the password set", `document.querySelector("#reset-password .form-result").textContent.includes("is set")`)
	tabTo(t, ctx, "#care-team-patient")
	if v := eval[string](t, ctx, `document.querySelector("#care-team-patient").value`); v != patient {
		t.Errorf("the care team offers %q first, want %s", v, patient)
	}
	tabTo(t, ctx, "#care-team-add button")
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the care team", fmt.Sprintf(`document.querySelector('#care-team li[data-patient=%q]')`, patient))
	_, doc := call(t, client, srv.url, doctorToken, "GET", "/v1/patients", nil) // another clinician: not hers
	if got := ids(doc, "patients"); len(got) != 0 {
		t.Errorf("%s, without that patient in her care, lists %v", doctor, got)
	}
	tabTo(t, ctx, "#disable-staff")
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the question", `!document.querySelector("#disable-confirm").hidden && document.activeElement.id === "disable-yes"`)
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the account disabled", `document.querySelector("#staff-result").textContent.includes("is disabled")`)
	if s := plainText(t, ctx, fmt.Sprintf(`#admin-staff tr[data-staff=%q]`, newDoctor)); !strings.Contains(s, "Disabled") || !strings.Contains(s, "Clinician") {
		t.Errorf("the staff table says %q of the disabled clinician", s)
	}

	// The rota: each tier with when it is paged and who is on call now.
	if s := plainText(t, ctx, `#rota-tiers [data-tier="primary"]`); !strings.Contains(s, "On call now: on-admin") || !strings.Contains(s, "as soon as") {
		t.Errorf("the primary tier says %q", s)
	}
	if s := plainText(t, ctx, `#rota-tiers [data-tier="consultant"]`); !strings.Contains(s, "45 min") || !strings.Contains(s, "08:00–18:00") || !strings.Contains(s, "Mon, Tue") {
		t.Errorf("the consultant tier says %q", s)
	}

	// The catalogue of treatments, by keyboard: the id follows the name.
	tabTo(t, ctx, "#new-type-name")
	typeKeys(t, ctx, "Chemical peel")
	tabTo(t, ctx, "#new-type-category")
	typeKeys(t, ctx, "Skin")
	tabTo(t, ctx, "#new-type-recovery")
	typeKeys(t, ctx, kb.Backspace+"7"+kb.Enter)
	waitJS(t, ctx, "the catalogue entry", `document.querySelector('#procedure-types tr[data-type="chemical_peel"]')`)
	if s := plainText(t, ctx, `#procedure-types tr[data-type="chemical_peel"]`); !strings.Contains(s, "Chemical peel") || !strings.Contains(s, "Skin") || !strings.Contains(s, "7 days") {
		t.Errorf("the catalogue says %q", s)
	}

	// The rota changed in the page: a member who does not exist is
	// refused with the reason, then the consultant is paged after 30
	// minutes, at once for every reader.
	tabTo(t, ctx, "#rota-edit")
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the rota's editor", `document.activeElement.id === "rota-yaml" && document.querySelector("#rota-yaml").value.includes("consultant")`)
	changed := strings.Replace(eval[string](t, ctx, `document.querySelector("#rota-yaml").value`), "after: 45m", "after: 30m", 1)
	if err := chromedp.Do(ctx, chromedp.SetValue("#rota-yaml", strings.Replace(changed, "[on-admin]", "[on-admin, nobody-here]", 1))); err != nil {
		t.Fatal(err)
	}
	tabTo(t, ctx, "#rota-form button[type=submit]")
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the rota refused", `!document.querySelector("#rota-problems").hidden`)
	if s := plainText(t, ctx, "#rota-problems"); !strings.Contains(s, "nobody-here is not a member of staff") {
		t.Errorf("a rota naming an unknown member is answered %q", s)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue("#rota-yaml", changed)); err != nil {
		t.Fatal(err)
	}
	tabTo(t, ctx, "#rota-form button[type=submit]")
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the rota saved", `document.querySelector("#rota-form").hidden && document.querySelector("#rota-source").textContent.includes("Version 1")`)
	if s := plainText(t, ctx, `#rota-tiers [data-tier="consultant"]`); !strings.Contains(s, "30 min") {
		t.Errorf("after the change the consultant tier says %q", s)
	}
	if s := plainText(t, ctx, "#rota-source"); !strings.Contains(s, "saved by "+admin) {
		t.Errorf("the rota's source says %q", s)
	}
	_, oncall := call(t, client, srv.url, doctorToken, "GET", "/v1/oncall", nil)
	if tiers, _ := oncall["tiers"].([]any); len(tiers) != 2 || tiers[1].(map[string]any)["after"] != "30m0s" {
		t.Errorf("GET /v1/oncall after the change: %v", oncall)
	}

	// The audit log, filtered to the admin's device actions by keyboard.
	tabTo(t, ctx, "#audit-actor")
	typeKeys(t, ctx, admin)
	tabTo(t, ctx, "#audit-action")
	if err := chromedp.Do(ctx, chromedp.SetValue("#audit-action", "device.")); err != nil { // a select's own popup is not part of the page
		t.Fatal(err)
	}
	tabTo(t, ctx, "#audit-filters button[type=submit]")
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the filtered audit log", `document.querySelector("#audit-entries tbody tr") && [...document.querySelectorAll("#audit-entries tbody tr")].every((tr) => tr.dataset.action.startsWith("device."))`)
	audit := plainText(t, ctx, "#audit-entries tbody")
	if !strings.Contains(audit, "device.enroll") || !strings.Contains(audit, patient) || !strings.Contains(audit, device) {
		t.Errorf("the audit log filtered to the admin's device actions says %q", audit)
	}
	if strings.Contains(eval[string](t, ctx, `document.body.innerText`), qr.Token) {
		t.Error("the device's token is still on the page")
	}

	// Deactivating the patient revokes her device.
	tabTo(t, ctx, fmt.Sprintf(`#admin-patients tr[data-patient=%q] button`, patient))
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the patient's panel", `document.activeElement.id === "manage-patient"`)
	tabTo(t, ctx, "#deactivate")
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the question", `document.activeElement.id === "deactivate-yes"`)
	typeKeys(t, ctx, kb.Enter)
	waitJS(t, ctx, "the patient deactivated", `document.querySelector("#monitoring-result").textContent.includes("deactivated")`)
	if s := plainText(t, ctx, fmt.Sprintf(`#patient-devices tr[data-device=%q]`, device)); !strings.Contains(s, "Revoked") {
		t.Errorf("after deactivation the device's row says %q", s)
	}
	waitUntil(t, 10*time.Second, "the revoked device refused (within --device-cache-ttl)", func() bool {
		st, _, _, _ := postWith(client, srv.url, qr.Token, "application/json", []byte(body))
		return st == http.StatusUnauthorized || st == http.StatusForbidden
	})
	if s := plainText(t, ctx, "#admin-patients tbody"); strings.Contains(s, patient) {
		t.Errorf("the patients table still lists the deactivated patient: %q", s)
	}
	tabTo(t, ctx, "#show-deactivated")
	typeKeys(t, ctx, " ")
	waitJS(t, ctx, "the deactivated patient listed", fmt.Sprintf(`document.querySelector('#admin-patients tr[data-patient=%q]')`, patient))
	if s := plainText(t, ctx, fmt.Sprintf(`#admin-patients tr[data-patient=%q]`, patient)); !strings.Contains(s, "Deactivated") {
		t.Errorf("the deactivated patient's row says %q", s)
	}

	// A tablet: the same page, nothing wider than the window.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(800, 1280), chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the administration page on a tablet", `document.body.dataset.ready === "true"`)
	if w := eval[[]int](t, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
		t.Errorf("on a tablet the page is %d px wide in a %d px window", w[0], w[1])
	}
	axeCheck(t, ctx, "the administration page on a tablet")
	screenshot(t, ctx, "admin-tablet")
	if p := problems(); len(p) > 0 {
		t.Errorf("the browser's console: %q", p)
	}

	// A clinician is offered no administration, and the page says why.
	other, cancelOther := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	defer cancelOther()
	signIn(t, other, srv.url, doctor, "#filters")
	if eval[bool](t, other, `Boolean(document.querySelector('.bar nav a[href="/admin"]'))`) {
		t.Error("a clinician is offered the administration page")
	}
	if err := chromedp.Do(other, chromedp.Navigate(srv.url+"/admin")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, other, "the refusal", `document.querySelector("#status").textContent.includes("Only administrators")`)
	if eval[bool](t, other, `document.querySelector("#patients-admin").hidden === false`) {
		t.Error("a clinician is shown the administration screens")
	}
}
