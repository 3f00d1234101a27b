package analysis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patientpulse/patientpulse/ingest"
	"github.com/patientpulse/patientpulse/registry"
)

// Rebuilding many patients at once reads them in bulk, one of two ways.
// Most of the patients with a plan (loadAllShare or more: a lone
// instance's start) are read without a patient filter, for every patient
// stored (loadAll): one InfluxDB query a measurement for the reads of
// every value, one a read of newest values, loadWorkers queries at once,
// each patient given only the rows its own reads ask for. Fewer (a
// partition taken over) are read in chunks of loadChunk patients,
// loadWorkers chunks at a time, one query a read key (a measurement, how
// far back, which fields, every value or the newest) matching its
// chunk's patients with a regular expression, whose cost grows with the
// patients stored (it is matched against every value of the patient tag,
// in every shard read).
//
// On 2 CPUs shared with other work, with 10,000 patients of 90 days in
// InfluxDB 1.8 (docs/benchmarks.md, "Cold start"): bench's cold start
// took 31.4 s in chunks of 500 (4 December 2026) and 36.2 s (another
// run) in chunks of 1,000; 25.9 s with loadAll (5 December). On the same
// data in one process, alternating: chunks 43.4 and 28.2 s (influxd CPU
// 46.2 and 41.8 s), loadAll 20.2 and 27.4 s (27.4 and 28.1 s). With
// every other patient (5,000 of the 10,000), the chunks were faster
// (loading alone, 11.5 and 15.0 s against 17.0 and 23.2 s): where the
// two cross between a half and all was not measured.
const (
	loadChunk    = 500
	loadWorkers  = 2
	loadAllShare = 0.75
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

// loadMany rebuilds the patients' state in bulk, replacing what is held
// (on the caller's goroutine, Run's), and returns the patients whose
// rebuild failed with the first error: loadAll when they are at least
// loadAllShare of the patients with a plan (a lone instance's start),
// else loadChunks (a partition taken over).
func (e *Evaluator) loadMany(ctx context.Context, ids []string) (failed []string, first error) {
	if e.withPlans > 0 && float64(len(ids)) >= loadAllShare*float64(e.withPlans) {
		return e.loadAll(ctx, ids)
	}
	return e.loadChunks(ctx, ids)
}

// loadChunks is loadMany in chunks of e.chunk patients, each query
// matching its chunk's patients. The chunks are read on loadWorkers
// goroutines, each building patients of its own; the patients held are
// replaced as each chunk comes in.
func (e *Evaluator) loadChunks(ctx context.Context, ids []string) (failed []string, first error) {
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
		e.install(c)
		failed = append(failed, c.failed...)
		if first == nil {
			first = c.err
		}
	}
	return failed, first
}

// loadAll is loadMany when the patients are most of those with a plan (a
// lone instance's start): their plans are read in chunks on loadWorkers
// goroutines, then their samples with queries for every patient stored
// (readAllKeys), and the newest samples of silenced series that those
// did not reach chunk by chunk, matching the chunk's patients
// (readNewest: few patients have any).
func (e *Evaluator) loadAll(ctx context.Context, ids []string) (failed []string, first error) {
	now := e.now()
	chunks := slices.Collect(slices.Chunk(slices.Sorted(slices.Values(ids)), e.chunk))
	byChunk := make([]map[string]*patient, len(chunks))
	outs := make([]chunkLoad, len(chunks))
	inParallel(len(chunks), func(i int) { byChunk[i], outs[i] = e.prepareChunk(ctx, chunks[i]) })
	byID := make(map[string]*patient, len(ids))
	var out chunkLoad
	for i, c := range outs {
		maps.Copy(byID, byChunk[i])
		out.gone, out.failed = append(out.gone, c.gone...), append(out.failed, c.failed...)
		if out.err == nil {
			out.err = c.err
		}
	}
	err := e.readAllKeys(ctx, e.readGroups(byID, now), byID, now)
	for i := 0; err == nil && i < len(byChunk); i++ {
		err = e.readNewest(ctx, byChunk[i])
	}
	out = out.read(byID, err)
	e.install(out)
	return out.failed, out.err
}

// readAllKeys runs the groups' queries unfiltered, loadWorkers at a time,
// the longest reads first (InfluxDB's work grows with the span read, and
// a long one left for last would run alone). The reads of every value of
// one measurement are one query (allReads). Each patient of byID is
// given only the values its own reads ask for, from either worker, under
// its own lock: a patient's queries may run at once.
func (e *Evaluator) readAllKeys(ctx context.Context, groups map[readKey][]string, byID map[string]*patient, now time.Time) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type locked struct {
		mu sync.Mutex // guards p
		p  *patient
	}
	all := make(map[string]*locked, len(byID))
	for id, p := range byID {
		all[id] = &locked{p: p}
	}
	reads := allReads(groups)
	var mu sync.Mutex
	var first error
	inParallel(len(reads), func(i int) {
		r := reads[i]
		take := func(id string, v ingest.StoredValue) {
			l := all[id]
			if l == nil || !slices.ContainsFunc(r.asks[id], func(a readAsk) bool { return a.wants(v) }) {
				return // another patient's, or beyond what this one's reads ask
			}
			if s, ok := sampleOf(v); ok {
				l.mu.Lock()
				l.p.add(e.clk, s)
				l.mu.Unlock()
			}
		}
		if err := e.readKey(ctx, r.key, r.ids, now, true, take); err != nil {
			mu.Lock()
			if first == nil {
				first = err
				cancel() // the other worker's query is of no use now
			}
			mu.Unlock()
		}
	})
	return first
}

// allRead is one of readAllKeys' queries: what it reads, and what each
// patient's reads ask of it.
type allRead struct {
	key  readKey              // from: the oldest asked; fields: every one asked
	ids  []string             // the patients asking
	asks map[string][]readAsk // by patient
}

// readAsk is what one read asks of a query's values.
type readAsk struct {
	from   time.Time
	fields []string
}

// wants reports whether the read asks for v.
func (a readAsk) wants(v ingest.StoredValue) bool {
	return !v.Time.Before(a.from) && slices.Contains(a.fields, v.Field)
}

// allReads are the groups' queries for readAllKeys, the longest first:
// the reads of every value of a measurement merged into one (their
// spans nest, so one query reads what each would, once), the reads of
// newest values one each.
func allReads(groups map[readKey][]string) []allRead {
	merged := map[readKey]*allRead{}
	var out []*allRead
	for _, k := range sortedKeys(groups) {
		mk := k
		if !k.latest {
			mk = readKey{measurement: k.measurement}
		}
		r := merged[mk]
		if r == nil {
			r = &allRead{key: k, asks: map[string][]readAsk{}}
			merged[mk] = r
			out = append(out, r)
		}
		fields := strings.Split(k.fields, ",")
		if k.from.Before(r.key.from) {
			r.key.from = k.from
		}
		union := append(strings.Split(r.key.fields, ","), fields...)
		slices.Sort(union)
		r.key.fields = strings.Join(slices.Compact(union), ",")
		for _, id := range groups[k] {
			if r.asks[id] == nil {
				r.ids = append(r.ids, id)
			}
			r.asks[id] = append(r.asks[id], readAsk{k.from, fields})
		}
	}
	slices.SortStableFunc(out, func(a, b *allRead) int {
		return cmp.Or(a.key.from.Compare(b.key.from), len(b.ids)-len(a.ids))
	})
	reads := make([]allRead, len(out))
	for i, r := range out {
		reads[i] = *r
	}
	return reads
}

// inParallel calls fn(i) for every i in [0, n) on up to loadWorkers
// goroutines, and returns once every call has.
func inParallel(n int, fn func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(loadWorkers, n) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// install replaces the patients held with what c read.
func (e *Evaluator) install(c chunkLoad) {
	for _, p := range c.patients {
		e.patients[p.id] = p
	}
	for _, id := range c.gone {
		delete(e.patients, id)
	}
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
	byID, out := e.prepareChunk(ctx, ids)
	err := e.readKeys(ctx, e.readGroups(byID, now), byID, now)
	if err == nil {
		err = e.readNewest(ctx, byID)
	}
	return out.read(byID, err)
}

// prepareChunk reads the patients' plans and rule states from the
// registry: the patients with a plan by id, those without and those that
// failed in out.
func (e *Evaluator) prepareChunk(ctx context.Context, ids []string) (map[string]*patient, chunkLoad) {
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
	return byID, out
}

// read ends out with the patients of byID once their samples are read:
// rebuilt, to be judged, or, when reading failed (err), every one of
// them failed, with err unless out has one.
func (out chunkLoad) read(byID map[string]*patient, err error) chunkLoad {
	if err == nil {
		for _, p := range byID {
			p.dirty, p.announce = true, true
			out.patients = append(out.patients, p)
		}
		return out
	}
	for id := range byID {
		out.failed = append(out.failed, id)
	}
	if out.err == nil {
		out.err = err
	}
	out.patients = nil
	return out
}

// readGroups are the queries the patients' reads make, with the patients
// of each.
func (e *Evaluator) readGroups(byID map[string]*patient, now time.Time) map[readKey][]string {
	groups := map[readKey][]string{}
	for id, p := range byID {
		for _, r := range p.reads() {
			k := readKey{r.measurement, e.clk.start(e.clk.dayOf(now) - day(r.days)), r.fields, r.latest}
			groups[k] = append(groups[k], id)
		}
	}
	return groups
}

// readKeys runs the groups' queries one after the other, each matching
// its patients, adding each sample read to its patient in byID.
func (e *Evaluator) readKeys(ctx context.Context, groups map[readKey][]string, byID map[string]*patient, now time.Time) error {
	take := func(id string, v ingest.StoredValue) {
		if p := byID[id]; p != nil {
			if s, ok := sampleOf(v); ok {
				p.add(e.clk, s)
			}
		}
	}
	for _, k := range sortedKeys(groups) {
		if err := e.readKey(ctx, k, groups[k], now, false, take); err != nil {
			return err
		}
	}
	return nil
}

// readKey runs one query, giving take each value read: with unfiltered,
// of every patient stored, not only of ids.
func (e *Evaluator) readKey(ctx context.Context, k readKey, ids []string, now time.Time, unfiltered bool, take func(string, ingest.StoredValue)) error {
	q := ingest.ValuesQuery{Patients: ids, Measurement: k.measurement, Fields: strings.Split(k.fields, ","),
		Tags: sampleTags, From: k.from, To: now.Add(time.Hour), Latest: k.latest, Unfiltered: unfiltered}
	err := e.src.PatientsValues(ctx, q, func(id string, v ingest.StoredValue) error {
		take(id, v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("analysis: reading %s back: %w", k.measurement, err)
	}
	return nil
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
