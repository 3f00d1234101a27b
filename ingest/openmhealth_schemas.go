package ingest

import (
	"math"
	"strings"
	"time"
)

// The bodies of the Open mHealth and IEEE 1752.1 schemas patientpulse
// takes, read into envelope samples (see openmhealth.go), their time
// frames, and the JSON Pointers problems name.

// readHeartRate: heart-rate 1.x and 2.x, body.heart_rate {value, unit
// "beats/min"}. A time interval (2.0 allows one) is stored at its end.
func readHeartRate(p *omhPoint, body []member) {
	p.begin("heart_rate")
	p.timeFrame(body, "")
	p.unitValue(body, "heart_rate", "heart_rate", "bpm", "beats/min", true)
}

// readStepCount: step-count 1.x and 2.x, body.step_count a number; 3.x,
// {value, unit "steps"}. Either is taken in any version, as emitters mix
// them.
func readStepCount(p *omhPoint, body []member) {
	p.begin("activity")
	p.timeFrame(body, "steps are counted over a time interval")
	raw := memberValue(body, "step_count")
	if len(raw) > 0 && raw[0] == '{' {
		p.unitValue(body, "step_count", "activity", "steps", "steps", true)
		return
	}
	ptr := p.bptr.at("step_count")
	if v, ok := p.number(ptr, raw); ok {
		p.put("steps", v, ptr)
	}
}

// readPhysicalActivity: physical-activity 1.x (omh) and 1.0 (ieee). The
// activity's length is its active minutes; kcal_burned its energy;
// base_movement_quantity (IEEE) its steps. The activity's name, distance
// and intensity are not stored.
func readPhysicalActivity(p *omhPoint, body []member) {
	p.begin("activity")
	if tf, ok := p.timeFrame(body, "an activity is stored with its time interval"); ok {
		p.put("active_min", tf.end.Sub(tf.start).Minutes(), tf.intervalPtr)
	}
	p.unitValue(body, "kcal_burned", "activity", "energy_kcal", "kcal or kJ", false)
	p.unitValue(body, "base_movement_quantity", "activity", "steps", "steps", false)
}

// readSleepDuration: sleep-duration 1.x and 2.x, body.sleep_duration
// {value, unit sec|min|h} over a time interval.
func readSleepDuration(p *omhPoint, body []member) {
	p.begin("sleep")
	p.timeFrame(body, "sleep is stored with its time interval")
	p.unitValue(body, "sleep_duration", "sleep", "total_min", "sec, min or h", true)
}

// readSleepEpisode: sleep-episode 1.x (omh) and 1.0 (ieee). The time
// asleep is total_sleep_time, or else the episode's interval;
// wake_after_sleep_onset is the time awake, and the maintenance efficiency
// the efficiency. Latencies and awakenings are not stored.
func readSleepEpisode(p *omhPoint, body []member) {
	p.begin("sleep")
	tf, ok := p.timeFrame(body, "a sleep episode is stored with its time interval")
	if !p.unitValue(body, "total_sleep_time", "sleep", "total_min", "sec, min or h", false) && ok {
		p.put("total_min", tf.end.Sub(tf.start).Minutes(), tf.intervalPtr)
	}
	p.unitValue(body, "wake_after_sleep_onset", "sleep", "awake_min", "sec, min or h", false)
	p.unitValue(body, "sleep_maintenance_efficiency_percentage", "sleep", "efficiency", "%", false)
}

// readBodyWeight: body-weight 1.x to 3.x, body.body_weight {value, unit
// kg|g|lb}.
func readBodyWeight(p *omhPoint, body []member) {
	p.begin("vitals")
	p.timeFrame(body, "")
	p.unitValue(body, "body_weight", "vitals", "weight_kg", "kg, g or lb", true)
}

// readBloodPressure: blood-pressure 1.x to 4.x, body.systolic_blood_pressure
// and diastolic_blood_pressure {value, unit "mmHg"}.
func readBloodPressure(p *omhPoint, body []member) {
	p.begin("vitals")
	p.timeFrame(body, "")
	p.unitValue(body, "systolic_blood_pressure", "vitals", "systolic", "mmHg", true)
	p.unitValue(body, "diastolic_blood_pressure", "vitals", "diastolic", "mmHg", true)
}

// timeFrame is a data point's effective time frame, in UTC.
type timeFrame struct {
	start, end  time.Time // equal for a date_time
	interval    bool
	intervalPtr jptr // to the time_interval
}

// timeFrame reads body.effective_time_frame into the sample: start and
// end when the sample type is an interval (then why, not "", says why one
// is needed), else time (a time interval's end). ok is false when it
// found a problem.
func (p *omhPoint) timeFrame(body []member, why string) (timeFrame, bool) {
	ptr := p.bptr.at("effective_time_frame")
	ms, ok := p.object(ptr, memberValue(body, "effective_time_frame"))
	if !ok {
		return timeFrame{}, false
	}
	var tf timeFrame
	var startPtr, endPtr jptr
	switch dt, ti := memberValue(ms, "date_time"), memberValue(ms, "time_interval"); {
	case !isNull(ti):
		tf.interval, tf.intervalPtr = true, ptr.at("time_interval")
		if tf.start, tf.end, startPtr, endPtr, ok = p.interval(tf.intervalPtr, ti); !ok {
			return timeFrame{}, false
		}
	case !isNull(dt):
		startPtr, endPtr = ptr.at("date_time"), ptr.at("date_time")
		if tf.end, ok = p.dateTime(endPtr, dt); !ok {
			return timeFrame{}, false
		}
		tf.start = tf.end
	default:
		p.add(ptr, ReasonMissingField, "must have a date_time or a time_interval")
		return timeFrame{}, false
	}
	switch {
	case why == "":
		p.putTime("time", tf.end, endPtr)
	case !tf.interval:
		p.add(ptr.at("date_time"), ReasonInvalidValue, "must be a time_interval: %s", why)
		return timeFrame{}, false
	default:
		p.putTime("start", tf.start, startPtr)
		p.putTime("end", tf.end, endPtr)
	}
	return tf, true
}

// interval reads the time_interval at ptr: start and end, start and
// duration, or end and duration; a date with a part of the day is too
// vague to store. It returns the JSON Pointers the start and end came
// from (a duration's, for a time computed from it).
func (p *omhPoint) interval(ptr jptr, raw []byte) (start, end time.Time, startPtr, endPtr jptr, ok bool) {
	ms, ok := p.object(ptr, raw)
	if !ok {
		return
	}
	s, e, d := memberValue(ms, "start_date_time"), memberValue(ms, "end_date_time"), memberValue(ms, "duration")
	startPtr, endPtr = ptr.at("start_date_time"), ptr.at("end_date_time")
	var dur time.Duration
	okS, okE, okD := true, true, true
	switch {
	case !isNull(s) && !isNull(e):
		start, okS = p.dateTime(startPtr, s)
		end, okE = p.dateTime(endPtr, e)
	case !isNull(s) && !isNull(d):
		start, okS = p.dateTime(startPtr, s)
		dur, okD = p.duration(ptr.at("duration"), d)
		end, endPtr = start.Add(dur), ptr.at("duration")
	case !isNull(e) && !isNull(d):
		end, okE = p.dateTime(endPtr, e)
		dur, okD = p.duration(ptr.at("duration"), d)
		start, startPtr = end.Add(-dur), ptr.at("duration")
	case !isNull(memberValue(ms, "date")):
		p.add(ptr, ReasonInvalidValue, "a date and part_of_day is too vague to store: send start_date_time and end_date_time")
		return time.Time{}, time.Time{}, jptr{}, jptr{}, false
	default:
		p.add(ptr, ReasonMissingField, "must have start_date_time and end_date_time, or one of them and a duration")
		return time.Time{}, time.Time{}, jptr{}, jptr{}, false
	}
	return start, end, startPtr, endPtr, okS && okE && okD
}

// dateTime reads the RFC 3339 date-time at ptr, with any offset, in UTC.
func (p *omhPoint) dateTime(ptr jptr, raw []byte) (time.Time, bool) {
	if b, ok := unquoteBytes(raw); ok {
		if t, err := time.Parse(time.RFC3339, string(b)); err == nil {
			return t.UTC(), true
		}
	}
	p.add(ptr, ReasonBadTime, "must be an RFC 3339 date-time such as 2026-11-22T09:15:00+01:00")
	return time.Time{}, false
}

// durationUnits are the duration-unit-value units patientpulse reads; the
// others (ps, ns, us, wk, Mo, yr) are not lengths of one sample.
var durationUnits = map[string]time.Duration{
	"ms": time.Millisecond, "sec": time.Second, "s": time.Second,
	"min": time.Minute, "h": time.Hour, "d": 24 * time.Hour,
}

// maxDuration bounds a time interval's duration far above what a sample
// may span, so that converting it cannot overflow.
const maxDuration = 1000 * time.Hour

// duration reads the duration-unit-value at ptr.
func (p *omhPoint) duration(ptr jptr, raw []byte) (time.Duration, bool) {
	ms, ok := p.object(ptr, raw)
	if !ok {
		return 0, false
	}
	v, vOK := p.number(ptr.at("value"), memberValue(ms, "value"))
	unit, uOK := p.str(ptr.at("unit"), memberValue(ms, "unit"))
	if !vOK || !uOK {
		return 0, false
	}
	size, ok := durationUnits[string(unit)]
	switch {
	case !ok:
		p.add(ptr.at("unit"), ReasonBadUnit, "must be ms, sec, min, h or d")
		return 0, false
	case v < 0 || v*float64(size) > float64(maxDuration):
		p.add(ptr.at("value"), ReasonOutOfRange, "must be between 0 and %s", words(maxDuration))
		return 0, false
	}
	return time.Duration(math.Round(v * float64(size))), true
}

// putTime adds the sample's time field, which came from the element ptr.
func (p *omhPoint) putTime(field string, t time.Time, ptr jptr) {
	p.sample = append(append(append(p.sample, `,"`...), field...), `":"`...)
	p.sample = append(t.AppendFormat(p.sample, time.RFC3339Nano), '"')
	p.field(field, ptr)
}

// jptr is a JSON Pointer, put together only when a problem names it: a
// base and up to five keys.
type jptr struct {
	base string
	keys [5]string
	n    int
}

// at returns the pointer to the member key of the object j points to.
func (j jptr) at(key string) jptr {
	j.keys[j.n] = key
	j.n++
	return j
}

func (j jptr) String() string {
	var sb strings.Builder
	sb.WriteString(j.base)
	for _, k := range j.keys[:j.n] {
		sb.WriteString("/" + k)
	}
	return sb.String()
}

// memberValue returns the value of the first member named key, nil if none.
func memberValue(ms []member, key string) []byte {
	for _, m := range ms {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// arrayElements splits raw, a valid JSON array, into its elements.
func arrayElements(raw []byte) [][]byte {
	s := scanner{data: raw}
	if s.peek() != '[' {
		return nil
	}
	s.enter()
	var els [][]byte
	for n := 0; s.next(']', n); n++ {
		els = append(els, s.value())
	}
	return els
}
