package registry

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// AddUnknownSignIn records a failed sign-in of a username that does not
// exist, known by nameHash (the hex SHA-256 of what was typed, which may
// be a password: the name itself is never stored), from address at at,
// and forgets those recorded before forget. The audit log names no such
// username, so that these are counted here, in the registry, where every
// instance reads them.
func (r *Registry) AddUnknownSignIn(ctx context.Context, nameHash, address string, at, forget time.Time) error {
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, r.q(`DELETE FROM signin_unknown WHERE at < ?`), formatTime(forget)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, r.q(`INSERT INTO signin_unknown (name_hash, address, at) VALUES (?, ?, ?)`),
			nameHash, address, formatTime(at))
		return err
	})
	if err != nil {
		return fmt.Errorf("record an unknown username's failed sign-in: %w", err)
	}
	return nil
}

// UnknownSignInCounts sets the account's counts in c (Account,
// AccountAddresses, AccountAddress, LastFailure) from the failed sign-ins
// of the unknown username nameHash since the given time, as SignInCounts
// counts a real account's; c.Address, counted from the audit log, is left
// as it is.
func (r *Registry) UnknownSignInCounts(ctx context.Context, nameHash, address string, since time.Time, c *SignInCounts) error {
	var last sql.NullString
	err := r.db.QueryRowContext(ctx, r.q(`SELECT COUNT(*), COUNT(DISTINCT address), MAX(at),
		COALESCE(SUM(CASE WHEN address = ? THEN 1 ELSE 0 END), 0)
		FROM signin_unknown WHERE name_hash = ? AND at >= ?`), address, nameHash, formatTime(since)).
		Scan(&c.Account, &c.AccountAddresses, &last, &c.AccountAddress)
	if err != nil {
		return fmt.Errorf("count an unknown username's failed sign-ins: %w", err)
	}
	c.LastFailure = time.Time{}
	if last.Valid {
		if c.LastFailure, err = parseTime(last.String); err != nil {
			return fmt.Errorf("count an unknown username's failed sign-ins: %w", err)
		}
	}
	return nil
}
