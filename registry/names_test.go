package registry

import (
	"errors"
	"strings"
	"testing"
)

func TestAddPatientNames(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		tests := []struct {
			name    string
			patient string
			wantMsg string // part of the error; "" for none
		}{
			{name: "none", patient: ""},
			{name: "plain", patient: "Ann O'Neil-Smith"},
			{name: "accents and scripts", patient: "Zoë Ångström 李小龍 محمد"},
			{name: "a joiner in a Persian name", patient: "می\u200cخواهم"},
			{name: "200 characters", patient: strings.Repeat("é", 200)},
			{name: "201 characters", patient: strings.Repeat("é", 201), wantMsg: "at most 200 characters (it has 201)"},
			{name: "a terminal escape", patient: "Ann\x1b[2J\x1b[31mOwned", wantMsg: "character 4 is U+001B"},
			{name: "a new line", patient: "Ann\nroot:x:0", wantMsg: "character 4 is U+000A"},
			{name: "a tab", patient: "Ann\tSmith", wantMsg: "U+0009"},
			{name: "a C1 control", patient: "Ann\u009bSmith", wantMsg: "U+009B"},
			{name: "a bidi override", patient: "Ann\u202eSmith", wantMsg: "U+202E"},
			{name: "a no-break space", patient: "Ann\u00a0Smith", wantMsg: "U+00A0"},
			{name: "not UTF-8", patient: "Ann\xffSmith", wantMsg: "UTF-8"},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id := "p-" + string(rune('a'+i))
				err := r.AddPatient(t.Context(), Patient{ID: id, Name: tt.patient})
				if tt.wantMsg == "" {
					if err != nil {
						t.Fatalf("AddPatient = %v, want nil", err)
					}
					p, err := r.Patient(t.Context(), id)
					if err != nil || p.Name != tt.patient {
						t.Fatalf("Patient = %q, %v; want the name stored", p.Name, err)
					}
					return
				}
				if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("AddPatient = %v, want ErrInvalidName saying %q", err, tt.wantMsg)
				}
				if strings.Contains(err.Error(), "Smith") || strings.Contains(err.Error(), "Ann") {
					t.Errorf("AddPatient = %q repeats the name", err)
				}
				if _, err := r.Patient(t.Context(), id); !errors.Is(err, ErrNotFound) {
					t.Errorf("refused patient stored anyway: %v", err)
				}
			})
		}
	})
}

func TestPrintableName(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "plain", in: "Ann Smith", want: "Ann Smith"},
		{name: "accents", in: "Zoë 李", want: "Zoë 李"},
		{name: "escape", in: "Ann\x1b[2J", want: `"Ann\x1b[2J"`},
		{name: "new line", in: "Ann\nBob", want: `"Ann\nBob"`},
		{name: "bidi override", in: "Ann\u202e", want: `"Ann\u202e"`},
		{name: "not UTF-8", in: "Ann\xff", want: `"Ann\xff"`},
		{name: "starts with a quote", in: `"Ann"`, want: `"\"Ann\""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PrintableName(tt.in); got != tt.want {
				t.Errorf("PrintableName(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
