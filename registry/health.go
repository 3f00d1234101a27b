package registry

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// probeBytes is the size of the probe's row: more than a page (4 KiB by
// default), so that writing it needs pages the store must find room for,
// as an audit row does when the store grows.
const probeBytes = 8192

// WriteProbe tells whether the registry can write, for readiness. Every
// sign-in and every staff read writes its audit row first, so a registry
// that cannot write (a full disk, a read-only or failing file system)
// leaves the consoles and the API answering 503 while InfluxDB and the
// broker are fine. It is safe for concurrent use.
type WriteProbe struct {
	reg   *Registry
	every time.Duration

	mu   sync.Mutex // serialises probes; guards last and err
	last time.Time  // when the last probe ran
	err  error      // its outcome
}

// WriteProbe returns a probe that writes at most once every every; a
// Check in between reports the last outcome.
func (r *Registry) WriteProbe(every time.Duration) *WriteProbe {
	return &WriteProbe{reg: r, every: every}
}

// Check reports nil when the registry could write the last time it was
// probed, at most every ago, else why not. A probe inserts a row of
// probeBytes and deletes it in one committed transaction: the store must
// find room for its pages (a full store fails with SQLITE_FULL, a
// read-only one on the write) and write the commit, yet keeps nothing.
func (p *WriteProbe) Check(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.last.IsZero() && time.Since(p.last) < p.every {
		return p.err
	}
	err := p.reg.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, p.reg.q(`INSERT INTO write_probe (filler) VALUES (?)`), make([]byte, probeBytes)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM write_probe`)
		return err
	})
	if ctx.Err() != nil {
		// The caller gave up: that says nothing about the store.
		return fmt.Errorf("registry write probe: %w", ctx.Err())
	}
	p.last = time.Now()
	p.err = nil
	if err != nil {
		p.err = fmt.Errorf("registry cannot write: %w", err)
	}
	return p.err
}
