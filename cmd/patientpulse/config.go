package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/settings"
)

const envPrefix = "PATIENTPULSE_"

// config is every setting of every subcommand. All subcommands accept all
// of them, so that one config file serves `serve` and the admin commands.
type config struct {
	file     string
	dataDir  string
	db       string
	logLevel string

	httpAddr      string
	tlsCert       string
	tlsKey        string
	tlsSelfSigned bool
	mqttOn        bool
	deviceTTL     time.Duration
	mqtt          ingest.MQTTConfig
	influx        ingest.InfluxConfig
	limits        ingest.Limits
	writer        ingest.WriterConfig
	httpIngest    ingest.HTTPConfig
	auth          auth.Config
	analysis      analysis.Config
	timezone      string
	alerts        alerts.Config
	oncallFile    string
	hub           alerts.HubConfig
	wsOrigins     string
	webhook       alerts.WebhookConfig
	webhookEvents string

	// brokerAccounts: the broker's credentials are patientpulse's to
	// manage, through Mosquitto's dynamic security plugin, with the admin
	// account brokerAdmin (whose URL and CA are the collector's).
	brokerAccounts bool
	brokerAdmin    ingest.BrokerAdminConfig
}

// newFlagSet returns a flag set for a subcommand, holding every setting
// with its default.
func newFlagSet(name string, c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("patientpulse "+name, flag.ContinueOnError)
	fs.StringVar(&c.file, "config", "", "YAML file of settings, keys named as these flags")
	fs.StringVar(&c.dataDir, "data-dir", "./data", "directory for the registry and other local state")
	fs.StringVar(&c.db, "db", "", "registry database: a SQLite file path (default <data-dir>/patientpulse.db)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")

	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:8080", "address of the HTTP(S) listener")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate file: serve HTTPS (with --tls-key)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key file for --tls-cert")
	fs.BoolVar(&c.tlsSelfSigned, "tls-self-signed", false, "serve HTTPS with a self-signed certificate kept under <data-dir>/tls (development only)")

	c.mqtt = ingest.MQTTConfig{ClientID: "patientpulse", ShareGroup: "patientpulse"}
	fs.BoolVar(&c.mqttOn, "mqtt", true, "receive device data over MQTT (false: HTTPS only)")
	fs.StringVar(&c.mqtt.URL, "mqtt-url", "tcp://127.0.0.1:1883", "MQTT broker URL (tcp://, mqtts://)")
	fs.StringVar(&c.mqtt.Username, "mqtt-username", "", "the pipeline's broker username")
	fs.StringVar(&c.mqtt.Password, "mqtt-password", "", "the pipeline's broker password (prefer "+envPrefix+"MQTT_PASSWORD)")
	fs.StringVar(&c.mqtt.CAFile, "mqtt-ca-file", "", "PEM CA bundle to verify an mqtts:// broker")
	fs.StringVar(&c.mqtt.ClientID, "mqtt-client-id", c.mqtt.ClientID, "fixed MQTT client id: unique per instance, stable across restarts")
	fs.StringVar(&c.mqtt.ShareGroup, "mqtt-share-group", c.mqtt.ShareGroup, "shared-subscription group of the instances")
	fs.IntVar(&c.mqtt.MaxInFlight, "mqtt-max-inflight", 1000, "MQTT messages processed at once (match the broker's max_inflight_messages)")
	fs.DurationVar(&c.mqtt.MaxReconnect, "mqtt-max-reconnect-interval", 30*time.Second, "longest wait between reconnection attempts")
	fs.BoolVar(&c.brokerAccounts, "broker-accounts", false, "manage the broker's accounts through Mosquitto's dynamic security plugin: "+
		"devices enroll/revoke add/remove each device's account (username = device id, password = token), serve its own (--mqtt-username)")
	fs.StringVar(&c.brokerAdmin.Username, "broker-admin-username", "", "the dynamic security plugin's admin account (with --broker-accounts)")
	fs.StringVar(&c.brokerAdmin.Password, "broker-admin-password", "", "its password (prefer "+envPrefix+"BROKER_ADMIN_PASSWORD)")

	fs.StringVar(&c.influx.URL, "influx-url", "http://127.0.0.1:8086", "InfluxDB URL")
	fs.StringVar(&c.influx.Token, "influx-token", "", "InfluxDB token (1.8: user:password or empty; prefer "+envPrefix+"INFLUX_TOKEN)")
	fs.StringVar(&c.influx.Org, "influx-org", "", "InfluxDB organisation (2.x)")
	fs.StringVar(&c.influx.Bucket, "influx-bucket", "patientpulse", "InfluxDB bucket (1.8: database[/retention-policy])")
	fs.DurationVar(&c.influx.Timeout, "influx-timeout", 30*time.Second, "timeout of one InfluxDB request")
	fs.BoolVar(&c.influx.Gzip, "influx-gzip", false, "compress writes to InfluxDB (for a remote InfluxDB over a slow link; on the same host or LAN it only costs CPU)")

	c.limits = ingest.DefaultLimits()
	fs.IntVar(&c.limits.MaxSamples, "max-samples", c.limits.MaxSamples, "samples per message")
	fs.DurationVar(&c.limits.Backfill, "backfill-horizon", c.limits.Backfill, "oldest sample accepted, back from now")
	fs.DurationVar(&c.limits.FutureSkew, "future-skew", c.limits.FutureSkew, "newest sample accepted, ahead of now")
	fs.DurationVar(&c.deviceTTL, "device-cache-ttl", 2*time.Second, "how long a device lookup is remembered: a revocation takes effect within it (0: never remembered)")

	c.writer = ingest.DefaultWriterConfig()
	fs.IntVar(&c.writer.BatchPoints, "write-batch-points", c.writer.BatchPoints, "points per InfluxDB write")
	fs.DurationVar(&c.writer.FlushInterval, "write-flush-interval", c.writer.FlushInterval, "longest wait before a partial batch is written")
	fs.IntVar(&c.writer.MaxPending, "write-max-pending", c.writer.MaxPending, "points waiting to be stored, at most (bounds memory)")
	fs.IntVar(&c.writer.Concurrency, "write-concurrency", c.writer.Concurrency, "InfluxDB writes in flight")

	c.httpIngest = ingest.HTTPConfig{}
	fs.Int64Var(&c.httpIngest.MaxBytes, "max-body-bytes", 512<<10, "largest message accepted, in bytes (HTTPS and MQTT)")
	fs.IntVar(&c.httpIngest.MaxInFlight, "http-max-inflight", 256, "HTTPS ingest requests in progress at once (429 beyond)")
	fs.DurationVar(&c.httpIngest.WriteWait, "http-write-wait", 10*time.Second, "how long an HTTPS request waits to be stored (503 after)")
	fs.Float64Var(&c.httpIngest.DeviceRate, "device-rate", 5, "HTTPS messages per second per device, on average (429 above; 0: no limit)")
	fs.IntVar(&c.httpIngest.DeviceBurst, "device-burst", 60, "HTTPS messages a device may send at once, above --device-rate (a phone catching up)")

	c.auth = auth.DefaultConfig()
	fs.DurationVar(&c.auth.IdleTimeout, "session-idle", c.auth.IdleTimeout, "a browser session unused this long ends")
	fs.DurationVar(&c.auth.MaxAge, "session-max-age", c.auth.MaxAge, "a browser session ends this long after sign-in, used or not")
	fs.IntVar(&c.auth.MaxFailures, "signin-max-failures", c.auth.MaxFailures, "failed sign-ins of one account, since its last success, that lock it for signin-lockout")
	fs.IntVar(&c.auth.MaxAddressFailures, "signin-max-address-failures", c.auth.MaxAddressFailures, "failed sign-ins from one address that lock it out for signin-lockout")
	fs.DurationVar(&c.auth.LockoutWindow, "signin-lockout", c.auth.LockoutWindow, "how far back failed sign-ins count, and so how long a lock-out lasts")

	c.analysis = analysis.DefaultConfig()
	fs.StringVar(&c.timezone, "timezone", "UTC", "the clinic's IANA time zone (Europe/London): analysis judges its calendar days")
	fs.IntVar(&c.analysis.MinWearHours, "analysis-min-wear-hours", c.analysis.MinWearHours, "hours of a day with activity or heart-rate samples for the day to be judged")
	fs.DurationVar(&c.analysis.Interval, "analysis-interval", c.analysis.Interval, "a patient with new data is evaluated at most this often")
	fs.DurationVar(&c.analysis.Sweep, "analysis-sweep", c.analysis.Sweep, "every patient is evaluated this often (silence, new days); plans applied by the admin commands are read within 10s")
	fs.IntVar(&c.analysis.QueueSize, "analysis-queue", c.analysis.QueueSize, "stored messages waiting for analysis (beyond it, the patient is re-read from InfluxDB)")

	c.alerts = alerts.DefaultConfig()
	fs.DurationVar(&c.alerts.FireAfter, "alert-fire-after", c.alerts.FireAfter, "a condition must hold this long before its alert fires (damps flapping)")
	fs.DurationVar(&c.alerts.ResolveAfter, "alert-resolve-after", c.alerts.ResolveAfter, "and stay clear this long before its alert resolves by itself")
	fs.DurationVar(&c.alerts.Renotify, "alert-renotify", c.alerts.Renotify, "an alert staff resolved while its condition still holds opens again this long after (at once if the value gets worse)")
	fs.IntVar(&c.alerts.MaxOpenPerPatient, "alert-max-per-patient", c.alerts.MaxOpenPerPatient, "active non-critical alerts per patient; more wait, suppressed, until there is room")
	fs.StringVar(&c.oncallFile, "oncall-schedule", "", "YAML file of who is on call when, in tiers: unacknowledged critical alerts escalate along it")
	c.hub = alerts.DefaultHubConfig()
	fs.StringVar(&c.wsOrigins, "ws-origins", "", "comma-separated origins (https://host[:port]) besides this server's own that may open the websocket")
	fs.IntVar(&c.hub.SendQueue, "ws-send-queue", c.hub.SendQueue, "messages waiting for one websocket client; a client that lets it fill is disconnected")
	fs.StringVar(&c.webhook.URL, "webhook-url", "", "POST every alert change as signed JSON to this URL (https; http only to loopback)")
	fs.StringVar(&c.webhook.Secret, "webhook-secret", "", "HMAC-SHA256 key of the webhook's signature (prefer "+envPrefix+"WEBHOOK_SECRET)")
	fs.StringVar(&c.webhookEvents, "webhook-events", "", "comma-separated alert changes to send (opened, escalated, ...); empty: every change")
	return fs
}

// load parses args over the file and environment layers.
func load(fs *flag.FlagSet, c *config, args []string, getenv func(string) string) error {
	err := settings.Load(fs, args, envPrefix, "config", getenv)
	c.mqtt.MaxBytes = c.httpIngest.MaxBytes
	c.hub.Origins = commaList(c.wsOrigins)
	c.webhook.Events = commaList(c.webhookEvents)
	return err
}

// commaList splits a comma-separated setting, dropping empty items.
func commaList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// dsn is the registry's location.
func (c *config) dsn() string {
	if c.db != "" {
		return c.db
	}
	return filepath.Join(c.dataDir, "patientpulse.db")
}

func (c *config) level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.logLevel)); err != nil {
		return 0, errors.New("log-level must be debug, info, warn or error")
	}
	return l, nil
}

// validateServe reports every problem of the serve settings at once.
func (c *config) validateServe() error {
	errs := []error{c.limits.Validate(), c.writer.Validate(), c.httpIngest.Validate(), c.influx.Validate(), c.auth.Validate(), c.analysis.Validate()}
	errs = append(errs, c.alerts.Validate(), c.webhook.Validate())
	if c.oncallFile != "" {
		s, err := alerts.LoadOnCall(c.oncallFile)
		errs = append(errs, err)
		c.alerts.Schedule = s
	}
	if c.hub.SendQueue < 1 {
		errs = append(errs, errors.New("ws-send-queue must be at least 1"))
	}
	if loc, err := time.LoadLocation(c.timezone); err != nil || c.timezone == "" || c.timezone == "Local" {
		errs = append(errs, fmt.Errorf("timezone %q: want an IANA zone such as Europe/London or UTC", c.timezone))
	} else {
		c.analysis.Location = loc
	}
	if _, err := c.level(); err != nil {
		errs = append(errs, err)
	}
	if c.mqttOn {
		errs = append(errs, c.mqtt.Validate())
		if c.brokerAccounts {
			errs = append(errs, c.brokerAdmin.Validate())
			if c.mqtt.Username == "" || c.mqtt.Password == "" {
				errs = append(errs, errors.New("broker-accounts needs mqtt-username and mqtt-password: the pipeline's own broker account, which serve creates"))
			} else if c.mqtt.Username == c.brokerAdmin.Username {
				errs = append(errs, errors.New("mqtt-username must not be broker-admin-username: the pipeline has its own broker account"))
			}
		}
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		errs = append(errs, errors.New("tls-cert and tls-key go together"))
	}
	if c.tlsSelfSigned && c.tlsCert != "" {
		errs = append(errs, errors.New("tls-self-signed and tls-cert exclude each other"))
	}
	readable := true
	for _, f := range []struct{ name, path string }{{"tls-cert", c.tlsCert}, {"tls-key", c.tlsKey}} {
		if _, err := os.Stat(f.path); f.path != "" && err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
			readable = false
		}
	}
	if c.tlsCert != "" && c.tlsKey != "" && readable {
		if _, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey); err != nil {
			errs = append(errs, fmt.Errorf("tls-cert, tls-key: %w", err))
		}
	}
	if c.deviceTTL < 0 || c.deviceTTL > time.Hour {
		errs = append(errs, errors.New("device-cache-ttl must be between 0 and 1h"))
	}
	if c.writer.MaxPending < c.limits.MaxSamples {
		errs = append(errs, errors.New("write-max-pending must be at least max-samples"))
	}
	return errors.Join(errs...)
}

// validateBrokerAdmin reports every problem of the settings with which
// the admin commands reach the broker's dynamic security plugin; none
// when --broker-accounts is off.
func (c *config) validateBrokerAdmin() error {
	if !c.brokerAccounts {
		return nil
	}
	return errors.Join(c.mqtt.Validate(), c.brokerAdmin.Validate())
}

// brokerAdminConfig is how to reach the dynamic security plugin: with
// the admin account, over the collector's URL and CA.
func (c *config) brokerAdminConfig() ingest.BrokerAdminConfig {
	b := c.brokerAdmin
	b.URL, b.CAFile = c.mqtt.URL, c.mqtt.CAFile
	return b
}
