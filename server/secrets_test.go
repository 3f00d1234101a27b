package server

import (
	"strings"
	"testing"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/notify"
)

func TestValidateSecrets(t *testing.T) {
	const good = "9f3c1e7a2b5d4c6e8a0b1c2d3e4f5a6b"
	base := func() Config {
		return Config{
			MQTTOn:         true,
			MQTT:           ingest.MQTTConfig{Password: good},
			BrokerAccounts: true,
			BrokerAdmin:    ingest.BrokerAdminConfig{Password: good + "x"},
			Influx:         ingest.InfluxConfig{Token: "admin:" + good},
			Webhook:        notify.WebhookConfig{URL: "https://pager.example/hook", Secret: good + "y"},
		}
	}
	tests := []struct {
		name   string
		change func(c *Config)
		want   string // "" for no problem
	}{
		{name: "generated secrets", change: func(*Config) {}},
		{name: "no secrets at all", change: func(c *Config) { *c = Config{MQTTOn: true} }},
		{name: "env example broker admin", want: "broker-admin-password is a placeholder",
			change: func(c *Config) { c.BrokerAdmin.Password = "change-me-broker-admin-password" }},
		{name: "env example pipeline", want: "mqtt-password is a placeholder",
			change: func(c *Config) { c.MQTT.Password = "change-me-broker-pipeline-password" }},
		{name: "short mqtt password", want: "mqtt-password is too short",
			change: func(c *Config) { c.MQTT.Password = "s3cret-pipe" }},
		{name: "env example influx token", want: "influx-token is a placeholder",
			change: func(c *Config) { c.Influx.Token = "change-me-to-a-long-random-token" }},
		{name: "short influx 1.8 password", want: "influx-token is too short",
			change: func(c *Config) { c.Influx.Token = "admin:admin" }},
		{name: "influx 1.8 user without password", want: "empty password",
			change: func(c *Config) { c.Influx.Token = "admin:" }},
		{name: "placeholder webhook secret", want: "webhook-secret is a placeholder",
			change: func(c *Config) { c.Webhook.Secret = "CHANGEME-CHANGEME-CHANGEME" }},
		{name: "repeated character", want: "mqtt-password is one character repeated",
			change: func(c *Config) { c.MQTT.Password = strings.Repeat("a", 20) }},
		{name: "broker admin unused without broker accounts",
			change: func(c *Config) { c.BrokerAccounts = false; c.BrokerAdmin.Password = "change-me" }},
		{name: "mqtt unused with mqtt off",
			change: func(c *Config) { c.MQTTOn = false; c.MQTT.Password = "short"; c.BrokerAdmin.Password = "short" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.change(&c)
			err := c.validateSecrets()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("validateSecrets: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("validateSecrets: %v, want %q", err, tt.want)
			}
			if err != nil {
				for _, secret := range []string{c.MQTT.Password, c.BrokerAdmin.Password, c.Influx.Token, c.Webhook.Secret} {
					if len(secret) > 8 && strings.Contains(err.Error(), secret) {
						t.Errorf("the error quotes a secret: %v", err)
					}
				}
			}
		})
	}
}
