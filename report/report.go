// Package report renders a patient's visit report as a PDF: over a span
// chosen by the clinician, the plan versions and regimen in force, each
// rule's verdict now, adherence, charts of the monitored series with each
// plan version's target band over its own span, laboratory results, the
// alerts and their notes, and the staff's notes on the patient. The API
// gathers the data (Data); Render draws it. The document is PHI: it is
// sent to the clinician who asked and stored nowhere.
package report

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
)

// Data is everything a report shows.
type Data struct {
	PatientID, PatientName string
	From, To               time.Time
	Location               *time.Location // the clinic's zone for dates; nil: UTC
	GeneratedAt            time.Time
	GeneratedBy            string
	Plans                  []Plan // the versions in force during the span, oldest first
	Verdicts               []Verdict
	Comparisons            []Comparison // the plan versions of the span, before and after each
	Doses                  []DoseCount
	Treatments             []Treatment // the procedures of the span, oldest first
	Charts                 []Chart
	Labs                   []Lab
	Alerts                 []Alert
	Notes                  []Note
}

// Plan is one plan version: when it took effect, its regimen and rules
// in words.
type Plan struct {
	Version   int
	Effective time.Time
	Regimen   []string
	Rules     []string
}

// Comparison is a plan version's metrics before and after it took
// effect: how its regimen changed, and each metric's outcome (improved,
// worsened, ...) and sentence.
type Comparison struct {
	Version   int
	Effective time.Time
	Changes   []string
	Days      int
	Metrics   []ComparedMetric
}

// ComparedMetric is one metric of a Comparison.
type ComparedMetric struct {
	Outcome, Sentence string
}

// Treatment is a procedure of the patient, planned or done.
type Treatment struct {
	At                        time.Time
	Name, Status, PerformedBy string
	Notes                     string
}

// Verdict is a rule's verdict now.
type Verdict struct {
	Rule, Severity, Sentence string
	Judged, Holds            bool
}

// DoseCount is how many doses of a medication were logged in the span.
type DoseCount struct {
	Medication string
	Logged     int
}

// Chart is one series over the span, with its bands.
type Chart struct {
	Title, Unit string
	Points      []Point
	Bands       []Band
}

// Point is one value of a series.
type Point struct {
	T time.Time
	V float64
}

// Band is where a plan version wants the series, over its span; a nil
// bound is open.
type Band struct {
	Version   int
	From, To  time.Time // To zero: still in force
	Low, High *float64
}

// Lab is one laboratory result.
type Lab struct {
	T               time.Time
	Analyte, Unit   string
	Value           float64
	RefLow, RefHigh *float64
	High, Low       bool // outside the reference range
}

// Alert is an alert of the span with what staff said on it.
type Alert struct {
	OpenedAt                  time.Time
	Severity, State, Sentence string
	Notes                     []string
}

// Note is a staff member's note on the patient.
type Note struct {
	At     time.Time
	Author string
	Text   string
}

const (
	pageW, margin = 210.0, 15.0
	textW         = pageW - 2*margin
	lineH         = 5.0
)

var (
	ink    = [3]int{27, 31, 36}
	muted  = [3]int{85, 94, 104}
	accent = [3]int{11, 92, 173}
	danger = [3]int{185, 28, 28}
)

type doc struct {
	pdf *fpdf.Fpdf
	loc *time.Location
}

// Render writes the report as a PDF to w.
func Render(w io.Writer, d Data) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetMargins(margin, margin, margin)
	pdf.SetAutoPageBreak(true, margin+5)
	pdf.AddUTF8FontFromBytes("go", "", goregular.TTF)
	pdf.AddUTF8FontFromBytes("go", "B", gobold.TTF)
	pdf.SetTitle("Visit report "+d.PatientID, true)
	pdf.SetCreator("patientpulse", true)
	loc := d.Location
	if loc == nil {
		loc = time.UTC
	}
	r := &doc{pdf: pdf, loc: loc}
	pdf.SetFooterFunc(func() {
		pdf.SetY(-margin)
		r.font("", 8, muted)
		pdf.CellFormat(textW/2, 4, "patientpulse visit report · "+d.PatientID+" · confidential", "", 0, "L", false, 0, "")
		pdf.CellFormat(textW/2, 4, fmt.Sprintf("page %d of {nb}", pdf.PageNo()), "", 0, "R", false, 0, "")
	})
	pdf.AliasNbPages("{nb}")
	pdf.AddPage()
	r.header(d)
	r.plans(d)
	r.treatments(d)
	r.verdicts(d)
	r.comparisons(d)
	r.charts(d)
	r.labs(d)
	r.alerts(d)
	r.notes(d)
	if err := pdf.Error(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return pdf.Output(w)
}

func (r *doc) font(style string, size float64, c [3]int) {
	r.pdf.SetFont("go", style, size)
	r.pdf.SetTextColor(c[0], c[1], c[2])
}

func (r *doc) day(t time.Time) string  { return t.In(r.loc).Format("2 Jan 2006") }
func (r *doc) when(t time.Time) string { return t.In(r.loc).Format("2 Jan 2006, 15:04") }

// heading starts a section, on a new page when less than need mm are left.
func (r *doc) heading(title string, need float64) {
	_, pageH := r.pdf.GetPageSize()
	if r.pdf.GetY()+need > pageH-margin-5 {
		r.pdf.AddPage()
	}
	r.pdf.Ln(3)
	r.font("B", 13, accent)
	r.pdf.CellFormat(textW, 7, title, "B", 1, "L", false, 0, "")
	r.pdf.Ln(1.5)
}

func (r *doc) para(text string, style string, size float64, c [3]int) {
	r.font(style, size, c)
	r.pdf.MultiCell(textW, lineH, text, "", "L", false)
}

// item writes a line with a bold lead.
func (r *doc) item(lead, text string, c [3]int) {
	r.font("B", 10, c)
	w := r.pdf.GetStringWidth(lead+" ") + 1
	r.pdf.CellFormat(w, lineH, lead, "", 0, "L", false, 0, "")
	r.font("", 10, ink)
	r.pdf.MultiCell(textW-w, lineH, text, "", "L", false)
}

func (r *doc) header(d Data) {
	r.font("B", 18, ink)
	name := d.PatientName
	if name == "" {
		name = d.PatientID
	}
	r.pdf.CellFormat(textW, 9, "Visit report: "+name, "", 1, "L", false, 0, "")
	r.font("", 10, muted)
	r.pdf.MultiCell(textW, lineH, fmt.Sprintf("Patient %s · %s to %s (%s) · made %s by %s", d.PatientID,
		r.day(d.From), r.day(d.To.Add(-time.Second)), r.loc, r.when(d.GeneratedAt), d.GeneratedBy), "", "L", false)
}

func (r *doc) plans(d Data) {
	r.heading("Plan and regimen", 25)
	if len(d.Plans) == 0 {
		r.para("No plan was in force in this period.", "", 10, muted)
	}
	for _, p := range d.Plans {
		r.font("B", 11, ink)
		r.pdf.CellFormat(textW, 6, fmt.Sprintf("Version %d, in force from %s", p.Version, r.day(p.Effective)), "", 1, "L", false, 0, "")
		for _, g := range p.Regimen {
			r.item("Regimen:", g, ink)
		}
		for _, rule := range p.Rules {
			r.item("Rule:", rule, ink)
		}
		r.pdf.Ln(1)
	}
	if len(d.Doses) > 0 {
		var parts []string
		for _, c := range d.Doses {
			parts = append(parts, fmt.Sprintf("%s %d", c.Medication, c.Logged))
		}
		r.item("Doses logged in the period:", strings.Join(parts, "; "), ink)
	}
}

func (r *doc) treatments(d Data) {
	if len(d.Treatments) == 0 {
		return
	}
	r.heading("Treatments", 20)
	for _, t := range d.Treatments {
		text := t.Name + ", " + t.Status
		if t.PerformedBy != "" {
			text += ", by " + t.PerformedBy
		}
		if t.Notes != "" {
			text += ": " + t.Notes
		}
		r.item(r.when(t.At)+":", text, ink)
	}
}

func (r *doc) verdicts(d Data) {
	r.heading("Each rule's verdict now", 20)
	if len(d.Verdicts) == 0 {
		r.para("No rule has been judged.", "", 10, muted)
	}
	for _, v := range d.Verdicts {
		lead, c := "Within the plan:", ink
		switch {
		case !v.Judged:
			lead, c = "Not judged:", muted
		case v.Holds:
			lead, c = "Alert ("+v.Severity+"):", danger
		}
		r.item(lead, v.Sentence, c)
	}
}

func (r *doc) comparisons(d Data) {
	if len(d.Comparisons) == 0 {
		return
	}
	r.heading("Is the change working?", 20)
	for _, c := range d.Comparisons {
		changes := "no change of the regimen"
		if len(c.Changes) > 0 {
			changes = strings.Join(c.Changes, "; ")
		}
		r.para(fmt.Sprintf("Plan v%d, from %s (%s): %d days before and after; 95%% confidence intervals from the daily values.",
			c.Version, r.day(c.Effective), changes, c.Days), "B", 10, ink)
		if len(c.Metrics) == 0 {
			r.para("Its rules watch no metric to compare.", "", 10, muted)
		}
		for _, m := range c.Metrics {
			col := ink
			switch m.Outcome {
			case "worsened":
				col = danger
			case "too few days", "no clear change":
				col = muted
			}
			r.item(strings.ToUpper(m.Outcome[:1])+m.Outcome[1:]+":", m.Sentence, col)
		}
	}
}

func (r *doc) charts(d Data) {
	r.heading("Charts", 70)
	if len(d.Charts) == 0 {
		r.para("No data was recorded in this period.", "", 10, muted)
	}
	for _, c := range d.Charts {
		r.chart(d, c)
	}
}

// chart draws one series: its band of each plan version over that
// version's span (shaded, bounds dashed), a line through its points, the
// value range on the left and dates below.
func (r *doc) chart(d Data, c Chart) {
	const h, axisW = 42.0, 16.0
	_, pageH := r.pdf.GetPageSize()
	if r.pdf.GetY()+h+16 > pageH-margin-5 {
		r.pdf.AddPage()
	}
	pdf := r.pdf
	title := c.Title
	if c.Unit != "" {
		title += " (" + c.Unit + ")"
	}
	r.font("B", 10, ink)
	pdf.CellFormat(textW, 6, title, "", 1, "L", false, 0, "")
	x0, y0 := margin+axisW, pdf.GetY()
	w := textW - axisW
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range c.Points {
		lo, hi = math.Min(lo, p.V), math.Max(hi, p.V)
	}
	for _, b := range c.Bands {
		for _, v := range []*float64{b.Low, b.High} {
			if v != nil {
				lo, hi = math.Min(lo, *v), math.Max(hi, *v)
			}
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 0, 1
	}
	if pad := (hi - lo) * 0.1; pad > 0 {
		lo, hi = lo-pad, hi+pad
	} else {
		lo, hi = lo-1, hi+1
	}
	span := d.To.Sub(d.From).Seconds()
	xOf := func(t time.Time) float64 { return x0 + w*math.Min(math.Max(t.Sub(d.From).Seconds()/span, 0), 1) }
	yOf := func(v float64) float64 { return y0 + h - h*(v-lo)/(hi-lo) }

	pdf.SetDrawColor(208, 215, 222)
	pdf.SetLineWidth(0.2)
	pdf.Rect(x0, y0, w, h, "D")
	for _, b := range c.Bands {
		bx0, bx1 := xOf(b.From), x0+w
		if !b.To.IsZero() {
			bx1 = xOf(b.To)
		}
		if bx1 <= bx0 {
			continue
		}
		top, bottom := y0, y0+h
		if b.High != nil {
			top = yOf(*b.High)
		}
		if b.Low != nil {
			bottom = yOf(*b.Low)
		}
		pdf.SetFillColor(226, 236, 247)
		pdf.Rect(bx0, top, bx1-bx0, bottom-top, "F")
		pdf.SetDrawColor(accent[0], accent[1], accent[2])
		pdf.SetDashPattern([]float64{1.5, 1}, 0)
		for _, v := range []*float64{b.Low, b.High} {
			if v != nil {
				pdf.Line(bx0, yOf(*v), bx1, yOf(*v))
			}
		}
		pdf.SetDashPattern(nil, 0)
		r.font("", 7, accent)
		pdf.Text(bx0+1, y0+3, fmt.Sprintf("plan v%d", b.Version))
	}
	pdf.SetDrawColor(accent[0], accent[1], accent[2])
	pdf.SetFillColor(accent[0], accent[1], accent[2])
	pdf.SetLineWidth(0.4)
	for i, p := range c.Points {
		x, y := xOf(p.T), yOf(p.V)
		if i > 0 {
			pdf.Line(xOf(c.Points[i-1].T), yOf(c.Points[i-1].V), x, y)
		}
		pdf.Circle(x, y, 0.6, "F")
	}
	pdf.SetLineWidth(0.2)
	r.font("", 7, muted)
	for _, v := range []float64{hi, (lo + hi) / 2, lo} {
		pdf.SetXY(margin, yOf(v)-2)
		pdf.CellFormat(axisW-1.5, 4, number(v), "", 0, "R", false, 0, "")
	}
	for _, f := range []float64{0, 0.5, 1} {
		t := d.From.Add(time.Duration(f * float64(d.To.Sub(d.From))))
		if f == 1 {
			t = d.To.Add(-time.Second) // the last day shown, not the midnight after it
		}
		align, x := "C", x0+w*f-15
		switch f {
		case 0:
			align, x = "L", x0
		case 1:
			align, x = "R", x0+w-30
		}
		pdf.SetXY(x, y0+h+0.5)
		pdf.CellFormat(30, 4, r.day(t), "", 0, align, false, 0, "")
	}
	pdf.SetXY(margin, y0+h+5)
	if len(c.Points) > 0 {
		last := c.Points[len(c.Points)-1]
		r.font("", 8, muted)
		values := "values"
		if len(c.Points) == 1 {
			values = "value"
		}
		pdf.CellFormat(textW, 4, fmt.Sprintf("%d %s; the latest %s%s on %s", len(c.Points), values, number(last.V), unitSuffix(c.Unit), r.when(last.T)),
			"", 1, "L", false, 0, "")
	}
	pdf.Ln(2)
}

func unitSuffix(u string) string {
	if u == "" {
		return ""
	}
	return " " + u
}

// number writes v with at most two decimals, without trailing zeros.
func number(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

func (r *doc) labs(d Data) {
	r.heading("Laboratory results", 20)
	if len(d.Labs) == 0 {
		r.para("No laboratory results in this period.", "", 10, muted)
		return
	}
	widths := []float64{38, 44, 36, 46, 16}
	r.font("B", 9, ink)
	for i, h := range []string{"Date", "Analyte", "Value", "Reference range", "Flag"} {
		r.pdf.CellFormat(widths[i], 6, h, "B", 0, "L", false, 0, "")
	}
	r.pdf.Ln(-1)
	for _, l := range d.Labs {
		ref := ""
		switch {
		case l.RefLow != nil && l.RefHigh != nil:
			ref = number(*l.RefLow) + "–" + number(*l.RefHigh)
		case l.RefLow != nil:
			ref = "from " + number(*l.RefLow)
		case l.RefHigh != nil:
			ref = "up to " + number(*l.RefHigh)
		}
		flag, c := "", ink
		if l.High {
			flag, c = "H", danger
		} else if l.Low {
			flag, c = "L", danger
		}
		r.font("", 9, c)
		cells := []string{r.day(l.T), l.Analyte, number(l.Value) + unitSuffix(l.Unit), ref, flag}
		for i, v := range cells {
			r.pdf.CellFormat(widths[i], 5.5, v, "", 0, "L", false, 0, "")
		}
		r.pdf.Ln(-1)
	}
}

func (r *doc) alerts(d Data) {
	r.heading("Alerts", 20)
	if len(d.Alerts) == 0 {
		r.para("No alerts in this period.", "", 10, muted)
	}
	for _, a := range d.Alerts {
		c := ink
		if a.Severity == "critical" {
			c = danger
		}
		r.item(fmt.Sprintf("%s, %s (%s):", r.when(a.OpenedAt), a.Severity, a.State), a.Sentence, c)
		for _, n := range a.Notes {
			r.font("", 9, muted)
			r.pdf.SetX(margin + 6)
			r.pdf.MultiCell(textW-6, 4.5, n, "", "L", false)
		}
	}
}

func (r *doc) notes(d Data) {
	r.heading("Notes", 20)
	if len(d.Notes) == 0 {
		r.para("No notes in this period.", "", 10, muted)
	}
	for _, n := range d.Notes {
		r.item(fmt.Sprintf("%s, %s:", r.when(n.At), n.Author), n.Text, ink)
	}
}
