package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
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
	DeviceOpen  int           // requests of one device open at once, body read or not: 429 above it (0: DefaultDeviceOpen)
	ReadWait    time.Duration // how long a request may take to send its body: 408 after it (0: DefaultReadWait)
}

// DefaultDeviceOpen and DefaultReadWait are HTTPConfig's defaults for its
// zero DeviceOpen and ReadWait. A phone catching up sends one request after
// another; four at once is generous.
const (
	DefaultDeviceOpen = 4
	DefaultReadWait   = 10 * time.Second
)

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
	if c.DeviceOpen < 0 || c.DeviceOpen > 1000 {
		errs = append(errs, errors.New("http-device-open must be between 1 and 1000 (0: the default, 4)"))
	}
	if c.ReadWait < 0 || (c.ReadWait > 0 && c.ReadWait < 100*time.Millisecond) || c.ReadWait > 50*time.Second {
		errs = append(errs, errors.New("http-read-wait must be between 100ms and 50s (0: the default, 10s)"))
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
	slots   chan struct{} // requests being stored; taken only once a body is read
	limits  *deviceLimits
	open    *deviceOpen
}

var _ http.Handler = (*HTTP)(nil)

// NewHTTP returns the handler.
func NewHTTP(cfg HTTPConfig, intake *Intake, w *Writer, m *Metrics, log *slog.Logger) *HTTP {
	if cfg.DeviceOpen == 0 {
		cfg.DeviceOpen = DefaultDeviceOpen
	}
	if cfg.ReadWait == 0 {
		cfg.ReadWait = DefaultReadWait
	}
	return &HTTP{
		cfg:     cfg,
		intake:  intake,
		writer:  w,
		metrics: m,
		log:     log.With("component", "http"),
		slots:   make(chan struct{}, cfg.MaxInFlight),
		limits:  newDeviceLimits(cfg.DeviceRate, cfg.DeviceBurst),
		open:    &deviceOpen{max: cfg.DeviceOpen, n: make(map[string]int)},
	}
}

// deviceOpen counts each device's open requests, from authentication to
// answer, so that one device's slow bodies hold at most max connections.
type deviceOpen struct {
	max int

	mu sync.Mutex
	n  map[string]int // open requests by device; absent when none. Guarded by mu.
}

// take counts one more open request of device, or says there are max.
func (o *deviceOpen) take(device string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n[device] >= o.max {
		return false
	}
	o.n[device]++
	return true
}

func (o *deviceOpen) release(device string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n[device]--; o.n[device] <= 0 {
		delete(o.n, device)
	}
}

// ReasonSlowBody refuses an HTTPS request whose body did not arrive within
// HTTPConfig.ReadWait.
const ReasonSlowBody = "slow_body"

// retryAfterUnavailable is what a sender is told to wait while InfluxDB is
// unreachable; retryAfterBusy while the pipeline is merely full.
const (
	retryAfterUnavailable = 5
	retryAfterBusy        = 1
)

func (h *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.metrics.Messages.WithLabelValues(TransportHTTP).Inc()
	if isFHIR(r) {
		w = fhirAnswers{w} // every answer, refusals included, is FHIR
	}
	if r.ContentLength != 0 {
		// An answer given before the body is read closes the connection,
		// rather than wait for the sender's unread body to drain it.
		w.Header().Set("Connection", "close")
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.answer(w, http.StatusMethodNotAllowed, "use POST")
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
	if !h.open.take(dev.ID) {
		h.retryLater(w, http.StatusTooManyRequests, retryAfterBusy, "device_busy",
			fmt.Sprintf("this device has %d requests open already; retry later", h.cfg.DeviceOpen))
		return
	}
	defer h.open.release(dev.ID)
	if ok, wait := h.limits.allow(dev.ID, time.Now()); !ok {
		h.retryLater(w, http.StatusTooManyRequests, retryAfterSeconds(wait), "rate_limited",
			"this device sends faster than its rate limit; retry later")
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" && mt != MediaFHIR && mt != MediaOpenMHealth {
		h.refuse(w, http.StatusUnsupportedMediaType, ReasonNotJSON,
			"Content-Type must be application/json, "+MediaFHIR+" or "+MediaOpenMHealth)
		return
	}
	if r.ContentLength > h.cfg.MaxBytes {
		h.tooLarge(w)
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	// The storing slot is taken only once the body is in, so that a slow
	// sender holds no slot: bodies being read are bounded by DeviceOpen per
	// enrolled device and by MaxBytes each.
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		h.retryLater(w, http.StatusTooManyRequests, retryAfterBusy, "busy", "too many requests in progress; retry later")
		return
	}
	h.metrics.InFlight.WithLabelValues(TransportHTTP).Inc()
	defer h.metrics.InFlight.WithLabelValues(TransportHTTP).Dec()
	if fw, ok := w.(fhirAnswers); ok {
		h.ingestFHIR(r.Context(), fw, r.URL.Path, dev, body)
		return
	}
	ingest := h.intake.Ingest
	if mt == MediaOpenMHealth || IsOpenMHealth(body) {
		ingest = h.intake.IngestOpenMHealth
	}
	h.ingest(r.Context(), w, dev, body, ingest)
}

// readBody reads the whole body, at most MaxBytes of it within ReadWait,
// or answers why not.
func (h *HTTP) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	rc := http.NewResponseController(w)
	// A writer that cannot set deadlines (a test's recorder) reads without one.
	if err := rc.SetReadDeadline(time.Now().Add(h.cfg.ReadWait)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		h.refuse(w, http.StatusBadRequest, ReasonMalformed, "body could not be read")
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBytes))
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &tooLarge):
		h.tooLarge(w)
		return nil, false
	case errors.As(err, &netErr) && netErr.Timeout():
		h.refuse(w, http.StatusRequestTimeout, ReasonSlowBody,
			fmt.Sprintf("body not received within %s", h.cfg.ReadWait))
		return nil, false
	case err != nil:
		h.refuse(w, http.StatusBadRequest, ReasonMalformed, "body could not be read")
		return nil, false
	}
	// The body is in: a deadline firing while the points are stored would
	// cancel the request.
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Del("Connection")
	return body, true
}

// ingest stores body's valid samples with ingest (Intake.Ingest for an
// envelope) and answers.
func (h *HTTP) ingest(ctx context.Context, w http.ResponseWriter, dev registry.Device, body []byte,
	ingest func(context.Context, string, registry.Device, []byte, func(context.Context, []byte) error) (Outcome, error)) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.WriteWait)
	defer cancel()
	out, err := ingest(ctx, TransportHTTP, dev, body, h.writer.TryWrite)
	if h.storeFailed(w, err) {
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

// storeFailed answers a storing error, if err is one, and reports whether
// it did: 429 when the pipeline is full, else 503 (counted as handoff
// when the points were stored but not handed on).
func (h *HTTP) storeFailed(w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, ErrBusy):
		h.retryLater(w, http.StatusTooManyRequests, retryAfterBusy, "busy", "the pipeline is full; retry later")
	case errors.Is(err, ErrHandoff):
		// Stored, but not handed to the patient's partition owner.
		h.retryLater(w, http.StatusServiceUnavailable, retryAfterUnavailable, reasonHandoff, "the pipeline is unavailable; retry later")
	case err != nil:
		// Perhaps stored later, after a write wait: sending again is harmless.
		h.retryLater(w, http.StatusServiceUnavailable, retryAfterUnavailable, "unavailable", "storage is unavailable; retry later")
	}
	return err != nil
}

// retryLater answers 429 or 503 with Retry-After seconds: the message was
// not wrong, the pipeline cannot take it now.
func (h *HTTP) retryLater(w http.ResponseWriter, status, after int, reason, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(after))
	h.metrics.Deferred.WithLabelValues(TransportHTTP, reason).Inc()
	h.answer(w, status, msg)
}

func (h *HTTP) tooLarge(w http.ResponseWriter) {
	h.refuse(w, http.StatusRequestEntityTooLarge, ReasonTooLarge,
		fmt.Sprintf("body exceeds the limit of %d bytes", h.cfg.MaxBytes))
}

// refuse answers a request refused for what it is, counted and logged.
func (h *HTTP) refuse(w http.ResponseWriter, status int, reason, msg string) {
	h.intake.refused(TransportHTTP, reason)
	h.answer(w, status, msg)
}

// answer refuses a request with msg: as an OperationOutcome to a FHIR
// request, else as an error document.
func (h *HTTP) answer(w http.ResponseWriter, status int, msg string) {
	if fw, ok := w.(fhirAnswers); ok {
		fw.refusal(status, msg)
		return
	}
	httpx.WriteJSON(w, status, refusal(msg))
}
