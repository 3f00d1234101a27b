package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Sink stores line-protocol lines durably. *Influx is the real one.
type Sink interface {
	// Write stores lines, each ending in a newline, and returns nil only
	// once every one is stored. An error wrapping ErrRejected is final:
	// the same lines would be refused again. lines is not to be kept
	// after Write returns.
	Write(ctx context.Context, lines []byte) error
	// Ping reports whether the store answers at all.
	Ping(ctx context.Context) error
}

// Errors returned by Writer.Write and Writer.TryWrite.
var (
	// ErrBusy: the writer holds as many pending points as it may.
	ErrBusy = errors.New("too many points waiting to be stored")
	// ErrUnavailable: writes to the store are failing; retry later.
	ErrUnavailable = errors.New("storage is unavailable")
	// ErrStopped: the writer stopped before the points were stored.
	ErrStopped = errors.New("writer stopped")
	// ErrRejected: the store refused the points for good.
	ErrRejected = errors.New("storage rejected the points")
)

// WriterConfig sets how the writer batches and retries.
type WriterConfig struct {
	BatchPoints   int           // a batch is written once it holds this many points
	FlushInterval time.Duration // or once it is this old and a write can start
	MaxPending    int           // points accepted and not yet stored: a bound on memory
	// MaxPendingBytes bounds the line protocol accepted and not yet
	// stored, in bytes: points vary in size, and a backlog drained after
	// an outage must not hold more than this whatever they carry.
	MaxPendingBytes int64
	Concurrency     int           // batches written at once
	RetryMin        time.Duration // first wait after a failed write; doubles up to RetryMax
	RetryMax        time.Duration
}

// DefaultWriterConfig returns the defaults.
func DefaultWriterConfig() WriterConfig {
	return WriterConfig{
		BatchPoints:     5000,
		FlushInterval:   5 * time.Millisecond,
		MaxPending:      200000,
		MaxPendingBytes: 32 << 20,
		Concurrency:     2,
		RetryMin:        100 * time.Millisecond,
		RetryMax:        2 * time.Second,
	}
}

// Validate reports every problem at once.
func (c WriterConfig) Validate() error {
	var errs []error
	if c.BatchPoints < 1 || c.BatchPoints > 100000 {
		errs = append(errs, fmt.Errorf("write-batch-points must be between 1 and 100000"))
	}
	if c.FlushInterval <= 0 || c.FlushInterval > time.Minute {
		errs = append(errs, fmt.Errorf("write-flush-interval must be above 0 and at most 1m"))
	}
	if c.MaxPending < c.BatchPoints {
		errs = append(errs, fmt.Errorf("write-max-pending must be at least write-batch-points"))
	}
	if c.MaxPendingBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("write-max-pending-bytes must be at least 1048576 (1 MiB)"))
	}
	if c.Concurrency < 1 || c.Concurrency > 64 {
		errs = append(errs, fmt.Errorf("write-concurrency must be between 1 and 64"))
	}
	if c.RetryMin <= 0 || c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("write retry waits must be positive, the maximum at least the minimum"))
	}
	return errors.Join(errs...)
}

// Writer batches points from all collectors and stores them with the
// sink's blocking writes, retrying failed writes with capped exponential
// backoff until they succeed or the writer stops. A caller of Write learns
// the outcome of its own points, so that it acknowledges its source only
// once they are stored. Memory is bounded by MaxPending points and
// MaxPendingBytes bytes of line protocol, and a batch by BatchPoints and
// maxBatchBytes; once a large amount has gone through and the writer is
// idle again (a backlog drained after an outage), the memory it took is
// handed back to the operating system.
type Writer struct {
	cfg     WriterConfig
	sink    Sink
	log     *slog.Logger
	metrics *Metrics

	pending      *semaphore.Weighted // points
	pendingBytes *semaphore.Weighted // bytes of line protocol
	heldBytes    atomic.Int64        // bytes accepted and not yet stored
	storedBytes  atomic.Int64        // bytes stored since memory was last handed back
	freeMemory   func()              // debug.FreeOSMemory; a test's counter in tests
	in           chan *request
	stopped      chan struct{} // closed when Run returns
	down         atomic.Bool   // writes are failing: set by a failed write, cleared by a good one
	retrying     atomic.Int32  // writes waiting to be retried

	mu   sync.Mutex    // orders changes of down with their gauge and log line
	wake chan struct{} // closed to end the retry waits early; guarded by mu
}

type request struct {
	lines  []byte     // line protocol, each line ending in a newline
	points int        // the number of lines
	done   chan error // buffered: the writer never blocks on a caller that gave up
}

// NewWriter returns a writer; it stores nothing until Run is called.
func NewWriter(cfg WriterConfig, sink Sink, log *slog.Logger, m *Metrics) *Writer {
	return &Writer{
		cfg:          cfg,
		sink:         sink,
		log:          log.With("component", "writer"),
		metrics:      m,
		pending:      semaphore.NewWeighted(int64(cfg.MaxPending)),
		pendingBytes: semaphore.NewWeighted(cfg.MaxPendingBytes),
		in:           make(chan *request, 4096),
		stopped:      make(chan struct{}),
		wake:         make(chan struct{}),
		freeMemory:   debug.FreeOSMemory,
	}
}

// Write hands lines (line protocol, each line ending in a newline) to the
// writer and waits until they are stored, the writer stops, or ctx ends.
// It waits for room when MaxPending points or MaxPendingBytes bytes are
// already pending: that is the backpressure the MQTT collector relies
// on. When ctx ends after the lines were handed over they may still be
// stored.
func (w *Writer) Write(ctx context.Context, lines []byte) error {
	r := newRequest(lines)
	if err := w.tooLarge(r); err != nil {
		return err
	}
	if err := w.pending.Acquire(ctx, int64(r.points)); err != nil {
		return err
	}
	if err := w.pendingBytes.Acquire(ctx, int64(len(r.lines))); err != nil {
		w.pending.Release(int64(r.points))
		return err
	}
	return w.submit(ctx, r)
}

// tooLarge refuses a request that could never fit the writer's bounds.
func (w *Writer) tooLarge(r *request) error {
	if r.points > w.cfg.MaxPending {
		return fmt.Errorf("%d points exceed the writer's limit of %d", r.points, w.cfg.MaxPending)
	}
	if int64(len(r.lines)) > w.cfg.MaxPendingBytes {
		return fmt.Errorf("%d bytes of points exceed the writer's limit of %d", len(r.lines), w.cfg.MaxPendingBytes)
	}
	return nil
}

// TryWrite is Write for callers that must not wait for room: it fails at
// once with ErrUnavailable while writes are failing and with ErrBusy when
// the writer is full.
func (w *Writer) TryWrite(ctx context.Context, lines []byte) error {
	if w.down.Load() {
		return ErrUnavailable
	}
	r := newRequest(lines)
	if w.tooLarge(r) != nil || !w.pending.TryAcquire(int64(r.points)) {
		return ErrBusy
	}
	if !w.pendingBytes.TryAcquire(int64(len(r.lines))) {
		w.pending.Release(int64(r.points))
		return ErrBusy
	}
	return w.submit(ctx, r)
}

func newRequest(lines []byte) *request {
	return &request{lines: lines, points: bytes.Count(lines, []byte{'\n'}), done: make(chan error, 1)}
}

// Available reports whether the last write or ping of the store succeeded.
func (w *Writer) Available() bool { return !w.down.Load() }

// submit hands r, whose room is taken, to Run and waits for its outcome.
func (w *Writer) submit(ctx context.Context, r *request) error {
	w.metrics.PendingPoints.Add(float64(r.points))
	w.heldBytes.Add(int64(len(r.lines)))
	select {
	case w.in <- r:
	case <-ctx.Done():
		w.release(r)
		return ctx.Err()
	case <-w.stopped:
		w.release(r)
		return ErrStopped
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-w.stopped:
		// r slipped in as Run stopped: it is finished or still queued.
		w.drainStopped()
		return <-r.done
	}
}

// drainStopped fails every queued request with ErrStopped. Once Run has
// stopped, each request is either finished or still in w.in.
func (w *Writer) drainStopped() {
	for {
		select {
		case r := <-w.in:
			w.finish(r, ErrStopped)
		default:
			return
		}
	}
}

func (w *Writer) release(r *request) {
	w.heldBytes.Add(-int64(len(r.lines)))
	w.pendingBytes.Release(int64(len(r.lines)))
	w.pending.Release(int64(r.points))
	w.metrics.PendingPoints.Sub(float64(r.points))
}

func (w *Writer) finish(r *request, err error) {
	w.release(r)
	r.done <- err
}

// Run batches and writes until ctx ends, then fails whatever is still
// pending with ErrStopped. Stop the collectors first, so that they can
// wait for their last writes; Run is not to be called twice.
func (w *Writer) Run(ctx context.Context) error {
	batches := make(chan []*request)
	var wg sync.WaitGroup
	for range w.cfg.Concurrency {
		wg.Go(func() {
			var buf []byte // this goroutine's batch body, reused
			for b := range batches {
				buf = w.store(ctx, b, buf)
			}
		})
	}
	wg.Go(func() { w.probe(ctx) })
	wg.Go(func() { w.handBack(ctx, releaseCheck) })
	w.collect(ctx, batches)
	wg.Wait()
	close(w.stopped)
	w.drainStopped()
	return nil
}

// collect gathers requests into batches and hands them to the storing
// goroutines: a batch goes once it holds BatchPoints points, or once it
// is FlushInterval old and a storing goroutine is free. While they are all
// busy the batch keeps growing up to BatchPoints, so that batches grow
// with the load by themselves; then collect stops taking requests, and
// callers wait (within MaxPending) rather than memory growing.
func (w *Writer) collect(ctx context.Context, out chan<- []*request) {
	defer close(out)
	var (
		batch  []*request
		points int
		size   int // bytes of the batch's lines
		timer  = time.NewTimer(time.Hour)
		due    bool // the batch is FlushInterval old
	)
	timer.Stop()
	for {
		var send chan<- []*request // nil, so never chosen, until the batch is due
		full := points >= w.cfg.BatchPoints || size >= maxBatchBytes
		if due || full {
			send = out
		}
		in := w.in
		if full {
			in = nil // wait for a free storing goroutine
		}
		select {
		case <-ctx.Done():
			for _, r := range batch {
				w.finish(r, ErrStopped)
			}
			return
		case r := <-in:
			if len(batch) == 0 {
				timer.Reset(w.cfg.FlushInterval)
			}
			batch = append(batch, r)
			points += r.points
			size += len(r.lines)
		case <-timer.C:
			due = true
		case send <- batch:
			timer.Stop()
			batch, points, size, due = nil, 0, 0, false
		}
	}
}

// store writes one batch, its body gathered in buf, which it returns for
// the next. When the store refuses a batch of several requests for good,
// each is written alone, so that one message's bad points do not sink
// its neighbours.
func (w *Writer) store(ctx context.Context, batch []*request, buf []byte) []byte {
	lines, points := batch[0].lines, batch[0].points
	if len(batch) > 1 {
		buf = buf[:0]
		points = 0
		for _, r := range batch {
			buf = append(buf, r.lines...)
			points += r.points
		}
		lines = buf
	}
	err := w.writeWithRetry(ctx, lines, points)
	if errors.Is(err, ErrRejected) && len(batch) > 1 {
		for _, r := range batch {
			w.finish(r, w.writeWithRetry(ctx, r.lines, r.points))
		}
		return buf
	}
	for _, r := range batch {
		w.finish(r, err)
	}
	return buf
}

// writeWithRetry writes lines, points of them, until the store takes
// them, refuses them for good (ErrRejected), or ctx ends (ErrStopped).
func (w *Writer) writeWithRetry(ctx context.Context, lines []byte, points int) error {
	wait := w.cfg.RetryMin
	for {
		start := time.Now()
		err := w.sink.Write(ctx, lines)
		w.metrics.WriteDuration.Observe(time.Since(start).Seconds())
		w.metrics.BatchPoints.Observe(float64(points))
		switch {
		case err == nil:
			w.metrics.PointsWritten.Add(float64(points))
			w.storedBytes.Add(int64(len(lines)))
			w.setDown(false, nil)
			return nil
		case errors.Is(err, ErrRejected):
			w.metrics.WriteErrors.WithLabelValues("rejected").Inc()
			w.log.Error("storage rejected a batch", "points", points, "err", err)
			return err
		case ctx.Err() != nil:
			return ErrStopped
		}
		w.metrics.WriteErrors.WithLabelValues("retryable").Inc()
		w.setDown(true, err)
		if !w.pause(ctx, retryAfter(err, wait)) {
			return ErrStopped
		}
		wait = min(2*wait, w.cfg.RetryMax)
	}
}

// pause waits d before a retry, or less when the probe finds the store
// back; it reports false when ctx ended.
func (w *Writer) pause(ctx context.Context, d time.Duration) bool {
	w.retrying.Add(1)
	defer w.retrying.Add(-1)
	w.mu.Lock()
	wake := w.wake
	w.mu.Unlock()
	select {
	case <-time.After(d):
	case <-wake:
	case <-ctx.Done():
		return false
	}
	return true
}

// retryAfter is the store's own Retry-After when it gave one (at most a
// minute), else the backoff with ±20% jitter so that instances do not
// retry in step.
func retryAfter(err error, backoff time.Duration) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		return min(ra.RetryAfter(), time.Minute)
	}
	return time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
}

func (w *Writer) setDown(down bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.down.Swap(down) == down {
		return
	}
	if down {
		w.metrics.StorageUp.Set(0)
		w.log.Warn("storage writes failing; retrying, sources stay unacknowledged", "err", err)
		return
	}
	w.metrics.StorageUp.Set(1)
	w.log.Info("storage writes succeed again")
}

// wakeRetries ends the current retry waits.
func (w *Writer) wakeRetries() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.wake)
	w.wake = make(chan struct{})
}

// probe pings the store while writes are failing. When it answers, the
// waiting retries go at once; with none waiting (HTTPS senders are
// refused at once meanwhile and may be the only ones) the writer is
// marked available again, and the next write tells for sure. Only a good
// write clears the mark while retries are waiting, so that a store that
// answers pings but refuses writes keeps its backoff.
//
// It pings once at once, so that a writer started while the store is
// down refuses TryWrite from the start instead of after a failed write.
func (w *Writer) probe(ctx context.Context) {
	if err := w.sink.Ping(ctx); err != nil && ctx.Err() == nil {
		w.setDown(true, err)
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !w.down.Load() || w.sink.Ping(ctx) != nil {
			continue
		}
		if w.retrying.Load() > 0 {
			w.wakeRetries()
		} else {
			w.setDown(false, nil)
		}
	}
}

// maxBatchBytes bounds one batch's line protocol, whatever BatchPoints
// allows: each storing goroutine keeps a buffer of that size, and the
// InfluxDB client copies the batch once more.
const maxBatchBytes = 4 << 20

// Memory hand-back: see handBack.
const (
	releaseCheck = 5 * time.Second // how often the writer looks
	releaseAfter = 64 << 20        // bytes stored since the last hand-back
	releaseIdle  = 1 << 20         // at most this much still pending
)

// handBack returns freed memory to the operating system once more than
// releaseAfter bytes went through since the last time and the writer is
// nearly idle: a drained backlog otherwise leaves the process's resident
// memory at its peak for a long while, since the runtime hands free
// pages back only slowly. In a steady flow it runs seldom (64 MiB is
// about twenty minutes of 600 one-sample messages a second) and costs one
// collection.
func (w *Writer) handBack(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.storedBytes.Load() < releaseAfter || w.heldBytes.Load() > releaseIdle {
			continue
		}
		w.storedBytes.Store(0)
		start := time.Now()
		w.freeMemory()
		w.log.Debug("memory handed back after a large write volume", "took", time.Since(start))
	}
}
