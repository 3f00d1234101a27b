package registry

import (
	"errors"
	"strings"
	"testing"
)

func TestPatientNotes(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := WithActor(t.Context(), Actor{Name: "dr-lee", Address: "192.0.2.7"})
		if err := r.AddPatient(ctx, Patient{ID: "p-1", Name: "Jane Roe"}); err != nil {
			t.Fatal(err)
		}
		for _, note := range []string{"Handover: call her Monday about the patch", "  PSA due in March\nremind at visit  "} {
			if _, err := r.AddPatientNote(ctx, "p-1", note); err != nil {
				t.Fatal(err)
			}
		}
		for _, bad := range []string{"", "   ", strings.Repeat("é", MaxNoteChars+1), "bell\a"} {
			if _, err := r.AddPatientNote(ctx, "p-1", bad); !errors.Is(err, ErrInvalidNote) {
				t.Errorf("AddPatientNote(%.20q) = %v, want ErrInvalidNote", bad, err)
			}
		}
		if _, err := r.AddPatientNote(ctx, "p-nobody", "a note"); err == nil {
			t.Error("a note on a patient that does not exist was stored")
		}
		notes, err := r.PatientNotes(ctx, "p-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(notes) != 2 || notes[0].Note != "PSA due in March\nremind at visit" || notes[1].Author != "dr-lee" || notes[0].At.Before(notes[1].At) {
			t.Fatalf("PatientNotes = %+v, want the two, newest first, trimmed, by dr-lee", notes)
		}
		audit, err := r.AuditEntries(ctx, AuditFilter{Action: ActionPatientNote})
		if err != nil {
			t.Fatal(err)
		}
		if len(audit) != 2 || audit[0].Actor != "dr-lee" || audit[0].Patient != "p-1" || !strings.HasPrefix(audit[0].Target, "note ") {
			t.Errorf("audit = %+v, want two patient.note entries by dr-lee naming the notes", audit)
		}
		for _, e := range audit {
			if strings.Contains(e.Target, "PSA") || strings.Contains(e.Target, "Handover") {
				t.Errorf("the audit log holds a note's text: %q", e.Target)
			}
		}
	})
}
