package alerts

import (
	"sync/atomic"
	"time"
)

// RotaVersion is the on-call schedule in force and where it came from.
type RotaVersion struct {
	Schedule *OnCallSchedule
	Text     string // its YAML
	// Version is the registry's version of a rota saved by an admin; 0
	// for the --oncall-schedule file.
	Version int64
	SavedAt time.Time
	SavedBy string
}

// Rota holds the schedule in force, which an admin may replace while the
// server runs (PUT /v1/oncall/schedule). Its zero value holds none: no
// escalation. It is safe for concurrent use.
type Rota struct {
	v atomic.Pointer[RotaVersion]
}

// Load returns the version in force, or nil.
func (r *Rota) Load() *RotaVersion {
	if r == nil {
		return nil
	}
	return r.v.Load()
}

// Store puts v in force.
func (r *Rota) Store(v *RotaVersion) { r.v.Store(v) }

// Schedule returns the schedule in force, or nil.
func (r *Rota) Schedule() *OnCallSchedule {
	if v := r.Load(); v != nil {
		return v.Schedule
	}
	return nil
}
