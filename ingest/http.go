package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/patientpulse/patientpulse/internal/httpx"
	"github.com/patientpulse/patientpulse/registry"
)

// HTTPConfig sets up the HTTPS collector.
type HTTPConfig struct {
	MaxBytes    int64         // body size limit: 413 above it
	MaxInFlight int           // requests being stored at once: 429 above it
	WriteWait   time.Duration // how long a request waits for its points to be stored: 503 after it
	DeviceRate  float64       // messages per second per device, on average: 429 above it (0: no limit)
	DeviceBurst int           // messages a device may send at once above DeviceRate
}

// Validate reports every problem at once.
func (c HTTPConfig) Validate() error {
	var errs []error
	if c.MaxBytes < 1024 || c.MaxBytes > 64<<20 {
		errs = append(errs, errors.New("max-body-bytes must be between 1024 and 67108864"))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, errors.New("http-max-inflight must be at least 1"))
	}
	if c.WriteWait < 100*time.Millisecond || c.WriteWait > 50*time.Second {
		errs = append(errs, errors.New("http-write-wait must be between 100ms and 50s (responses time out after a minute)"))
	}
	if c.DeviceRate < 0 || (c.DeviceRate > 0 && c.DeviceBurst < 1) {
		errs = append(errs, errors.New("device-rate must be 0 or more, and device-burst at least 1 when it is set"))
	}
	return errors.Join(errs...)
}

// HTTP is the HTTPS collector, the handler of POST /v1/ingest. It answers
// 202 only once the request's valid samples are stored; see the README for
// every status it answers.
type HTTP struct {
	cfg     HTTPConfig
	intake  *Intake
	writer  *Writer
	metrics *Metrics
	log     *slog.Logger
	slots   chan struct{}
	limits  *deviceLimits
}

var _ http.Handler = (*HTTP)(nil)

// NewHTTP returns the handler.
func NewHTTP(cfg HTTPConfig, intake *Intake, w *Writer, m *Metrics, log *slog.Logger) *HTTP {
	return &HTTP{
		cfg:     cfg,
		intake:  intake,
		writer:  w,
		metrics: m,
		log:     log.With("component", "http"),
		slots:   make(chan struct{}, cfg.MaxInFlight),
		limits:  newDeviceLimits(cfg.DeviceRate, cfg.DeviceBurst),
	}
}

// retryAfterUnavailable is what a sender is told to wait while InfluxDB is
// unreachable; retryAfterBusy while the pipeline is merely full.
const (
	retryAfterUnavailable = 5
	retryAfterBusy        = 1
)

func (h *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.metrics.Messages.WithLabelValues(TransportHTTP).Inc()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpx.WriteJSON(w, http.StatusMethodNotAllowed, refusal("use POST"))
		return
	}
	dev, err := h.intake.devices.DeviceByToken(r.Context(), httpx.Bearer(r))
	reason, answer, err := deviceRefusal(dev, err)
	switch {
	case err != nil:
		h.log.Error("device lookup failed", "err", rootCause(err))
		h.retryLater(w, http.StatusServiceUnavailable, retryAfterUnavailable, "unavailable", "device registry unavailable")
		return
	case reason == ReasonUnknownDevice:
		w.Header().Set("WWW-Authenticate", `Bearer realm="patientpulse"`)
		h.refuse(w, http.StatusUnauthorized, reason, "a valid device token is required")
		return
	case answer != nil:
		h.refuse(w, http.StatusForbidden, reason, answer.Error)
		return
	}
	if ok, wait := h.limits.allow(dev.ID, time.Now()); !ok {
		h.retryLater(w, http.StatusTooManyRequests, retryAfterSeconds(wait), "rate_limited",
			"this device sends faster than its rate limit; retry later")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.refuse(w, http.StatusUnsupportedMediaType, ReasonNotJSON, "Content-Type must be application/json")
		return
	}
	if r.ContentLength > h.cfg.MaxBytes {
		h.tooLarge(w)
		return
	}
	// The slot is taken before the body is read, so that bodies in memory
	// are bounded by MaxInFlight, not by open connections.
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		h.retryLater(w, http.StatusTooManyRequests, retryAfterBusy, "busy", "too many requests in progress; retry later")
		return
	}
	h.metrics.InFlight.WithLabelValues(TransportHTTP).Inc()
	defer h.metrics.InFlight.WithLabelValues(TransportHTTP).Dec()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		h.tooLarge(w)
		return
	case err != nil:
		h.refuse(w, http.StatusBadRequest, ReasonMalformed, "body could not be read")
		return
	}
	h.ingest(r.Context(), w, dev, body)
}

func (h *HTTP) ingest(ctx context.Context, w http.ResponseWriter, dev registry.Device, body []byte) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.WriteWait)
	defer cancel()
	out, err := h.intake.Ingest(ctx, TransportHTTP, dev, body, h.writer.TryWrite)
	switch {
	case errors.Is(err, ErrBusy):
		h.retryLater(w, http.StatusTooManyRequests, retryAfterBusy, "busy", "the pipeline is full; retry later")
		return
	case err != nil:
		// Perhaps stored later, after a write wait: sending again is harmless.
		h.retryLater(w, http.StatusServiceUnavailable, retryAfterUnavailable, "unavailable", "storage is unavailable; retry later")
		return
	}
	if out.Accepted == 0 {
		httpx.WriteJSON(w, http.StatusBadRequest, out.Answer)
		return
	}
	resp := acceptance{Accepted: out.Accepted}
	if a := out.Answer; a != nil {
		resp.Seq, resp.Error, resp.Details = a.Seq, a.Error, a.Details
	}
	httpx.WriteJSON(w, http.StatusAccepted, resp)
}

// acceptance is the 202 body: the samples stored and, when some were
// rejected, the same fields as an error document.
type acceptance struct {
	Accepted int       `json:"accepted"`
	Seq      *int64    `json:"seq,omitempty"`
	Error    string    `json:"error,omitempty"`
	Details  []Problem `json:"details,omitempty"`
}

// retryLater answers 429 or 503 with Retry-After seconds: the message was
// not wrong, the pipeline cannot take it now.
func (h *HTTP) retryLater(w http.ResponseWriter, status, after int, reason, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(after))
	h.metrics.Deferred.WithLabelValues(TransportHTTP, reason).Inc()
	httpx.WriteJSON(w, status, refusal(msg))
}

func (h *HTTP) tooLarge(w http.ResponseWriter) {
	h.refuse(w, http.StatusRequestEntityTooLarge, ReasonTooLarge,
		fmt.Sprintf("body exceeds the limit of %d bytes", h.cfg.MaxBytes))
}

// refuse answers a request refused for what it is, counted and logged.
func (h *HTTP) refuse(w http.ResponseWriter, status int, reason, msg string) {
	h.intake.refused(TransportHTTP, reason)
	httpx.WriteJSON(w, status, refusal(msg))
}
