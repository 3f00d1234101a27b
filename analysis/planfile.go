package analysis

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Reading a plan file, YAML or JSON: what `patientpulse plans apply -f`
// and the body of PUT /v1/patients/{id}/plan hold.

// ParsePlan reads a plan file, YAML or JSON (JSON is YAML), refusing
// unknown keys, and validates it for the default backfill horizon. A
// *PlanError names every problem at once: those of decoding (with their
// lines, and the rule or regimen line they are in) and then those of
// Validate. A file that is not YAML at all gets a plain error.
func ParsePlan(data []byte) (Plan, error) { return ParsePlanWithin(data, 0) }

// ParsePlanWithin is ParsePlan for a clinic whose backfill horizon is
// horizon (0: the default), as ValidateWithin.
func ParsePlanWithin(data []byte, horizon time.Duration) (Plan, error) {
	p, err := DecodePlan(data)
	var decodeErr *PlanError
	if err != nil && !errors.As(err, &decodeErr) {
		return Plan{}, err
	}
	if err := JoinPlanErrors(err, p.ValidateWithin(horizon)); err != nil {
		return Plan{}, err
	}
	return p, nil
}

// DecodePlan reads a plan file as ParsePlan does, without validating it.
// Its error is a *PlanError naming every decode problem, with the plan
// decoded as far as it could be; or, for a file that is not a YAML
// mapping, a plain error.
func DecodePlan(data []byte) (Plan, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Plan{}, fmt.Errorf("plan: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return Plan{}, errors.New("plan: want a mapping of patient, effective, regimen and rules")
	}
	var p Plan
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&p)
	var terr *yaml.TypeError
	switch {
	case errors.As(err, &terr):
		return p, &PlanError{Problems: placeProblems(root.Content[0], terr.Errors)}
	case err != nil:
		return Plan{}, fmt.Errorf("plan: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return p, nil
}

// JoinPlanErrors is one *PlanError with the problems of every *PlanError
// of errs, in order, or nil when none has any. It is for the problems of
// DecodePlan and of Validate, which callers report together.
func JoinPlanErrors(errs ...error) error {
	var all []string
	for _, err := range errs {
		var perr *PlanError
		if errors.As(err, &perr) {
			all = append(all, perr.Problems...)
		}
	}
	if len(all) == 0 {
		return nil
	}
	return &PlanError{Problems: all}
}

// placeProblems prefixes each decode problem of a regimen line or a rule
// with where it is, as Validate names it: "rules[1] (sleep-short).over:
// line 4: ...". yaml's problems carry only a line, and a plan sent as
// JSON is often one line, so a problem is placed by decoding the
// key-value pairs of that line alone: the pair whose own decoding gives
// the same problem (or, for an unknown or repeated key, the key) is where
// it is. A problem placed nowhere is kept as it is.
func placeProblems(plan *yaml.Node, problems []string) []string {
	places := itemPlaces(plan)
	out := make([]string, len(problems))
	for i, prob := range problems {
		out[i] = prob
		var line int
		if _, err := fmt.Sscanf(prob, "line %d:", &line); err != nil {
			continue
		}
		for _, pl := range places {
			if line >= pl.first && line <= pl.last && pl.take(prob) {
				out[i] = pl.at + ": " + prob
				break
			}
		}
	}
	return out
}

// place is one key-value pair of a regimen line or a rule (or the whole
// item, when it is not a mapping): the lines it covers, and the problems
// of its own decoding, each taken by the first decode problem that is
// the same, so that two equal problems on one line go to two places.
type place struct {
	at          string // "rules[1] (sleep-short).over"
	first, last int    // lines
	key         *yaml.Node
	node        *yaml.Node             // the pair as a mapping, or the item
	decode      func(*yaml.Node) error // into a fresh Dose or Rule
	problems    []string               // of decoding node; nil until asked
	decoded     bool
	keyTaken    bool
}

// take reports whether prob is a problem of this place, and takes it.
func (pl *place) take(prob string) bool {
	if pl.key != nil && !pl.keyTaken && (strings.HasPrefix(prob, fmt.Sprintf("line %d: field %s not found", pl.key.Line, pl.key.Value)) ||
		strings.HasPrefix(prob, fmt.Sprintf("line %d: mapping key %q already defined", pl.key.Line, pl.key.Value))) {
		pl.keyTaken = true
		return true
	}
	if !pl.decoded {
		pl.decoded = true
		var terr *yaml.TypeError
		if errors.As(pl.decode(pl.node), &terr) {
			pl.problems = terr.Errors
		}
	}
	if i := slices.Index(pl.problems, prob); i >= 0 {
		pl.problems = slices.Delete(pl.problems, i, i+1)
		return true
	}
	return false
}

// itemPlaces lists the places of the plan's regimen lines and rules, in
// the order of the file.
func itemPlaces(plan *yaml.Node) []*place {
	var places []*place
	for i := 0; i+1 < len(plan.Content); i += 2 {
		name, seq := plan.Content[i].Value, plan.Content[i+1]
		var decode func(*yaml.Node) error
		switch name {
		case "regimen":
			decode = func(n *yaml.Node) error { return n.Decode(new(Dose)) }
		case "rules":
			decode = func(n *yaml.Node) error { return n.Decode(new(Rule)) }
		}
		if decode == nil || seq.Kind != yaml.SequenceNode {
			continue
		}
		for j, item := range seq.Content {
			at := fmt.Sprintf("%s[%d]", name, j)
			if item.Kind != yaml.MappingNode {
				places = append(places, &place{at: at, first: item.Line, last: lastLine(item), node: item, decode: decode})
				continue
			}
			if id := mappingValue(item, "id"); name == "rules" && id != nil && id.Kind == yaml.ScalarNode && id.Value != "" {
				at += " (" + id.Value + ")"
			}
			for k := 0; k+1 < len(item.Content); k += 2 {
				key, val := item.Content[k], item.Content[k+1]
				places = append(places, &place{at: at + "." + key.Value, first: key.Line, last: lastLine(val), key: key,
					node: &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{key, val}}, decode: decode})
			}
		}
	}
	return places
}

// lastLine is the last line on which n or its content starts.
func lastLine(n *yaml.Node) int {
	last := n.Line
	for _, c := range n.Content {
		last = max(last, lastLine(c))
	}
	return last
}

// mappingValue is the value of key in mapping m, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// PlanError is every problem of a plan, one per line.
type PlanError struct{ Problems []string }

func (e *PlanError) Error() string {
	return fmt.Sprintf("plan has %d problem(s):\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// dose returns the regimen line of a medication.
func (p *Plan) dose(medication string) (Dose, bool) {
	for _, d := range p.Regimen {
		if d.Medication == medication {
			return d, true
		}
	}
	return Dose{}, false
}
