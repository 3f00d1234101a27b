package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

// alicePassword is the password openWithStaff gives alice.
const alicePassword = "correct horse battery"

// openWithStaff opens a test registry holding patients p-1 and p-2 and
// staff alice (clinician, alicePassword).
func openWithStaff(t *testing.T, b backend) (*Registry, string) {
	t.Helper()
	r, path := openWithPatient(t, b)
	if err := r.AddPatient(t.Context(), Patient{ID: "p-2"}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddStaff(t.Context(), "alice", RoleClinician, alicePassword); err != nil {
		t.Fatal(err)
	}
	return r, path
}

func TestRoleValid(t *testing.T) {
	for _, tt := range []struct {
		role Role
		want bool
	}{
		{RoleAdmin, true}, {RoleClinician, true}, {RoleOnCall, true},
		{"", false}, {"Admin", false}, {"root", false}, {"on-call", false},
	} {
		if got := tt.role.Valid(); got != tt.want {
			t.Errorf("Role(%q).Valid() = %v, want %v", tt.role, got, tt.want)
		}
	}
}

func TestAddStaff(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		tests := []struct {
			name     string
			username string
			role     Role
			password string
			wantErr  error // nil for success
			failure  bool  // an error wrapping no sentinel
		}{
			{name: "admin", username: "root-1", role: RoleAdmin, password: "a long enough password"},
			{name: "clinician", username: "dr.bob", role: RoleClinician, password: "twelve chars"},
			{name: "oncall", username: "Carol_N", role: RoleOnCall, password: "passwörd mit ümlauten"},
			{name: "duplicate", username: "alice", role: RoleAdmin, password: "another password", wantErr: ErrExists},
			{name: "invalid username", username: "bob smith", role: RoleAdmin, password: "a long enough password", wantErr: ErrInvalidID},
			{name: "empty username", username: "", role: RoleAdmin, password: "a long enough password", wantErr: ErrInvalidID},
			{name: "unknown role", username: "eve", role: "root", password: "a long enough password", failure: true},
			{name: "empty password", username: "eve", role: RoleAdmin, password: "", wantErr: ErrWeakPassword},
			{name: "eleven characters", username: "eve", role: RoleAdmin, password: "elevenchars", wantErr: ErrWeakPassword},
			{name: "eleven characters in 22 bytes", username: "eve", role: RoleAdmin, password: strings.Repeat("é", 11), wantErr: ErrWeakPassword},
			{name: "over the maximum", username: "eve", role: RoleAdmin, password: strings.Repeat("x", 1025), wantErr: ErrWeakPassword},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := r.AddStaff(ctx, tt.username, tt.role, tt.password)
				switch {
				case tt.failure && err == nil:
					t.Fatalf("AddStaff(%q, %q) succeeded, want an error", tt.username, tt.role)
				case !tt.failure && !errors.Is(err, tt.wantErr):
					t.Fatalf("AddStaff(%q, %q) = %v, want %v", tt.username, tt.role, err, tt.wantErr)
				}
				if err != nil {
					if tt.password != "" && strings.Contains(err.Error(), tt.password) {
						t.Errorf("error %q repeats the password", err)
					}
					if errors.Is(err, ErrWeakPassword) && !strings.Contains(err.Error(), "at least 12 characters") && len(tt.password) <= maxPasswordLen {
						t.Errorf("error %q does not say how long a password must be", err)
					}
					return
				}
				s, err := r.StaffMember(ctx, tt.username)
				if err != nil {
					t.Fatalf("StaffMember(%q): %v", tt.username, err)
				}
				if s.Username != tt.username || s.Role != tt.role || !s.Active() {
					t.Errorf("StaffMember(%q) = %+v, want active %s", tt.username, s, tt.role)
				}
				if time.Since(s.CreatedAt) > time.Minute || s.CreatedAt.Location() != time.UTC {
					t.Errorf("CreatedAt = %v, want about now, in UTC", s.CreatedAt)
				}
				if _, err := r.Authenticate(ctx, tt.username, tt.password); err != nil {
					t.Errorf("Authenticate with the password just set: %v", err)
				}
			})
		}
		// The refused duplicate left alice's role and password alone.
		if s, err := r.Authenticate(ctx, "alice", alicePassword); err != nil || s.Role != RoleClinician {
			t.Errorf("Authenticate(alice) = %+v, %v; want the original clinician", s, err)
		}
		if _, err := r.StaffMember(ctx, "eve"); !errors.Is(err, ErrNotFound) {
			t.Errorf("StaffMember(eve) = %v, want ErrNotFound: no refused AddStaff may add her", err)
		}
	})
}

// storedHash returns the password_hash column of username.
func storedHash(t *testing.T, r *Registry, username string) string {
	t.Helper()
	var h string
	if err := r.db.QueryRowContext(t.Context(), r.q(`SELECT password_hash FROM staff WHERE username = ?`), username).Scan(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestPasswordHashFormat(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		if err := r.AddStaff(t.Context(), "bob", RoleOnCall, alicePassword); err != nil {
			t.Fatal(err)
		}
		phc := regexp.MustCompile(`^\$argon2id\$v=19\$m=65536,t=3,p=2\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$`)
		a, b := storedHash(t, r, "alice"), storedHash(t, r, "bob")
		for _, h := range []string{a, b} {
			m := phc.FindStringSubmatch(h)
			if m == nil {
				t.Fatalf("stored hash %q is not $argon2id$v=19$m=65536,t=3,p=2$<16-byte salt>$<32-byte key>", h)
			}
			salt, err := base64.RawStdEncoding.DecodeString(m[1])
			if err != nil {
				t.Fatal(err)
			}
			key, err := base64.RawStdEncoding.DecodeString(m[2])
			if err != nil {
				t.Fatal(err)
			}
			// Derived independently of the package's own code.
			if want := argon2.IDKey([]byte(alicePassword), salt, 3, 64*1024, 2, 32); !bytes.Equal(key, want) {
				t.Errorf("stored key is not argon2id(password, salt, t=3, m=64MiB, p=2)")
			}
		}
		if a == b || a[:47] == b[:47] {
			t.Errorf("two accounts with one password share a salt: %q, %q", a, b)
		}
	})
}

func TestAuthenticate(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		if err := r.AddStaff(ctx, "gone", RoleOnCall, "a departed password"); err != nil {
			t.Fatal(err)
		}
		if err := r.DisableStaff(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name     string
			username string
			password string
			wantErr  error
		}{
			{name: "right password", username: "alice", password: alicePassword},
			{name: "wrong password", username: "alice", password: "correct horse battery staple", wantErr: ErrBadCredentials},
			{name: "password with trailing newline", username: "alice", password: alicePassword + "\n", wantErr: ErrBadCredentials},
			{name: "empty password", username: "alice", password: "", wantErr: ErrBadCredentials},
			{name: "unknown user", username: "mallory", password: alicePassword, wantErr: ErrBadCredentials},
			{name: "username in other case", username: "Alice", password: alicePassword, wantErr: ErrBadCredentials},
			{name: "disabled, right password", username: "gone", password: "a departed password", wantErr: ErrDisabled},
			{name: "disabled, wrong password", username: "gone", password: alicePassword, wantErr: ErrBadCredentials},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s, err := r.Authenticate(ctx, tt.username, tt.password)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Authenticate(%q) = %v, want %v", tt.username, err, tt.wantErr)
				}
				if err != nil {
					if s != (Staff{}) {
						t.Errorf("Authenticate returned %+v with an error", s)
					}
					if tt.password != "" && strings.Contains(err.Error(), tt.password) {
						t.Errorf("error %q repeats the password", err)
					}
					return
				}
				if s.Username != "alice" || s.Role != RoleClinician || !s.Active() {
					t.Errorf("Authenticate = %+v, want active clinician alice", s)
				}
			})
		}
	})
}

// TestAuthenticateUnknownUserAlike checks that a login as an unknown user
// fails exactly as one with a wrong password does, hashing too: with every
// hash slot taken, both must wait for one rather than answer at once.
func TestAuthenticateUnknownUserAlike(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		_, wrong := r.Authenticate(t.Context(), "alice", "not alice's password")
		_, unknown := r.Authenticate(t.Context(), "mallory", "not alice's password")
		if !errors.Is(wrong, ErrBadCredentials) || !errors.Is(unknown, ErrBadCredentials) {
			t.Fatalf("wrong password: %v; unknown user: %v; want ErrBadCredentials for both", wrong, unknown)
		}
		if w, u := strings.ReplaceAll(wrong.Error(), "alice", "X"), strings.ReplaceAll(unknown.Error(), "mallory", "X"); w != u {
			t.Errorf("errors differ beyond the username: %q and %q", wrong, unknown)
		}

		for range cap(hashSlots) {
			hashSlots <- struct{}{}
		}
		defer func() {
			for range cap(hashSlots) {
				<-hashSlots
			}
		}()
		for _, user := range []string{"alice", "mallory"} {
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			_, err := r.Authenticate(ctx, user, "not alice's password")
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Authenticate(%s) with no hash slot free = %v, want it to wait for one until the deadline", user, err)
			}
		}
	})
}

// TestAuthenticateRehashes stores a hash made with weaker parameters, as an
// older release would have: login still works, and replaces it.
func TestAuthenticateRehashes(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		old := argonParams{memory: 8 * 1024, time: 1, threads: 1, saltLen: 8, keyLen: 16}
		salt := []byte("saltsalt")
		weak := old.encode(salt, argon2.IDKey([]byte(alicePassword), salt, old.time, old.memory, old.threads, old.keyLen))
		if _, err := r.db.ExecContext(ctx, r.q(`UPDATE staff SET password_hash = ? WHERE username = 'alice'`), weak); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Authenticate(ctx, "alice", "wrong password!"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("Authenticate with a wrong password = %v, want ErrBadCredentials", err)
		}
		if h := storedHash(t, r, "alice"); h != weak {
			t.Errorf("a failed login changed the stored hash to %q", h)
		}
		if _, err := r.Authenticate(ctx, "alice", alicePassword); err != nil {
			t.Fatalf("Authenticate against the old parameters: %v", err)
		}
		h := storedHash(t, r, "alice")
		if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
			t.Errorf("after login the stored hash is %q, want it rehashed with the current parameters", h)
		}
		if _, err := r.Authenticate(ctx, "alice", alicePassword); err != nil {
			t.Errorf("Authenticate after the rehash: %v", err)
		}
	})
}

func TestParsePHC(t *testing.T) {
	good := "$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43)
	if p, _, _, err := parsePHC(good); err != nil || p != argonDefaults {
		t.Fatalf("parsePHC(%q) = %+v, %v; want the defaults", good, p, err)
	}
	tests := []struct {
		name string
		hash string
	}{
		{name: "empty", hash: ""},
		{name: "argon2i", hash: strings.Replace(good, "argon2id", "argon2i", 1)},
		{name: "bcrypt", hash: "$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"},
		{name: "old version", hash: strings.Replace(good, "v=19", "v=16", 1)},
		{name: "no version", hash: strings.Replace(good, "$v=19", "", 1)},
		{name: "parameters reordered", hash: strings.Replace(good, "m=65536,t=3", "t=3,m=65536", 1)},
		{name: "no lanes", hash: strings.Replace(good, "p=2", "p=0", 1)},
		{name: "negative passes", hash: strings.Replace(good, "t=3", "t=-3", 1)},
		{name: "64 GiB", hash: strings.Replace(good, "m=65536", "m=67108864", 1)},
		{name: "padded salt", hash: strings.Replace(good, "dA$", "dA==$", 1)},
		{name: "short key", hash: strings.TrimSuffix(good, strings.Repeat("A", 30))},
		{name: "trailing field", hash: good + "$x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := parsePHC(tt.hash)
			if !errors.Is(err, errBadHash) {
				t.Fatalf("parsePHC(%q) = %v, want errBadHash", tt.hash, err)
			}
			if tt.hash != "" && strings.Contains(err.Error(), tt.hash) {
				t.Errorf("error %q repeats the hash", err)
			}
		})
	}
}

// TestSecretsNotStored looks through the bytes of every file the store
// writes for the password and the API token: only their hashes may be there.
func TestSecretsNotStored(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, path := openWithStaff(t, be)
		tok, err := r.IssueStaffToken(t.Context(), "alice", "laptop")
		if err != nil {
			t.Fatal(err)
		}
		check := func(when string) {
			t.Helper()
			files := storedContents(t, be, path)
			var hashSeen, tokenHashSeen bool
			for f, b := range files {
				if bytes.Contains(b, []byte(alicePassword)) {
					t.Errorf("%s: %s contains the password", when, f)
				}
				if bytes.Contains(b, []byte(strings.TrimPrefix(tok, "pps_"))) {
					t.Errorf("%s: %s contains the API token", when, f)
				}
				hashSeen = hashSeen || bytes.Contains(b, []byte("$argon2id$v=19$m=65536,t=3,p=2$"))
				tokenHashSeen = tokenHashSeen || bytes.Contains(b, []byte(hashToken(tok)))
			}
			if !hashSeen || !tokenHashSeen {
				t.Errorf("%s: password hash seen %v, token hash seen %v in %v; the test looks in the wrong place", when, hashSeen, tokenHashSeen, slices.Sorted(maps.Keys(files)))
			}
		}
		check("while open")
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		check("after close")
	})
}

func TestSetPassword(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		if err := r.SetPassword(ctx, "alice", "short"); !errors.Is(err, ErrWeakPassword) {
			t.Errorf("SetPassword(short) = %v, want ErrWeakPassword", err)
		}
		if err := r.SetPassword(ctx, "nobody", "a new long password"); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetPassword(nobody) = %v, want ErrNotFound", err)
		}
		if err := r.SetPassword(ctx, "alice", "a new long password"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Authenticate(ctx, "alice", alicePassword); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Authenticate with the old password = %v, want ErrBadCredentials", err)
		}
		if _, err := r.Authenticate(ctx, "alice", "a new long password"); err != nil {
			t.Errorf("Authenticate with the new password: %v", err)
		}
	})
}

func TestListStaff(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		ss, err := r.ListStaff(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ss == nil || len(ss) != 0 {
			t.Errorf("ListStaff on an empty store = %#v, want an empty, non-nil slice", ss)
		}
		for _, e := range []struct {
			name string
			role Role
		}{{"zoe", RoleOnCall}, {"alice", RoleClinician}, {"Bob", RoleAdmin}} {
			if err := r.AddStaff(ctx, e.name, e.role, "a long enough password"); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.DisableStaff(ctx, "zoe"); err != nil {
			t.Fatal(err)
		}
		if ss, err = r.ListStaff(ctx); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range ss {
			got = append(got, s.Username+"/"+string(s.Role)+"/"+map[bool]string{true: "active", false: "disabled"}[s.Active()])
		}
		if want := "Bob/admin/active alice/clinician/active zoe/oncall/disabled"; strings.Join(got, " ") != want {
			t.Errorf("ListStaff = %q, want %q", strings.Join(got, " "), want)
		}
	})
}

func TestDisableStaff(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		var toks []string
		for _, label := range []string{"laptop", "script"} {
			tok, err := r.IssueStaffToken(ctx, "alice", label)
			if err != nil {
				t.Fatal(err)
			}
			toks = append(toks, tok)
		}
		if err := r.AssignPatient(ctx, "alice", "p-1"); err != nil {
			t.Fatal(err)
		}
		if err := r.DisableStaff(ctx, "alice"); err != nil {
			t.Fatalf("DisableStaff: %v", err)
		}
		s, err := r.StaffMember(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if s.Active() || time.Since(s.DisabledAt) > time.Minute {
			t.Errorf("after disable: %+v, want disabled about now", s)
		}
		for i, tok := range toks {
			if _, err := r.StaffByToken(ctx, tok); !errors.Is(err, ErrNotFound) {
				t.Errorf("StaffByToken(token %d) after disable = %v, want ErrNotFound (revoked)", i, err)
			}
		}
		tests := []struct {
			name    string
			do      func() error
			wantErr error
		}{
			{name: "disable twice", do: func() error { return r.DisableStaff(ctx, "alice") }, wantErr: ErrDisabled},
			{name: "disable unknown", do: func() error { return r.DisableStaff(ctx, "nobody") }, wantErr: ErrNotFound},
			{name: "login", do: func() error { _, err := r.Authenticate(ctx, "alice", alicePassword); return err }, wantErr: ErrDisabled},
			{name: "issue token", do: func() error { _, err := r.IssueStaffToken(ctx, "alice", ""); return err }, wantErr: ErrDisabled},
			{name: "assign", do: func() error { return r.AssignPatient(ctx, "alice", "p-2") }, wantErr: ErrDisabled},
			{name: "unassign", do: func() error { return r.UnassignPatient(ctx, "alice", "p-1") }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.do(); !errors.Is(err, tt.wantErr) {
					t.Errorf("%s = %v, want %v", tt.name, err, tt.wantErr)
				}
			})
		}
		if again, err := r.StaffMember(ctx, "alice"); err != nil || !again.DisabledAt.Equal(s.DisabledAt) {
			t.Errorf("DisabledAt after a second disable = %v, %v; want %v", again.DisabledAt, err, s.DisabledAt)
		}
	})
}

func TestStaffTokens(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		if err := r.AddStaff(ctx, "bob", RoleOnCall, "the on-call's long password"); err != nil {
			t.Fatal(err)
		}
		tok, err := r.IssueStaffToken(ctx, "alice", "laptop")
		if err != nil {
			t.Fatal(err)
		}
		rest, ok := strings.CutPrefix(tok, "pps_")
		if !ok {
			t.Fatalf("token %q lacks the pps_ prefix", tok)
		}
		if raw, err := base64.RawURLEncoding.DecodeString(rest); err != nil || len(raw) != 32 {
			t.Fatalf("token body is not unpadded base64url of 32 bytes: %d bytes, %v", len(raw), err)
		}
		tok2, err := r.IssueStaffToken(ctx, "alice", "")
		if err != nil {
			t.Fatal(err)
		}
		bobTok, err := r.IssueStaffToken(ctx, "bob", "pager")
		if err != nil {
			t.Fatal(err)
		}
		if tok2 == tok {
			t.Error("two issues returned the same token")
		}
		for _, tt := range []struct{ tok, want string }{{tok, "alice"}, {tok2, "alice"}, {bobTok, "bob"}} {
			if s, err := r.StaffByToken(ctx, tt.tok); err != nil || s.Username != tt.want {
				t.Errorf("StaffByToken = %+v, %v; want %s", s, err, tt.want)
			}
		}

		devTok, err := r.EnrollDevice(ctx, "d-1", "p-1")
		if err != nil {
			t.Fatal(err)
		}
		unknown := []struct {
			name  string
			token string
		}{
			{name: "empty", token: ""},
			{name: "other token", token: "pps_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
			{name: "without prefix", token: rest},
			{name: "with trailing space", token: tok + " "},
			{name: "the hash itself", token: hashToken(tok)},
			{name: "a device token", token: devTok},
		}
		for _, tt := range unknown {
			t.Run(tt.name, func(t *testing.T) {
				_, err := r.StaffByToken(ctx, tt.token)
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("StaffByToken = %v, want ErrNotFound", err)
				}
				if tt.token != "" && strings.Contains(err.Error(), tt.token) {
					t.Errorf("error %q repeats the token", err)
				}
			})
		}

		if err := r.RevokeStaffTokens(ctx, "alice"); err != nil {
			t.Fatalf("RevokeStaffTokens: %v", err)
		}
		for _, tt := range []struct {
			tok     string
			wantErr error
		}{{tok, ErrNotFound}, {tok2, ErrNotFound}, {bobTok, nil}} {
			if _, err := r.StaffByToken(ctx, tt.tok); !errors.Is(err, tt.wantErr) {
				t.Errorf("StaffByToken after revoking alice's tokens = %v, want %v", err, tt.wantErr)
			}
		}
		if err := r.RevokeStaffTokens(ctx, "alice"); err != nil {
			t.Errorf("RevokeStaffTokens with none left = %v, want nil", err)
		}
		if s, err := r.Authenticate(ctx, "alice", alicePassword); err != nil || !s.Active() {
			t.Errorf("Authenticate after revoking tokens = %+v, %v; want the account still active", s, err)
		}
		tok3, err := r.IssueStaffToken(ctx, "alice", "new laptop")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.StaffByToken(ctx, tok3); err != nil {
			t.Errorf("StaffByToken(token issued after the revocation): %v", err)
		}

		errs := []struct {
			name    string
			do      func() error
			wantErr error
		}{
			{name: "revoke unknown", do: func() error { return r.RevokeStaffTokens(ctx, "nobody") }, wantErr: ErrNotFound},
			{name: "issue unknown", do: func() error { _, err := r.IssueStaffToken(ctx, "nobody", ""); return err }, wantErr: ErrNotFound},
		}
		for _, tt := range errs {
			if err := tt.do(); !errors.Is(err, tt.wantErr) {
				t.Errorf("%s = %v, want %v", tt.name, err, tt.wantErr)
			}
		}
		for _, label := range []string{strings.Repeat("x", 65), "line\nbreak", "tab\there"} {
			if tok, err := r.IssueStaffToken(ctx, "alice", label); err == nil || tok != "" {
				t.Errorf("IssueStaffToken(label %q) = %q, %v; want an error and no token", label, tok, err)
			}
		}
	})
}

// TestStaffByTokenDisabled covers a token left unrevoked on a disabled
// account, which DisableStaff never leaves but an older store might hold.
func TestStaffByTokenDisabled(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		tok, err := r.IssueStaffToken(ctx, "alice", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.db.ExecContext(ctx, r.q(`UPDATE staff SET disabled_at = ? WHERE username = 'alice'`), formatTime(now())); err != nil {
			t.Fatal(err)
		}
		if s, err := r.StaffByToken(ctx, tok); !errors.Is(err, ErrDisabled) || s != (Staff{}) {
			t.Errorf("StaffByToken for a disabled account = %+v, %v; want ErrDisabled", s, err)
		}
	})
}

func TestCareTeam(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		if err := r.AddPatient(ctx, Patient{ID: "p-0"}); err != nil {
			t.Fatal(err)
		}
		if ids, err := r.AssignedPatients(ctx, "alice"); err != nil || ids == nil || len(ids) != 0 {
			t.Errorf("AssignedPatients with none = %#v, %v; want an empty, non-nil slice", ids, err)
		}
		for _, p := range []string{"p-2", "p-0", "p-2", "p-1", "p-2"} { // p-2 thrice: idempotent
			if err := r.AssignPatient(ctx, "alice", p); err != nil {
				t.Fatalf("AssignPatient(alice, %s): %v", p, err)
			}
		}
		if ids, err := r.AssignedPatients(ctx, "alice"); err != nil || strings.Join(ids, " ") != "p-0 p-1 p-2" {
			t.Errorf("AssignedPatients = %q, %v; want p-0 p-1 p-2", ids, err)
		}

		tests := []struct {
			name      string
			do        func() error
			wantErr   error // nil for success
			wantInMsg string
		}{
			{name: "assign to unknown staff", do: func() error { return r.AssignPatient(ctx, "nobody", "p-1") }, wantErr: ErrNotFound, wantInMsg: "staff nobody"},
			{name: "assign unknown patient", do: func() error { return r.AssignPatient(ctx, "alice", "p-404") }, wantErr: ErrNotFound, wantInMsg: "patient p-404"},
			{name: "unassign from unknown staff", do: func() error { return r.UnassignPatient(ctx, "nobody", "p-1") }, wantErr: ErrNotFound, wantInMsg: "staff nobody"},
			{name: "unassign unknown patient", do: func() error { return r.UnassignPatient(ctx, "alice", "p-404") }, wantErr: ErrNotFound, wantInMsg: "patient p-404"},
			{name: "unassign", do: func() error { return r.UnassignPatient(ctx, "alice", "p-1") }},
			{name: "unassign again", do: func() error { return r.UnassignPatient(ctx, "alice", "p-1") }, wantErr: ErrNotFound, wantInMsg: "not assigned"},
			{name: "assigned patients of unknown staff", do: func() error { _, err := r.AssignedPatients(ctx, "nobody"); return err }, wantErr: ErrNotFound, wantInMsg: "nobody"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.do()
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("%s = %v, want %v", tt.name, err, tt.wantErr)
				}
				if err != nil && !strings.Contains(err.Error(), tt.wantInMsg) {
					t.Errorf("error %q does not mention %q", err, tt.wantInMsg)
				}
			})
		}
		if ids, err := r.AssignedPatients(ctx, "alice"); err != nil || strings.Join(ids, " ") != "p-0 p-2" {
			t.Errorf("AssignedPatients after the unassign = %q, %v; want p-0 p-2", ids, err)
		}
	})
}
