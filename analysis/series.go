package analysis

import (
	"math/bits"
	"slices"
	"time"
)

// day is a calendar day in the clinic's time zone, counted from
// 1970-01-01.
type day int32

// clock turns times into days of one time zone.
type clock struct{ loc *time.Location }

// dayOf returns t's day.
func (c clock) dayOf(t time.Time) day {
	y, m, d := t.In(c.loc).Date()
	return day(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// start returns the time d begins.
func (c clock) start(d day) time.Time {
	u := time.Unix(int64(d)*86400, 0).UTC()
	return time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, c.loc)
}

// firstDayFrom returns the first day that starts at or after t.
func (c clock) firstDayFrom(t time.Time) day {
	d := c.dayOf(t)
	if c.start(d).Before(t) {
		d++
	}
	return d
}

// stats sums up one day of one metric: 28 bytes.
type stats struct {
	count   uint32 // a 1 Hz heart-rate strap sends 86,400 a day
	lastMin uint16 // minute of the day of the last sample, for last
	hours   uint32 // bit h: a sample in hour h (wear time)
	sum     float32
	min     float32
	max     float32
	last    float32
}

func (s *stats) add(v float64, minute int) {
	f := float32(v)
	if s.count == 0 || f < s.min {
		s.min = f
	}
	if s.count == 0 || f > s.max {
		s.max = f
	}
	if s.count == 0 || uint16(minute) >= s.lastMin {
		s.last, s.lastMin = f, uint16(minute)
	}
	s.sum += f
	s.count++
	s.hours |= 1 << (minute / 60)
}

// wearHours is how many distinct hours of the day have samples.
func (s *stats) wearHours() int { return bits.OnesCount32(s.hours) }

// perDay rolls the day up as a rule's per_day asks.
func (s *stats) perDay(how string) float64 {
	switch how {
	case "sum":
		return float64(s.sum)
	case "min":
		return float64(s.min)
	case "max":
		return float64(s.max)
	case "count":
		return float64(s.count)
	case "last":
		return float64(s.last)
	default: // mean
		return float64(s.sum) / float64(s.count)
	}
}

// series is one metric of one patient: the stats of its last len(days)
// days, in a ring whose newest day is head, and the time of its newest
// sample. A series of lab results, a few days a month over windows of
// months, keeps only its days with results (sparse) instead.
type series struct {
	key       seriesKey
	days      []stats
	sparse    *sparseDays
	head      day
	newest    int64   // unix seconds of the newest sample; 0 when none
	newestVal float32 // its value
	// recent are the times of the last samples taken in, so that a
	// message delivered again (after a lost acknowledgement) is not
	// counted twice. It covers the records of sleep, symptoms, vitals and
	// doses; for heart rate and activity a repeat moves only a count.
	recent [8]uint32 // unix seconds
	next   int
	// held is newest as it was before the message being taken in (see
	// patient.take); 0 while reading back from InfluxDB.
	held int64
}

// seriesKey names what a series holds: measurement.field, and for
// symptoms the instrument ("" for every instrument). A field of "" holds
// every sample of the measurement (silence).
type seriesKey struct {
	measurement, field, instrument string
}

// takes reports whether a sample belongs to the series of k.
func (k seriesKey) takes(s Sample) bool {
	return k.measurement == s.Measurement && (k.instrument == "" || k.instrument == s.Instrument) &&
		(k.field == s.Field || k.field == "" && s.Field != "")
}

// sparseDays are the days with samples among the last keep days up to
// a series' head, oldest first.
type sparseDays struct {
	keep  day
	dated []datedStats
}

type datedStats struct {
	d  day
	st stats
}

func newSeries(k seriesKey, keep int) *series {
	if k.measurement == "labs" {
		return &series{key: k, sparse: &sparseDays{keep: day(keep)}}
	}
	return &series{key: k, days: make([]stats, keep)}
}

// add records a value at t of day d, unless a value at t was among the
// last ones taken in. It reports unsure when the value is no newer than
// what the series held before the message being taken in and may repeat
// a value taken in before the last ones (a resent document longer than
// recent, or another device's late samples): counted once or twice, the
// series may then be wrong until it is read back from InfluxDB.
func (s *series) add(d day, t time.Time, minute int, v float64) (unsure bool) {
	u := t.Unix()
	for _, r := range s.recent {
		if int64(r) == u && u != 0 {
			return false
		}
	}
	unsure = u <= s.held
	s.recent[s.next] = uint32(u)
	s.next = (s.next + 1) % len(s.recent)
	if u > s.newest {
		s.newest, s.newestVal = u, float32(v)
	}
	if s.sparse != nil {
		s.addSparse(d, minute, v)
		return unsure
	}
	n := day(len(s.days))
	switch {
	case n == 0:
		return unsure
	case d > s.head:
		// Clear the days the ring moves past.
		for x := s.head + 1; x <= d && x <= s.head+n; x++ {
			s.days[int(x)%int(n)] = stats{}
		}
		if d > s.head+n { // everything was older than the new window
			clear(s.days)
		}
		s.head = d
	case d <= s.head-n:
		return unsure // older than what is kept
	}
	s.days[int(d)%int(n)].add(v, minute)
	return unsure
}

// addSparse is add for a sparse series.
func (s *series) addSparse(d day, minute int, v float64) {
	sp := s.sparse
	if d > s.head || len(sp.dated) == 0 {
		s.head = max(s.head, d)
		sp.dated = slices.DeleteFunc(sp.dated, func(x datedStats) bool { return x.d <= s.head-sp.keep })
	}
	if d <= s.head-sp.keep {
		return // older than what is kept
	}
	i, found := slices.BinarySearchFunc(sp.dated, d, compareDay)
	if !found {
		sp.dated = slices.Insert(sp.dated, i, datedStats{d: d})
	}
	sp.dated[i].st.add(v, minute)
}

func compareDay(x datedStats, d day) int { return int(x.d - d) }

// at returns the stats of day d, or nil when d is not kept or has none.
func (s *series) at(d day) *stats {
	if sp := s.sparse; sp != nil {
		i, found := slices.BinarySearchFunc(sp.dated, d, compareDay)
		if !found || d > s.head || d <= s.head-sp.keep {
			return nil
		}
		return &sp.dated[i].st
	}
	n := day(len(s.days))
	if n == 0 || d > s.head || d <= s.head-n {
		return nil
	}
	st := &s.days[int(d)%int(n)]
	if st.count == 0 {
		return nil
	}
	return st
}
