package server

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/cluster"
	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/internal/settings"
	"github.com/patientpulse/patientpulse/notify"
)

const envPrefix = "PATIENTPULSE_"

// localeTag is a BCP 47 language tag as browsers take it: a language, then
// a script, region or variant subtags.
var localeTag = regexp.MustCompile(`^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$`)

// Config is every setting of every subcommand. All subcommands accept all
// of them, so that one config file serves `serve` and the admin commands.
// NewFlagSet and Load fill it; Validate checks what serve needs.
type Config struct {
	file     string
	DataDir  string
	DB       string
	logLevel string

	HTTPAddr      string
	DebugAddr     string // loopback address of the pprof listener; empty: none
	TLSCert       string
	TLSKey        string
	TLSSelfSigned bool
	MQTTOn        bool
	Summaries     bool // publish the weekly summaries to the devices (with MQTTOn)
	DeviceTTL     time.Duration
	MQTT          ingest.MQTTConfig
	Influx        ingest.InfluxConfig
	Limits        ingest.Limits
	Writer        ingest.WriterConfig
	HTTPIngest    ingest.HTTPConfig
	Auth          auth.Config
	Analysis      analysis.Config
	Timezone      string
	Locale        string
	Alerts        alerts.Config
	oncallFile    string
	oncallText    string // the file's YAML
	Hub           notify.HubConfig
	wsOrigins     string
	Webhook       notify.WebhookConfig
	webhookEvents string
	Notify        notify.DispatchConfig
	SMTP          notify.SMTPConfig
	PagerDuty     notify.PagerDutyConfig
	Chat          notify.ChatConfig
	Ntfy          notify.NtfyConfig
	// PublicURL is the console's address as staff reach it, which pages
	// link to (--public-url); by default this server's own.
	PublicURL string
	// DeviceMQTTURL is the broker's address as devices reach it, given
	// to each device enrolled in the web app (--device-mqtt-url); by
	// default --mqtt-url.
	DeviceMQTTURL string

	// BrokerAccounts: the broker's credentials are patientpulse's to
	// manage, through Mosquitto's dynamic security plugin, with the admin
	// account BrokerAdmin (whose URL and CA are the collector's).
	BrokerAccounts bool
	BrokerAdmin    ingest.BrokerAdminConfig

	// Proxies are the reverse proxies whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (--trusted-proxies); set by Validate.
	Proxies        *auth.Proxies
	trustedProxies string

	// Cluster sets up membership, leases and partitions when several
	// instances share a Postgres registry (--db postgres://...); a SQLite
	// registry, or --cluster=false, means one instance, which owns
	// everything.
	Cluster   cluster.Config
	ClusterOn bool

	// Retention is how long transitions and resolved alerts are kept
	// (--retention); 0: for ever. Expired sessions are purged whatever it is.
	Retention time.Duration
}

// NewFlagSet returns a flag set for a subcommand, holding every setting
// of c with its default.
func NewFlagSet(name string, c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("patientpulse "+name, flag.ContinueOnError)
	fs.StringVar(&c.file, "config", "", "YAML file of settings, keys named as these flags")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for the registry and other local state")
	fs.StringVar(&c.DB, "db", "", "registry database: a SQLite file path (default <data-dir>/patientpulse.db)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")

	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "address of the HTTP(S) listener")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "loopback address (127.0.0.1:6060) on which to serve Go's profiles under /debug/pprof/; empty: off")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate file: serve HTTPS (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key file for --tls-cert")
	fs.BoolVar(&c.TLSSelfSigned, "tls-self-signed", false, "serve HTTPS with a self-signed certificate kept under <data-dir>/tls (development only)")

	c.MQTT = ingest.MQTTConfig{ClientID: "patientpulse"}
	fs.BoolVar(&c.MQTTOn, "mqtt", true, "receive device data over MQTT (false: HTTPS only)")
	fs.BoolVar(&c.Summaries, "weekly-summaries", true, "publish each patient's weekly summary to their devices over MQTT "+
		"(retained, on pp/v1/devices/{id}/summary) when each week closes in --timezone, with --mqtt")
	fs.StringVar(&c.MQTT.URL, "mqtt-url", "tcp://127.0.0.1:1883", "MQTT broker URL (tcp://, mqtts://)")
	fs.StringVar(&c.MQTT.Username, "mqtt-username", "", "the pipeline's broker username")
	fs.StringVar(&c.MQTT.Password, "mqtt-password", "", "the pipeline's broker password (prefer "+envPrefix+"MQTT_PASSWORD)")
	fs.StringVar(&c.MQTT.CAFile, "mqtt-ca-file", "", "PEM CA bundle to verify an mqtts:// broker")
	fs.StringVar(&c.MQTT.ClientID, "mqtt-client-id", c.MQTT.ClientID, "fixed MQTT client id: unique per instance, stable across restarts; with a postgres:// --db, the same on every instance: the base of the shared sessions' ids")
	fs.StringVar(&c.MQTT.ShareGroup, "mqtt-share-group", c.MQTT.ShareGroup, "shared-subscription group, when several instances take MQTT ingest (empty: one instance, with a plain subscription, which Mosquitto keeps across its restart; see the README, \"Broker restarts\")")
	fs.IntVar(&c.MQTT.MaxInFlight, "mqtt-max-inflight", 1000, "MQTT messages processed at once (match the broker's max_inflight_messages)")
	fs.DurationVar(&c.MQTT.MaxReconnect, "mqtt-max-reconnect-interval", 5*time.Second, "longest wait between attempts to reach the broker again (the first after 250ms, doubling)")
	fs.BoolVar(&c.BrokerAccounts, "broker-accounts", false, "manage the broker's accounts through Mosquitto's dynamic security plugin: "+
		"devices enroll/revoke add/remove each device's account (username = device id, password = token), serve its own (--mqtt-username)")
	fs.StringVar(&c.BrokerAdmin.Username, "broker-admin-username", "", "the dynamic security plugin's admin account (with --broker-accounts)")
	fs.StringVar(&c.BrokerAdmin.Password, "broker-admin-password", "", "its password (prefer "+envPrefix+"BROKER_ADMIN_PASSWORD)")

	fs.StringVar(&c.Influx.URL, "influx-url", "http://127.0.0.1:8086", "InfluxDB URL")
	fs.StringVar(&c.Influx.Token, "influx-token", "", "InfluxDB token (1.8: user:password or empty; prefer "+envPrefix+"INFLUX_TOKEN)")
	fs.StringVar(&c.Influx.Org, "influx-org", "", "InfluxDB organisation (2.x)")
	fs.StringVar(&c.Influx.Bucket, "influx-bucket", "patientpulse", "InfluxDB bucket (1.8: database[/retention-policy])")
	fs.DurationVar(&c.Influx.Timeout, "influx-timeout", 30*time.Second, "timeout of one InfluxDB request")
	fs.BoolVar(&c.Influx.Gzip, "influx-gzip", false, "compress writes to InfluxDB (for a remote InfluxDB over a slow link; on the same host or LAN it only costs CPU)")

	c.Limits = ingest.DefaultLimits()
	fs.IntVar(&c.Limits.MaxSamples, "max-samples", c.Limits.MaxSamples, "samples per message")
	fs.DurationVar(&c.Limits.Backfill, "backfill-horizon", c.Limits.Backfill, "oldest sample accepted, back from now")
	fs.DurationVar(&c.Limits.FutureSkew, "future-skew", c.Limits.FutureSkew, "newest sample accepted, ahead of now")
	fs.DurationVar(&c.DeviceTTL, "device-cache-ttl", 2*time.Second, "how long a device lookup is remembered: a revocation takes effect within it (0: never remembered)")

	c.Writer = ingest.DefaultWriterConfig()
	fs.IntVar(&c.Writer.BatchPoints, "write-batch-points", c.Writer.BatchPoints, "points per InfluxDB write")
	fs.DurationVar(&c.Writer.FlushInterval, "write-flush-interval", c.Writer.FlushInterval, "longest wait before a partial batch is written")
	fs.IntVar(&c.Writer.MaxPending, "write-max-pending", c.Writer.MaxPending, "points waiting to be stored, at most (bounds memory)")
	fs.Int64Var(&c.Writer.MaxPendingBytes, "write-max-pending-bytes", c.Writer.MaxPendingBytes, "bytes of points (line protocol) waiting to be stored, at most (bounds memory while a backlog drains)")
	fs.IntVar(&c.Writer.Concurrency, "write-concurrency", c.Writer.Concurrency, "InfluxDB writes in flight")

	c.HTTPIngest = ingest.HTTPConfig{}
	fs.Int64Var(&c.HTTPIngest.MaxBytes, "max-body-bytes", 512<<10, "largest message accepted, in bytes (HTTPS and MQTT)")
	fs.IntVar(&c.HTTPIngest.MaxInFlight, "http-max-inflight", 256, "HTTPS ingest requests in progress at once (429 beyond)")
	fs.DurationVar(&c.HTTPIngest.WriteWait, "http-write-wait", 10*time.Second, "how long an HTTPS request waits to be stored (503 after)")
	fs.Float64Var(&c.HTTPIngest.DeviceRate, "device-rate", 5, "messages per second per device, on average (0: no limit); above it HTTPS answers 429, MQTT refuses the message and answers on the device's errors topic")
	fs.IntVar(&c.HTTPIngest.DeviceBurst, "device-burst", 60, "messages a device may send at once, above --device-rate (a phone catching up), over HTTPS and MQTT")
	fs.IntVar(&c.HTTPIngest.DeviceOpen, "http-device-open", ingest.DefaultDeviceOpen, "HTTPS ingest requests one device may have open at once, bodies being sent included (429 beyond)")
	fs.DurationVar(&c.HTTPIngest.ReadWait, "http-read-wait", ingest.DefaultReadWait, "how long an HTTPS ingest request may take to send its body (408 after); no storing slot is taken before it has")
	fs.DurationVar(&c.Retention, "retention", 0, "keep analysis transitions and resolved alerts (with their events) this long, purging older ones hourly (0: for ever; the audit log is never purged)")

	c.Auth = auth.DefaultConfig()
	fs.DurationVar(&c.Auth.IdleTimeout, "session-idle", c.Auth.IdleTimeout, "a browser session unused this long ends")
	fs.DurationVar(&c.Auth.MaxAge, "session-max-age", c.Auth.MaxAge, "a browser session ends this long after sign-in, used or not")
	fs.IntVar(&c.Auth.MaxFailures, "signin-max-failures", c.Auth.MaxFailures, "failed sign-ins of one account from one address, since its last success there, that lock the account for that address for signin-lockout")
	fs.IntVar(&c.Auth.MaxAddressFailures, "signin-max-address-failures", c.Auth.MaxAddressFailures, "failed sign-ins from one address that lock it out for signin-lockout")
	fs.DurationVar(&c.Auth.LockoutWindow, "signin-lockout", c.Auth.LockoutWindow, "how far back failed sign-ins count, and so how long a lock-out lasts")
	fs.IntVar(&c.Auth.GlobalFailures, "signin-global-failures", c.Auth.GlobalFailures, "failed sign-ins of one account from any address, since its last success, that lock it for every address (never an on-call account), with an audit entry (signin.lock)")
	fs.DurationVar(&c.Auth.GlobalBackoff, "signin-global-backoff", c.Auth.GlobalBackoff, "how long a lock for every address lasts after the last failure; doubled for each further failure, at most signin-lockout")
	fs.IntVar(&c.Auth.MaxRefusalAudits, "audit-refusals-per-minute", c.Auth.MaxRefusalAudits, "refused requests from one address written to the audit log a minute; more are only counted")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", "", "comma-separated CIDRs of the reverse proxies (TLS terminators) whose X-Forwarded-For and X-Forwarded-Proto are believed; empty: none")

	c.Cluster = cluster.DefaultConfig()
	fs.BoolVar(&c.ClusterOn, "cluster", true, "with a postgres:// --db, share the work with the other instances on that database (false: this instance is the only one, as on SQLite)")
	fs.IntVar(&c.Cluster.Partitions, "cluster-partitions", c.Cluster.Partitions, "with a postgres:// --db: partitions the patients are hashed into, each analysed by one instance (the same on every instance)")
	fs.IntVar(&c.Cluster.Sessions, "cluster-sessions", c.Cluster.Sessions, "with a postgres:// --db: MQTT sessions (<mqtt-client-id>-s<n>) shared among the instances (the same on every instance); 1: one session, which a survivor takes over, with a plain subscription that Mosquitto keeps across its restart")
	fs.DurationVar(&c.Cluster.Interval, "cluster-heartbeat", c.Cluster.Interval, "with a postgres:// --db: how often an instance renews its leases")
	fs.DurationVar(&c.Cluster.TTL, "cluster-lease-ttl", c.Cluster.TTL, "with a postgres:// --db: a lease not renewed this long lapses, and a survivor takes the work over")
	fs.StringVar(&c.Cluster.Address, "cluster-address", "", "with a postgres:// --db: how staff and other instances reach this one, shown in logs (default --http-addr)")

	c.Analysis = analysis.DefaultConfig()
	fs.StringVar(&c.Timezone, "timezone", "UTC", "the clinic's IANA time zone (Europe/London): analysis judges its calendar days")
	fs.StringVar(&c.Locale, "locale", "en-GB", "the clinic's BCP 47 language tag (en-GB, de-DE, en-US): the web app writes dates and numbers in it, times always on the 24-hour clock")
	fs.IntVar(&c.Analysis.MinWearHours, "analysis-min-wear-hours", c.Analysis.MinWearHours, "hours of a day with activity or heart-rate samples for the day to be judged")
	fs.DurationVar(&c.Analysis.Interval, "analysis-interval", c.Analysis.Interval, "a patient with new data is evaluated at most this often")
	fs.DurationVar(&c.Analysis.Sweep, "analysis-sweep", c.Analysis.Sweep, "every patient is evaluated this often (silence, new days); plans applied by the admin commands are read within 10s")
	fs.IntVar(&c.Analysis.QueueSize, "analysis-queue", c.Analysis.QueueSize, "stored messages waiting for analysis (beyond it, the patient is re-read from InfluxDB)")

	c.Alerts = alerts.DefaultConfig()
	fs.DurationVar(&c.Alerts.FireAfter, "alert-fire-after", c.Alerts.FireAfter, "a condition must hold this long before its alert fires (damps flapping)")
	fs.DurationVar(&c.Alerts.ResolveAfter, "alert-resolve-after", c.Alerts.ResolveAfter, "and stay clear this long before its alert resolves by itself")
	fs.DurationVar(&c.Alerts.Renotify, "alert-renotify", c.Alerts.Renotify, "an alert staff resolved while its condition still holds opens again this long after (at once if the value gets worse)")
	fs.IntVar(&c.Alerts.MaxOpenPerPatient, "alert-max-per-patient", c.Alerts.MaxOpenPerPatient, "active non-critical alerts per patient; more wait, suppressed, until there is room")
	fs.StringVar(&c.oncallFile, "oncall-schedule", "", "YAML file of who is on call when, in tiers: unacknowledged critical alerts escalate along it")
	c.Hub = notify.DefaultHubConfig()
	fs.StringVar(&c.wsOrigins, "ws-origins", "", "comma-separated origins (https://host[:port]) besides this server's own that may open the websocket")
	fs.IntVar(&c.Hub.SendQueue, "ws-send-queue", c.Hub.SendQueue, "messages waiting for one websocket client; a client that lets it fill is disconnected")
	fs.IntVar(&c.Hub.MaxSubscribe, "ws-max-subscribe", c.Hub.MaxSubscribe, "patients one websocket subscribe may name")
	fs.DurationVar(&c.Hub.ChangePoll, "ws-change-poll", c.Hub.ChangePoll, "how soon care-team changes made by the admin commands reach open consoles (changes through the API do at once)")
	fs.StringVar(&c.Webhook.URL, "webhook-url", "", "POST every alert change as signed JSON to this URL (https; http only to loopback)")
	fs.StringVar(&c.Webhook.Secret, "webhook-secret", "", "HMAC-SHA256 key of the webhook's signature (prefer "+envPrefix+"WEBHOOK_SECRET)")
	fs.StringVar(&c.webhookEvents, "webhook-events", "", "comma-separated alert changes to send (opened, escalated, ...); empty: every change")
	c.Notify = notify.DefaultDispatchConfig()
	fs.DurationVar(&c.Notify.GiveUp, "notify-give-up", c.Notify.GiveUp, "a page or webhook delivery still failing this long is marked failed (counted, logged, listed for admins)")
	fs.DurationVar(&c.Notify.Timeout, "notify-timeout", c.Notify.Timeout, "one delivery attempt (mail, webhook, pager)")
	fs.DurationVar(&c.Notify.MinBackoff, "notify-min-backoff", c.Notify.MinBackoff, "the first wait after a failed delivery attempt; it doubles, with jitter, up to 5m")
	fs.StringVar(&c.Notify.MailPHI, "mail-phi", c.Notify.MailPHI, "what pages by mail say: minimal (no patient name, rule or values: that an alert needs attention, and its link) or full")
	fs.StringVar(&c.SMTP.URL, "smtp-url", "", "page on-call staff by mail through this server: smtp://user@host:587 (STARTTLS) or smtps://user@host:465 (TLS)")
	fs.StringVar(&c.SMTP.Password, "smtp-password", "", "the mail server's password (prefer "+envPrefix+"SMTP_PASSWORD); replaces one in --smtp-url")
	fs.StringVar(&c.SMTP.From, "smtp-from", "", "the address pages are mailed from, e.g. patientpulse@clinic.example")
	fs.StringVar(&c.SMTP.CAFile, "smtp-ca-file", "", "PEM file of CAs to trust, beside the system's, for the mail server's certificate")
	fs.StringVar(&c.PagerDuty.RoutingKey, "pagerduty-routing-key", "", "page the clinic's PagerDuty service (Events API v2 integration key; prefer "+envPrefix+"PAGERDUTY_ROUTING_KEY) with critical alerts")
	fs.StringVar(&c.PagerDuty.URL, "pagerduty-url", notify.PagerDutyEventsURL, "PagerDuty's Events API v2 endpoint")
	fs.StringVar(&c.Chat.SlackURL, "slack-webhook-url", "", "post warning and critical alerts, without patient data, to this Slack incoming webhook (prefer "+envPrefix+"SLACK_WEBHOOK_URL)")
	fs.StringVar(&c.Chat.TeamsURL, "teams-webhook-url", "", "post warning and critical alerts, without patient data, to this Teams incoming webhook (prefer "+envPrefix+"TEAMS_WEBHOOK_URL)")
	fs.StringVar(&c.Ntfy.URL, "ntfy-url", "", "push warning and critical alerts, without patient data, to this ntfy topic URL (https://ntfy.sh/clinic-oncall-x7f3)")
	fs.StringVar(&c.Ntfy.Token, "ntfy-token", "", "access token for --ntfy-url's server (prefer "+envPrefix+"NTFY_TOKEN)")
	fs.StringVar(&c.DeviceMQTTURL, "device-mqtt-url", "", "the broker's address as devices reach it (mqtts://mqtt.clinic.example:8883), given to each device enrolled in the web app; default: --mqtt-url")
	fs.StringVar(&c.PublicURL, "public-url", "", "the console's address as staff reach it (https://pulse.clinic.example), which pages link to; default: this server's own")
	return fs
}

// Load parses args into c, which fs (from NewFlagSet) holds, over the
// file (--config) and PATIENTPULSE_* environment layers.
func Load(fs *flag.FlagSet, c *Config, args []string, getenv func(string) string) error {
	err := settings.Load(fs, args, envPrefix, "config", getenv)
	c.MQTT.MaxBytes = c.HTTPIngest.MaxBytes
	c.MQTT.DeviceRate, c.MQTT.DeviceBurst = c.HTTPIngest.DeviceRate, c.HTTPIngest.DeviceBurst
	c.Hub.Origins = commaList(c.wsOrigins)
	c.Webhook.Events = commaList(c.webhookEvents)
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

// validatePublicURL checks --public-url, and sets it from --http-addr
// when it is not given.
func (c *Config) validatePublicURL() error {
	if c.PublicURL == "" {
		scheme := "http"
		if c.TLSCert != "" || c.TLSSelfSigned {
			scheme = "https"
		}
		host := c.HTTPAddr
		if h, port, err := net.SplitHostPort(host); err == nil && (h == "" || h == "0.0.0.0" || h == "::") {
			host = net.JoinHostPort("localhost", port)
		}
		c.PublicURL = scheme + "://" + host
		return nil
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return errors.New("public-url must be an http(s) address without credentials or query, e.g. https://pulse.clinic.example")
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	return nil
}

// DSN is the registry's location.
func (c *Config) DSN() string {
	if c.DB != "" {
		return c.DB
	}
	return filepath.Join(c.DataDir, "patientpulse.db")
}

// Clustered says whether several instances may share the work (see
// cluster): the registry is Postgres, and --cluster is on.
func (c *Config) Clustered() bool {
	return c.ClusterOn && (strings.HasPrefix(c.DB, "postgres://") || strings.HasPrefix(c.DB, "postgresql://"))
}

// Level is the --log-level setting.
func (c *Config) Level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.logLevel)); err != nil {
		return 0, errors.New("log-level must be debug, info, warn or error")
	}
	return l, nil
}

// Validate reports every problem of the serve settings at once, and
// completes c from them (the on-call schedule, the clinic's time zone).
func (c *Config) Validate() error {
	errs := []error{c.Limits.Validate(), c.Writer.Validate(), c.HTTPIngest.Validate(), c.Influx.Validate(), c.Auth.Validate(), c.Analysis.Validate()}
	errs = append(errs, c.Alerts.Validate(), c.Webhook.Validate(), c.Notify.Validate(), c.SMTP.Validate(),
		c.PagerDuty.Validate(), c.Chat.Validate(), c.Ntfy.Validate(), c.validateSecrets(), c.validatePublicURL())
	if c.oncallFile != "" {
		s, text, err := alerts.LoadOnCall(c.oncallFile)
		errs = append(errs, err)
		c.Alerts.Schedule, c.oncallText = s, text
	}
	if c.Hub.SendQueue < 1 {
		errs = append(errs, errors.New("ws-send-queue must be at least 1"))
	}
	if c.Hub.MaxSubscribe < 1 {
		errs = append(errs, errors.New("ws-max-subscribe must be at least 1"))
	}
	if c.Hub.ChangePoll < 100*time.Millisecond {
		errs = append(errs, errors.New("ws-change-poll must be at least 100ms"))
	}
	proxies, err := auth.ParseProxies(commaList(c.trustedProxies))
	errs = append(errs, err)
	c.Proxies = proxies
	if loc, err := time.LoadLocation(c.Timezone); err != nil || c.Timezone == "" || c.Timezone == "Local" {
		errs = append(errs, fmt.Errorf("timezone %q: want an IANA zone such as Europe/London or UTC", c.Timezone))
	} else {
		c.Analysis.Location = loc
	}
	if !localeTag.MatchString(c.Locale) {
		errs = append(errs, fmt.Errorf("locale %q: want a BCP 47 language tag such as en-GB or de-DE", c.Locale))
	}
	if _, err := c.Level(); err != nil {
		errs = append(errs, err)
	}
	if c.MQTTOn {
		errs = append(errs, c.MQTT.Validate())
		if c.BrokerAccounts {
			errs = append(errs, c.BrokerAdmin.Validate())
			if c.MQTT.Username == "" || c.MQTT.Password == "" {
				errs = append(errs, errors.New("broker-accounts needs mqtt-username and mqtt-password: the pipeline's own broker account, which serve creates"))
			} else if c.MQTT.Username == c.BrokerAdmin.Username {
				errs = append(errs, errors.New("mqtt-username must not be broker-admin-username: the pipeline has its own broker account"))
			}
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls-cert and tls-key go together"))
	}
	if c.TLSSelfSigned && c.TLSCert != "" {
		errs = append(errs, errors.New("tls-self-signed and tls-cert exclude each other"))
	}
	readable := true
	for _, f := range []struct{ name, path string }{{"tls-cert", c.TLSCert}, {"tls-key", c.TLSKey}} {
		if _, err := os.Stat(f.path); f.path != "" && err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
			readable = false
		}
	}
	if c.TLSCert != "" && c.TLSKey != "" && readable {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			errs = append(errs, fmt.Errorf("tls-cert, tls-key: %w", err))
		}
	}
	if c.DeviceTTL < 0 || c.DeviceTTL > time.Hour {
		errs = append(errs, errors.New("device-cache-ttl must be between 0 and 1h"))
	}
	if c.Writer.MaxPending < c.Limits.MaxSamples {
		errs = append(errs, errors.New("write-max-pending must be at least max-samples"))
	}
	// A message's points take up to about twice its JSON in line protocol.
	if c.Writer.MaxPendingBytes < 4*c.HTTPIngest.MaxBytes {
		errs = append(errs, errors.New("write-max-pending-bytes must be at least four times max-body-bytes"))
	}
	errs = append(errs, c.Cluster.Validate())
	if c.Clustered() {
		if c.Cluster.Address == "" {
			c.Cluster.Address = c.HTTPAddr
		}
		if !c.MQTTOn {
			errs = append(errs, errNeedsBroker)
		}
		// Several sessions share the devices' messages; one session has a
		// plain subscription, which Mosquitto keeps across its restart.
		if c.MQTTOn && c.MQTT.ShareGroup == "" && c.Cluster.Sessions > 1 {
			c.MQTT.ShareGroup = "patientpulse"
		}
	}
	errs = append(errs, checkDebugAddr(c.DebugAddr))
	if c.Retention != 0 && c.Retention < 24*time.Hour {
		errs = append(errs, errors.New("retention must be 0 (keep for ever) or at least 24h"))
	}
	return errors.Join(errs...)
}

// ValidateBrokerAdmin reports every problem of the settings with which
// the admin commands reach the broker's dynamic security plugin; none
// when --broker-accounts is off.
func (c *Config) ValidateBrokerAdmin() error {
	if !c.BrokerAccounts {
		return nil
	}
	return errors.Join(c.MQTT.Validate(), c.BrokerAdmin.Validate())
}

// BrokerAdminConfig is how to reach the dynamic security plugin: with
// the admin account, over the collector's URL and CA.
func (c *Config) BrokerAdminConfig() ingest.BrokerAdminConfig {
	b := c.BrokerAdmin
	b.URL, b.CAFile = c.MQTT.URL, c.MQTT.CAFile
	return b
}
