package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/api"
	"github.com/patientpulse/patientpulse/auth"
)

// staffPassword is the password of the staff accounts the access tests
// make.
const staffPassword = "a long staff password"

// call sends one /v1/ request with a staff token (none when empty) and
// returns the status and the decoded JSON body (nil when there is none).
func call(t *testing.T, client *http.Client, base, token, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s %s %d: body is not JSON: %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, doc
}

// staffToken adds a staff member with role and returns an API token.
func staffToken(t *testing.T, dir, username, role string) string {
	t.Helper()
	mustStaff(t, dir, staffPassword+"\n", "staff", "add", "--username", username, "--role", role)
	out, _ := mustStaff(t, dir, "", "staff", "token", "--username", username)
	return strings.TrimSpace(out)
}

// ids returns the "id" of each object in doc[key].
func ids(doc map[string]any, key string) []string {
	var out []string
	list, _ := doc[key].([]any)
	for _, v := range list {
		if m, ok := v.(map[string]any); ok {
			out = append(out, fmt.Sprint(m["id"]))
		}
	}
	return out
}

// TestEveryRoleEveryEndpoint runs every /v1/ endpoint as each role and as
// nobody, on a real serve with real InfluxDB behind it, and checks that
// exactly the allowed cells succeed; then that the audit log holds what
// happened and the log no patient id, token or password.
func TestEveryRoleEveryEndpoint(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	device := enroll(t, dir, "p-mine", "w-mine")
	cli(t, dir, "patients", "add", "--id", "p-other", "--name", "Other Patient")
	tokens := map[string]string{
		"admin":     staffToken(t, dir, "ada", "admin"),
		"clinician": staffToken(t, dir, "cleo", "clinician"),
		"oncall":    staffToken(t, dir, "otto", "oncall"),
		"nobody":    "",
	}
	for _, u := range []string{"tgt-pass", "tgt-disable", "tgt-team", "tgt-token"} {
		mustStaff(t, dir, staffPassword+"\n", "staff", "add", "--username", u, "--role", "clinician")
	}
	mustStaff(t, dir, "", "staff", "assign", "--username", "cleo", "--patient", "p-mine")
	mustStaff(t, dir, "", "staff", "assign", "--username", "tgt-team", "--patient", "p-other")
	// p-other's plan fires at once (no vitals ever): a critical alert, which
	// lets on-call staff see p-other, and no one else than admins.
	planFile := filepath.Join(t.TempDir(), "plan.yaml")
	os.WriteFile(planFile, []byte("patient: p-other\neffective: 2026-11-01T00:00:00Z\nrules:\n"+
		"  - {id: vitals-silent, kind: silence, metric: vitals, for: 24h, severity: critical}\n"), 0o600)
	mustStaff(t, dir, "", "plans", "apply", "-f", planFile)
	// Every refusal of the table is to be in the audit log: above the
	// default cap of refusals written per address and minute.
	srv := startServe(t, dir, "t-access", "--log-level", "debug", "--alert-fire-after", "0s", "--alert-resolve-after", "0s",
		"--audit-refusals-per-minute", "1000")
	var alertID string
	waitUntil(t, 20*time.Second, "p-other's alert", func() bool {
		_, doc := call(t, http.DefaultClient, srv.url, tokens["admin"], "GET", "/v1/alerts?state=firing", nil)
		list, _ := doc["alerts"].([]any)
		if len(list) == 1 {
			alertID = fmt.Sprint(list[0].(map[string]any)["id"])
		}
		return alertID != ""
	})
	alertPath := "/v1/alerts/" + alertID
	snoozeUntil := map[string]any{"until": ts(time.Now().Add(time.Hour)), "note": "seen, calling her at 9"}

	sampleTime := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	status, doc, _ := post(t, srv.url, device, "application/json",
		[]byte(fmt.Sprintf(`{"seq": 1, "samples": [{"type": "heart_rate", "time": %q, "bpm": 61}]}`, ts(sampleTime))))
	if status != http.StatusAccepted {
		t.Fatalf("ingest: %d %v", status, doc)
	}

	// Each row: the request, and the status for each role; 401 for
	// nobody is checked for every row.
	type cell map[string]int
	const ok, created, none, denied = http.StatusOK, http.StatusCreated, http.StatusNoContent, http.StatusForbidden
	adminOnly := func(status int) cell { return cell{"admin": status, "clinician": denied, "oncall": denied} }
	rows := []struct {
		pattern, path string
		body          any
		want          cell
	}{
		{"GET /v1/session", "/v1/session", nil, cell{"admin": ok, "clinician": ok, "oncall": ok}},
		{"GET /v1/patients", "/v1/patients", nil, cell{"admin": ok, "clinician": ok, "oncall": ok}},
		{"GET /v1/patients/{id}", "/v1/patients/p-mine", nil, cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"GET /v1/patients/{id}", "/v1/patients/p-other", nil, cell{"admin": ok, "clinician": denied, "oncall": ok}},
		{"GET /v1/patients/{id}/series", "/v1/patients/p-mine/series?type=heart_rate&from=" + url.QueryEscape(ts(sampleTime.Add(-time.Minute))),
			nil, cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"GET /v1/patients/{id}/series", "/v1/patients/p-other/series?type=heart_rate", nil, cell{"admin": ok, "clinician": denied, "oncall": ok}},
		{"PUT /v1/patients/{id}/plan", "/v1/patients/p-mine/plan", testPlan, cell{"admin": created, "clinician": created, "oncall": denied}},
		{"PUT /v1/patients/{id}/plan", "/v1/patients/p-other/plan", otherPlan, cell{"admin": created, "clinician": denied, "oncall": denied}},
		{"POST /v1/patients/{id}/plan/preview", "/v1/patients/p-mine/plan/preview?days=7", testPlan, cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"POST /v1/patients/{id}/plan/preview", "/v1/patients/p-other/plan/preview", otherPlan, cell{"admin": ok, "clinician": denied, "oncall": denied}},
		{"GET /v1/patients/{id}/plan", "/v1/patients/p-mine/plan", nil, cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"GET /v1/patients/{id}/plan/history", "/v1/patients/p-mine/plan/history", nil, cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"GET /v1/patients/{id}/transitions", "/v1/patients/p-mine/transitions", nil, cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"GET /v1/patients/{id}/transitions", "/v1/patients/p-other/transitions", nil, cell{"admin": ok, "clinician": denied, "oncall": ok}},
		{"POST /v1/patients/{id}/notes", "/v1/patients/p-mine/notes", map[string]any{"note": "Handover: recheck on Monday"}, cell{"admin": created, "clinician": created, "oncall": denied}},
		{"POST /v1/patients/{id}/notes", "/v1/patients/p-other/notes", map[string]any{"note": "Paged at night, settled"}, cell{"admin": created, "clinician": denied, "oncall": created}},
		{"GET /v1/patients/{id}/notes", "/v1/patients/p-mine/notes", nil, cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"GET /v1/patients/{id}/notes", "/v1/patients/p-other/notes", nil, cell{"admin": ok, "clinician": denied, "oncall": ok}},
		{"GET /v1/patients/{id}/verdicts", "/v1/patients/p-mine/verdicts", nil, cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"GET /v1/patients/{id}/comparison", "/v1/patients/p-mine/comparison", nil, cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"GET /v1/comparisons", "/v1/comparisons", nil, adminOnly(ok)},
		{"POST /v1/procedure-types", "/v1/procedure-types", map[string]any{"id": "chemical_peel", "name": "Chemical peel", "category": "Skin", "recovery_days": 7},
			adminOnly(created)},
		{"GET /v1/procedure-types", "/v1/procedure-types", nil, cell{"admin": ok, "clinician": ok, "oncall": ok}},
		{"POST /v1/patients/{id}/procedures", "/v1/patients/p-mine/procedures", map[string]any{"type": "chemical_peel", "status": "planned", "at": "2026-12-20T09:00:00Z"},
			cell{"admin": created, "clinician": created, "oncall": denied}},
		{"GET /v1/patients/{id}/procedures", "/v1/patients/p-mine/procedures", nil, cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"PATCH /v1/patients/{id}/procedures/{pid}", "/v1/patients/p-mine/procedures/1", map[string]any{"status": "done"},
			cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"POST /v1/patients", "/v1/patients", map[string]string{"id": "p-new", "name": "New Patient"}, adminOnly(created)},
		{"PATCH /v1/patients/{id}", "/v1/patients/p-new", map[string]string{"contact": "+44 20 7946 0002"}, adminOnly(ok)},
		{"GET /v1/patients/{id}/devices", "/v1/patients/p-mine/devices", nil, cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"GET /v1/patients/{id}/devices", "/v1/patients/p-other/devices", nil, cell{"admin": ok, "clinician": denied, "oncall": ok}},
		{"POST /v1/patients/{id}/devices", "/v1/patients/p-new/devices", map[string]string{"device": "w-new"}, adminOnly(created)},
		{"POST /v1/devices/{device}/revoke", "/v1/devices/w-new/revoke", nil, adminOnly(ok)},
		{"POST /v1/patients/{id}/deactivate", "/v1/patients/p-new/deactivate", nil, adminOnly(ok)},
		{"POST /v1/patients/{id}/reactivate", "/v1/patients/p-new/reactivate", nil, adminOnly(ok)},
		{"GET /v1/staff", "/v1/staff", nil, adminOnly(ok)},
		{"POST /v1/staff", "/v1/staff", map[string]string{"username": "newbie", "role": "oncall", "password": staffPassword}, adminOnly(created)},
		{"GET /v1/staff/{username}", "/v1/staff/cleo", nil, adminOnly(ok)},
		{"PUT /v1/staff/{username}/password", "/v1/staff/tgt-pass/password", map[string]string{"password": "another long password"}, adminOnly(none)},
		{"PUT /v1/staff/{username}/patients/{id}", "/v1/staff/tgt-team/patients/p-mine", nil, adminOnly(none)},
		{"DELETE /v1/staff/{username}/patients/{id}", "/v1/staff/tgt-team/patients/p-other", nil, adminOnly(none)},
		{"POST /v1/staff/{username}/tokens", "/v1/staff/tgt-token/tokens", map[string]string{"label": "lab"}, adminOnly(created)},
		{"DELETE /v1/staff/{username}/tokens", "/v1/staff/tgt-token/tokens", nil, adminOnly(none)},
		{"DELETE /v1/staff/{username}/sessions", "/v1/staff/tgt-pass/sessions", nil, adminOnly(none)},
		{"POST /v1/staff/{username}/disable", "/v1/staff/tgt-disable/disable", nil, adminOnly(none)},
		{"GET /v1/audit", "/v1/audit?limit=5", nil, adminOnly(ok)},
		{"GET /v1/signin/locks", "/v1/signin/locks", nil, adminOnly(ok)},
		{"GET /v1/staff/{username}/contact", "/v1/staff/cleo/contact", nil, cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"PUT /v1/staff/{username}/contact", "/v1/staff/cleo/contact", map[string]any{"email": "cleo@clinic.example", "digest_hour": 7},
			cell{"admin": ok, "clinician": ok, "oncall": denied}},
		{"GET /v1/oncall", "/v1/oncall", nil, cell{"admin": ok, "clinician": ok, "oncall": ok}},
		{"GET /v1/oncall/schedule", "/v1/oncall/schedule", nil, adminOnly(ok)},
		{"PUT /v1/oncall/schedule", "/v1/oncall/schedule", map[string]string{"yaml": "timezone: UTC\ntiers:\n  - {name: primary, after: 0m, shifts: [{staff: [otto], days: [all], from: \"00:00\", to: \"24:00\"}]}\n"},
			adminOnly(ok)},
		{"GET /v1/catalog", "/v1/catalog", nil, cell{"admin": ok, "clinician": ok, "oncall": ok}},
		{"GET /v1/notify/deliveries", "/v1/notify/deliveries?state=failed", nil, adminOnly(ok)},
		{"GET /v1/ack-links/{token}", "/v1/ack-links/not-a-link", nil,
			cell{"admin": http.StatusNotFound, "clinician": http.StatusNotFound, "oncall": http.StatusNotFound}},
		{"GET /v1/alerts", "/v1/alerts", nil, cell{"admin": ok, "clinician": ok, "oncall": ok}},
		{"GET /v1/alerts/{aid}", alertPath, nil, cell{"admin": ok, "clinician": denied, "oncall": ok}},
		{"POST /v1/alerts/{aid}/snooze", alertPath + "/snooze", snoozeUntil, cell{"admin": ok, "clinician": denied, "oncall": ok}},
		{"POST /v1/alerts/{aid}/assign", alertPath + "/assign", nil, cell{"admin": ok, "clinician": denied, "oncall": ok}},
		{"POST /v1/alerts/{aid}/unassign", alertPath + "/unassign", nil, cell{"admin": http.StatusBadRequest, "clinician": denied, "oncall": ok}},
		// The second acknowledgement finds the alert acknowledged; the
		// second resolution, resolved.
		{"POST /v1/alerts/{aid}/ack", alertPath + "/ack", map[string]string{"note": "on it"}, cell{"admin": http.StatusConflict, "clinician": denied, "oncall": ok}},
		{"POST /v1/alerts/{aid}/resolve", alertPath + "/resolve", nil, cell{"admin": http.StatusConflict, "clinician": denied, "oncall": ok}},
		// Signing out needs a browser session; a token gets 400.
		{"DELETE /v1/session", "/v1/session", nil, cell{"admin": http.StatusBadRequest, "clinician": http.StatusBadRequest, "oncall": http.StatusBadRequest}},
	}

	covered := map[string]bool{"POST /v1/session": true, "GET /v1/ws": true, // TestBrowserSession's and TestAlertsReachWebsockets'
		"GET /v1/patients/{id}/report": true} // a PDF: checked below
	// What clinicians see of alerts: none of p-other's.
	if _, doc := call(t, http.DefaultClient, srv.url, tokens["clinician"], "GET", "/v1/alerts", nil); len(doc["alerts"].([]any)) != 0 {
		t.Errorf("a clinician without p-other sees its alerts: %v", doc)
	}
	for _, r := range rows {
		covered[r.pattern] = true
	}
	for _, p := range slices.Concat(api.Patterns(), auth.SessionPatterns()) {
		if !covered[p] {
			t.Errorf("endpoint %s is not in the table", p)
		}
	}

	var clinicianPatients, oncallPatients, adminPatients []string
	for _, r := range rows {
		method, _, _ := strings.Cut(r.pattern, " ")
		// Admin last: the denied calls must not have changed anything
		// that the allowed one then finds changed.
		for _, role := range []string{"nobody", "clinician", "oncall", "admin"} {
			want, known := r.want[role]
			if role == "nobody" {
				want, known = http.StatusUnauthorized, true
			}
			if !known {
				t.Fatalf("%s: no cell for %s", r.path, role)
			}
			got, doc := call(t, http.DefaultClient, srv.url, tokens[role], method, r.path, r.body)
			if got != want {
				t.Errorf("%s %s as %s: %d %v, want %d", method, r.path, role, got, doc, want)
				continue
			}
			if got >= 400 && (doc == nil || doc["error"] == "") {
				t.Errorf("%s %s as %s: %d without an error message", method, r.path, role, got)
			}
			switch {
			case r.path == "/v1/patients" && method == "GET":
				switch role {
				case "clinician":
					clinicianPatients = ids(doc, "patients")
				case "oncall":
					oncallPatients = ids(doc, "patients")
				case "admin":
					adminPatients = ids(doc, "patients")
				}
			case strings.HasPrefix(r.path, "/v1/patients/p-mine/series") && got == ok:
				pts, _ := doc["points"].([]any)
				if len(pts) != 1 || !strings.Contains(fmt.Sprint(pts[0]), "bpm:61") {
					t.Errorf("series as %s: points %v, want the one heart rate sample (bpm 61)", role, pts)
				}
			case r.path == "/v1/patients/p-mine" && got == ok:
				if doc["name"] != "Test Patient" || !strings.Contains(fmt.Sprint(doc["devices"]), "w-mine") ||
					!strings.Contains(fmt.Sprint(doc["care_team"]), "cleo") {
					t.Errorf("patient details as %s: %v", role, doc)
				}
			}
		}
	}
	// The visit report, a PDF, for whoever may read the patient.
	for role, want := range map[string]int{"nobody": http.StatusUnauthorized, "clinician": ok, "oncall": denied, "admin": ok} {
		req, _ := http.NewRequest("GET", srv.url+"/v1/patients/p-mine/report", nil)
		if tokens[role] != "" {
			req.Header.Set("Authorization", "Bearer "+tokens[role])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || (want == ok && resp.Header.Get("Content-Type") != "application/pdf") {
			t.Errorf("GET /v1/patients/p-mine/report as %s: %d %s, want %d", role, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
	}
	if !slices.Equal(clinicianPatients, []string{"p-mine"}) || !slices.Equal(oncallPatients, []string{"p-other"}) ||
		!slices.Equal(adminPatients, []string{"p-mine", "p-other"}) {
		t.Errorf("patient lists: clinician %v, oncall %v, admin %v; want [p-mine], [p-other] (its alert), [p-mine p-other]",
			clinicianPatients, oncallPatients, adminPatients)
	}

	// The list says how each patient is doing. (p-other's alert was
	// resolved by the table's last alert rows.)
	_, list := call(t, http.DefaultClient, srv.url, tokens["admin"], "GET", "/v1/patients", nil)
	for _, v := range list["patients"].([]any) {
		m := v.(map[string]any)
		switch m["id"] {
		case "p-mine":
			if m["status"] != "fine" || m["last_data_at"] != ts(sampleTime) || fmt.Sprint(m["last_data"]) != "map[heart_rate:"+ts(sampleTime)+"]" {
				t.Errorf("p-mine in the list: %v, want status fine and last data (heart rate) at %s", m, ts(sampleTime))
			}
		case "p-other":
			if m["status"] != "fine" || m["last_data_at"] != nil || m["active_alerts"] != 0.0 {
				t.Errorf("p-other in the list: %v, want fine, no data, no active alert", m)
			}
		}
	}

	// What the admin changed took effect.
	if _, code := staffRunCode(t, dir, "staff", "token", "--username", "tgt-disable"); code == 0 {
		t.Error("tgt-disable was given a token after the API disabled it")
	}
	if st, _ := call(t, http.DefaultClient, srv.url, "", "POST", "/v1/session",
		map[string]string{"username": "tgt-pass", "password": "another long password"}); st != http.StatusOK {
		t.Errorf("sign-in with the password the API set: %d", st)
	}

	// The audit log, read through the API.
	entries := auditEntries(t, srv.url, tokens["admin"], "")
	want := []string{
		"cli:* device.enroll p-mine w-mine ok",
		"cli:* staff.assign p-mine cleo ok",
		"cleo patient.read p-mine details ok",
		"cleo patient.read p-mine series?* ok",
		"cleo access.denied p-other GET /v1/patients/{id} denied",
		"cleo patient.list  1 patients ok",
		"otto access.denied p-mine GET /v1/patients/{id} denied",
		"ada patient.read p-other details ok",
		"ada patient.add p-new  ok",
		"ada patient.edit p-new contact ok",
		"ada device.enroll p-new w-new ok",
		"ada device.revoke p-new w-new ok",
		"ada patient.deactivate p-new  ok",
		"ada patient.reactivate p-new  ok",
		"cleo plan.change p-mine v1 ok",
		"ada plan.change p-mine v2 ok",
		"cli:* plan.change p-other v1 ok",
		"ada plan.change p-other v2 ok",
		"otto patient.read p-other details ok",
		"cleo access.denied p-other GET /v1/alerts/{aid} denied",
		"otto alert.snooze p-other alert " + alertID + " ok",
		"otto alert.ack p-other alert " + alertID + " ok",
		"otto alert.resolve p-other alert " + alertID + " ok",
		"otto access.denied p-mine PUT /v1/patients/{id}/plan denied",
		"cleo patient.read p-mine plan ok",
		"cleo patient.read p-mine plan preview?days=7 ok",
		"cleo patient.read p-mine transitions ok",
		"ada staff.add  newbie (oncall) ok",
		"ada staff.password  tgt-pass ok",
		"ada staff.assign p-mine tgt-team ok",
		"ada staff.unassign p-other tgt-team ok",
		"ada staff.token  tgt-token (lab) ok",
		"ada staff.revoke  tgt-token ok",
		"ada staff.signout  tgt-pass ok",
		"ada staff.disable  tgt-disable ok",
		"cleo access.denied  GET /v1/audit denied",
		"tgt-pass signin  password ok",
	}
	for _, w := range want {
		if !slices.ContainsFunc(entries, func(e string) bool { return matchEntry(w, e) }) {
			t.Errorf("audit log has no entry %q; it has:\n%s", w, strings.Join(entries, "\n"))
		}
	}
	// Filters.
	for filter, wantPrefix := range map[string]string{"?actor=cleo": "cleo ", "?patient=p-other": "", "?action=staff.": ""} {
		got := auditEntries(t, srv.url, tokens["admin"], filter)
		if len(got) == 0 {
			t.Errorf("audit %s: no entries", filter)
		}
		for _, e := range got {
			f := strings.Fields(e)
			if !strings.HasPrefix(e, wantPrefix) ||
				(filter == "?patient=p-other" && f[2] != "p-other") || (filter == "?action=staff." && !strings.HasPrefix(f[1], "staff.")) {
				t.Errorf("audit %s returned %q", filter, e)
			}
		}
	}

	srv.stop()
	secrets := []string{"p-mine", "p-other", "p-new", "Test Patient", "Other Patient", "New Patient", device, staffPassword, "another long password"}
	for _, tok := range tokens {
		if tok != "" {
			secrets = append(secrets, tok)
		}
	}
	for _, s := range secrets {
		if strings.Contains(srv.logs.String(), s) {
			t.Errorf("serve's log mentions %q:\n%s", s, srv.logs.String())
		}
	}
}

// testPlan is a valid plan body, without its patient (the URL names it).
var testPlan = map[string]any{
	"effective": "2026-11-01T00:00:00Z",
	"rules":     []any{map[string]any{"id": "watch-silent", "kind": "silence", "metric": "heart_rate", "for": "24h", "severity": "warning"}},
}

// otherPlan keeps p-other's firing rule.
var otherPlan = map[string]any{
	"effective": "2026-11-01T00:00:00Z",
	"rules":     []any{map[string]any{"id": "vitals-silent", "kind": "silence", "metric": "vitals", "for": "24h", "severity": "critical"}},
}

// staffRunCode runs a command with no stdin and returns stdout and the
// exit code.
func staffRunCode(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	out, _, code := staffRun(t, dir, strings.NewReader(""), args...)
	return out, code
}

// auditEntries reads the audit log through GET /v1/audit, each entry as
// "actor action patient target outcome".
func auditEntries(t *testing.T, base, adminToken, filter string) []string {
	t.Helper()
	sep := "?"
	if strings.Contains(filter, "?") {
		sep = "&"
	}
	status, doc := call(t, http.DefaultClient, base, adminToken, "GET", "/v1/audit"+filter+sep+"limit=1000", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /v1/audit%s: %d %v", filter, status, doc)
	}
	var out []string
	list, _ := doc["entries"].([]any)
	for _, v := range list {
		e := v.(map[string]any)
		str := func(k string) string { s, _ := e[k].(string); return s }
		out = append(out, strings.Join([]string{str("actor"), str("action"), str("patient"), str("target"), str("outcome")}, " "))
	}
	return out
}

// matchEntry matches an audit entry against a pattern in which a field
// ending in "*" matches any field with that prefix.
func matchEntry(pattern, entry string) bool {
	p, e := strings.Split(pattern, " "), strings.Split(entry, " ")
	if len(p) != len(e) {
		return false
	}
	for i := range p {
		if prefix, ok := strings.CutSuffix(p[i], "*"); ok {
			if !strings.HasPrefix(e[i], prefix) {
				return false
			}
		} else if p[i] != e[i] {
			return false
		}
	}
	return true
}

// TestBrowserSession signs in as a browser would, over HTTPS with the
// development certificate: the cookie's attributes, CSRF refusal, the
// sign-in form, sign-out, and lock-out after repeated failures.
func TestBrowserSession(t *testing.T) {
	needServices(t)
	dir := newDataDir(t)
	cli(t, dir, "patients", "add", "--id", "p-s1")
	mustStaff(t, dir, staffPassword+"\n", "staff", "add", "--username", "sam", "--role", "clinician")
	mustStaff(t, dir, "", "staff", "assign", "--username", "sam", "--patient", "p-s1")
	insecure := insecureClient()
	srv := startServeOver(t, insecure, "https", dir, "t-session", "--tls-self-signed", "--signin-max-failures", "3")

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Transport: insecure.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.PostForm(srv.url+"/v1/session", url.Values{"username": {"sam"}, "password": {staffPassword}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Go's client sends no Origin: the form sign-in goes through, as a
	// script's would.
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("form sign-in: %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	setCookie := resp.Header.Get("Set-Cookie")
	for _, attr := range []string{"__Host-pp_session=", "Path=/", "HttpOnly", "Secure", "SameSite=Strict", "Max-Age=43200"} {
		if !strings.Contains(setCookie, attr) {
			t.Errorf("Set-Cookie %q lacks %s", setCookie, attr)
		}
	}
	if h := resp.Header.Get("Strict-Transport-Security"); h == "" {
		t.Error("no HSTS header over TLS")
	}

	status, me := call(t, browser, srv.url, "", "GET", "/v1/session", nil)
	csrf, _ := me["csrf_token"].(string)
	if status != http.StatusOK || me["username"] != "sam" || csrf == "" {
		t.Fatalf("GET /v1/session: %d %v", status, me)
	}
	if status, doc := call(t, browser, srv.url, "", "GET", "/v1/patients/p-s1", nil); status != http.StatusOK {
		t.Errorf("a signed-in clinician reading their patient: %d %v", status, doc)
	}

	signOut := func(token string) int {
		req, _ := http.NewRequest(http.MethodDelete, srv.url+"/v1/session", nil)
		if token != "" {
			req.Header.Set("X-CSRF-Token", token)
		}
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := signOut(""); got != http.StatusForbidden {
		t.Errorf("sign-out without the CSRF token: %d, want 403", got)
	}
	if got := signOut("wrong"); got != http.StatusForbidden {
		t.Errorf("sign-out with a wrong CSRF token: %d, want 403", got)
	}
	if got := signOut(csrf); got != http.StatusNoContent {
		t.Errorf("sign-out: %d, want 204", got)
	}
	if status, _ := call(t, browser, srv.url, "", "GET", "/v1/session", nil); status != http.StatusUnauthorized {
		t.Errorf("after sign-out: %d, want 401", status)
	}

	// Lock-out: three failures, then even the right password is refused.
	for range 3 {
		if st, _ := call(t, insecure, srv.url, "", "POST", "/v1/session", map[string]string{"username": "sam", "password": "wrong guess"}); st != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d, want 401", st)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.url+"/v1/session", strings.NewReader(`{"username": "sam", "password": "`+staffPassword+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err = insecure.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "900" {
		t.Errorf("right password after 3 failures: %d, Retry-After %q; want 429, 900", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	srv.stop()
	if strings.Contains(srv.logs.String(), staffPassword) || strings.Contains(srv.logs.String(), csrf) {
		t.Errorf("serve's log mentions a password or CSRF token:\n%s", srv.logs.String())
	}
}
