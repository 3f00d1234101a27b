package analysis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
)

// Rebuilding many patients at once (a start, a partition taken over)
// reads them in chunks of loadChunk patients, loadWorkers chunks at a
// time: each chunk costs one InfluxDB query a measurement (and a read
// length) its patients' plans read, instead of one a patient and
// measurement. On 2 CPUs, with 10,000 patients of 90 days in InfluxDB
// 1.8, bench's cold start took 31.4 s in chunks of 500 and 36.2 s (another
// run) in chunks of 1,000 (docs/benchmarks.md, "Cold start").
const (
	loadChunk   = 500
	loadWorkers = 2
)

// sampleTags are the tags analysis reads of a stored sample (sampleOf).
var sampleTags = []string{"analyte", "instrument", "medication"}

// chunkLoad is what reading one chunk gave.
type chunkLoad struct {
	patients []*patient // rebuilt
	gone     []string   // without a plan
	failed   []string   // to retry
	err      error      // the first failure, without patient ids
}

// loadMany rebuilds the patients' state in bulk, replacing what is held,
// and returns the patients whose rebuild failed with the first error.
// The chunks are read on loadWorkers goroutines, each building patients
// of its own; the patients held are replaced here, on the caller's
// (Run's) goroutine, as each chunk comes in.
func (e *Evaluator) loadMany(ctx context.Context, ids []string) (failed []string, first error) {
	now := e.now()
	chunks := slices.Collect(slices.Chunk(slices.Sorted(slices.Values(ids)), e.chunk))
	todo := make(chan []string, len(chunks))
	for _, c := range chunks {
		todo <- c
	}
	close(todo)
	done := make(chan chunkLoad)
	for range min(loadWorkers, len(chunks)) {
		go func() {
			for c := range todo {
				done <- e.readChunk(ctx, c, now)
			}
		}()
	}
	for range chunks {
		c := <-done
		for _, p := range c.patients {
			e.patients[p.id] = p
		}
		for _, id := range c.gone {
			delete(e.patients, id)
		}
		failed = append(failed, c.failed...)
		if first == nil {
			first = c.err
		}
	}
	return failed, first
}

// readKey is one query of a chunk: a measurement, from when, which
// fields, every value or the newest.
type readKey struct {
	measurement string
	from        time.Time
	fields      string
	latest      bool
}

// readChunk builds the chunk's patients from the registry and reads their
// samples back in bulk: of what load reads, what their rules read
// (patient.reads), so that every rule judges the same. It touches no
// patient held.
func (e *Evaluator) readChunk(ctx context.Context, ids []string, now time.Time) chunkLoad {
	var out chunkLoad
	byID := make(map[string]*patient, len(ids))
	for _, id := range ids {
		p, err := e.prepare(ctx, id)
		switch {
		case err != nil:
			out.failed = append(out.failed, id)
			if out.err == nil {
				out.err = errors.New(registry.Redact(err, id))
			}
		case p == nil:
			out.gone = append(out.gone, id)
		default:
			byID[id] = p
		}
	}
	fail := func(err error) chunkLoad {
		for id := range byID {
			out.failed = append(out.failed, id)
		}
		if out.err == nil {
			out.err = err
		}
		out.patients = nil
		return out
	}
	groups := map[readKey][]string{}
	for id, p := range byID {
		for _, r := range p.reads() {
			k := readKey{r.measurement, e.clk.start(e.clk.dayOf(now) - day(r.days)), r.fields, r.latest}
			groups[k] = append(groups[k], id)
		}
	}
	take := func(id string, v ingest.StoredValue) error {
		if p := byID[id]; p != nil {
			if s, ok := sampleOf(v); ok {
				p.add(e.clk, s)
			}
		}
		return nil
	}
	for _, k := range sortedKeys(groups) {
		q := ingest.ValuesQuery{Patients: groups[k], Measurement: k.measurement, Fields: strings.Split(k.fields, ","),
			Tags: sampleTags, From: k.from, To: now.Add(time.Hour), Latest: k.latest}
		if err := e.src.PatientsValues(ctx, q, take); err != nil {
			return fail(fmt.Errorf("analysis: reading %s back: %w", k.measurement, err))
		}
	}
	if err := e.readNewest(ctx, byID); err != nil {
		return fail(err)
	}
	for _, p := range byID {
		p.dirty, p.announce = true, true
		out.patients = append(out.patients, p)
	}
	return out
}

// readNewest sets the newest sample of each silenced series that nothing
// read back reached, as load does with Newest: a silence counts from the
// newest sample of its stream, which may be older than anything read.
func (e *Evaluator) readNewest(ctx context.Context, byID map[string]*patient) error {
	type stream struct{ measurement, field string }
	empty := map[stream][]string{}
	for id, p := range byID {
		for _, s := range p.series {
			if s.newest == 0 && p.silenced(s.key) {
				k := stream{s.key.measurement, s.key.field}
				if !slices.Contains(empty[k], id) {
					empty[k] = append(empty[k], id)
				}
			}
		}
	}
	for k, ids := range empty {
		err := e.src.PatientsNewest(ctx, ids, k.measurement, k.field, func(id string, t time.Time) error {
			if p := byID[id]; p != nil {
				for _, s := range p.series {
					if s.key.measurement == k.measurement && s.key.field == k.field && s.newest == 0 && p.silenced(s.key) {
						s.newest = t.Unix()
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("analysis: reading the newest %s: %w", k.measurement, err)
		}
	}
	return nil
}

// sortedKeys are the chunk's queries in a fixed order.
func sortedKeys(groups map[readKey][]string) []readKey {
	keys := make([]readKey, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b readKey) int {
		latest := func(k readKey) int {
			if k.latest {
				return 1
			}
			return 0
		}
		return cmp.Or(strings.Compare(a.measurement, b.measurement), a.from.Compare(b.from), strings.Compare(a.fields, b.fields),
			latest(a)-latest(b))
	})
	return keys
}

// loadAsk is a request of Load to Run.
type loadAsk struct {
	ids  []string
	done chan error
}

// Load rebuilds the patients' state from the registry and InfluxDB, in
// bulk, replacing what is held, and judges them, on Run's goroutine: how
// a caller takes over patients (a partition whose owner died). It
// returns once every patient is judged, or when ctx ends or Run stops
// first (the rebuild then goes on, on Run). A patient whose rebuild
// failed stays marked, for Run to retry at its next tick; the error says
// how many there were. Patients without a plan are let go.
func (e *Evaluator) Load(ctx context.Context, ids []string) error {
	ask := loadAsk{ids: ids, done: make(chan error, 1)}
	select {
	case e.loads <- ask:
	case <-e.stopped:
		return errors.New("analysis: load: the evaluator is not running")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-ask.done:
		return err
	case <-e.stopped:
		return errors.New("analysis: load: the evaluator stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loadNow is Load's work, on Run's goroutine.
func (e *Evaluator) loadNow(ctx context.Context, ids []string) error {
	n, err := e.rebuildNow(ctx, ids)
	now := e.now()
	for _, id := range ids {
		if p := e.patients[id]; p != nil && p.announce {
			e.evaluate(ctx, p, now, false)
		}
	}
	if err != nil {
		return fmt.Errorf("analysis: load: %d of %d patients not rebuilt, retried at the next tick: %w", n, len(ids), err)
	}
	return nil
}
