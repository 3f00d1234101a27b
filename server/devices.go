package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
)

// ErrReservedDeviceID reports a device id that is, or could become, one
// of the pipeline's own MQTT client ids.
var ErrReservedDeviceID = errors.New("reserved device id")

// Devices enrols and revokes devices: in the registry and, with
// --broker-accounts, at the broker, so that the two never disagree
// silently. The admin commands and the staff API both go through it.
type Devices struct {
	Reg    *registry.Registry
	Config *Config
}

// Enroll enrols the device for the patient and, with --broker-accounts,
// gives it its broker account, and returns its token, to be shown once.
// When the broker step fails, the enrolment is undone. A device id in
// the pipeline's own MQTT client ids is refused (ErrReservedDeviceID,
// which also wraps registry.ErrInvalidID) before anything changes.
func (d Devices) Enroll(ctx context.Context, patient, device string) (string, error) {
	c := d.Config
	if ingest.ReservedClientID(c.MQTT.ClientID, device) {
		base := c.MQTT.ClientID
		return "", fmt.Errorf("enroll device %s: nothing changed: %w: %w: the id is reserved by --mqtt-client-id %q "+
			"(the pipeline connects to the broker as %s and as %s-<anything>, and a device connects with its id as client id, "+
			"so it would disconnect the pipeline's session): enrol the device under another id",
			device, ErrReservedDeviceID, registry.ErrInvalidID, base, base, base)
	}
	var accounts *ingest.BrokerAccounts
	if c.BrokerAccounts {
		// Reach the broker before the registry changes: an unreachable
		// broker or a refused admin account then leaves nothing to undo.
		var err error
		if accounts, err = ingest.DialBrokerAccounts(ctx, c.BrokerAdminConfig()); err != nil {
			return "", fmt.Errorf("enroll device %s: nothing changed: %w", device, err)
		}
		defer accounts.Close()
	}
	token, err := d.Reg.EnrollDevice(ctx, device, patient)
	if err != nil {
		return "", err
	}
	if accounts != nil {
		if err := accounts.AddDevice(ctx, device, token); err != nil {
			return "", d.undoEnroll(ctx, accounts, device, token, err)
		}
	}
	return token, nil
}

// undoEnroll takes back an enrolment whose broker account could not be
// made. The token was shown to no one, so the device cannot have used
// it: the registry entry is deleted and the id is free again. The broker
// may have carried out a command whose answer was lost, so the device's
// account is removed first, where there is one.
func (d Devices) undoEnroll(ctx context.Context, accounts *ingest.BrokerAccounts, device, token string, cause error) error {
	// Undo even when the request or the operator gave up during the broker step.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	note := ""
	if err := accounts.RemoveDevice(ctx, device); err != nil && !errors.Is(err, ingest.ErrForeignAccount) {
		note = fmt.Sprintf(" (the broker may keep an account for %s that no one has the password of: %v)", device, err)
	}
	if err := d.Reg.UndoEnrollment(ctx, device, token); err != nil {
		return fmt.Errorf("enroll device %s: %w; the device is enrolled without a broker account and undoing that failed (%v): "+
			"revoke it (`patientpulse devices revoke --device %s`) and enrol the device under another id", device, cause, err, device)
	}
	return fmt.Errorf("enroll device %s: nothing changed, the registry entry is undone: %w%s", device, cause, note)
}

// Revoke revokes the device in the registry and, with --broker-accounts,
// removes its broker account, which disconnects it. A device already
// revoked in the registry still has its broker account removed (already
// is then true), so that revoking again finishes a revocation whose
// broker step failed; without --broker-accounts that is
// registry.ErrRevoked.
func (d Devices) Revoke(ctx context.Context, device string) (already bool, err error) {
	err = d.Reg.RevokeDevice(ctx, device)
	already = errors.Is(err, registry.ErrRevoked)
	if err != nil && !(already && d.Config.BrokerAccounts) {
		return false, err
	}
	if err := d.RemoveAccounts(ctx, device); err != nil {
		return already, fmt.Errorf("device %s is revoked in the registry, so patientpulse refuses its data, but its broker account is not removed: %w; "+
			"revoke it again to remove it", device, err)
	}
	return already, nil
}

// RemoveAccounts removes the devices' broker accounts, with
// --broker-accounts (else it does nothing): for devices revoked in the
// registry.
func (d Devices) RemoveAccounts(ctx context.Context, devices ...string) error {
	if !d.Config.BrokerAccounts || len(devices) == 0 {
		return nil
	}
	accounts, err := ingest.DialBrokerAccounts(ctx, d.Config.BrokerAdminConfig())
	if err != nil {
		return err
	}
	defer accounts.Close()
	for _, dev := range devices {
		if err := accounts.RemoveDevice(ctx, dev); err != nil {
			return fmt.Errorf("device %s: %w", dev, err)
		}
	}
	return nil
}
