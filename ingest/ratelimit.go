package ingest

import (
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// deviceLimits holds a token bucket per device, so that one device cannot
// crowd out the others. Only authenticated devices get a bucket, so there
// is at most one per enrolled device.
type deviceLimits struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter // guarded by mu
	last    time.Time                // the latest time given; guarded by mu
}

func newDeviceLimits(perSecond float64, burst int) *deviceLimits {
	return &deviceLimits{rate: rate.Limit(perSecond), burst: burst, buckets: make(map[string]*rate.Limiter)}
}

// allow takes one message from device's bucket, or says how long until
// there is one; the rejected message takes nothing.
func (l *deviceLimits) allow(device string, now time.Time) (ok bool, wait time.Duration) {
	if l.rate <= 0 {
		return true, 0
	}
	// Under mu, and never back in time: a limiter handed an earlier time
	// than its last one counts the time between twice (many workers, and
	// an instance's several MQTT sessions, call at once).
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.last) {
		now = l.last
	}
	l.last = now
	b, found := l.buckets[device]
	if !found {
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[device] = b
	}
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// retryAfterSeconds rounds a wait up to whole seconds, at least one.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// ReasonRateLimited counts MQTT messages refused because their device sent
// faster than its rate (HTTPS tells it to retry, counted as deferred).
const ReasonRateLimited = "rate_limited"

// rateLimited is the answer to an MQTT message refused for its device's
// rate: its seq when it can be read, so that the device knows which
// message to send again, and when.
func rateLimited(payload []byte, wait time.Duration) *ErrorDoc {
	var head struct {
		Seq *int64 `json:"seq"`
	}
	_ = json.Unmarshal(payload, &head) // unreadable: seq null
	return &ErrorDoc{
		Seq:     head.Seq,
		Error:   fmt.Sprintf("rate limited: this device sends faster than its rate limit; send this message again in %d s or later", retryAfterSeconds(wait)),
		Details: []Problem{},
	}
}
