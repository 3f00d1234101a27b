package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
)

// Headers of a webhook request. The signature covers the timestamp and the
// body only: receivers trust the body, not the other headers.
const (
	WebhookEventHeader     = "X-Patientpulse-Event"
	WebhookDeliveryHeader  = "X-Patientpulse-Delivery"
	WebhookTimestampHeader = "X-Patientpulse-Timestamp"
	WebhookSignatureHeader = "X-Patientpulse-Signature"
)

// Errors returned by VerifyWebhook.
var (
	ErrWebhookSignature = errors.New("webhook signature does not verify")
	ErrWebhookTimestamp = errors.New("webhook timestamp missing or too far from now")
)

const whDefaultSkew = 5 * time.Minute

// WebhookConfig sets where and how alert events are posted to the
// clinic's own system.
type WebhookConfig struct {
	URL    string   // https:// (http:// only to a loopback address, for tests and local relays); "" disables the webhook
	Secret string   // HMAC key, at least 16 bytes
	Events []string // the Event.Change values to send; empty sends every change
}

// Validate reports every problem at once. An empty URL disables the
// webhook and is valid whatever the other settings.
func (c WebhookConfig) Validate() error {
	if c.URL == "" {
		return nil
	}
	var errs []error
	if err := checkURL("webhook", c.URL); err != nil {
		errs = append(errs, err)
	}
	if len(c.Secret) < 16 {
		errs = append(errs, errors.New("webhook secret must be at least 16 bytes"))
	}
	for _, e := range c.Events {
		if !whKnownChange(e) {
			errs = append(errs, fmt.Errorf("webhook event %q is not a change of an alert", e))
		}
	}
	return errors.Join(errs...)
}

// wants reports whether the webhook sends change.
func (c WebhookConfig) wants(change string) bool {
	return c.URL != "" && (len(c.Events) == 0 || slices.Contains(c.Events, change))
}

func whKnownChange(c string) bool {
	switch c {
	case alerts.ChangeOpened, alerts.ChangeUpdated, alerts.ChangeSeverityRaised, alerts.ChangeAcknowledged, alerts.ChangeResolved,
		alerts.ChangeSnoozed, alerts.ChangeAssigned, alerts.ChangeEscalated, alerts.ChangeSuppressed, alerts.ChangeUnsuppressed:
		return true
	}
	return false
}

// Webhook posts each alert event as signed JSON (the alerts.Event) to the
// clinic's own paging system, with the delivery id in
// X-Patientpulse-Delivery: the same for every attempt, so that the
// receiver de-duplicates a redelivery.
type Webhook struct {
	cfg  WebhookConfig
	post *poster
}

// NewWebhook returns the webhook channel of cfg, which should have passed
// Validate.
func NewWebhook(cfg WebhookConfig) *Webhook {
	return &Webhook{cfg: cfg, post: newPoster(cfg.URL)}
}

// Send posts m's event once.
func (w *Webhook) Send(ctx context.Context, m Message) Result {
	body, err := json.Marshal(m.Event)
	if err != nil { // a NaN value, say
		return Result{Err: "encode event: " + err.Error()}
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	return w.post.do(ctx, w.cfg.URL, "application/json", body, map[string]string{
		WebhookEventHeader:     m.Event.Change,
		WebhookDeliveryHeader:  m.Delivery.ID,
		WebhookTimestampHeader: ts,
		WebhookSignatureHeader: "sha256=" + hex.EncodeToString(whSign([]byte(w.cfg.Secret), ts, body)),
	})
}

func whSign(secret []byte, ts string, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// VerifyWebhook checks a webhook request as a receiver should: the
// X-Patientpulse-Signature header must be the HMAC-SHA256 of the
// X-Patientpulse-Timestamp header, a dot and body under secret (compared
// in constant time), and the timestamp within maxSkew of now (5 minutes
// when maxSkew is not positive). body is the request's body as read. The
// errors wrap ErrWebhookSignature or ErrWebhookTimestamp.
func VerifyWebhook(secret []byte, r *http.Request, body []byte, maxSkew time.Duration, now time.Time) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no secret", ErrWebhookSignature)
	}
	if maxSkew <= 0 {
		maxSkew = whDefaultSkew
	}
	ts := r.Header.Get(WebhookTimestampHeader)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no timestamp", ErrWebhookTimestamp)
	}
	hexSig, ok := strings.CutPrefix(r.Header.Get(WebhookSignatureHeader), "sha256=")
	sig, err := hex.DecodeString(hexSig)
	if !ok || err != nil {
		return fmt.Errorf("%w: malformed", ErrWebhookSignature)
	}
	if !hmac.Equal(sig, whSign(secret, ts, body)) {
		return ErrWebhookSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxSkew || d < -maxSkew {
		return fmt.Errorf("%w: %s off", ErrWebhookTimestamp, d.Round(time.Second))
	}
	return nil
}
