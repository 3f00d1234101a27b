package report

import (
	"bytes"
	"testing"
	"time"
)

// TestRenderEmptyAndUnicode: a report with nothing in it is still a PDF
// that says so, and a name outside Latin-1 does not break it.
func TestRenderEmptyAndUnicode(t *testing.T) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, d := range []Data{
		{PatientID: "p-1", From: from, To: from.Add(30 * 24 * time.Hour)},
		{PatientID: "p-2", PatientName: "Zoë Ωmega-Ñandú", From: from, To: from.Add(24 * time.Hour),
			Charts: []Chart{{Title: "Sleep", Unit: "h", Points: []Point{{T: from.Add(time.Hour), V: 7.5}}}}},
	} {
		var buf bytes.Buffer
		if err := Render(&buf, d); err != nil {
			t.Fatalf("Render(%s): %v", d.PatientID, err)
		}
		if !bytes.HasPrefix(buf.Bytes(), []byte("%PDF-")) || buf.Len() < 1000 {
			t.Errorf("Render(%s): %d bytes, starting %q", d.PatientID, buf.Len(), buf.Bytes()[:min(buf.Len(), 8)])
		}
	}
}

func TestNumber(t *testing.T) {
	for v, want := range map[float64]string{7: "7", 7.5: "7.5", 0.056: "0.06", -0.001: "0", 123.456: "123.46"} {
		if got := number(v); got != want {
			t.Errorf("number(%v) = %q, want %q", v, got, want)
		}
	}
}
