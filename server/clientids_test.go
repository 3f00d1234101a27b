package server

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// TestWarnReservedDevices: serve warns at start about the active devices
// enrolled under its MQTT client ids, with their number and without their
// ids; a revoked one, or one under another --mqtt-client-id, is not
// counted; without MQTT nothing is said.
func TestWarnReservedDevices(t *testing.T) {
	ctx := t.Context()
	reg, err := registry.Open(ctx, testservices.RegistryDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if err := reg.AddPatient(ctx, registry.Patient{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	// Enrolled straight in the registry, as before the enrolment check.
	for _, id := range []string{"patientpulse", "patientpulse-s3", "patientpulse-feed-i1", "patientpulse-old", "watch-001", "clinic-a-s0"} {
		if _, err := reg.EnrollDevice(ctx, id, "p-1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.RevokeDevice(ctx, "patientpulse-old"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		clientID string
		mqtt     bool
		want     int
	}{
		{"default client id", "patientpulse", true, 3},
		{"another client id", "clinic-a", true, 1},
		{"a client id no device is under", "clinic-b", true, 0},
		{"without mqtt", "patientpulse", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			c := &Config{MQTTOn: tc.mqtt, MQTT: ingest.MQTTConfig{ClientID: tc.clientID}}
			n, err := warnReservedDevices(ctx, reg, c, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Errorf("counted %d devices, want %d", n, tc.want)
			}
			out := logs.String()
			if tc.want == 0 {
				if out != "" {
					t.Errorf("logged %q, want nothing", out)
				}
				return
			}
			for _, want := range []string{"level=WARN", "mqtt-client-id", "devices=" + strconv.Itoa(tc.want), "mqtt_client_id=" + tc.clientID} {
				if !strings.Contains(out, want) {
					t.Errorf("log %q does not say %q", out, want)
				}
			}
			for _, id := range []string{"-s3", "-feed-i1", "-s0", "watch-001"} {
				if strings.Contains(out, id) {
					t.Errorf("log %q names a device (%s)", out, id)
				}
			}
		})
	}
}
