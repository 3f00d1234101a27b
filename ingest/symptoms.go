package ingest

import (
	"slices"
)

// instrument is a symptom questionnaire: the range of its item scores and
// the subscales computed at ingest. A custom instrument has no fixed items.
type instrument struct {
	name     string
	label    string
	min, max float64
	groups   []group // empty for custom: any item key the clinic defines
}

// group is a subscale, stored as a field named name when all its items
// are present.
type group struct {
	name  string
	items []string
}

// instrumentNames lists the instruments in problem-sentence order.
var instrumentNames = []string{"mrs", "ams", "custom"}

// instruments holds the scales of DESIGN.md: the Menopause Rating Scale,
// the Aging Males' Symptoms scale and the clinic's own check-ins.
var instruments = map[string]*instrument{
	"mrs": {name: "mrs", label: "Menopause Rating Scale (MRS)", min: 0, max: 4, groups: []group{
		{"somatic", []string{"hot_flushes", "heart_discomfort", "sleep_problems", "joint_muscle"}},
		{"psychological", []string{"depressive_mood", "irritability", "anxiety", "exhaustion"}},
		{"urogenital", []string{"sexual_problems", "bladder", "vaginal_dryness"}},
	}},
	"ams": {name: "ams", label: "Aging Males' Symptoms (AMS)", min: 1, max: 5, groups: []group{
		{"somatic", []string{"general_wellbeing", "joint_muscle_pain", "sweating", "sleep_problems",
			"tiredness", "physical_exhaustion", "muscle_strength"}},
		{"psychological", []string{"irritability", "nervousness", "anxiety", "depressive_mood", "burnt_out"}},
		{"sexual", []string{"passed_peak", "beard_growth", "sexual_performance", "morning_erections", "libido"}},
	}},
	"custom": {name: "custom", label: "The clinic's own check-in", min: 0, max: 10},
}

// maxCustomItems bounds the item keys of one custom check-in: each becomes
// a field of the symptoms measurement.
const maxCustomItems = 64

// reservedItems may not be custom item keys: they name the seq field,
// InfluxDB's time column, and the tags of the symptoms measurement.
var reservedItems = []string{"seq", "time", "patient", "device", "instrument"}

// has reports whether key is one of the instrument's fixed items.
func (in *instrument) has(key string) bool {
	for _, g := range in.groups {
		if slices.Contains(g.items, key) {
			return true
		}
	}
	return false
}

// checkSymptoms validates the items of a check-in against its instrument
// and adds their scores and the complete subscales as fields.
func checkSymptoms(s *sample) {
	raw := s.get("items")
	switch {
	case isNull(raw):
		s.add("items", ReasonMissingField, "is required")
		return
	case raw[0] != '{':
		s.add("items", ReasonInvalidValue, "must be an object of item scores")
		return
	}
	name, ok := s.tag("instrument")
	if !ok {
		return // the instrument's own problem is reported; its items cannot be judged
	}
	in := instruments[name]
	s.items = objectMembers(s.items, raw)
	spec := numberSpec{min: in.min, max: in.max, integer: true}
	given, badKeys := 0, 0
	for _, m := range s.items {
		switch {
		case m.dup:
			s.problems = append(s.problems, duplicate(s.index, m.key, "items."))
			continue
		case in.name == "custom" && !isItemKey(m.key):
			badKeys++ // reported once below, unechoed
			continue
		case !s.itemKeyOK(in, m.key):
			continue
		}
		if !isNull(m.val) {
			given++
		}
		if v, ok := s.parseNumber("items.", m.key, m.val, spec); ok {
			s.fields = append(s.fields, Field{Key: m.key, Value: v})
		}
	}
	if badKeys == 1 {
		s.add("items", ReasonInvalidValue, "has an item key that is not %s", itemKeyWant)
	} else if badKeys > 1 {
		s.add("items", ReasonInvalidValue, "has %d item keys that are not %s", badKeys, itemKeyWant)
	}
	if given == 0 {
		s.add("items", ReasonMissingField, "must score at least one item")
	}
	if in.name == "custom" && given > maxCustomItems {
		s.add("items", ReasonOutOfRange, "must have at most %d items (got %d)", maxCustomItems, given)
	}
	s.addSubscales(in)
}

// itemKeyOK reports whether key may be an item of in, recording the
// problem when it is not. A custom key must already match isItemKey.
func (s *sample) itemKeyOK(in *instrument, key string) bool {
	switch {
	case in.name == "custom" && slices.Contains(reservedItems, key):
		s.add("items."+key, ReasonInvalidValue, "is a reserved name")
	case in.name != "custom" && in.has(key):
		return true
	case in.name != "custom" && isSafeName(key):
		s.add("items."+key, ReasonUnknownItem, "is not an item of the %s instrument", in.name)
	case in.name != "custom":
		s.add("items", ReasonUnknownItem, "has an item of the %s instrument whose key is not a plain identifier", in.name)
	default:
		return true
	}
	return false
}

// addSubscales adds the sum of each subscale whose items are all present,
// and the total when all are: a partial sum would read as a milder score.
func (s *sample) addSubscales(in *instrument) {
	if len(in.groups) == 0 {
		return
	}
	total, complete := 0.0, true
	for _, g := range in.groups {
		sum, ok := 0.0, true
		for _, item := range g.items {
			v, present := s.value(item)
			sum, ok = sum+v, ok && present
		}
		if ok {
			s.fields = append(s.fields, Field{Key: g.name, Value: sum})
		}
		total, complete = total+sum, complete && ok
	}
	if complete {
		s.fields = append(s.fields, Field{Key: "total", Value: total})
	}
}

// itemKeyWant describes a valid custom item key, completing "is not ".
const itemKeyWant = "1 to 64 lowercase letters, digits or '_', starting with a letter"

// isItemKey reports whether s matches ^[a-z][a-z0-9_]{0,63}$.
func isItemKey(s string) bool {
	return matchName(s, isLower, func(c byte) bool { return isLower(c) || isDigit(c) || c == '_' })
}
