package server

import (
	"errors"
	"fmt"
	"strings"
)

// MinSecretLength is the fewest characters serve takes in a secret it is
// given: a broker password, the webhook's key, InfluxDB's token (the
// password part of a 1.8 user:password). Generated ones (openssl rand -hex
// 24, scripts/services.sh) are far longer.
const MinSecretLength = 16

// placeholders are pieces of the values that example files ship with
// (.env.example's "change-me-..."): a deployment still holding one has
// not set its secrets.
var placeholders = []string{"change-me", "changeme", "change_me", "replace-me", "replaceme", "placeholder", "<", ">"}

// checkSecret reports a secret that is a placeholder or too short. It
// never quotes the value. An empty value is not checked here: whether a
// secret is required is the setting's own rule.
func checkSecret(name, value string) error {
	if value == "" {
		return nil
	}
	lower := strings.ToLower(value)
	for _, p := range placeholders {
		if strings.Contains(lower, p) {
			return fmt.Errorf("%s is a placeholder (it contains %q): set a generated secret, e.g. openssl rand -hex 24", name, p)
		}
	}
	if len(value) < MinSecretLength {
		return fmt.Errorf("%s is too short (%d characters, want at least %d): set a generated secret, e.g. openssl rand -hex 24",
			name, len(value), MinSecretLength)
	}
	if strings.Count(value, value[:1]) == len(value) {
		return fmt.Errorf("%s is one character repeated: set a generated secret, e.g. openssl rand -hex 24", name)
	}
	return nil
}

// validateSecrets reports every secret serve is given and will use that is
// a placeholder or too short.
func (c *Config) validateSecrets() error {
	var errs []error
	if c.MQTTOn {
		errs = append(errs, checkSecret("mqtt-password", c.MQTT.Password))
		if c.BrokerAccounts {
			errs = append(errs, checkSecret("broker-admin-password", c.BrokerAdmin.Password))
		}
	}
	// alerts.WebhookConfig refuses a short webhook secret itself.
	if c.Webhook.URL != "" && len(c.Webhook.Secret) >= MinSecretLength {
		errs = append(errs, checkSecret("webhook-secret", c.Webhook.Secret))
	}
	// InfluxDB 1.8 takes user:password: the password is the secret.
	token := c.Influx.Token
	if _, password, ok := strings.Cut(token, ":"); ok {
		token = password
		if token == "" {
			errs = append(errs, errors.New("influx-token user:password has an empty password"))
		}
	}
	errs = append(errs, checkSecret("influx-token", token))
	return errors.Join(errs...)
}
