package ingest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/registry"
)

// countingDevices is fakeDevices that counts lookups and can revoke.
type countingDevices struct {
	lookups int
	revoked bool
}

func (d *countingDevices) Device(ctx context.Context, id string) (registry.Device, error) {
	d.lookups++
	dev, err := fakeDevices{}.Device(ctx, id)
	if d.revoked {
		dev.RevokedAt = time.Unix(1, 0)
	}
	return dev, err
}

func (d *countingDevices) DeviceByToken(ctx context.Context, token string) (registry.Device, error) {
	d.lookups++
	return fakeDevices{}.DeviceByToken(ctx, token)
}

func TestDeviceCache(t *testing.T) {
	ctx := context.Background()
	reg := &countingDevices{}
	c := newDeviceCache(reg, 5*time.Second)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }

	steps := []struct {
		name        string
		advance     time.Duration
		revoke      bool
		lookup      func() (registry.Device, error)
		wantLookups int
		wantActive  bool
		wantErr     error
	}{
		{name: "first lookup asks the registry", lookup: func() (registry.Device, error) { return c.Device(ctx, "app-1") }, wantLookups: 1, wantActive: true},
		{name: "then it is remembered", advance: 4 * time.Second, lookup: func() (registry.Device, error) { return c.Device(ctx, "app-1") }, wantLookups: 1, wantActive: true},
		{name: "a revocation shows after the ttl", advance: 2 * time.Second, revoke: true, lookup: func() (registry.Device, error) { return c.Device(ctx, "app-1") }, wantLookups: 2},
		{name: "unknown devices are not remembered", lookup: func() (registry.Device, error) { return c.Device(ctx, "nope") }, wantLookups: 3, wantErr: registry.ErrNotFound},
		{name: "again", lookup: func() (registry.Device, error) { return c.Device(ctx, "nope") }, wantLookups: 4, wantErr: registry.ErrNotFound},
		{name: "by token", lookup: func() (registry.Device, error) { return c.DeviceByToken(ctx, "tok-1") }, wantLookups: 5, wantActive: true},
		{name: "by token remembered", lookup: func() (registry.Device, error) { return c.DeviceByToken(ctx, "tok-1") }, wantLookups: 5, wantActive: true},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		if st.revoke {
			reg.revoked = true
		}
		dev, err := st.lookup()
		if !errors.Is(err, st.wantErr) || reg.lookups != st.wantLookups || (err == nil && dev.Active() != st.wantActive) {
			t.Errorf("%s: active %v err %v after %d lookups; want active %v err %v after %d",
				st.name, dev.Active(), err, reg.lookups, st.wantActive, st.wantErr, st.wantLookups)
		}
	}
}
