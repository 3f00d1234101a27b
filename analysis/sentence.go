package analysis

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
)

// metricLabel is how a clinician reads a metric: "sleep" for
// sleep.total_min, "hot flushes" for symptoms.hot_flushes.
func metricLabel(metric, instrument string) string {
	if l, ok := labels[metric]; ok {
		return l
	}
	m, field, _ := strings.Cut(metric, ".")
	if l := ingest.AnalyteLabel(field); m == "labs" && l != "" {
		if len(l) > 1 && l[1] >= 'a' && l[1] <= 'z' { // Estradiol, not PSA
			l = strings.ToLower(l[:1]) + l[1:]
		}
		return l
	}
	if field == "" {
		return strings.ReplaceAll(m, "_", " ")
	}
	l := strings.ReplaceAll(field, "_", " ")
	if m == "symptoms" && instrument != "" && instrument != "custom" {
		return strings.ToUpper(instrument) + " " + l
	}
	return l
}

var labels = map[string]string{
	"sleep.total_min":         "sleep",
	"sleep.deep_min":          "deep sleep",
	"sleep.rem_min":           "REM sleep",
	"sleep.light_min":         "light sleep",
	"sleep.awake_min":         "time awake at night",
	"sleep.efficiency":        "sleep efficiency",
	"sleep.resting_hr":        "resting heart rate",
	"sleep.hrv_rmssd_ms":      "HRV",
	"sleep.skin_temp_dev_c":   "skin temperature deviation",
	"activity.steps":          "steps",
	"activity.active_min":     "active time",
	"activity.energy_kcal":    "active energy",
	"heart_rate.bpm":          "heart rate",
	"heart_rate":              "heart rate",
	"vitals.weight_kg":        "weight",
	"vitals.systolic":         "systolic blood pressure",
	"vitals.diastolic":        "diastolic blood pressure",
	"vitals.hematocrit_pct":   "hematocrit",
	"symptoms.hot_flushes":    "hot flushes",
	"symptoms.sleep_problems": "sleep problems",
}

// formatValue writes a value of metric with its unit: sleep minutes as
// hours (5.9 h), percentages, bpm, kg, mmHg; scores as plain numbers.
func formatValue(metric string, v float64) string {
	m, field, _ := strings.Cut(metric, ".")
	switch {
	case m == "labs":
		return strings.TrimSuffix(strconv.FormatFloat(v, 'g', 3, 64)+" "+ingest.UnitText(ingest.AnalyteUnit(field)), " ")
	case strings.HasPrefix(metric, "sleep.") && strings.HasSuffix(field, "_min"):
		return num(v/60, 1) + " h"
	case metric == "sleep.efficiency":
		return num(v*100, 0) + "%"
	case strings.HasSuffix(field, "_min"):
		return num(v, 0) + " min"
	case field == "bpm" || field == "resting_hr":
		return num(v, 0) + " bpm"
	case strings.HasSuffix(field, "_ms"):
		return num(v, 0) + " ms"
	case field == "weight_kg":
		return num(v, 1) + " kg"
	case field == "systolic" || field == "diastolic":
		return num(v, 0) + " mmHg"
	case strings.HasSuffix(field, "_pct"):
		return num(v, 1) + "%"
	case field == "steps":
		return num(v, 0) + " steps"
	case field == "energy_kcal":
		return num(v, 0) + " kcal"
	case strings.HasSuffix(field, "_c"):
		return num(v, 1) + " °C"
	}
	return num(v, 1)
}

// num writes v with at most prec decimals, without trailing zeros.
func num(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

// planNote is "(plan v3, since 1 Nov)"; for version 0, a draft tried
// over past days, "(this draft)".
func planNote(version int, effective time.Time, loc *time.Location) string {
	if version == 0 {
		return "(this draft)"
	}
	return fmt.Sprintf("(plan v%d, since %s)", version, effective.In(loc).Format("2 Jan"))
}

// describe is the sentence of a rule's verdict; held says whether it
// holds now (for the forecast sentence: whether the forecast holds).
func describe(r *Rule, v verdict, version int, effective time.Time, loc *time.Location, change string) string {
	note := planNote(version, effective, loc)
	label := metricLabel(r.Metric, r.Instrument)
	if !v.judged {
		return fmt.Sprintf("%s not judged: %s %s", ruleSubject(r, label), v.reason, note)
	}
	cmp := "is " + v.side + " the plan's"
	if !v.holds {
		cmp = "is back within the plan's"
	}
	switch r.Kind {
	case KindThreshold:
		subject := fmt.Sprintf("%d-day %s %s", r.Over.Days(), r.Aggregate, label)
		if r.Aggregate == "latest" {
			subject = fmt.Sprintf("latest %s (of %d days)", label, r.Over.Days())
		}
		if change == ChangeForecast || change == ChangeForecastCleared {
			if !v.forecast {
				return fmt.Sprintf("%s: no longer predicted to cross the plan's %s (%s now %s) %s",
					label, formatValue(r.Metric, v.bound), subject, formatValue(r.Metric, v.value), note)
			}
			return fmt.Sprintf("%s: at this rate, %s the plan's %s in about %s (%s now %s) %s",
				label, v.side, formatValue(r.Metric, v.bound), aboutDays(v.forecastDays), subject, formatValue(r.Metric, v.value), note)
		}
		return fmt.Sprintf("%s %s %s %s %s", subject, formatValue(r.Metric, v.value), cmp, formatValue(r.Metric, v.bound), note)
	case KindTrend:
		dir := "rising"
		if v.value < 0 {
			dir = "falling"
		}
		return fmt.Sprintf("%s is %s by %s a day over %d days, %s %s a day %s", label, dir, num(abs(v.value), 2),
			r.Over.Days(), strings.TrimPrefix(cmp, "is "), num(v.bound, 2), note)
	case KindBaseline:
		return fmt.Sprintf("%d-day mean %s is %s standard deviations from its %d-day baseline of %s; %s %s %s",
			r.Recent.Days(), label, num(v.value, 1), r.Baseline.Days(), formatValue(r.Metric, v.reference),
			strings.TrimPrefix(cmp, "is "), num(v.bound, 1), note)
	case KindSilence:
		what := label + " data"
		if v.holds {
			return fmt.Sprintf("no %s for %s h, longer than the plan's %s h %s", what, num(v.value, 0), num(v.bound, 0), note)
		}
		return fmt.Sprintf("%s arrives again %s", what, note)
	case KindAdherence:
		return fmt.Sprintf("%s: %d of %d scheduled doses logged over %d days (%s%%), %s %s%% %s", r.Medication,
			int(v.reference), v.days, r.Over.Days(), num(v.value*100, 0), strings.TrimPrefix(cmp, "is "), num(v.bound*100, 0), note)
	case KindFollowUp:
		return v.detail + " " + note
	case KindTiming:
		if v.detail == "" {
			return fmt.Sprintf("no planned or recent %s is %s %s", procedureWords(r.Procedure), r.timingWords(), note)
		}
		if v.holds {
			return fmt.Sprintf("%s: the plan wants no %s %s %s", v.detail, procedureWords(r.Procedure), r.timingWords(), note)
		}
		return fmt.Sprintf("%s: the plan wants no %s %s; warned before it is done %s", v.detail, procedureWords(r.Procedure), r.timingWords(), note)
	case KindScore:
		subject := strings.ToUpper(r.Instrument) + " " + r.Score
		if r.Over != 0 {
			subject = fmt.Sprintf("%d-day mean %s", r.Over.Days(), subject)
		}
		if v.side == "band" {
			if v.holds {
				return fmt.Sprintf("%s %s is in the %s band or worse (%s or more) %s", subject, num(v.value, 1), r.Band, num(v.bound, 0), note)
			}
			return fmt.Sprintf("%s %s is below the %s band (%s or more) %s", subject, num(v.value, 1), r.Band, num(v.bound, 0), note)
		}
		return fmt.Sprintf("%s %s %s %s %s", subject, num(v.value, 1), cmp, num(v.bound, 1), note)
	}
	return note
}

// timingWords says a timing rule's window: "within 14 days of an
// estradiol dose", "less than 28 days after the start of estradiol".
func (r *Rule) timingWords() string {
	if r.Of != nil {
		return fmt.Sprintf("within %d days of %s", r.NotWithin.Days(), r.Of.words())
	}
	return fmt.Sprintf("less than %d days after %s", r.AtLeast.Days(), r.After.words())
}

// ruleSubject names what a rule judges, for a "not judged" sentence.
func ruleSubject(r *Rule, label string) string {
	switch r.Kind {
	case KindAdherence:
		return r.Medication + " adherence"
	case KindScore:
		return strings.ToUpper(r.Instrument) + " " + r.Score
	case KindTiming:
		return procedureWords(r.Procedure) + " timing"
	case KindFollowUp:
		return "the follow-up (" + r.followUpWhat() + ")"
	}
	return label
}

func aboutDays(d float64) string {
	n := int(d + 0.5)
	if n <= 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", n)
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// Words says what the rule watches for, as a clinician reads a plan:
// "alert when the 7-day mean of sleep (daily sum) is below 7 h".
func (r *Rule) Words() string {
	label := metricLabel(r.Metric, r.Instrument)
	bounds := func(f func(float64) string) string {
		var parts []string
		if r.Below != nil {
			parts = append(parts, "below "+f(*r.Below))
		}
		if r.Above != nil {
			parts = append(parts, "above "+f(*r.Above))
		}
		return strings.Join(parts, " or ")
	}
	value := func(v float64) string { return formatValue(r.Metric, v) }
	switch r.Kind {
	case KindThreshold:
		of := label
		if r.PerDay != "" {
			of += " (daily " + r.PerDay + ")"
		}
		w := fmt.Sprintf("alert when the %d-day %s of %s is %s", r.Over.Days(), r.Aggregate, of, bounds(value))
		if r.Aggregate == "latest" {
			w = fmt.Sprintf("alert when the latest %s of the last %d days is %s", of, r.Over.Days(), bounds(value))
		}
		if r.Forecast > 0 {
			w += fmt.Sprintf("; warn when its trend predicts that within %d days", r.Forecast.Days())
		}
		return w
	case KindTrend:
		var parts []string
		if r.SlopeAbove != nil {
			parts = append(parts, "rises by more than "+num(*r.SlopeAbove, 2)+" a day")
		}
		if r.SlopeBelow != nil {
			parts = append(parts, "falls by more than "+num(abs(*r.SlopeBelow), 2)+" a day")
		}
		return fmt.Sprintf("alert when %s %s over %d days", label, strings.Join(parts, " or "), r.Over.Days())
	case KindBaseline:
		var parts []string
		if r.ZBelow != nil {
			parts = append(parts, num(abs(*r.ZBelow), 1)+" standard deviations below")
		}
		if r.ZAbove != nil {
			parts = append(parts, num(*r.ZAbove, 1)+" standard deviations above")
		}
		return fmt.Sprintf("alert when the %d-day mean of %s is more than %s its %d-day baseline",
			r.Recent.Days(), label, strings.Join(parts, " or "), r.Baseline.Days())
	case KindSilence:
		return fmt.Sprintf("alert when no %s data arrives for %s", label, humanDuration(time.Duration(r.For)))
	case KindAdherence:
		return fmt.Sprintf("alert when fewer than %s%% of scheduled %s doses are logged over %d days",
			num(*r.Below*100, 0), r.Medication, r.Over.Days())
	case KindFollowUp:
		lead, then := r.followUpSpan()
		change := "each regimen change"
		if r.Medication != "" {
			change = "each start or dose change of " + r.Medication
		}
		return fmt.Sprintf("expect %s %s after %s%s, give or take %s; alert when it is overdue", r.followUpWhat(), lead, change, then, spanWords(r.grace()))
	case KindTiming:
		return fmt.Sprintf("%s: warn when one is planned %s, alert when one is done", procedureWords(r.Procedure), r.timingWords())
	case KindScore:
		subject := "the latest " + strings.ToUpper(r.Instrument) + " " + r.Score
		if r.Over > 0 {
			subject = fmt.Sprintf("the %d-day mean %s %s", r.Over.Days(), strings.ToUpper(r.Instrument), r.Score)
		}
		if r.Band != "" {
			floor, _ := bandFloor(r.Instrument, r.Score, r.Band)
			return fmt.Sprintf("alert when %s is in the %s band or worse (%s or more)", subject, r.Band, num(floor, 0))
		}
		return fmt.Sprintf("alert when %s is %s", subject, bounds(func(v float64) string { return num(v, 1) }))
	}
	return r.Kind
}

// Words says a regimen line: "estradiol 0.05 mg transdermal, twice weekly".
func (d Dose) Words() string {
	sched := strings.ReplaceAll(d.Schedule.String(), "_", " ")
	return fmt.Sprintf("%s %s %s %s, %s", d.Medication, num(d.Amount, 3), d.Unit, d.Route, sched)
}

// humanDuration writes 24h as "24 h", 14 days as "14 days".
func humanDuration(d time.Duration) string {
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	return num(d.Hours(), 1) + " h"
}
