package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Rota is a version of the on-call rota an admin saved: its YAML, as
// --oncall-schedule takes it.
type Rota struct {
	Version int64
	Body    string
	SavedAt time.Time
	SavedBy string
}

// SaveRota stores body as the rota's next version, by the context's
// actor, and returns it. The caller checks the rota first.
func (r *Registry) SaveRota(ctx context.Context, body string) (Rota, error) {
	rota := Rota{Body: body, SavedAt: now(), SavedBy: ActorFrom(ctx).Name}
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, r.q(`INSERT INTO oncall_rotas (body, saved_at, saved_by) VALUES (?, ?, ?) RETURNING version`),
			body, formatTime(rota.SavedAt), rota.SavedBy).Scan(&rota.Version)
		if err != nil {
			return err
		}
		return r.record(ctx, tx, ActionRotaChange, "", fmt.Sprintf("v%d", rota.Version))
	})
	if err != nil {
		return Rota{}, fmt.Errorf("save the on-call rota: %w", err)
	}
	return rota, nil
}

// LatestRota returns the newest saved rota, and false when none was ever
// saved.
func (r *Registry) LatestRota(ctx context.Context) (Rota, bool, error) {
	var rota Rota
	var at string
	err := r.db.QueryRowContext(ctx, `SELECT version, body, saved_at, saved_by FROM oncall_rotas ORDER BY version DESC LIMIT 1`).
		Scan(&rota.Version, &rota.Body, &at, &rota.SavedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return Rota{}, false, nil
	}
	if err != nil {
		return Rota{}, false, fmt.Errorf("latest on-call rota: %w", err)
	}
	if rota.SavedAt, err = parseTime(at); err != nil {
		return Rota{}, false, fmt.Errorf("latest on-call rota: %w", err)
	}
	return rota, true, nil
}
