package notify

import (
	"strings"
	"testing"

	"github.com/patientpulse/patientpulse/registry"
)

func TestCheckContact(t *testing.T) {
	const key = "R0UT1NGkeyOfNinaS0wnService32chr"
	tests := []struct {
		name string
		c    registry.StaffContact
		want []string // each in the error; none: valid
	}{
		{"nothing", registry.StaffContact{DigestHour: -1}, nil},
		{"every channel", registry.StaffContact{Email: "first.last+pages@sub.clinic.example", NtfyURL: "https://ntfy.sh/nina-pages",
			PagerDutyKey: key, DigestHour: 0}, nil},
		{"ntfy on loopback", registry.StaffContact{NtfyURL: "http://127.0.0.1:8090/nina", DigestHour: -1}, nil},
		{"ntfy on IPv6 loopback", registry.StaffContact{NtfyURL: "http://[::1]:8090/nina", DigestHour: 23, Email: "n@clinic.example"}, nil},
		{"angle brackets", registry.StaffContact{Email: "<nina@clinic.example>", DigestHour: -1}, []string{"bare address"}},
		{"space", registry.StaffContact{Email: " nina@clinic.example", DigestHour: -1}, []string{"bare address"}},
		{"comment", registry.StaffContact{Email: "nina@clinic.example (Nina)", DigestHour: -1}, []string{"bare address"}},
		{"too long", registry.StaffContact{Email: strings.Repeat("n", 250) + "@c.example", DigestHour: -1}, []string{"at most 254"}},
		{"ntfy elsewhere over http", registry.StaffContact{NtfyURL: "http://ntfy.clinic.example/nina", DigestHour: -1}, []string{"https://"}},
		{"ntfy without host", registry.StaffContact{NtfyURL: "https:///nina", DigestHour: -1}, []string{"no host"}},
		{"key too long", registry.StaffContact{PagerDutyKey: strings.Repeat("a", 65), DigestHour: -1}, []string{"20 to 64"}},
		{"key too short", registry.StaffContact{PagerDutyKey: strings.Repeat("a", 19), DigestHour: -1}, []string{"20 to 64"}},
		{"all wrong", registry.StaffContact{Email: "nina", NtfyURL: "ntfy.sh/nina", PagerDutyKey: "key with spaces in it!", DigestHour: 24},
			[]string{"email", "ntfy URL", "PagerDuty", "digest hour"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckContact(tt.c)
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("CheckContact = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckContact = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CheckContact = %q, want it to say %q", err, w)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tt.want) {
				t.Errorf("CheckContact = %q: %d problems, want %d", err, n, len(tt.want))
			}
			for _, secret := range []string{tt.c.PagerDutyKey, tt.c.NtfyURL} {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Errorf("CheckContact = %q quotes %q", err, secret)
				}
			}
		})
	}
}
