package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Device is a wearable or phone app enrolled for one patient.
type Device struct {
	ID         string
	PatientID  string
	EnrolledAt time.Time
	RevokedAt  time.Time // zero while active
}

// Active reports whether the device is enrolled and not revoked.
func (d Device) Active() bool { return d.RevokedAt.IsZero() }

// tokenPrefix marks a device token, so that one pasted in the wrong place
// (a log, a ticket) is recognisable, and secret scanners can find it.
const tokenPrefix = "ppd_"

// EnrollDevice binds a new device to an existing patient and returns the
// device's token, which is shown once: "ppd_" followed by the unpadded
// base64url encoding of 32 random bytes. The registry keeps only the token's
// SHA-256, in hex.
//
// It returns an error wrapping ErrInvalidID for an invalid device id,
// ErrNotFound (the message names the patient) when the patient does not
// exist, and ErrExists when the device id was ever used, by an active or a
// revoked device.
func (r *Registry) EnrollDevice(ctx context.Context, deviceID, patientID string) (token string, err error) {
	if err := checkID("device", deviceID); err != nil {
		return "", fmt.Errorf("enroll device: %w", err)
	}
	token = newToken(tokenPrefix)

	err = r.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		err := tx.QueryRowContext(ctx, r.q(`SELECT COUNT(*) FROM patients WHERE id = ?`), patientID).Scan(&n)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("patient %s: %w", patientID, ErrNotFound)
		}
		err = r.execOne(ctx, tx, ErrExists, `INSERT INTO devices (id, patient_id, token_hash, enrolled_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			deviceID, patientID, hashToken(token), formatTime(now()))
		if err != nil {
			return err
		}
		return r.record(ctx, tx, ActionDeviceEnroll, patientID, deviceID)
	})
	if err != nil {
		return "", fmt.Errorf("enroll device %s: %w", deviceID, err)
	}
	return token, nil
}

// Device returns the device with the given id, revoked or not (check
// Active), or an error wrapping ErrNotFound.
func (r *Registry) Device(ctx context.Context, id string) (Device, error) {
	row := r.db.QueryRowContext(ctx, r.q(`SELECT `+deviceColumns+` FROM devices WHERE id = ?`), id)
	d, err := scanDevice(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("device %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Device{}, fmt.Errorf("device %s: %w", id, err)
	}
	return d, nil
}

// DeviceByToken returns the device the token was issued to, revoked or not
// (check Active), or an error wrapping ErrNotFound for an unknown token. The
// lookup is by the token's hash; the error never repeats the token.
func (r *Registry) DeviceByToken(ctx context.Context, token string) (Device, error) {
	row := r.db.QueryRowContext(ctx, r.q(`SELECT `+deviceColumns+` FROM devices WHERE token_hash = ?`), hashToken(token))
	d, err := scanDevice(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("device by token: %w", ErrNotFound)
	}
	if err != nil {
		return Device{}, fmt.Errorf("device by token: %w", err)
	}
	return d, nil
}

// ListDevices returns every device, revoked ones included, ordered by id.
// The slice is empty, not nil, when there are none.
func (r *Registry) ListDevices(ctx context.Context) ([]Device, error) {
	return queryAll(ctx, r, "list devices", `SELECT `+deviceColumns+` FROM devices ORDER BY id`, nil, scanDevice)
}

// RevokeDevice revokes the device's token for good; the device id stays
// taken. It returns an error wrapping ErrNotFound for an unknown device and
// ErrRevoked for one already revoked.
func (r *Registry) RevokeDevice(ctx context.Context, id string) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		var patientID string
		var revoked sql.NullString
		err := tx.QueryRowContext(ctx, r.q(`SELECT patient_id, revoked_at FROM devices WHERE id = ?`), id).Scan(&patientID, &revoked)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrNotFound
		case err != nil:
			return err
		case revoked.Valid:
			return fmt.Errorf("already %w", ErrRevoked)
		}
		if _, err = tx.ExecContext(ctx, r.q(`UPDATE devices SET revoked_at = ? WHERE id = ?`), formatTime(now()), id); err != nil {
			return err
		}
		return r.record(ctx, tx, ActionDeviceRevoke, patientID, id)
	})
	if err != nil {
		return fmt.Errorf("revoke device %s: %w", id, err)
	}
	return nil
}

// UndoEnrollment deletes the enrolment that EnrollDevice made and returned
// token for, so that the id is free again. It exists for an enrolment
// whose other half failed (the device's broker account) before the token
// was handed to anyone: such a device can have sent nothing. It deletes
// nothing unless the device's token is token, and returns an error
// wrapping ErrNotFound then.
func (r *Registry) UndoEnrollment(ctx context.Context, deviceID, token string) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		var patientID string
		err := tx.QueryRowContext(ctx, r.q(`DELETE FROM devices WHERE id = ? AND token_hash = ? RETURNING patient_id`),
			deviceID, hashToken(token)).Scan(&patientID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return r.record(ctx, tx, ActionDeviceUndo, patientID, deviceID)
	})
	if err != nil {
		return fmt.Errorf("undo enrolment of device %s: %w", deviceID, err)
	}
	return nil
}

const deviceColumns = `id, patient_id, enrolled_at, revoked_at`

func scanDevice(s scanner) (Device, error) {
	var d Device
	var enrolled string
	var revoked sql.NullString
	if err := s.Scan(&d.ID, &d.PatientID, &enrolled, &revoked); err != nil {
		return Device{}, err
	}
	t, err := parseTime(enrolled)
	if err != nil {
		return Device{}, fmt.Errorf("device %s enrolled_at: %w", d.ID, err)
	}
	d.EnrolledAt = t
	if revoked.Valid {
		if d.RevokedAt, err = parseTime(revoked.String); err != nil {
			return Device{}, fmt.Errorf("device %s revoked_at: %w", d.ID, err)
		}
	}
	return d, nil
}
