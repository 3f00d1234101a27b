package analysis

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
)

// PatientsValues reads the fake's values as ingest.Influx does: of the
// asked fields only, "seq" standing for one value per stored point (the
// fake keeps no seq: a point is a time and tags), only the asked tags,
// and with Latest only the newest value of each field and tags.
func (s *evSource) PatientsValues(ctx context.Context, q ingest.ValuesQuery, fn func(string, ingest.StoredValue) error) error {
	type taken struct {
		patient string
		v       ingest.StoredValue
	}
	s.mu.Lock()
	var out []taken
	for _, id := range q.Patients {
		points := map[string]bool{}
		newest := map[string]int{} // field and tags → index in out
		keep := func(v ingest.StoredValue) {
			tags := map[string]string{}
			for _, k := range q.Tags {
				if val := v.Tags[k]; val != "" {
					tags[k] = val
				}
			}
			v.Tags = tags
			if !q.Latest {
				out = append(out, taken{id, v})
				return
			}
			series := fmt.Sprint(v.Field, tags)
			if i, ok := newest[series]; !ok {
				newest[series] = len(out)
				out = append(out, taken{id, v})
			} else if v.Time.After(out[i].v.Time) {
				out[i].v = v
			}
		}
		for _, v := range s.values[id] {
			if v.Measurement != q.Measurement || v.Time.Before(q.From) || !v.Time.Before(q.To) {
				continue
			}
			if slices.Contains(q.Fields, v.Field) {
				keep(v)
			}
			point := fmt.Sprint(v.Time.UnixNano(), v.Tags)
			if slices.Contains(q.Fields, "seq") && !points[point] {
				points[point] = true
				keep(ingest.StoredValue{Measurement: v.Measurement, Field: "seq", Value: float64(len(points)), Time: v.Time, Tags: v.Tags})
			}
		}
	}
	s.reads++
	s.mu.Unlock()
	for i := len(out) - 1; i >= 0; i-- {
		if err := fn(out[i].patient, out[i].v); err != nil {
			return err
		}
	}
	return nil
}

// PatientsNewest is Newest for each patient.
func (s *evSource) PatientsNewest(ctx context.Context, patients []string, measurement, field string, fn func(string, time.Time) error) error {
	for _, id := range patients {
		t, ok, err := s.Newest(ctx, id, measurement, field)
		if err != nil {
			return err
		}
		if ok {
			if err := fn(id, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// ruleView is what the patient's rules read of what a rebuild took in,
// for comparing two rebuilds: of a series that a silence reads, its
// newest sample's time; that a score of the latest check-in reads, its
// newest sample's time and value; of one that another rule
// reads, the stats of each day it keeps up to now; the doses; the rule
// states. A bulk rebuild reads each field as far back as its rules look
// (a silence only the newest point), the per-patient rebuild every field
// of the measurement as far back as any rule looks: what lies beyond a
// rule's reach may differ.
func ruleView(p *patient, clk clock, now time.Time) string {
	var b strings.Builder
	today := clk.dayOf(now)
	for _, s := range p.series {
		var latest, score, window bool
		for _, v := range p.versions {
			for i := range v.Rules {
				r := &v.Rules[i]
				if k, _, _, ok := r.seriesKey(); !ok || k != s.key {
					continue
				}
				switch {
				case r.Kind == KindSilence:
					latest = true
				case r.Kind == KindScore && r.Over == 0:
					score = true
				default:
					window = true
				}
			}
		}
		fmt.Fprintf(&b, "%s.%s|%s:", s.key.measurement, s.key.field, s.key.instrument)
		if latest || score {
			fmt.Fprintf(&b, " newest %d", s.newest)
		}
		if score {
			fmt.Fprintf(&b, " (%v)", s.newestVal)
		}
		if window {
			n := day(len(s.days))
			if s.sparse != nil {
				n = s.sparse.keep
			}
			for d := today - n + 1; d <= today; d++ {
				if st := s.at(d); st != nil {
					fmt.Fprintf(&b, " %d:%+v", d, *st)
				}
			}
		}
		b.WriteString("\n")
	}
	for _, d := range p.doses {
		fmt.Fprintf(&b, "doses %s %v\n", d.medication, d.times)
	}
	states := slices.Clone(p.states)
	slices.SortFunc(states, func(a, b namedState) int { return strings.Compare(a.rule, b.rule) })
	fmt.Fprintf(&b, "states %v dirty %v announce %v\n", states, p.dirty, p.announce)
	return b.String()
}

// sortedIDs are the patients held by e.
func sortedIDs(e *Evaluator) []string { return slices.Sorted(maps.Keys(e.patients)) }

// TestEvaluatorLoad takes over patients whose plans arrived after the
// start, as a partition's new owner does: Load returns once they are
// rebuilt (in bulk: two patients) and judged, their transitions recorded,
// and lets go of a patient without a plan.
func TestEvaluatorLoad(t *testing.T) {
	f := newEvFixture(t, "load-a", "load-b", "load-none")
	e, _ := f.evaluator(evConfig())
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	for _, id := range []string{"load-a", "load-b"} {
		f.savePlan(id, evEff1, nil, evSleepRule("sleep-short", 420))
		for d := 3; d <= 9; d++ {
			f.src.put(id, evSleep(evAt(d, 7), 300))
		}
	}
	if err := e.Load(f.ctx, []string{"load-a", "load-b", "load-none"}); err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, id := range []string{"load-a", "load-b"} {
		vs := e.Verdicts(id)
		if len(vs) != 1 || !vs[0].Holds {
			t.Errorf("%s: verdicts %+v; want sleep-short holding", id, vs)
		}
		evWantChanges(t, id, evChangesOnly(f.transitions(id)), "sleep-short:"+ChangeFired)
	}
	if vs := e.Verdicts("load-none"); vs != nil {
		t.Errorf("load-none, without a plan: verdicts %+v", vs)
	}
}

// TestAllReads checks what loadAll's queries read and what each patient
// is given of them: a measurement's every-value reads merged into one
// query from the oldest read, the newest-value reads alone, and a
// patient given only the fields and span its own reads ask for.
func TestAllReads(t *testing.T) {
	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	ago := func(days int) time.Time { return now.AddDate(0, 0, -days) }
	groups := map[readKey][]string{
		{"sleep", ago(8), "total_min", false}:     {"a"},
		{"sleep", ago(32), "hrv_rmssd_ms", false}: {"a", "b"},
		{"sleep", ago(2), "seq", true}:            {"c"},
		{"dose", ago(18), "seq", false}:           {"a"},
		{"dose", ago(57), "seq", false}:           {"b"},
	}
	reads := allReads(groups)
	var got []string
	for _, r := range reads {
		got = append(got, fmt.Sprintf("%s %s %s %v %v", r.key.measurement, r.key.from.Format(time.DateOnly), r.key.fields, r.key.latest, r.ids))
	}
	want := []string{
		"dose 2026-10-09 seq false [b a]",
		"sleep 2026-11-03 hrv_rmssd_ms,total_min false [a b]",
		"sleep 2026-12-03 seq true [c]",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("queries:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	read := map[string]allRead{}
	for _, r := range reads {
		read[r.key.measurement+fmt.Sprint(r.key.latest)] = r
	}
	for _, tc := range []struct {
		name, query, patient, field string
		days                        int
		want                        bool
	}{
		{"a's dose within its 18 days", "dosefalse", "a", "seq", 10, true},
		{"a's dose beyond its 18 days, within b's 57", "dosefalse", "a", "seq", 30, false},
		{"b's dose within its 57 days", "dosefalse", "b", "seq", 30, true},
		{"a's sleep total within its 8 days", "sleepfalse", "a", "total_min", 5, true},
		{"a's sleep total beyond its 8 days, within its HRV's 32", "sleepfalse", "a", "total_min", 20, false},
		{"a's HRV within its 32 days", "sleepfalse", "a", "hrv_rmssd_ms", 20, true},
		{"b's sleep total: only a reads it", "sleepfalse", "b", "total_min", 5, false},
		{"c's sleep: its read is another query", "sleepfalse", "c", "total_min", 1, false},
		{"a patient no read asks for", "sleepfalse", "z", "hrv_rmssd_ms", 1, false},
		{"c's newest sleep", "sleeptrue", "c", "seq", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := ingest.StoredValue{Measurement: "sleep", Field: tc.field, Time: ago(tc.days)}
			if got := slices.ContainsFunc(read[tc.query].asks[tc.patient], func(a readAsk) bool { return a.wants(v) }); got != tc.want {
				t.Errorf("given: %v, want %v", got, tc.want)
			}
		})
	}
}
