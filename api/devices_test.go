package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/registry"
)

// regEnroller enrols in the registry alone (server.Devices without a
// broker), and records the broker accounts it is asked to remove.
type regEnroller struct {
	reg     *registry.Registry
	removed []string
}

func (e *regEnroller) Enroll(ctx context.Context, patient, device string) (string, error) {
	return e.reg.EnrollDevice(ctx, device, patient)
}

func (e *regEnroller) Revoke(ctx context.Context, device string) (bool, error) {
	return false, e.reg.RevokeDevice(ctx, device)
}

func (e *regEnroller) RemoveAccounts(_ context.Context, devices ...string) error {
	e.removed = append(e.removed, devices...)
	return nil
}

// TestPatientAdministration: an admin edits a patient (a refused contact
// is not repeated in the refusal), enrols a device and is answered its
// token, endpoints and QR code once, cannot deactivate the patient while
// an alert of theirs is active, then deactivates them, which revokes the
// device and asks for its broker account's removal; the deactivated
// patient leaves the list, gets no device and no plan, and comes back on
// reactivation.
func TestPatientAdministration(t *testing.T) {
	var enroller *regEnroller
	ta := newTestAPIWith(t, &fakeSeries{}, func(a *API) {
		enroller = &regEnroller{reg: a.reg}
		a.cfg.Devices = enroller
		a.cfg.Endpoints = DeviceEndpoints{MQTTURL: "mqtts://mqtt.clinic.example:8883", HTTPSURL: "https://pulse.clinic.example/v1/ingest"}
	})
	admin := ta.staff(t, "ada", registry.RoleAdmin)
	if code, body := ta.send(t, admin, "POST", "/v1/patients", `{"id": "p-1", "name": "Jane Roe", "contact": "jane@example.invalid"}`); code != 201 {
		t.Fatalf("add: %d %s", code, body)
	}
	code, body := ta.send(t, admin, "PATCH", "/v1/patients/p-1", `{"contact": "call me\u001b[2J"}`)
	if code != 400 || strings.Contains(body, "call me") || !strings.Contains(body, "contact") {
		t.Errorf("a contact with an escape: %d %s, want 400 naming the contact, not repeating it", code, body)
	}
	code, body = ta.send(t, admin, "PATCH", "/v1/patients/p-1", `{"contact": "+44 20 7946 0000"}`)
	if code != 200 || !strings.Contains(body, `"name":"Jane Roe"`) || !strings.Contains(body, `"contact":"+44 20 7946 0000"`) {
		t.Errorf("PATCH the contact: %d %s, want the name kept and the contact changed", code, body)
	}

	code, body = ta.send(t, admin, "POST", "/v1/patients/p-1/devices", `{"device": "watch-1"}`)
	var e Enrolment
	if code != 201 || json.Unmarshal([]byte(body), &e) != nil {
		t.Fatalf("enrol: %d %s", code, body)
	}
	if d, err := ta.reg.DeviceByToken(t.Context(), e.Token); err != nil || d.ID != "watch-1" || d.PatientID != "p-1" {
		t.Errorf("the token answered is not watch-1's: %+v %v", d, err)
	}
	if e.Format != enrolmentFormat || e.Patient != "p-1" || e.MQTTURL != "mqtts://mqtt.clinic.example:8883" || e.MQTTUsername != "watch-1" ||
		e.MQTTTopic != "pp/v1/devices/watch-1/data" || e.ErrorsTopic != "pp/v1/devices/watch-1/errors" ||
		e.HTTPSURL != "https://pulse.clinic.example/v1/ingest" || !strings.HasPrefix(e.QRPNG, "data:image/png;base64,") {
		t.Errorf("the enrolment: %+v", e)
	}
	if code, body := ta.send(t, admin, "POST", "/v1/patients/p-1/devices", `{"device": "watch-1"}`); code != 409 {
		t.Errorf("enrolling an id again: %d %s, want 409", code, body)
	}
	if code, body := ta.send(t, admin, "POST", "/v1/patients/p-1/devices", `{"device": "a/b"}`); code != 400 {
		t.Errorf("enrolling a bad id: %d %s, want 400", code, body)
	}
	var devs struct {
		Devices []DeviceStatus `json:"devices"`
	}
	if code := ta.get(t, admin, "/v1/patients/p-1/devices", &devs); code != 200 || len(devs.Devices) != 1 || devs.Devices[0].ID != "watch-1" ||
		devs.Devices[0].LastSeen != nil || devs.Devices[0].LastData == nil {
		t.Errorf("the devices: %d %+v", code, devs)
	}

	alert := openAlert(t, ta.reg, "p-1", "r1")
	if code, body := ta.send(t, admin, "POST", "/v1/patients/p-1/deactivate", ""); code != 409 || !strings.Contains(body, "active alerts") {
		t.Errorf("deactivating with a firing alert: %d %s, want 409", code, body)
	}
	row, _ := ta.reg.AlertByID(t.Context(), alert)
	prev := row.UpdatedAt
	row.State, row.UpdatedAt, row.ResolvedAt = registry.AlertResolved, prev.Add(1), prev.Add(1)
	if err := ta.reg.UpdateAlert(t.Context(), row, prev, registry.AlertEvent{AlertID: alert, At: row.UpdatedAt, Kind: "resolved"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if code, body := ta.send(t, admin, "POST", "/v1/patients/p-1/deactivate", ""); code != 200 || !strings.Contains(body, `"deactivated_at"`) {
		t.Fatalf("deactivate: %d %s", code, body)
	}
	if strings.Join(enroller.removed, ",") != "watch-1" {
		t.Errorf("broker accounts removed: %v, want watch-1's", enroller.removed)
	}
	if d, _ := ta.reg.Device(t.Context(), "watch-1"); d.Active() {
		t.Error("the deactivated patient's device is active")
	}
	if _, body := ta.send(t, admin, "GET", "/v1/patients", ""); strings.Contains(body, "p-1") {
		t.Errorf("the list holds the deactivated patient: %s", body)
	}
	if _, body := ta.send(t, admin, "GET", "/v1/patients?include=deactivated", ""); !strings.Contains(body, `"id":"p-1"`) {
		t.Errorf("include=deactivated leaves the patient out: %s", body)
	}
	if code, body := ta.send(t, admin, "POST", "/v1/patients/p-1/devices", `{"device": "watch-2"}`); code != 409 {
		t.Errorf("enrolling for a deactivated patient: %d %s, want 409", code, body)
	}
	if code, body := ta.send(t, admin, "PUT", "/v1/patients/p-1/plan", `{"effective": "2026-11-01T00:00:00Z", "rules": []}`); code != 409 {
		t.Errorf("a plan for a deactivated patient: %d %s, want 409", code, body)
	}
	if code, body := ta.send(t, admin, "POST", "/v1/patients/p-1/reactivate", ""); code != 200 || strings.Contains(body, "deactivated_at") {
		t.Errorf("reactivate: %d %s", code, body)
	}
	if code, _ := ta.send(t, admin, "POST", "/v1/devices/watch-1/revoke", ""); code != 409 {
		t.Errorf("revoking a revoked device: %d, want 409", code)
	}
}

// TestSaveRota: an admin's rota with problems is refused with every one
// of them (a member who does not exist among them) and changes nothing;
// a good one is stored as version 1 and in force at once.
func TestSaveRota(t *testing.T) {
	var rota *alerts.Rota
	ta := newTestAPIWith(t, &fakeSeries{}, func(a *API) {
		rota = &alerts.Rota{}
		a.cfg.Rota = rota
	})
	admin := ta.staff(t, "ada", registry.RoleAdmin)
	ta.staff(t, "otto", registry.RoleOnCall)
	bad := `{"yaml": "timezone: Mars/Olympus\ntiers:\n  - {name: primary, after: 0m, shifts: [{staff: [otto, ghost], days: [all], from: \"00:00\", to: \"24:00\"}]}\n"}`
	code, body := ta.send(t, admin, "PUT", "/v1/oncall/schedule", bad)
	if code != 422 || !strings.Contains(body, "Mars/Olympus") {
		t.Errorf("a rota in an unknown time zone: %d %s", code, body)
	}
	ghost := `{"yaml": "timezone: UTC\ntiers:\n  - {name: primary, after: 0m, shifts: [{staff: [otto, ghost], days: [all], from: \"00:00\", to: \"24:00\"}]}\n"}`
	if code, body := ta.send(t, admin, "PUT", "/v1/oncall/schedule", ghost); code != 422 || !strings.Contains(body, "ghost is not a member of staff") {
		t.Errorf("a rota naming someone unknown: %d %s", code, body)
	}
	if rota.Load() != nil {
		t.Fatal("a refused rota was put in force")
	}
	good := strings.Replace(ghost, "otto, ghost", "otto", 1)
	code, body = ta.send(t, admin, "PUT", "/v1/oncall/schedule", good)
	if code != 200 || !strings.Contains(body, `"version":1`) || !strings.Contains(body, `"saved_by":"ada"`) {
		t.Fatalf("a good rota: %d %s", code, body)
	}
	if v := rota.Load(); v == nil || v.Version != 1 || len(v.Schedule.Tiers) != 1 || v.Schedule.Tiers[0].Name != "primary" {
		t.Errorf("the rota in force: %+v", v)
	}
	if code, body := ta.send(t, admin, "GET", "/v1/oncall", ""); code != 200 || !strings.Contains(body, `"on_call":["otto"]`) {
		t.Errorf("GET /v1/oncall after the save: %d %s", code, body)
	}
}
