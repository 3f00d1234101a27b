package registry

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// sessionEndedAt returns the stored ended_at of the session with the given
// id; "" while it has not ended.
func sessionEndedAt(t *testing.T, r *Registry, id string) string {
	t.Helper()
	var ended sql.NullString
	err := r.db.QueryRowContext(t.Context(), r.q(`SELECT ended_at FROM sessions WHERE id_hash = ?`), hashToken(id)).Scan(&ended)
	if err != nil {
		t.Fatalf("session's ended_at: %v", err)
	}
	return ended.String
}

func TestCreateSession(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		at := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))
		id, s, err := r.CreateSession(ctx, "alice", at)
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string]string{"id": id, "CSRF token": s.CSRFToken} {
			raw, err := base64.RawURLEncoding.DecodeString(v)
			if err != nil || len(raw) != 32 {
				t.Errorf("%s %q is not unpadded base64url of 32 bytes: %d bytes, %v", name, v, len(raw), err)
			}
		}
		if id == s.CSRFToken {
			t.Error("the session id and its CSRF token are the same")
		}
		if s.Username != "alice" || !s.CreatedAt.Equal(at) || !s.LastSeenAt.Equal(at) ||
			s.CreatedAt.Location() != time.UTC || s.LastSeenAt.Location() != time.UTC {
			t.Errorf("CreateSession returned %+v, want alice's, created and last seen at %v, in UTC", s, at)
		}

		got, st, err := r.SessionByID(ctx, id)
		if err != nil {
			t.Fatalf("SessionByID: %v", err)
		}
		if got.Username != "alice" || got.CSRFToken != s.CSRFToken || !got.CreatedAt.Equal(at) || !got.LastSeenAt.Equal(at) ||
			got.CreatedAt.Location() != time.UTC || got.LastSeenAt.Location() != time.UTC {
			t.Errorf("SessionByID = %+v, want %+v", got, s)
		}
		if st.Username != "alice" || st.Role != RoleClinician || !st.Active() {
			t.Errorf("SessionByID staff = %+v, want active clinician alice", st)
		}

		// A second session is another one; both live.
		id2, s2, err := r.CreateSession(ctx, "alice", at.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if id2 == id || s2.CSRFToken == s.CSRFToken || id2 == s.CSRFToken || s2.CSRFToken == id {
			t.Error("two sessions share an id or a CSRF token")
		}
		for _, tt := range []struct {
			id   string
			csrf string
			at   time.Time
		}{{id, s.CSRFToken, at}, {id2, s2.CSRFToken, at.Add(time.Minute)}} {
			got, _, err := r.SessionByID(ctx, tt.id)
			if err != nil {
				t.Errorf("SessionByID: %v", err)
				continue
			}
			if got.CSRFToken != tt.csrf || !got.CreatedAt.Equal(tt.at) {
				t.Errorf("SessionByID = %+v, want CSRF token %q created at %v", got, tt.csrf, tt.at)
			}
		}
	})
}

func TestCreateSessionUnique(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		const n = 16
		ids := make([]string, n)
		csrfs := make([]string, n)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, s, err := r.CreateSession(ctx, "alice", time.Now())
				if err != nil {
					errs <- err
					return
				}
				if _, _, err := r.SessionByID(ctx, id); err != nil {
					errs <- err
					return
				}
				ids[i], csrfs[i] = id, s.CSRFToken
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		seen := map[string]bool{}
		for i := range n {
			for _, v := range []string{ids[i], csrfs[i]} {
				if v == "" || seen[v] {
					t.Fatalf("empty or repeated id or CSRF token %q", v)
				}
				seen[v] = true
			}
		}
	})
}

// TestSessionIDNotStored checks that the store keeps the id's hash, never
// the id: neither in the sessions table nor anywhere in its files.
func TestSessionIDNotStored(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, path := openWithStaff(t, be)
		ctx := WithActor(t.Context(), testActor)
		id, s, err := r.CreateSession(ctx, "alice", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		id2, _, err := r.CreateSession(ctx, "alice", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.EndSession(ctx, id2, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := r.EndSessions(ctx, "alice"); err != nil {
			t.Fatal(err)
		}

		rows, err := r.db.QueryContext(ctx, `SELECT id_hash, username, csrf_token, created_at, last_seen_at, COALESCE(ended_at, '') FROM sessions`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		hashes := map[string]bool{}
		var csrfSeen bool
		for rows.Next() {
			var cols [6]string
			if err := rows.Scan(&cols[0], &cols[1], &cols[2], &cols[3], &cols[4], &cols[5]); err != nil {
				t.Fatal(err)
			}
			hashes[cols[0]] = true
			csrfSeen = csrfSeen || cols[2] == s.CSRFToken
			for _, c := range cols {
				if strings.Contains(c, id) || strings.Contains(c, id2) {
					t.Errorf("the sessions table holds a session id in clear: %q", cols)
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if len(hashes) != 2 || !hashes[hashToken(id)] || !hashes[hashToken(id2)] {
			t.Errorf("sessions table ids %v, want the two ids' SHA-256", hashes)
		}
		if !csrfSeen {
			t.Error("the CSRF token is not in the sessions table; the test looks in the wrong place")
		}
		for _, e := range allAudit(t, r) {
			if strings.Contains(e.Target, id) || strings.Contains(e.Target, id2) {
				t.Errorf("audit entry %+v holds a session id", e)
			}
		}

		check := func(when string) {
			t.Helper()
			files := storedContents(t, be, path)
			hashSeen := false
			for f, b := range files {
				for _, v := range []string{id, id2} {
					if bytes.Contains(b, []byte(v)) {
						t.Errorf("%s: %s contains a session id", when, f)
					}
				}
				hashSeen = hashSeen || bytes.Contains(b, []byte(hashToken(id)))
			}
			if !hashSeen {
				t.Errorf("%s: the id's hash is in none of %v; the test looks in the wrong place", when, slices.Sorted(maps.Keys(files)))
			}
		}
		check("while open")
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		check("after close")
	})
}

func TestTouchSession(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		t0 := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
		id, _, err := r.CreateSession(ctx, "alice", t0)
		if err != nil {
			t.Fatal(err)
		}
		other, _, err := r.CreateSession(ctx, "alice", t0)
		if err != nil {
			t.Fatal(err)
		}
		t1 := t0.Add(5*time.Minute + 42*time.Nanosecond).In(time.FixedZone("UTC+2", 2*3600))
		if err := r.TouchSession(ctx, id, t1); err != nil {
			t.Fatal(err)
		}
		s, _, err := r.SessionByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !s.LastSeenAt.Equal(t1) || s.LastSeenAt.Location() != time.UTC || !s.CreatedAt.Equal(t0) {
			t.Errorf("after TouchSession(%v): %+v, want last seen then, in UTC, and created at %v", t1, s, t0)
		}
		if s, _, err := r.SessionByID(ctx, other); err != nil || !s.LastSeenAt.Equal(t0) {
			t.Errorf("the other session: %+v, %v; want it last seen at %v still", s, err, t0)
		}

		// An unknown or ended session is not an error, and stays unknown or ended.
		for _, unknown := range []string{"", "no-such-session", hashToken(id)} {
			if err := r.TouchSession(ctx, unknown, t1); err != nil {
				t.Errorf("TouchSession(%q) = %v, want nil", unknown, err)
			}
		}
		t2 := t1.Add(time.Minute)
		if err := r.EndSession(ctx, id, t2); err != nil {
			t.Fatal(err)
		}
		if err := r.TouchSession(ctx, id, t2.Add(time.Minute)); err != nil {
			t.Errorf("TouchSession of an ended session = %v, want nil", err)
		}
		if _, _, err := r.SessionByID(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("SessionByID after touching an ended session = %v, want ErrNotFound", err)
		}
		var seen string
		if err := r.db.QueryRowContext(ctx, r.q(`SELECT last_seen_at FROM sessions WHERE id_hash = ?`), hashToken(id)).Scan(&seen); err != nil {
			t.Fatal(err)
		}
		if want := formatTime(t1); seen != want {
			t.Errorf("an ended session's last_seen_at moved to %s, want %s", seen, want)
		}
	})
}

func TestEndSession(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		t0 := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
		id, _, err := r.CreateSession(ctx, "alice", t0)
		if err != nil {
			t.Fatal(err)
		}
		other, _, err := r.CreateSession(ctx, "alice", t0)
		if err != nil {
			t.Fatal(err)
		}
		audited := lastAuditID(t, r)

		end := t0.Add(time.Hour)
		if err := r.EndSession(ctx, id, end); err != nil {
			t.Fatal(err)
		}
		_, _, err = r.SessionByID(ctx, id)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("SessionByID of an ended session = %v, want ErrNotFound", err)
		}
		if strings.Contains(err.Error(), id) {
			t.Errorf("error %q repeats the session id", err)
		}
		if got := sessionEndedAt(t, r, id); got != formatTime(end) {
			t.Errorf("ended_at = %q, want %q", got, formatTime(end))
		}
		if _, _, err := r.SessionByID(ctx, other); err != nil {
			t.Errorf("the other session: %v; want it alive", err)
		}

		// Again, later: not an error, and the first end stands.
		if err := r.EndSession(ctx, id, end.Add(time.Hour)); err != nil {
			t.Errorf("ending twice = %v, want nil", err)
		}
		if got := sessionEndedAt(t, r, id); got != formatTime(end) {
			t.Errorf("ending twice moved ended_at to %q, want %q", got, formatTime(end))
		}
		for _, unknown := range []string{"", "no-such-session", hashToken(other)} {
			if err := r.EndSession(ctx, unknown, end); err != nil {
				t.Errorf("EndSession(%q) = %v, want nil", unknown, err)
			}
		}
		if _, _, err := r.SessionByID(ctx, other); err != nil {
			t.Errorf("the other session after ending unknown ones: %v; want it alive", err)
		}
		// Ending one session is the server's to record, not the registry's.
		if got := auditAfter(t, r, audited); len(got) != 0 {
			t.Errorf("EndSession recorded %+v, want nothing", got)
		}
	})
}

func TestSessionByIDUnknown(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		id, s, err := r.CreateSession(ctx, "alice", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			id   string
		}{
			{name: "empty", id: ""},
			{name: "other id", id: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
			{name: "id cut short", id: id[:len(id)-1]},
			{name: "id with trailing space", id: id + " "},
			{name: "id in upper case", id: strings.ToUpper(id)},
			{name: "the id's hash", id: hashToken(id)},
			{name: "the CSRF token", id: s.CSRFToken},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tt.id == id {
					t.Fatalf("the variant %q is the id itself: the case would test nothing", tt.name)
				}
				_, _, err := r.SessionByID(ctx, tt.id)
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("SessionByID = %v, want ErrNotFound", err)
				}
				if tt.id != "" && strings.Contains(err.Error(), tt.id) {
					t.Errorf("error %q repeats the id", err)
				}
				if strings.Contains(err.Error(), id) {
					t.Errorf("error %q repeats the real session's id", err)
				}
			})
		}
	})
}

func TestCreateSessionErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		if err := r.AddStaff(ctx, "bob", RoleOnCall, "the on-call's long password"); err != nil {
			t.Fatal(err)
		}
		if err := r.DisableStaff(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			username string
			want     error
		}{
			{"nobody", ErrNotFound},
			{"", ErrNotFound},
			{"Alice", ErrNotFound},
			{"bob", ErrDisabled},
		} {
			t.Run(tt.username, func(t *testing.T) {
				id, s, err := r.CreateSession(ctx, tt.username, time.Now())
				if !errors.Is(err, tt.want) {
					t.Fatalf("CreateSession(%q) = %v, want %v", tt.username, err, tt.want)
				}
				if id != "" || s != (Session{}) {
					t.Errorf("CreateSession(%q) failed but returned %q, %+v", tt.username, id, s)
				}
				var n int
				if err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%d sessions stored after failed CreateSession calls, want 0", n)
				}
			})
		}
	})
}

// TestAccountChangesEndSessions checks that a new password, a disabled
// account and a sign-out everywhere end every session of that account and
// no other, and record their one audit entry.
func TestAccountChangesEndSessions(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		tests := []struct {
			name   string
			do     func(ctx context.Context, r *Registry) error
			action string
		}{
			{name: "SetPassword", action: ActionStaffPassword, do: func(ctx context.Context, r *Registry) error {
				return r.SetPassword(ctx, "alice", "her new long password")
			}},
			{name: "DisableStaff", action: ActionStaffDisable, do: func(ctx context.Context, r *Registry) error {
				return r.DisableStaff(ctx, "alice")
			}},
			{name: "EndSessions", action: ActionStaffSignOut, do: func(ctx context.Context, r *Registry) error {
				return r.EndSessions(ctx, "alice")
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r, _ := openWithStaff(t, be)
				ctx := t.Context()
				if err := r.AddStaff(ctx, "bob", RoleOnCall, "the on-call's long password"); err != nil {
					t.Fatal(err)
				}
				t0 := time.Now().Add(-time.Hour)
				var alices []string
				for range 3 {
					id, _, err := r.CreateSession(ctx, "alice", t0)
					if err != nil {
						t.Fatal(err)
					}
					alices = append(alices, id)
				}
				bobs, _, err := r.CreateSession(ctx, "bob", t0)
				if err != nil {
					t.Fatal(err)
				}
				// One of alice's sessions ended already; its end must stand.
				earlier := t0.Add(time.Minute)
				if err := r.EndSession(ctx, alices[2], earlier); err != nil {
					t.Fatal(err)
				}
				before := lastAuditID(t, r)
				start := time.Now()

				if err := tt.do(WithActor(ctx, testActor), r); err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}

				for i, id := range alices {
					_, _, err := r.SessionByID(ctx, id)
					if !errors.Is(err, ErrNotFound) {
						t.Errorf("alice's session %d: SessionByID = %v, want ErrNotFound", i, err)
					}
					ended, perr := parseTime(sessionEndedAt(t, r, id))
					if perr != nil {
						t.Errorf("alice's session %d: ended_at: %v", i, perr)
						continue
					}
					if i == 2 {
						if !ended.Equal(earlier) {
							t.Errorf("the session ended before moved its end to %v, want %v", ended, earlier)
						}
					} else if ended.Before(start.Add(-time.Second)) || ended.After(time.Now().Add(time.Second)) {
						t.Errorf("alice's session %d ended at %v, want about now", i, ended)
					}
				}
				if s, _, err := r.SessionByID(ctx, bobs); err != nil || s.Username != "bob" {
					t.Errorf("bob's session: %+v, %v; want it alive", s, err)
				}
				if got := sessionEndedAt(t, r, bobs); got != "" {
					t.Errorf("bob's session ended at %s, want not ended", got)
				}

				got := auditAfter(t, r, before)
				if len(got) != 1 {
					t.Fatalf("%s recorded %d entries, want 1: %+v", tt.name, len(got), got)
				}
				want := AuditEntry{ID: got[0].ID, At: got[0].At, Actor: testActor.Name, Address: testActor.Address,
					Action: tt.action, Target: "alice", Outcome: OutcomeOK}
				if got[0] != want {
					t.Errorf("entry = %+v, want %+v", got[0], want)
				}

				// A new session works again unless the account is disabled.
				_, _, err = r.CreateSession(ctx, "alice", time.Now())
				if tt.name == "DisableStaff" {
					if !errors.Is(err, ErrDisabled) {
						t.Errorf("CreateSession after DisableStaff = %v, want ErrDisabled", err)
					}
				} else if err != nil {
					t.Errorf("CreateSession after %s: %v", tt.name, err)
				}
			})
		}
	})
}

func TestEndSessions(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := WithActor(t.Context(), testActor)
		id, _, err := r.CreateSession(ctx, "alice", time.Now())
		if err != nil {
			t.Fatal(err)
		}

		before := lastAuditID(t, r)
		if err := r.EndSessions(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Errorf("EndSessions(nobody) = %v, want ErrNotFound", err)
		}
		if got := auditAfter(t, r, before); len(got) != 0 {
			t.Errorf("EndSessions(nobody) recorded %+v", got)
		}
		if _, _, err := r.SessionByID(ctx, id); err != nil {
			t.Errorf("alice's session after EndSessions(nobody): %v", err)
		}

		// Signing out everywhere with no session is no error, and is recorded.
		if err := r.EndSessions(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if err := r.EndSessions(ctx, "alice"); err != nil {
			t.Errorf("EndSessions with no session left = %v, want nil", err)
		}
		got := auditAfter(t, r, before)
		if len(got) != 2 || got[0].Action != ActionStaffSignOut || got[1].Action != ActionStaffSignOut ||
			got[0].Target != "alice" || got[0].Actor != testActor.Name {
			t.Errorf("two EndSessions recorded %+v, want two staff.signout entries for alice by %s", got, testActor.Name)
		}
	})
}

// TestSessionOfDisabledAccount: DisableStaff ends the account's sessions,
// so SessionByID finds them ended (ErrNotFound). A session still open on a
// disabled account, which the registry itself never leaves behind, is
// refused with ErrDisabled.
func TestSessionOfDisabledAccount(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openWithStaff(t, be)
		ctx := t.Context()
		id, _, err := r.CreateSession(ctx, "alice", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.DisableStaff(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		_, _, err = r.SessionByID(ctx, id)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("SessionByID after DisableStaff = %v, want ErrNotFound (the session ended)", err)
		}
		if strings.Contains(err.Error(), id) {
			t.Errorf("error %q repeats the session id", err)
		}

		t.Run("open session, disabled account", func(t *testing.T) {
			r, _ := openWithStaff(t, be)
			id, _, err := r.CreateSession(ctx, "alice", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.db.ExecContext(ctx, r.q(`UPDATE staff SET disabled_at = ? WHERE username = 'alice'`), formatTime(time.Now())); err != nil {
				t.Fatal(err)
			}
			s, st, err := r.SessionByID(ctx, id)
			if !errors.Is(err, ErrDisabled) {
				t.Fatalf("SessionByID = %v, want ErrDisabled", err)
			}
			if strings.Contains(err.Error(), id) {
				t.Errorf("error %q repeats the session id", err)
			}
			if s != (Session{}) || st != (Staff{}) {
				t.Errorf("SessionByID failed but returned %+v, %+v", s, st)
			}
		})
	})
}
