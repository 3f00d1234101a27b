package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// EventsChannel is the Postgres NOTIFY channel on which every outbox event
// is announced when its transaction commits. The payload is the event's id
// and nothing else: a notification carries no patient data.
const EventsChannel = "patientpulse_events"

// listenerName is the application_name of Listen's connection, so that an
// operator (and a test) can find it in pg_stat_activity.
const listenerName = "patientpulse listen"

// notifyEvent announces the outbox event id on EventsChannel, in tx: on
// Postgres the notification is sent when tx commits, and never when it
// rolls back. SQLite has one process, woken in-process: nothing to do.
//
// Outbox events, like audit entries, are written under the write lock
// (inTx), so that their ids are handed out in the order they commit: a
// reader that reads on from the last id it saw cannot skip an event that
// committed after a later one.
func (r *Registry) notifyEvent(ctx context.Context, tx *sql.Tx, id int64) error {
	if r.d != postgresDialect {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, EventsChannel, strconv.FormatInt(id, 10))
	return err
}

// Listen calls wake whenever an outbox event is committed by any process
// on the registry, until ctx ends; it returns nil then. wake must not
// block: it should only tell the outbox's readers (the consoles' hub, the
// dispatcher) to read on from the last id they saw, which is how they
// find what is new; notifications only make them read sooner.
//
// On Postgres, Listen holds a connection of its own (outside the pool),
// LISTENing on EventsChannel. When it is lost, Listen calls failed (when
// not nil) with the error, connects again with a backoff from 100 ms to
// 5 s, and calls wake once listening again, since a notification sent
// meanwhile is lost. The readers' own polls are the safety net besides.
//
// On SQLite there is one process, whose changes wake its readers
// in-process: Listen only waits for ctx to end.
func (r *Registry) Listen(ctx context.Context, wake func(), failed func(error)) error {
	if r.d != postgresDialect {
		<-ctx.Done()
		return nil
	}
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for ctx.Err() == nil {
		err := r.listenOnce(ctx, wake, func() { backoff = minBackoff })
		if ctx.Err() != nil {
			break
		}
		if failed != nil {
			failed(err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, maxBackoff)
	}
	return nil
}

// listenOnce connects, LISTENs, calls listening and wake, then calls wake
// for each notification until the connection fails or ctx ends.
func (r *Registry) listenOnce(ctx context.Context, wake, listening func()) error {
	cfg, err := r.connConfig(ctx)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	cfg.RuntimeParams["application_name"] = listenerName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("listen: connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx) // the connection is done with either way
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+EventsChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	listening()
	wake() // whatever was committed while not listening
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		wake()
	}
}

// connConfig is the configuration of the pool's connections, for a
// connection of Listen's own.
func (r *Registry) connConfig(ctx context.Context) (*pgx.ConnConfig, error) {
	c, err := r.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var cfg *pgx.ConnConfig
	err = c.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errors.New("not a pgx connection")
		}
		cfg = sc.Conn().Config()
		return nil
	})
	return cfg, err
}
