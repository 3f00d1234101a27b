package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeSink records writes and fails them as told.
type fakeSink struct {
	mu      sync.Mutex
	writes  [][]string
	failFor int               // the next failFor writes fail with a retryable error
	reject  func(string) bool // lines that make a write fail for good
	block   chan struct{}     // when set, writes wait for it to close
	tried   chan struct{}     // when set, every write sends on it first, without waiting
}

func (s *fakeSink) Write(ctx context.Context, body []byte) error {
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return fmt.Errorf("%w: lines must end in a newline", ErrRejected)
	}
	lines := strings.Split(string(body[:len(body)-1]), "\n")
	if s.tried != nil {
		select {
		case s.tried <- struct{}{}:
		default:
		}
	}
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failFor > 0 {
		s.failFor--
		return fmt.Errorf("connection refused (%d left)", s.failFor)
	}
	for _, l := range lines {
		if s.reject != nil && s.reject(l) {
			return fmt.Errorf("%w: status 400", ErrRejected)
		}
	}
	s.writes = append(s.writes, lines)
	return nil
}

func (s *fakeSink) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failFor > 0 {
		return errors.New("connection refused")
	}
	return nil
}

func (s *fakeSink) stored() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []string
	for _, w := range s.writes {
		all = append(all, w...)
	}
	return all
}

func testWriterConfig() WriterConfig {
	c := DefaultWriterConfig()
	c.RetryMin, c.RetryMax = time.Millisecond, 5*time.Millisecond
	return c
}

func startWriter(t *testing.T, cfg WriterConfig, sink Sink) *Writer {
	t.Helper()
	w := NewWriter(cfg, sink, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// waitFor polls cond for up to five seconds and fails the test if it never holds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
	}
}

// lines returns n lines of line protocol, each ending in a newline.
func lines(prefix string, n int) []byte {
	var out []byte
	for i := range n {
		out = fmt.Appendf(out, "%s value=%d\n", prefix, i)
	}
	return out
}

func TestWriterBatchesBySizeAndTime(t *testing.T) {
	tests := []struct {
		name      string
		batch     int
		interval  time.Duration
		requests  int
		perReq    int
		wantMaxSz int // no write larger than this
	}{
		{name: "size bound", batch: 10, interval: time.Hour, requests: 20, perReq: 5, wantMaxSz: 10},
		{name: "time bound", batch: 100000, interval: 5 * time.Millisecond, requests: 3, perReq: 2, wantMaxSz: 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testWriterConfig()
			cfg.BatchPoints, cfg.FlushInterval, cfg.MaxPending = tc.batch, tc.interval, 200000
			sink := &fakeSink{}
			w := startWriter(t, cfg, sink)
			var wg sync.WaitGroup
			for i := range tc.requests {
				wg.Go(func() {
					if err := w.Write(context.Background(), lines(fmt.Sprint("m", i), tc.perReq)); err != nil {
						t.Errorf("Write: %v", err)
					}
				})
			}
			wg.Wait()
			if got := len(sink.stored()); got != tc.requests*tc.perReq {
				t.Errorf("stored %d points, want %d", got, tc.requests*tc.perReq)
			}
			for _, wr := range sink.writes {
				if len(wr) > tc.wantMaxSz {
					t.Errorf("a write held %d points, want at most %d", len(wr), tc.wantMaxSz)
				}
			}
		})
	}
}

func TestWriterRetriesUntilStored(t *testing.T) {
	sink := &fakeSink{failFor: 5}
	w := startWriter(t, testWriterConfig(), sink)
	if err := w.Write(context.Background(), lines("m", 3)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got := len(sink.stored()); got != 3 {
		t.Errorf("stored %d points, want 3", got)
	}
	if !w.Available() {
		t.Error("writer still reports storage unavailable after a good write")
	}
}

func TestWriterRejectionSparesNeighbours(t *testing.T) {
	cfg := testWriterConfig()
	cfg.FlushInterval = 20 * time.Millisecond // gather all three into one batch
	sink := &fakeSink{reject: func(l string) bool { return strings.HasPrefix(l, "bad") }}
	w := startWriter(t, cfg, sink)
	errs := make(map[string]error)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, p := range []string{"good1", "bad", "good2"} {
		wg.Go(func() {
			err := w.Write(context.Background(), lines(p, 2))
			mu.Lock()
			errs[p] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	if !errors.Is(errs["bad"], ErrRejected) {
		t.Errorf("bad request: got %v, want ErrRejected", errs["bad"])
	}
	for _, p := range []string{"good1", "good2"} {
		if errs[p] != nil {
			t.Errorf("%s: got %v, want stored", p, errs[p])
		}
	}
	if got := len(sink.stored()); got != 4 {
		t.Errorf("stored %d points, want the 4 good ones", got)
	}
}

func TestWriterTryWriteRefusesWhileDown(t *testing.T) {
	sink := &fakeSink{failFor: 1 << 30}
	w := startWriter(t, testWriterConfig(), sink)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Write(ctx, lines("m", 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write while down: got %v, want the caller's deadline", err)
	}
	waitFor(t, func() bool { return !w.Available() })
	if err := w.TryWrite(context.Background(), lines("m", 1)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("TryWrite while down: got %v, want ErrUnavailable", err)
	}
	sink.mu.Lock()
	sink.failFor = 0
	sink.mu.Unlock()
	waitFor(t, w.Available)
	if err := w.TryWrite(context.Background(), lines("m", 1)); err != nil {
		t.Errorf("TryWrite after recovery: %v", err)
	}
}

func TestWriterBoundsPendingPoints(t *testing.T) {
	cfg := testWriterConfig()
	cfg.BatchPoints, cfg.MaxPending = 4, 8
	sink := &fakeSink{block: make(chan struct{})}
	w := startWriter(t, cfg, sink)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _ = w.Write(context.Background(), lines("m", 4)) })
	}
	waitFor(t, func() bool {
		if w.pending.TryAcquire(1) {
			w.pending.Release(1)
			return false
		}
		return true
	})
	if err := w.TryWrite(context.Background(), lines("m", 1)); !errors.Is(err, ErrBusy) {
		t.Errorf("TryWrite when full: got %v, want ErrBusy", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := w.Write(ctx, lines("m", 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Write when full: got %v, want it to wait for room", err)
	}
	close(sink.block)
	wg.Wait()
	if got := len(sink.stored()); got != 8 {
		t.Errorf("stored %d points, want 8", got)
	}
}

// TestWriterStopFailsPending: a Write whose points the writer holds,
// failing to store them, when the writer stops, fails with ErrStopped.
// The writer is stopped only once the sink has been tried with those
// points, so that the Write is pending then (a Write that came after the
// stop would fail with ErrStopped too, without testing this case).
func TestWriterStopFailsPending(t *testing.T) {
	sink := &fakeSink{failFor: 1 << 30, tried: make(chan struct{}, 1)}
	w := NewWriter(testWriterConfig(), sink, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	result := make(chan error)
	go func() { result <- w.Write(context.Background(), lines("m", 2)) }()
	select {
	case <-sink.tried: // the points are the writer's, and not stored
	case err := <-result:
		t.Fatalf("Write returned %v before the sink was tried", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never tried the sink")
	}
	select {
	case err := <-result:
		t.Fatalf("Write returned %v while its points could not be stored", err)
	default:
	}
	cancel()
	if err := <-result; !errors.Is(err, ErrStopped) {
		t.Errorf("pending Write at stop: got %v, want ErrStopped", err)
	}
	<-done
	if err := w.Write(context.Background(), lines("m", 1)); !errors.Is(err, ErrStopped) {
		t.Errorf("Write after stop: got %v, want ErrStopped", err)
	}
}

func TestWriterBoundsPendingBytes(t *testing.T) {
	cfg := testWriterConfig()
	cfg.BatchPoints, cfg.MaxPending = 1000, 100000
	one := len(lines("m", 1))
	cfg.MaxPendingBytes = int64(4 * one) // four one-point lines, whatever the point count allows
	sink := &fakeSink{block: make(chan struct{})}
	w := startWriter(t, cfg, sink)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { _ = w.Write(context.Background(), lines("m", 2)) })
	}
	waitFor(t, func() bool { return w.heldBytes.Load() == int64(4*one) })
	if err := w.TryWrite(context.Background(), lines("m", 1)); !errors.Is(err, ErrBusy) {
		t.Errorf("TryWrite with the bytes bound reached: got %v, want ErrBusy", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := w.Write(ctx, lines("m", 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Write with the bytes bound reached: got %v, want it to wait for room", err)
	}
	if err := w.Write(context.Background(), lines("m", 5)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Write larger than the bytes bound: got %v, want a refusal at once", err)
	}
	close(sink.block)
	wg.Wait()
	if got := len(sink.stored()); got != 4 {
		t.Errorf("stored %d points, want 4", got)
	}
	if err := w.TryWrite(context.Background(), lines("m", 4)); err != nil {
		t.Errorf("TryWrite once the room is back: %v", err)
	}
}

func TestWriterHandsMemoryBackWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := NewWriter(testWriterConfig(), &fakeSink{}, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(nil))
		var freed atomic.Int32
		w.freeMemory = func() { freed.Add(1) }
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go w.handBack(ctx, time.Second)
		steps := []struct {
			name         string
			stored, held int64
			want         int
		}{
			{name: "a small volume", stored: releaseAfter - 1, want: 0},
			{name: "a large volume still draining", stored: releaseAfter, held: releaseIdle + 1, want: 0},
			{name: "drained", stored: releaseAfter, want: 1},
			{name: "idle since", want: 1},
		}
		for _, s := range steps {
			w.storedBytes.Store(s.stored)
			w.heldBytes.Store(s.held)
			time.Sleep(10 * time.Second) // ten checks
			synctest.Wait()
			if n := int(freed.Load()); n != s.want {
				t.Fatalf("%s: memory handed back %d times, want %d", s.name, n, s.want)
			}
		}
	})
}

// A writer started while the store is down refuses HTTPS at once, before
// any write has failed.
func TestWriterStartsUnavailableWhenStoreIsDown(t *testing.T) {
	sink := &fakeSink{failFor: 1 << 30}
	w := startWriter(t, testWriterConfig(), sink)
	waitFor(t, func() bool { return !w.Available() })
	if err := w.TryWrite(context.Background(), lines("m", 1)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("TryWrite with the store down from the start: got %v, want ErrUnavailable", err)
	}
}
