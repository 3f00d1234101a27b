package ingest

// The MQTT collector's handling of one message, from its topic to its
// acknowledgement: see MQTT for the connection and the workers.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/patientpulse/patientpulse/registry"
)

// handle processes one message and reports whether to acknowledge it.
func (c *MQTT) handle(ctx context.Context, msg mqtt.Message) bool {
	device, ok := strings.CutPrefix(msg.Topic(), topicPrefix)
	device, ok2 := strings.CutSuffix(device, dataSuffix)
	if !ok || !ok2 || !registry.ValidID(device) {
		// No device to answer: counted, logged, and acknowledged.
		c.intake.refused(TransportMQTT, ReasonBadTopic)
		return true
	}
	out, err := c.process(ctx, device, msg.Payload())
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("message left unacknowledged for redelivery", "err", err)
		}
		return false
	}
	if out.Answer == nil {
		return true
	}
	return c.answer(ctx, device, out.Answer)
}

func (c *MQTT) process(ctx context.Context, device string, payload []byte) (Outcome, error) {
	if int64(len(payload)) > c.cfg.MaxBytes {
		c.intake.refused(TransportMQTT, ReasonTooLarge)
		return Outcome{Answer: refusal(fmt.Sprintf("message of %d bytes exceeds the limit of %d", len(payload), c.cfg.MaxBytes))}, nil
	}
	dev, err := c.lookup(ctx, device)
	reason, answer, err := deviceRefusal(dev, err)
	if err != nil {
		return Outcome{}, err
	}
	if answer != nil {
		c.intake.refused(TransportMQTT, reason)
		return Outcome{Answer: answer}, nil
	}
	// Over its rate, a message is refused, answered and acknowledged: a
	// device that floods cannot crowd out the others, and learns which
	// message to send again.
	if ok, wait := c.limits.allow(dev.ID, time.Now()); !ok {
		c.intake.refused(TransportMQTT, ReasonRateLimited)
		return Outcome{Answer: rateLimited(payload, wait)}, nil
	}
	return c.ingest(ctx, dev, payload)
}

func (c *MQTT) isStopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

// ingest stores the message's points and hands them on (OnStored), and
// does both again while the hand-off fails, until ctx ends or the
// collector stops (leaving the message unacknowledged): the broker
// would redeliver the unacknowledged message only after a reconnect.
// Storing again is harmless.
func (c *MQTT) ingest(ctx context.Context, dev registry.Device, payload []byte) (Outcome, error) {
	for wait := minReconnect; ; wait = min(2*wait, c.cfg.MaxReconnect) {
		out, err := c.intake.Ingest(ctx, TransportMQTT, dev, payload, c.write)
		if !errors.Is(err, ErrHandoff) || ctx.Err() != nil || c.isStopping() {
			return out, err
		}
		c.metrics.Deferred.WithLabelValues(TransportMQTT, reasonHandoff).Inc()
		c.log.Warn("stored points not handed on; retrying", "err", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return out, err
		}
	}
}

// lookup finds the device, retrying while the registry fails (a busy
// database, say) rather than leaving the message unacknowledged, which
// the broker would redeliver only after a reconnect.
func (c *MQTT) lookup(ctx context.Context, device string) (registry.Device, error) {
	wait := 100 * time.Millisecond
	for {
		dev, err := c.intake.devices.Device(ctx, device)
		if err == nil || errors.Is(err, registry.ErrNotFound) || ctx.Err() != nil {
			return dev, err
		}
		c.log.Warn("device lookup failed; retrying", "err", rootCause(err))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return dev, ctx.Err()
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// answer publishes doc on the device's errors topic (QoS 1), retrying
// until the broker takes it, so that no rejection goes unanswered. It
// reports false when ctx ended first: the message then stays
// unacknowledged, and the broker delivers it again.
func (c *MQTT) answer(ctx context.Context, device string, doc *ErrorDoc) bool {
	body, _ := json.Marshal(doc) // an ErrorDoc always encodes
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		tok := c.client.Publish(ErrorTopic(device), 1, false, body)
		// Not tok.WaitTimeout(0) afterwards: its zero timer may win the
		// race with a completed token, and the answer would go out twice.
		taken := false
		select {
		case <-tok.Done():
			taken = tok.Error() == nil
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
			return false
		}
		if taken {
			c.metrics.ErrorAnswers.WithLabelValues(TransportMQTT).Inc()
			return true
		}
		c.metrics.AnswerFailures.Inc()
		c.log.Warn("error answer not taken by the broker; retrying", "err", tok.Error(), "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return false
		}
	}
}
