package ingest

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// deviceCache remembers the devices the registry found, for ttl, so that
// a device's every message does not query the registry (a fifth of the
// pipeline's CPU without it). A revocation therefore takes effect within
// ttl; an enrolment at once, since misses are not remembered. It holds at
// most one entry per enrolled device, and tokens only as their hashes.
type deviceCache struct {
	devices Devices
	ttl     time.Duration
	now     func() time.Time

	mu      sync.Mutex
	byID    map[string]cachedDevice   // guarded by mu
	byToken map[[32]byte]cachedDevice // guarded by mu
}

type cachedDevice struct {
	dev     registry.Device
	expires time.Time
}

var _ Devices = (*deviceCache)(nil)

func newDeviceCache(devices Devices, ttl time.Duration) *deviceCache {
	return &deviceCache{
		devices: devices,
		ttl:     ttl,
		now:     time.Now,
		byID:    make(map[string]cachedDevice),
		byToken: make(map[[32]byte]cachedDevice),
	}
}

func (c *deviceCache) Device(ctx context.Context, id string) (registry.Device, error) {
	return cached(c, c.byID, id, func() (registry.Device, error) { return c.devices.Device(ctx, id) })
}

func (c *deviceCache) DeviceByToken(ctx context.Context, token string) (registry.Device, error) {
	return cached(c, c.byToken, sha256.Sum256([]byte(token)),
		func() (registry.Device, error) { return c.devices.DeviceByToken(ctx, token) })
}

func cached[K comparable](c *deviceCache, m map[K]cachedDevice, key K, lookup func() (registry.Device, error)) (registry.Device, error) {
	if c.ttl <= 0 {
		return lookup()
	}
	now := c.now()
	c.mu.Lock()
	e, ok := m[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.dev, nil
	}
	dev, err := lookup()
	c.mu.Lock()
	if err == nil {
		m[key] = cachedDevice{dev: dev, expires: now.Add(c.ttl)}
	} else {
		delete(m, key)
	}
	c.mu.Unlock()
	return dev, err
}
