package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// Devices finds enrolled devices; *registry.Registry is the real one.
type Devices interface {
	Device(ctx context.Context, id string) (registry.Device, error)
	DeviceByToken(ctx context.Context, token string) (registry.Device, error)
}

var _ Devices = (*registry.Registry)(nil)

// Reasons for refusing a message as a whole, beyond the envelope's own.
const (
	ReasonUnknownDevice   = "unknown_device"
	ReasonRevokedDevice   = "revoked_device"
	ReasonTooLarge        = "too_large"
	ReasonBadTopic        = "bad_topic"
	ReasonStorageRejected = "storage_rejected"
	ReasonNotJSON         = "not_json"
)

// Outcome is what became of one message that was handled.
type Outcome struct {
	Accepted int       // samples stored
	Answer   *ErrorDoc // rejected samples or the refused message; nil when all were stored
}

// Intake is what both collectors share: it decodes a device's message,
// tags its points with the device's patient, stores them through the
// writer and says what to answer. It keeps each device's last seq to
// count gaps and repeats.
type Intake struct {
	devices Devices
	limits  Limits
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	lastSeq map[string]int64 // device id → highest seq stored; guarded by mu

	stored func(ctx context.Context, patient string, points []Point) error // see OnStored
}

// ErrHandoff wraps the error of the OnStored hook: the message's points
// are stored but were not handed on (to the partition feed, say), so the
// message is not acknowledged and comes again; storing it again is
// harmless.
var ErrHandoff = errors.New("stored points not handed on")

// reasonHandoff counts messages deferred by ErrHandoff (Metrics.Deferred).
const reasonHandoff = "handoff"

// OnStored makes the intake call fn with a patient's points once they are
// durably stored, from the collector's goroutine, before the message is
// acknowledged. fn may block (publishing to the partition feed waits for
// the broker), within ctx; an error leaves the message unacknowledged
// (MQTT: the broker redelivers it; HTTPS: 503 with Retry-After). Call it
// before the collectors start.
func (in *Intake) OnStored(fn func(ctx context.Context, patient string, points []Point) error) {
	in.stored = fn
}

// NewIntake returns an intake that checks devices against devices, which
// it remembers for deviceTTL (0: asks every time), and samples against lim.
func NewIntake(devices Devices, deviceTTL time.Duration, lim Limits, m *Metrics, log *slog.Logger) *Intake {
	return &Intake{
		devices: newDeviceCache(devices, deviceTTL),
		limits:  lim,
		metrics: m,
		log:     log,
		now:     time.Now,
		lastSeq: make(map[string]int64),
	}
}

// Ingest handles payload from the enrolled, active device dev and stores
// its valid samples with write. It returns an error only when the message
// could not be handled now (storage unavailable, writer stopped, ctx
// ended): its source must then not be acknowledged, so that it comes again.
func (in *Intake) Ingest(ctx context.Context, transport string, dev registry.Device, payload []byte,
	write func(context.Context, []byte) error) (Outcome, error) {
	env, err := Decode(payload, in.now(), in.limits)
	var eerr *EnvelopeError
	if errors.As(err, &eerr) {
		in.refused(transport, eerr.Reason)
		return Outcome{Answer: &eerr.Doc}, nil
	}
	if err != nil {
		return Outcome{}, err
	}
	return in.Store(ctx, transport, dev, env, write)
}

// DecodeSamples validates samples, a JSON array of envelope samples (what
// the standard formats are read into), as Decode does an envelope's; the
// envelope it returns has no seq (Unsequenced). It fails only with
// *EnvelopeError.
func (in *Intake) DecodeSamples(samples []byte) (*Envelope, error) {
	payload := make([]byte, 0, len(samples)+24)
	payload = append(append(append(payload, `{"seq":0,"samples":`...), samples...), '}')
	env, err := Decode(payload, in.now(), in.limits)
	if env != nil {
		env.Unsequenced = true
	}
	return env, err
}

// Store counts env's rejected samples and stores its points, from dev,
// with write; see Ingest for its error.
func (in *Intake) Store(ctx context.Context, transport string, dev registry.Device, env *Envelope,
	write func(context.Context, []byte) error) (Outcome, error) {
	in.countRejected(transport, env)
	if len(env.Points) == 0 {
		return Outcome{Answer: env.ErrorDoc()}, nil
	}
	// A line is about as long as its sample in JSON, plus the ids.
	lines := make([]byte, 0, len(env.Points)*(len(dev.PatientID)+len(dev.ID)+96))
	for i := range env.Points {
		lines = AppendLine(lines, &env.Points[i], dev.PatientID, dev.ID, env.Seq)
		lines = append(lines, '\n')
	}
	switch err := write(ctx, lines); {
	case errors.Is(err, ErrRejected):
		in.refused(transport, ReasonStorageRejected)
		return Outcome{Answer: storageRejected(env)}, nil
	case err != nil:
		return Outcome{}, err
	}
	// Handed on before it is counted: a message that fails here comes
	// again, and is counted then.
	if in.stored != nil {
		if err := in.stored(ctx, dev.PatientID, env.Points); err != nil {
			return Outcome{}, fmt.Errorf("%w: %w", ErrHandoff, err)
		}
	}
	in.countAccepted(transport, env.Points)
	if !env.Unsequenced {
		in.trackSeq(dev.ID, env.Seq)
	}
	return Outcome{Accepted: env.Samples - env.Rejected(), Answer: env.ErrorDoc()}, nil
}

// countAccepted counts the stored points by sample type, with one update
// per run of points of one type rather than one per point.
func (in *Intake) countAccepted(transport string, points []Point) {
	for i := 0; i < len(points); {
		n := 1
		for i+n < len(points) && points[i+n].Measurement == points[i].Measurement {
			n++
		}
		in.metrics.SamplesAccepted.WithLabelValues(transport, points[i].Measurement).Add(float64(n))
		i += n
	}
}

// countRejected counts and logs each rejected sample once, by its first
// problem.
func (in *Intake) countRejected(transport string, env *Envelope) {
	last := -1
	for _, p := range env.Problems {
		if p.Sample != last {
			in.metrics.SamplesRejected.WithLabelValues(transport, p.Reason).Inc()
			in.log.Info("sample rejected", "transport", transport, "reason", p.Reason, "field", p.Field)
			last = p.Sample
		}
	}
}

// refused counts and logs a message refused as a whole. Like every log
// line here it names no patient, device or value.
func (in *Intake) refused(transport, reason string) {
	in.metrics.MessagesRejected.WithLabelValues(transport, reason).Inc()
	in.log.Info("message refused", "transport", transport, "reason", reason)
}

// storageRejected answers a message whose valid samples InfluxDB refused
// (a field type conflict, a time outside the bucket's retention): every
// sample is reported. InfluxDB may have kept some of the lines it was
// given, so the answer does not claim that none is stored.
func storageRejected(env *Envelope) *ErrorDoc {
	seq := env.Seq
	details := append([]Problem(nil), env.Problems...)
	for _, p := range env.Points {
		details = append(details, Problem{Sample: p.Sample, Field: "", Problem: "refused by storage", Reason: ReasonStorageRejected})
	}
	return &ErrorDoc{
		Seq:     &seq,
		Error:   "storage refused the message's samples; some may be stored, do not rely on any",
		Details: details,
	}
}

// rootCause is the innermost error of a chain, for logs: the outer ones
// carry ids (a device's, a patient's) that logs must not.
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

func (in *Intake) trackSeq(device string, seq int64) {
	in.mu.Lock()
	last, seen := in.lastSeq[device]
	if !seen || seq > last {
		in.lastSeq[device] = seq
	}
	in.mu.Unlock()
	switch {
	case !seen:
	case seq <= last:
		in.metrics.SeqRepeats.Inc()
	case seq > last+1:
		in.metrics.SeqGaps.Inc()
	}
}

// refusal is the answer to a message refused before decoding: its seq is
// unknown to the pipeline, so it is null.
func refusal(msg string) *ErrorDoc {
	return &ErrorDoc{Error: msg, Details: []Problem{}}
}

// deviceRefusal checks that a device found for a message may send it.
func deviceRefusal(dev registry.Device, err error) (reason string, answer *ErrorDoc, fatal error) {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return ReasonUnknownDevice, refusal("device is not enrolled"), nil
	case err != nil:
		return "", nil, err
	case !dev.Active():
		return ReasonRevokedDevice, refusal("device enrolment is revoked"), nil
	}
	return "", nil, nil
}
