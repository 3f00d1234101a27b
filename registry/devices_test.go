package registry

import (
	"bytes"
	"encoding/base64"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// openWithPatient opens a test registry holding patient p-1.
func openWithPatient(t *testing.T, b backend) (*Registry, string) {
	t.Helper()
	r, path := openTest(t, b)
	if err := r.AddPatient(t.Context(), Patient{ID: "p-1", Name: "Pat One"}); err != nil {
		t.Fatal(err)
	}
	return r, path
}

func TestEnrollDevice(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithPatient(t, be)
		ctx := t.Context()
		tok, err := r.EnrollDevice(ctx, "d-1", "p-1")
		if err != nil {
			t.Fatal(err)
		}
		rest, ok := strings.CutPrefix(tok, "ppd_")
		if !ok {
			t.Fatalf("token %q lacks the ppd_ prefix", tok)
		}
		raw, err := base64.RawURLEncoding.DecodeString(rest)
		if err != nil || len(raw) != 32 {
			t.Fatalf("token body is not unpadded base64url of 32 bytes: %d bytes, %v", len(raw), err)
		}

		d, err := r.DeviceByToken(ctx, tok)
		if err != nil {
			t.Fatalf("DeviceByToken: %v", err)
		}
		if d.ID != "d-1" || d.PatientID != "p-1" || !d.Active() {
			t.Errorf("DeviceByToken = %+v, want active d-1 of p-1", d)
		}
		if time.Since(d.EnrolledAt) > time.Minute {
			t.Errorf("EnrolledAt = %v, want about now", d.EnrolledAt)
		}
		if byID, err := r.Device(ctx, "d-1"); err != nil || byID != d {
			t.Errorf("Device(d-1) = %+v, %v; want %+v", byID, err, d)
		}

		tok2, err := r.EnrollDevice(ctx, "d-2", "p-1")
		if err != nil {
			t.Fatal(err)
		}
		if tok2 == tok {
			t.Error("two enrolments returned the same token")
		}
		if d2, err := r.DeviceByToken(ctx, tok2); err != nil || d2.ID != "d-2" {
			t.Errorf("DeviceByToken(second token) = %+v, %v; want d-2", d2, err)
		}
	})
}

func TestEnrollDeviceErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithPatient(t, be)
		ctx := t.Context()
		if _, err := r.EnrollDevice(ctx, "active", "p-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.EnrollDevice(ctx, "revoked", "p-1"); err != nil {
			t.Fatal(err)
		}
		if err := r.RevokeDevice(ctx, "revoked"); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name      string
			device    string
			patient   string
			wantErr   error
			wantInMsg string
		}{
			{name: "unknown patient", device: "d-9", patient: "p-404", wantErr: ErrNotFound, wantInMsg: "patient p-404"},
			{name: "active device id", device: "active", patient: "p-1", wantErr: ErrExists},
			{name: "revoked device id", device: "revoked", patient: "p-1", wantErr: ErrExists},
			{name: "invalid device id", device: "d/1", patient: "p-1", wantErr: ErrInvalidID},
			{name: "empty device id", device: "", patient: "p-1", wantErr: ErrInvalidID},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tok, err := r.EnrollDevice(ctx, tt.device, tt.patient)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("EnrollDevice(%q, %q) = %v, want %v", tt.device, tt.patient, err, tt.wantErr)
				}
				if tok != "" {
					t.Errorf("EnrollDevice returned token %q with an error", tok)
				}
				if !strings.Contains(err.Error(), tt.wantInMsg) {
					t.Errorf("error %q does not mention %q", err, tt.wantInMsg)
				}
			})
		}
		// The failed enrolments changed nothing.
		ds, err := r.ListDevices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 2 || ds[0].ID != "active" || !ds[0].Active() || ds[1].ID != "revoked" || ds[1].Active() {
			t.Errorf("ListDevices = %+v, want active (active) and revoked (revoked)", ds)
		}
	})
}

// TestTokenNotStored looks through the bytes of every file the store
// writes for the token: only its hash may be there.
func TestTokenNotStored(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, path := openWithPatient(t, be)
		tok, err := r.EnrollDevice(t.Context(), "d-1", "p-1")
		if err != nil {
			t.Fatal(err)
		}
		check := func(when string) {
			t.Helper()
			files := storedContents(t, be, path)
			hashSeen := false
			for f, b := range files {
				if bytes.Contains(b, []byte(tok)) || bytes.Contains(b, []byte(strings.TrimPrefix(tok, "ppd_"))) {
					t.Errorf("%s: %s contains the token", when, f)
				}
				hashSeen = hashSeen || bytes.Contains(b, []byte(hashToken(tok)))
			}
			if !hashSeen {
				t.Errorf("%s: the token's hash is in none of %v; the test looks in the wrong place", when, slices.Sorted(maps.Keys(files)))
			}
		}
		check("while open")
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		check("after close")
	})
}

func TestDeviceByTokenUnknown(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithPatient(t, be)
		ctx := t.Context()
		tok, err := r.EnrollDevice(ctx, "d-1", "p-1")
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name  string
			token string
		}{
			{name: "empty", token: ""},
			{name: "other token", token: "ppd_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
			{name: "token without prefix", token: strings.TrimPrefix(tok, "ppd_")},
			{name: "token with trailing space", token: tok + " "},
			{name: "the hash itself", token: hashToken(tok)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := r.DeviceByToken(ctx, tt.token)
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("DeviceByToken = %v, want ErrNotFound", err)
				}
				if tt.token != "" && strings.Contains(err.Error(), tt.token) {
					t.Errorf("error %q repeats the token", err)
				}
			})
		}
	})
}

func TestRevokeDevice(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithPatient(t, be)
		ctx := t.Context()
		tok, err := r.EnrollDevice(ctx, "d-1", "p-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := r.RevokeDevice(ctx, "d-1"); err != nil {
			t.Fatalf("RevokeDevice: %v", err)
		}
		d, err := r.DeviceByToken(ctx, tok)
		if err != nil {
			t.Fatalf("DeviceByToken after revoke: %v", err)
		}
		if d.Active() || time.Since(d.RevokedAt) > time.Minute {
			t.Errorf("after revoke: Active() = %v, RevokedAt = %v; want inactive, revoked about now", d.Active(), d.RevokedAt)
		}
		if byID, err := r.Device(ctx, "d-1"); err != nil || byID.Active() {
			t.Errorf("Device(d-1) after revoke = %+v, %v; want it, inactive", byID, err)
		}

		tests := []struct {
			name    string
			id      string
			wantErr error
		}{
			{name: "twice", id: "d-1", wantErr: ErrRevoked},
			{name: "unknown", id: "d-404", wantErr: ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := r.RevokeDevice(ctx, tt.id); !errors.Is(err, tt.wantErr) {
					t.Errorf("RevokeDevice(%q) = %v, want %v", tt.id, err, tt.wantErr)
				}
			})
		}
		// A second revocation leaves the first time in place.
		if again, err := r.Device(ctx, "d-1"); err != nil || !again.RevokedAt.Equal(d.RevokedAt) {
			t.Errorf("RevokedAt after a second revoke = %v, %v; want %v", again.RevokedAt, err, d.RevokedAt)
		}
	})
}

func TestUndoEnrollment(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithPatient(t, be)
		ctx := t.Context()
		tok, err := r.EnrollDevice(ctx, "d-1", "p-1")
		if err != nil {
			t.Fatal(err)
		}
		other, err := r.EnrollDevice(ctx, "d-2", "p-1")
		if err != nil {
			t.Fatal(err)
		}
		// Only the enrolment with that token goes.
		if err := r.UndoEnrollment(ctx, "d-1", other); !errors.Is(err, ErrNotFound) {
			t.Errorf("UndoEnrollment with another device's token = %v, want ErrNotFound", err)
		}
		if err := r.UndoEnrollment(ctx, "d-1", tok); err != nil {
			t.Fatalf("UndoEnrollment: %v", err)
		}
		if _, err := r.Device(ctx, "d-1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Device(d-1) after the undo: %v, want ErrNotFound", err)
		}
		if d, err := r.Device(ctx, "d-2"); err != nil || !d.Active() {
			t.Errorf("Device(d-2) after undoing d-1: %+v, %v; want it untouched", d, err)
		}
		// The id is free again.
		if _, err := r.EnrollDevice(ctx, "d-1", "p-1"); err != nil {
			t.Errorf("EnrollDevice after the undo: %v", err)
		}
		if err := r.UndoEnrollment(ctx, "d-1", tok); !errors.Is(err, ErrNotFound) {
			t.Errorf("UndoEnrollment with the old token = %v, want ErrNotFound", err)
		}
	})
}

func TestDeviceNotFound(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		if _, err := r.Device(t.Context(), "d-404"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Device(d-404) = %v, want ErrNotFound", err)
		}
	})
}

func TestListDevices(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithPatient(t, be)
		ctx := t.Context()
		if err := r.AddPatient(ctx, Patient{ID: "p-2"}); err != nil {
			t.Fatal(err)
		}
		ds, err := r.ListDevices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ds == nil || len(ds) != 0 {
			t.Errorf("ListDevices on an empty store = %#v, want an empty, non-nil slice", ds)
		}
		for _, e := range []struct{ device, patient string }{{"watch-b", "p-2"}, {"watch-a", "p-1"}, {"phone", "p-1"}} {
			if _, err := r.EnrollDevice(ctx, e.device, e.patient); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.RevokeDevice(ctx, "phone"); err != nil {
			t.Fatal(err)
		}
		ds, err = r.ListDevices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range ds {
			got = append(got, d.ID+"/"+d.PatientID+"/"+map[bool]string{true: "active", false: "revoked"}[d.Active()])
		}
		if want := "phone/p-1/revoked watch-a/p-1/active watch-b/p-2/active"; strings.Join(got, " ") != want {
			t.Errorf("ListDevices = %q, want %q", strings.Join(got, " "), want)
		}
	})
}
