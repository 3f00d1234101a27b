// Package examples holds the plan templates and the on-call rota of
// examples/, embedded so that `patientpulse simulate` finds them wherever
// it runs.
package examples

import "embed"

// Plans holds plans/*.yaml.
//
//go:embed plans/*.yaml
var Plans embed.FS
