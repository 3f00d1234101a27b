package simulate

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
)

// persona is one kind of simulated patient: who they are, which plan
// template their clinician applied, and how their days go. Most respond to
// their treatment; the others each make one rule kind fire.
type persona struct {
	name     string // what the persona shows, e.g. "sleep-decline"
	template string // a plan under examples/plans/
	male     bool
	// day shapes day d of the course (0: the plan's first day; days-1 is
	// yesterday, the last whole day, so that what a persona shows is sent
	// whatever the time of day) as offsets from the responding course.
	day func(d, days int) shape
}

// shape is what a persona's day is like.
type shape struct {
	sleepMin      float64 // nightly total
	hrv           float64 // nightly RMSSD, ms
	flushes       float64 // MRS hot flushes item, 0-4 (women)
	mood          float64 // MRS/AMS depressive mood item
	symptomLevel  float64 // the other items, as a share of their range (0-1)
	checkInEvery  int     // days between check-ins
	doseShare     float64 // share of scheduled doses logged
	watchSilent   bool    // the watch sends nothing
	hematocrit    float64 // men: the month's laboratory result, %
	systolic      float64
	diastolic     float64
	stepsPerDay   float64
	restingHR     float64
	severeSymptom bool // all MRS items high (critical band)
}

// ramp goes from a to b over days [from, to] of the course.
func ramp(d, from, to int, a, b float64) float64 {
	switch {
	case d <= from:
		return a
	case d >= to:
		return b
	}
	return a + (b-a)*float64(d-from)/float64(to-from)
}

// responding is the course of a woman whose estradiol and progesterone
// work: hot flushes fade over five weeks and sleep improves.
func responding(d, days int) shape {
	return shape{sleepMin: ramp(d, 0, 28, 380, 450), hrv: 44, flushes: ramp(d, 0, 35, 3.2, 0.8), mood: 1,
		symptomLevel: ramp(d, 0, 35, 0.45, 0.2), checkInEvery: 1, doseShare: 1, systolic: 122, diastolic: 78,
		stepsPerDay: 7500, restingHR: 62}
}

// personas is the cohort's mix, repeated: the first is the most common.
var personas = []persona{
	{name: "responding", template: "menopause-estradiol-progesterone.yaml", day: responding},
	{name: "sleep-decline", template: "menopause-estradiol-progesterone.yaml", day: func(d, days int) shape {
		s := responding(d, days)
		s.sleepMin = ramp(d, days-12, days-3, s.sleepMin, 330)
		return s
	}},
	{name: "missed-doses", template: "menopause-estradiol-progesterone.yaml", day: func(d, days int) shape {
		s := responding(d, days)
		s.doseShare = ramp(d, days-21, days-14, 1, 0.45)
		return s
	}},
	{name: "silent-watch", template: "menopause-estradiol-progesterone.yaml", day: func(d, days int) shape {
		s := responding(d, days)
		s.watchSilent = d >= days-2
		return s
	}},
	{name: "worsening-mood", template: "menopause-estradiol-progesterone.yaml", day: func(d, days int) shape {
		s := responding(d, days)
		s.mood, s.checkInEvery = ramp(d, days-15, days-1, 0.5, 3.8), 2
		return s
	}},
	{name: "hrv-drop", template: "menopause-estradiol-progesterone.yaml", day: func(d, days int) shape {
		s := responding(d, days)
		if d >= days-3 {
			s.hrv = 27
		}
		return s
	}},
	{name: "rising-flushes", template: "menopause-estradiol-progesterone.yaml", day: func(d, days int) shape {
		s := responding(d, days)
		// Steep enough that the forecast's slope stands clear of the
		// check-ins' rounding to whole scores, with or without today's.
		s.flushes, s.checkInEvery = ramp(d, days-6, days-1, 0, 1.95), 1
		return s
	}},
	{name: "severe-symptoms", template: "menopause-estradiol-progesterone.yaml", day: func(d, days int) shape {
		s := responding(d, days)
		s.severeSymptom = d >= days-4
		return s
	}},
	{name: "testosterone-responding", template: "hypogonadism-testosterone.yaml", male: true, day: func(d, days int) shape {
		return shape{sleepMin: 420, hrv: 48, mood: ramp(d, 0, 28, 3, 1.2), symptomLevel: ramp(d, 0, 28, 0.5, 0.12),
			checkInEvery: 7, doseShare: 1, hematocrit: ramp(d, 0, 60, 44, 48), systolic: 126, diastolic: 80,
			stepsPerDay: 8000, restingHR: 64}
	}},
	{name: "high-hematocrit", template: "hypogonadism-testosterone.yaml", male: true, day: func(d, days int) shape {
		return shape{sleepMin: 410, hrv: 45, mood: 1.5, symptomLevel: 0.3, checkInEvery: 7, doseShare: 1,
			hematocrit: ramp(d, 0, days-1, 47, 55.5), systolic: 134, diastolic: 84, stepsPerDay: 6000, restingHR: 66}
	}},
}

// simSample is one sample of a simulated device, as the envelope carries
// it.
type simSample map[string]any

// deviceDay returns what a patient's watch (MQTT) and phone app (HTTPS)
// send on day d, which starts at dayStart, each sample with its time.
// The regimen's doses are logged on the app as the schedule has them, at
// the persona's share.
func (p persona) deviceDay(rng *rand.Rand, d, days int, dayStart time.Time, regimen []simDose) (watch, app []timed) {
	s := p.day(d, days)
	noise := func(sd float64) float64 { return rng.NormFloat64() * sd }
	if !s.watchSilent {
		// The night ending this morning at about 07:00.
		end := dayStart.Add(7*time.Hour + time.Duration(noise(20))*time.Minute)
		total := math.Max(150, s.sleepMin+noise(18))
		start := end.Add(-time.Duration(total+35) * time.Minute)
		watch = append(watch, timed{end, simSample{"type": "sleep", "start": rfc(start), "end": rfc(end),
			"total_min": round(total), "deep_min": round(total * 0.18), "rem_min": round(total * 0.22),
			"light_min": round(total * 0.55), "awake_min": 35, "efficiency": round2(total / (total + 35)),
			"hrv_rmssd_ms": round(math.Max(5, s.hrv+noise(3))), "resting_hr": round(s.restingHR + noise(2))}})
		for h := 0; h < 24; h++ {
			for m := 5; m < 60; m += 20 {
				bpm := s.restingHR + 8 + noise(4)
				if h >= 9 && h <= 19 {
					bpm += 14 + noise(8)
				}
				at := dayStart.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
				watch = append(watch, timed{at, simSample{"type": "heart_rate", "time": rfc(at), "bpm": round(bpm)}})
			}
		}
		actEnd := dayStart.Add(22 * time.Hour)
		watch = append(watch, timed{actEnd, simSample{"type": "activity", "start": rfc(dayStart.Add(6 * time.Hour)), "end": rfc(actEnd),
			"steps": math.Round(math.Max(500, s.stepsPerDay+noise(1500))), "active_min": round(math.Max(5, 35+noise(12)))}})
	}
	if d%max(s.checkInEvery, 1) == 0 {
		at := dayStart.Add(20*time.Hour + time.Duration(rng.IntN(60))*time.Minute)
		app = append(app, timed{at, p.checkIn(rng, s, at)})
	}
	for _, dose := range regimen {
		for _, due := range dose.due(dayStart, dayStart.Add(24*time.Hour)) {
			if rng.Float64() < s.doseShare {
				at := due.Add(time.Duration(noise(40)) * time.Minute)
				app = append(app, timed{at, simSample{"type": "dose", "time": rfc(at), "medication": dose.Medication,
					"route": dose.Route, "amount": dose.Amount, "unit": dose.Unit}})
			}
		}
	}
	if d%7 == 3 { // a weekly home blood-pressure reading and weight
		at := dayStart.Add(8 * time.Hour)
		app = append(app, timed{at, simSample{"type": "vitals", "time": rfc(at), "systolic": round(s.systolic + noise(5)),
			"diastolic": round(s.diastolic + noise(4)), "weight_kg": round2(72 + noise(0.4))}})
	}
	switch at := dayStart.Add(11 * time.Hour); {
	case p.male && d%30 == 10 || p.male && d == days-1 && p.name == "high-hematocrit": // the month's laboratory results
		app = append(app,
			timed{at, simSample{"type": "lab", "time": rfc(at), "analyte": "hematocrit", "value": round2(s.hematocrit + noise(0.3)),
				"unit": "%", "ref_low": 40, "ref_high": 52}},
			timed{at, simSample{"type": "lab", "time": rfc(at), "analyte": "testosterone", "value": round(520 + noise(60)),
				"unit": "ng/dL", "ref_low": 264, "ref_high": 916}},
			timed{at, simSample{"type": "lab", "time": rfc(at), "analyte": "psa", "value": round2(1.1 + noise(0.1)),
				"unit": "ng/mL", "ref_high": 4}})
	case !p.male && d%30 == 12:
		app = append(app, timed{at, simSample{"type": "lab", "time": rfc(at), "analyte": "estradiol", "value": round(110 + noise(15)),
			"unit": "pg/mL", "ref_low": 30, "ref_high": 400}})
	}
	return watch, app
}

// checkIn is a symptom questionnaire: MRS for women, AMS for men.
func (p persona) checkIn(rng *rand.Rand, s shape, at time.Time) simSample {
	instrument, lo, hi := "mrs", 0.0, 4.0
	if p.male {
		instrument, lo, hi = "ams", 1, 5
	}
	items := map[string]float64{}
	for _, item := range ingest.InstrumentItems(instrument) {
		level := lo + s.symptomLevel*(hi-lo)
		switch {
		case s.severeSymptom:
			level = hi - 0.6
		case item == "hot_flushes":
			level = s.flushes
		case item == "depressive_mood":
			level = s.mood
		}
		// Random rounding keeps a fractional level right on average.
		v := math.Floor(level + rng.Float64())
		items[item] = math.Max(lo, math.Min(hi, v))
	}
	return simSample{"type": "symptoms", "time": rfc(at), "instrument": instrument, "items": items}
}

// timed is a sample with the time it belongs to.
type timed struct {
	at     time.Time
	sample simSample
}

// simDose is a regimen line, with when it is due.
type simDose struct {
	Medication, Route, Unit string
	Amount                  float64
	due                     func(from, to time.Time) []time.Time
}

// envelope is a device message of samples.
func envelope(seq int64, samples []timed) []byte {
	list := make([]simSample, len(samples))
	for i, s := range samples {
		list[i] = s.sample
	}
	b, _ := json.Marshal(map[string]any{"seq": seq, "samples": list})
	return b
}

func rfc(t time.Time) string    { return t.UTC().Format(time.RFC3339) }
func round(v float64) float64   { return math.Round(v) }
func round2(v float64) float64  { return math.Round(v*100) / 100 }
func personaOf(i int) persona   { return personas[PersonaIndex(i)] }
func patientName(i int) string  { return fmt.Sprintf("Sim Patient %03d", i+1) }
func simPatientID(i int) string { return fmt.Sprintf("sim-p%03d", i+1) }
func simWatchID(i int) string   { return fmt.Sprintf("sim-p%03d-watch", i+1) }
func simAppID(i int) string     { return fmt.Sprintf("sim-p%03d-app", i+1) }

// PersonaIndex is the persona of the cohort's patient i, 0 to
// Personas-1.
func PersonaIndex(i int) int {
	// Every persona in the first len(personas) patients; after that half
	// respond, the rest cycle through the others.
	if i < len(personas) || i%2 == 0 {
		return i % len(personas)
	}
	return 1 + i%(len(personas)-1)
}
