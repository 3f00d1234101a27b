package alerts

import (
	"errors"
	"time"
)

// Config sets up the alert lifecycle.
type Config struct {
	// FireAfter: a condition must hold this long before its alert fires;
	// ResolveAfter: and stay clear this long before it resolves by itself.
	FireAfter    time.Duration
	ResolveAfter time.Duration
	// MaxOpenPerPatient caps a patient's active non-critical alerts;
	// beyond it a new one is kept suppressed until room is made.
	MaxOpenPerPatient int
	Schedule          *OnCallSchedule // nil: no escalation; a Rota, when set, replaces it
	Rota              *Rota           // the schedule in force, which may change while the manager runs
	Tick              time.Duration   // how often damping, escalation and snoozes are looked at
	// Renotify: a condition that still holds after staff resolved its
	// alert opens a new one this long after the resolution (at once if
	// its value gets worse than at the resolution).
	Renotify time.Duration
}

// DefaultConfig is the usual setup.
func DefaultConfig() Config {
	return Config{FireAfter: time.Minute, ResolveAfter: 15 * time.Minute, MaxOpenPerPatient: 5, Renotify: 24 * time.Hour, Tick: time.Second}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.FireAfter < 0 || c.ResolveAfter < 0 {
		errs = append(errs, errors.New("alert-fire-after and alert-resolve-after must not be negative"))
	}
	if c.MaxOpenPerPatient < 1 {
		errs = append(errs, errors.New("alert-max-per-patient must be at least 1"))
	}
	if c.Renotify < time.Minute {
		errs = append(errs, errors.New("alert-renotify must be at least 1m"))
	}
	if c.Tick < 10*time.Millisecond {
		errs = append(errs, errors.New("alert tick must be at least 10ms"))
	}
	return errors.Join(errs...)
}
