package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// Enroller enrols and revokes devices in the registry and at the broker
// (server.Devices).
type Enroller interface {
	Enroll(ctx context.Context, patient, device string) (token string, err error)
	Revoke(ctx context.Context, device string) (already bool, err error)
	RemoveAccounts(ctx context.Context, devices ...string) error
}

// DeviceEndpoints are the addresses a newly enrolled device sends to, as
// devices reach them.
type DeviceEndpoints struct {
	MQTTURL    string // the broker (--device-mqtt-url)
	HTTPSURL   string // POST /v1/ingest of this server (--public-url)
	SummaryURL string // GET /v1/device/summary of this server
}

// Enrolment is what enrolling a device answers, once: its token and where
// to send data, also as a QR code a phone app scans.
type Enrolment struct {
	Format       string `json:"format"` // "patientpulse-enrolment/v1"
	Device       string `json:"device"`
	Patient      string `json:"patient,omitempty"` // in the answer, never in the QR code
	Token        string `json:"token"`
	MQTTURL      string `json:"mqtt_url"`
	MQTTUsername string `json:"mqtt_username"`
	MQTTTopic    string `json:"mqtt_topic"`
	ErrorsTopic  string `json:"errors_topic"`
	SummaryTopic string `json:"summary_topic"` // the weekly summary, retained
	HTTPSURL     string `json:"https_url"`
	SummaryURL   string `json:"summary_url"`
	// QRPNG is a PNG data: URL of a QR code holding the enrolment as
	// JSON without the patient, for the device's app to scan.
	QRPNG string `json:"qr_png,omitempty"`
}

// DeviceStatus is one of a patient's devices with its data streams.
type DeviceStatus struct {
	Device
	// LastSeen is its newest stored sample (in the last two years); null
	// when none.
	LastSeen *time.Time `json:"last_seen"`
	// LastData is its newest stored sample of each measurement.
	LastData map[string]time.Time `json:"last_data"`
}

// enrolmentFormat names the QR code's JSON, for apps to recognise.
const enrolmentFormat = "patientpulse-enrolment/v1"

// enrollDevice enrols a device for the patient and answers its token and
// endpoints, the one time they are shown (Cache-Control: no-store).
func (a *API) enrollDevice(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Device string `json:"device"`
	}
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if a.cfg.Devices == nil {
		httpx.Error(w, http.StatusServiceUnavailable, "this server cannot enrol devices")
		return
	}
	ctx := r.Context()
	patient := r.PathValue("id")
	pt, err := a.reg.Patient(ctx, patient)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !pt.Active() {
		httpx.Error(w, http.StatusConflict, "patient "+patient+" is deactivated: reactivate them before enrolling a device")
		return
	}
	token, err := a.cfg.Devices.Enroll(ctx, patient, req.Device)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	e := Enrolment{Format: enrolmentFormat, Device: req.Device, Token: token,
		MQTTURL: a.cfg.Endpoints.MQTTURL, MQTTUsername: req.Device,
		MQTTTopic: ingest.DataTopic(req.Device), ErrorsTopic: ingest.ErrorTopic(req.Device), SummaryTopic: ingest.SummaryTopic(req.Device),
		HTTPSURL: a.cfg.Endpoints.HTTPSURL, SummaryURL: a.cfg.Endpoints.SummaryURL}
	payload, err := json.Marshal(e)
	if err == nil {
		var png []byte
		if png, err = qrcode.Encode(string(payload), qrcode.Medium, 320); err == nil {
			e.QRPNG = "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
		}
	}
	if err != nil { // the token stays usable: the app can be given it by hand
		a.log.Warn("device enrolment: no QR code", "err", err)
	}
	e.Patient = patient
	httpx.WriteJSON(w, http.StatusCreated, e)
}

// revokeDevice revokes a device; revoking one already revoked finishes
// removing its broker account, or answers 409 without broker accounts.
func (a *API) revokeDevice(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Devices == nil {
		httpx.Error(w, http.StatusServiceUnavailable, "this server cannot revoke devices")
		return
	}
	id := r.PathValue("device")
	if _, err := a.cfg.Devices.Revoke(r.Context(), id); err != nil {
		a.fail(w, r, err) // 409 for one already revoked without broker accounts
		return
	}
	d, err := a.reg.Device(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, deviceOf(d))
}

func deviceOf(d registry.Device) Device {
	dev := Device{ID: d.ID, EnrolledAt: d.EnrolledAt}
	if !d.Active() {
		dev.RevokedAt = &d.RevokedAt
	}
	return dev
}

// patientDevices answers the patient's devices, active first, each with
// its newest stored sample of each measurement (in the last two years).
func (a *API) patientDevices(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	if _, err := a.reg.Patient(ctx, id); err != nil {
		a.fail(w, r, err)
		return
	}
	all, err := a.reg.ListDevices(ctx)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	last, err := a.series.DeviceLastData(ctx, id, a.now().Add(-lastLabSpan))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := []DeviceStatus{}
	for _, d := range all {
		if d.PatientID != id {
			continue
		}
		s := DeviceStatus{Device: deviceOf(d), LastData: last[d.ID]}
		if s.LastData == nil {
			s.LastData = map[string]time.Time{}
		}
		for _, t := range s.LastData {
			if s.LastSeen == nil || t.After(*s.LastSeen) {
				s.LastSeen = &t
			}
		}
		out = append(out, s)
	}
	slices.SortStableFunc(out, func(x, y DeviceStatus) int {
		return boolInt(x.RevokedAt != nil) - boolInt(y.RevokedAt != nil)
	})
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"devices": out})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
