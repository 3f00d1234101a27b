package api

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/registry"
)

// ownerAnalysis judges the patients in mine (an instance that owns their
// partitions), answering each with one adherence verdict of share 0.9,
// and counts the questions about the others.
type ownerAnalysis struct {
	mine   map[string]bool
	others int
}

func (o *ownerAnalysis) PlanChanged(string)  {}
func (o *ownerAnalysis) Owns(id string) bool { return o.mine[id] }
func (o *ownerAnalysis) Verdicts(id string) []analysis.Verdict {
	if !o.mine[id] {
		o.others++
		return nil
	}
	return []analysis.Verdict{{Rule: "mine", Kind: analysis.KindAdherence, Judged: true, Value: 0.9}}
}
func (o *ownerAnalysis) Preview(context.Context, analysis.Plan, int) (*analysis.PlanPreview, error) {
	return nil, nil
}

// TestVerdictsOfAnotherInstance: the patient list and the verdicts
// endpoint answer a patient this instance judges from its evaluator, and
// one another instance judges from the view that instance wrote in the
// registry (verdicts and newest sample), never asking the evaluator.
func TestVerdictsOfAnotherInstance(t *testing.T) {
	an := &ownerAnalysis{mine: map[string]bool{"p-mine": true}}
	ta := newTestAPIWith(t, &fakeSeries{}, func(a *API) { a.analysis = an })
	ctx := t.Context()
	for _, id := range []string{"p-mine", "p-theirs"} {
		if err := ta.reg.AddPatient(ctx, registry.Patient{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	last := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	theirs, _ := json.Marshal([]analysis.Verdict{{Rule: "theirs", Kind: analysis.KindAdherence, Judged: true, Value: 0.4}})
	err := ta.reg.WritePatientViews(ctx, nil, []registry.PatientView{{Patient: "p-theirs", Verdicts: theirs,
		LastData: map[string]time.Time{"dose": last, "sleep": last.Add(-time.Hour)}, JudgedAt: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	tok := ta.staff(t, "ada", registry.RoleClinician, "p-mine", "p-theirs")

	var doc struct {
		Verdicts []analysis.Verdict `json:"verdicts"`
	}
	for id, rule := range map[string]string{"p-mine": "mine", "p-theirs": "theirs"} {
		if code := ta.get(t, tok, "/v1/patients/"+id+"/verdicts", &doc); code != 200 || len(doc.Verdicts) != 1 || doc.Verdicts[0].Rule != rule {
			t.Errorf("GET verdicts of %s: %d %+v, want rule %s", id, code, doc.Verdicts, rule)
		}
	}
	var list struct {
		Patients []PatientSummary `json:"patients"`
	}
	if code := ta.get(t, tok, "/v1/patients", &list); code != 200 || len(list.Patients) != 2 {
		t.Fatalf("GET /v1/patients: %d %+v", code, list)
	}
	for _, p := range list.Patients {
		switch p.ID {
		case "p-mine":
			if p.Adherence == nil || *p.Adherence != 0.9 || p.LastDataAt != nil {
				t.Errorf("p-mine: adherence %v, last data %v; want 0.9 from the evaluator, none", p.Adherence, p.LastDataAt)
			}
		case "p-theirs":
			if p.Adherence == nil || *p.Adherence != 0.4 || p.LastDataAt == nil || !p.LastDataAt.Equal(last) {
				t.Errorf("p-theirs: adherence %v, last data %v; want 0.4 and %v from the view", p.Adherence, p.LastDataAt, last)
			}
		}
	}
	if an.others != 0 {
		t.Errorf("the evaluator was asked %d times about another instance's patient", an.others)
	}
}
