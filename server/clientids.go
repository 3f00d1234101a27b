package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
)

// warnReservedDevices warns, at start, when active devices in the
// registry have ids among the pipeline's MQTT client ids under
// --mqtt-client-id (ingest.ReservedClientID): enrolled before `devices
// enroll` refused such ids, or under another --mqtt-client-id. A device
// connects with its id as client id, so such a device can disconnect a
// session of the pipeline. The warning gives their number and the
// setting, never the ids (`patientpulse devices list` shows them).
// Revoked devices are not counted: patientpulse refuses their data, and
// with broker accounts the broker refuses them. Without MQTT there is no
// session to take over, and nothing is checked. It returns the number
// warned about; an error only when the registry cannot list its devices.
func warnReservedDevices(ctx context.Context, reg *registry.Registry, c *Config, log *slog.Logger) (int, error) {
	if !c.MQTTOn {
		return 0, nil
	}
	devices, err := reg.ListDevices(ctx)
	if err != nil {
		return 0, fmt.Errorf("check device ids against mqtt-client-id: %w", err)
	}
	n := 0
	for _, d := range devices {
		if d.Active() && ingest.ReservedClientID(c.MQTT.ClientID, d.ID) {
			n++
		}
	}
	if n > 0 {
		log.Warn("active devices have ids among the pipeline's MQTT client ids (mqtt-client-id, or starting with it and '-'), "+
			"so each can disconnect the pipeline's sessions: revoke them and enrol them under other ids",
			"component", "serve", "devices", n, "mqtt_client_id", c.MQTT.ClientID)
	}
	return n, nil
}
