package registry

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckPassword(t *testing.T) {
	tests := []struct {
		name     string
		username string
		password string
		wantMsg  string // part of the error; "" for none
	}{
		{name: "good", username: "alice", password: "lantern-quartz-meadow-71"},
		{name: "good passphrase", username: "bob", password: "correct horse battery staple"},
		{name: "good, digits around an uncommon word", username: "bob", password: "1979zanzibarquokka!"},
		{name: "eleven characters", username: "alice", password: "x7#kq2mz9pw", wantMsg: "at least 12 characters"},
		{name: "over the maximum", username: "alice", password: strings.Repeat("xy", 513), wantMsg: "at most 1024 bytes"},
		{name: "one character repeated", username: "alice", password: "aaaaaaaaaaaa", wantMsg: "repeated"},
		{name: "a pair repeated", username: "alice", password: "x1x1x1x1x1x1x1", wantMsg: "repeated"},
		{name: "a group of four repeated, cut short", username: "alice", password: "zq8!zq8!zq8!z", wantMsg: "repeated"},
		{name: "common", username: "alice", password: "password1234", wantMsg: "commonly used"},
		{name: "common, other case", username: "alice", password: "PassWord1234", wantMsg: "commonly used"},
		{name: "common, long", username: "alice", password: "qwertyuiop123", wantMsg: "commonly used"},
		{name: "common with digits added", username: "alice", password: "iloveyou2024!!", wantMsg: "digits or symbols added"},
		{name: "common with symbols before", username: "alice", password: "!!!!trustno1999", wantMsg: "digits or symbols added"},
		{name: "letters in a row", username: "alice", password: "abcdefghijklm", wantMsg: "consecutive"},
		{name: "digits in a row, wrapping", username: "alice", password: "8901234567890", wantMsg: "consecutive"},
		{name: "digits down", username: "alice", password: "9876543210987", wantMsg: "consecutive"},
		{name: "the username", username: "margaret", password: "margaret-is-here-77", wantMsg: "username"},
		{name: "the username, other case", username: "margaret", password: "xx-MarGaret-xx-77", wantMsg: "username"},
		{name: "a two-letter username inside", username: "al", password: "lantern-quartz-meadow-71"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPassword(tt.username, tt.password)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("CheckPassword = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrWeakPassword) {
				t.Fatalf("CheckPassword = %v, want ErrWeakPassword", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("CheckPassword = %q, want it to say %q", err, tt.wantMsg)
			}
			if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.password)) {
				t.Errorf("CheckPassword = %q repeats the password", err)
			}
		})
	}
}

// TestAddStaffRefusesWeakPasswords: AddStaff and SetPassword apply
// CheckPassword, with the account's own username.
func TestAddStaffRefusesWeakPasswords(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		for _, pw := range []string{"aaaaaaaaaaaa", "password1234", "Margaret's password"} {
			if err := r.AddStaff(ctx, "margaret", RoleClinician, pw); !errors.Is(err, ErrWeakPassword) {
				t.Errorf("AddStaff(margaret, a weak password) = %v, want ErrWeakPassword", err)
			}
		}
		if err := r.AddStaff(ctx, "margaret", RoleClinician, "lantern-quartz-meadow-71"); err != nil {
			t.Fatal(err)
		}
		for _, pw := range []string{"aaaaaaaaaaaa", "password1234", "margaret2026!"} {
			if err := r.SetPassword(ctx, "margaret", pw); !errors.Is(err, ErrWeakPassword) {
				t.Errorf("SetPassword(margaret, a weak password) = %v, want ErrWeakPassword", err)
			}
		}
	})
}
