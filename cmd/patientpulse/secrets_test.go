package main

import (
	"strings"
	"testing"
)

// serve refuses the secrets of .env.example and short ones, naming each
// setting and quoting none.
func TestServeRefusesPlaceholderSecrets(t *testing.T) {
	secrets := map[string]string{
		"PATIENTPULSE_BROKER_ADMIN_PASSWORD": "change-me-broker-admin-password",
		"PATIENTPULSE_MQTT_PASSWORD":         "short-pw",
		"PATIENTPULSE_INFLUX_TOKEN":          "change-me-to-a-long-random-token",
	}
	code, stderr := runServeConfig(t, secrets, "--broker-accounts", "--broker-admin-username", "admin", "--mqtt-username", "patientpulse")
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr: %s", code, stderr)
	}
	for _, want := range []string{"broker-admin-password is a placeholder", "mqtt-password is too short", "influx-token is a placeholder"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr)
		}
	}
	for _, secret := range secrets {
		if strings.Contains(stderr, secret) {
			t.Errorf("stderr quotes the secret %q:\n%s", secret, stderr)
		}
	}
}
