package grafana

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"gopkg.in/yaml.v3"
)

const (
	module       = "github.com/patientpulse/patientpulse"
	datasourceID = "prometheus"
)

// The metrics that issues 6 and 14 ask the operators' dashboard to show.
var required = []string{
	"patientpulse_ingest_messages_total",
	"patientpulse_ingest_samples_accepted_total",
	"patientpulse_ingest_messages_rejected_total",
	"patientpulse_ingest_samples_rejected_total",
	"patientpulse_ingest_deferred_total",
	"patientpulse_writer_write_duration_seconds",
	"patientpulse_writer_batch_points",
	"patientpulse_writer_pending_points",
	"patientpulse_ingest_messages_in_flight",
	"patientpulse_mqtt_connected",
	"patientpulse_mqtt_connection_lost_total",
	"patientpulse_writer_storage_up",
	"patientpulse_analysis_evaluations_total",
	"patientpulse_analysis_transitions_total",
	"patientpulse_analysis_queue_overflows_total",
	"patientpulse_alerts",
	"patientpulse_alerts_opened_total",
	"patientpulse_alert_time_to_ack_seconds",
	"patientpulse_alert_escalations_total",
	"patientpulse_ws_clients",
	"patientpulse_ws_evictions_total",
	"patientpulse_ws_messages_sent_total",
	"patientpulse_ws_samples_dropped_total",
	"patientpulse_notify_attempts_total",
	"patientpulse_notify_deliveries",
	"patientpulse_notify_attempt_seconds",
	"patientpulse_signins_total",
	"patientpulse_access_denied_total",
	"process_resident_memory_bytes",
	"go_goroutines",
}

// Labels that Prometheus adds to every scraped series.
var targetLabels = []string{"job", "instance"}

// metric is one metric family that the code exports.
type metric struct {
	kind   string // counter, gauge, histogram or summary
	labels []string
	where  string
}

// ---- the dashboards

type dashboard struct {
	file          string
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
}

type panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Datasource  *datasource `json:"datasource"`
	GridPos     gridPos     `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Thresholds struct {
				Mode  string `json:"mode"`
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"` // a collapsed row's
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gridPos struct{ H, W, X, Y int }

type target struct {
	Datasource   *datasource `json:"datasource"`
	Expr         string      `json:"expr"`
	LegendFormat string      `json:"legendFormat"`
	RefID        string      `json:"refId"`
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no dashboards in dashboards/")
	}
	var out []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := dashboard{file: f}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, d)
	}
	return out
}

// allPanels returns the dashboard's panels, those inside collapsed rows
// included, rows excluded.
func allPanels(d dashboard) (rows, panels []panel) {
	for _, p := range d.Panels {
		if p.Type == "row" {
			rows = append(rows, p)
			panels = append(panels, p.Panels...)
			continue
		}
		panels = append(panels, p)
	}
	return rows, panels
}

func TestDashboardPanels(t *testing.T) {
	for _, d := range loadDashboards(t) {
		t.Run(filepath.Base(d.file), func(t *testing.T) {
			if d.UID == "" || d.Title == "" {
				t.Errorf("uid %q, title %q: want both", d.UID, d.Title)
			}
			if d.SchemaVersion != 39 {
				t.Errorf("schemaVersion %d, want 39 (Grafana 10 and 11)", d.SchemaVersion)
			}
			rows, panels := allPanels(d)
			if len(panels) == 0 {
				t.Fatal("no panels")
			}
			for _, r := range rows {
				if r.Title == "" {
					t.Errorf("row %d has no title", r.ID)
				}
			}
			titles, ids := map[string]bool{}, map[int]bool{}
			for _, p := range append(slices.Clone(rows), panels...) {
				if ids[p.ID] {
					t.Errorf("panel id %d twice", p.ID)
				}
				ids[p.ID] = true
			}
			for _, p := range panels {
				name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
				if p.Title == "" {
					t.Errorf("%s: no title", name)
				}
				if titles[p.Title] {
					t.Errorf("%s: title used twice", name)
				}
				titles[p.Title] = true
				if p.Datasource == nil || p.Datasource.UID != datasourceID || p.Datasource.Type != "prometheus" {
					t.Errorf("%s: datasource %+v, want prometheus uid %q", name, p.Datasource, datasourceID)
				}
				if len(p.Targets) == 0 {
					t.Errorf("%s: no targets", name)
				}
				refs := map[string]bool{}
				for _, tg := range p.Targets {
					if tg.Datasource != nil && tg.Datasource.UID != datasourceID {
						t.Errorf("%s: target %s: datasource uid %q, want %q", name, tg.RefID, tg.Datasource.UID, datasourceID)
					}
					if strings.TrimSpace(tg.Expr) == "" {
						t.Errorf("%s: target %s: empty expr", name, tg.RefID)
					}
					if tg.RefID == "" || refs[tg.RefID] {
						t.Errorf("%s: refId %q empty or used twice", name, tg.RefID)
					}
					refs[tg.RefID] = true
				}
			}
			// The grid: inside 24 columns, no panel over another.
			placed := append(slices.Clone(rows), panels...)
			for i, p := range placed {
				g := p.GridPos
				if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
					t.Errorf("panel %d %q: gridPos %+v outside the 24-column grid", p.ID, p.Title, g)
				}
				for _, q := range placed[i+1:] {
					h := q.GridPos
					if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
						t.Errorf("panels %q and %q overlap: %+v, %+v", p.Title, q.Title, g, h)
					}
				}
			}
		})
	}
}

// TestFailedDeliveriesShow: a delivery marked failed (given up after
// --notify-give-up, or refused for good) is never sent again, so issue 14
// wants it seen: a stat of the outbox's failed deliveries turns red at one.
func TestFailedDeliveriesShow(t *testing.T) {
	failed := regexp.MustCompile(`^max\(patientpulse_notify_deliveries\{state="failed"\}\)$`)
	found := false
	for _, d := range loadDashboards(t) {
		_, panels := allPanels(d)
		for _, p := range panels {
			if p.Type != "stat" || len(p.Targets) != 1 || !failed.MatchString(p.Targets[0].Expr) {
				continue
			}
			found = true
			th := p.FieldConfig.Defaults.Thresholds
			if th.Mode != "absolute" || len(th.Steps) != 2 || th.Steps[0].Color != "green" || th.Steps[0].Value != nil ||
				th.Steps[1].Color != "red" || th.Steps[1].Value == nil || *th.Steps[1].Value != 1 {
				var steps []string
				for _, s := range th.Steps {
					if s.Value == nil {
						steps = append(steps, s.Color)
					} else {
						steps = append(steps, fmt.Sprintf("%s from %g", s.Color, *s.Value))
					}
				}
				t.Errorf("panel %q: thresholds %s: %s; want absolute: green, red from 1", p.Title, th.Mode, strings.Join(steps, ", "))
			}
			if !strings.Contains(p.Description, "--notify-give-up") {
				t.Errorf("panel %q: the description does not say when a delivery fails (--notify-give-up)", p.Title)
			}
		}
	}
	if !found {
		t.Error(`no stat panel shows max(patientpulse_notify_deliveries{state="failed"})`)
	}
}

// TestDashboardQueries checks every PromQL expression against the metrics
// the code exports: each metric name must be one that a prometheus.*Opts
// literal in the repository's Go code names (or one of the Go and process
// collectors that serve registers), histogram suffixes only on histograms,
// counters only inside rate() or increase(), and every label in a selector,
// a by/without/on/ignoring list or a legend one that the metrics carry.
func TestDashboardQueries(t *testing.T) {
	exported := exportedMetrics(t)
	used := map[string]bool{}
	for _, d := range loadDashboards(t) {
		_, panels := allPanels(d)
		for _, p := range panels {
			for _, tg := range p.Targets {
				where := fmt.Sprintf("%s: panel %q, target %s", filepath.Base(d.file), p.Title, tg.RefID)
				q, err := parseQuery(tg.Expr)
				if err != nil {
					t.Errorf("%s: %v in %s", where, err, tg.Expr)
					continue
				}
				if len(q.refs) == 0 {
					t.Errorf("%s: no metric in %s", where, tg.Expr)
				}
				for _, problem := range checkQuery(q, exported, used) {
					t.Errorf("%s: %s (in %s)", where, problem, tg.Expr)
				}
				for _, l := range legendLabels(tg.LegendFormat) {
					if !q.provides(l, exported) {
						t.Errorf("%s: legend {{%s}}: the query's result has no label %q", where, l, l)
					}
				}
			}
		}
	}
	for _, m := range required {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
	var unused []string
	for name := range exported {
		if strings.HasPrefix(name, "patientpulse_") && !used[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Logf("exported but on no dashboard: %s", strings.Join(unused, ", "))
	}
}

// TestQueryChecks makes sure the checks catch what they are for.
func TestQueryChecks(t *testing.T) {
	exported := map[string]metric{
		"patientpulse_x_total":         {kind: "counter", labels: []string{"reason"}},
		"patientpulse_g":               {kind: "gauge", labels: []string{"state"}},
		"patientpulse_latency_seconds": {kind: "histogram"},
	}
	good := []string{
		`sum by (reason) (rate(patientpulse_x_total{reason!="busy"}[$__rate_interval]))`,
		`histogram_quantile(0.95, sum by (le) (rate(patientpulse_latency_seconds_bucket[5m])))`,
		`sum(rate(patientpulse_latency_seconds_sum[1m])) / sum(rate(patientpulse_latency_seconds_count[1m]))`,
		`sum(patientpulse_g{state="firing", job="patientpulse"}) or (0 * min(patientpulse_g))`,
		`sum(increase(patientpulse_x_total[$__range])) by (reason)`,
	}
	for _, e := range good {
		q, err := parseQuery(e)
		if err != nil {
			t.Errorf("%s: %v", e, err)
			continue
		}
		if p := checkQuery(q, exported, map[string]bool{}); len(p) > 0 {
			t.Errorf("%s: %v", e, p)
		}
	}
	bad := map[string]string{
		`rate(patientpulse_y_total[5m])`:                            "not exported",
		`rate(patientpulse_x_total{patient="p1"}[5m])`:              "no label",
		`sum by (device) (rate(patientpulse_x_total[5m]))`:          "no metric",
		`patientpulse_x_total`:                                      "counter",
		`histogram_quantile(0.5, rate(patientpulse_g_bucket[5m]))`:  "not a histogram",
		`histogram_quantile(0.5, patientpulse_latency_seconds)`:     "histogram",
		`up{job="patientpulse"}`:                                    "not exported",
		`sum(rate(patientpulse_x_total[$dashboard_var]))`:           "variable",
		`rate(patientpulse_x_total{reason="x"}[5m]) > on(state) 1`:  "no metric",
		`sum(rate(patientpulse_x_total{reason=~"a|b"}[5m])) by (l)`: "no metric",
	}
	for e, want := range bad {
		q, err := parseQuery(e)
		var problems []string
		if err != nil {
			problems = []string{err.Error()}
		} else {
			problems = checkQuery(q, exported, map[string]bool{})
		}
		if !strings.Contains(strings.Join(problems, "; "), want) {
			t.Errorf("%s: problems %q, want one with %q", e, problems, want)
		}
	}
	q, err := parseQuery(`sum by (reason) (rate(patientpulse_x_total[1m]))`)
	if err != nil {
		t.Fatal(err)
	}
	if !q.provides("reason", exported) || q.provides("state", exported) {
		t.Error("provides: a by list limits the result's labels")
	}
}

func checkQuery(q query, exported map[string]metric, used map[string]bool) []string {
	var problems []string
	for _, r := range q.refs {
		base, suffix, m, ok := resolve(r.name, exported)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: not exported by the code", r.name))
			continue
		}
		used[base] = true
		switch {
		case m.kind == "histogram" && suffix == "":
			problems = append(problems, fmt.Sprintf("%s is a histogram: query %[1]s_bucket, _sum or _count", r.name))
		case suffix == "_bucket" && m.kind != "histogram":
			problems = append(problems, fmt.Sprintf("%s: %s is a %s, not a histogram", r.name, base, m.kind))
		case suffix != "" && m.kind != "histogram" && m.kind != "summary":
			problems = append(problems, fmt.Sprintf("%s: %s is a %s", r.name, base, m.kind))
		}
		if (m.kind == "counter" || suffix != "") && !slices.Contains([]string{"rate", "increase", "irate"}, r.fn) {
			problems = append(problems, fmt.Sprintf("%s is a counter: use it inside rate() or increase(), not %q", r.name, r.fn))
		}
		for _, l := range r.labels {
			if !hasLabel(m, suffix, l) {
				problems = append(problems, fmt.Sprintf("%s has no label %q", r.name, l))
			}
		}
	}
	for _, l := range q.grouping {
		if !q.anyHas(l, exported) {
			problems = append(problems, fmt.Sprintf("by/without/on/ignoring label %q: no metric of the query has it", l))
		}
	}
	return problems
}

func hasLabel(m metric, suffix, l string) bool {
	return slices.Contains(m.labels, l) || slices.Contains(targetLabels, l) ||
		(l == "le" && suffix == "_bucket") || l == "__name__"
}

// resolve finds the metric family behind a series name.
func resolve(name string, exported map[string]metric) (base, suffix string, m metric, ok bool) {
	if m, ok := exported[name]; ok {
		return name, "", m, true
	}
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if b, found := strings.CutSuffix(name, s); found {
			if m, ok := exported[b]; ok {
				return b, s, m, true
			}
		}
	}
	return "", "", metric{}, false
}

// ---- a small PromQL reader: enough to find metric names, the labels
// each selector matches on, the grouping labels, and the function each
// metric sits in. Anything it does not know is an error, not a pass.

type query struct {
	refs     []ref
	grouping []string // labels of by, without, on, ignoring, group_left, group_right
	by       [][]string
}

type ref struct {
	name   string
	labels []string // in its {...} matchers
	fn     string   // the innermost function or aggregation around it
}

func (q query) anyHas(l string, exported map[string]metric) bool {
	for _, r := range q.refs {
		if _, suffix, m, ok := resolve(r.name, exported); ok && hasLabel(m, suffix, l) {
			return true
		}
	}
	return false
}

// provides tells whether the query's result can carry label l: every by
// list must keep it, and some metric must have it.
func (q query) provides(l string, exported map[string]metric) bool {
	for _, b := range q.by {
		if !slices.Contains(b, l) {
			return false
		}
	}
	return q.anyHas(l, exported)
}

var keywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "atan2"}

// Grafana's range variables; any other $variable is refused.
var grafanaRanges = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}`)

type tok struct {
	kind byte // 'i' identifier, 's' string, 'n' number or duration, 'p' punctuation
	text string
}

func lex(expr string) ([]tok, error) {
	expr = grafanaRanges.ReplaceAllString(expr, "1m")
	var out []tok
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(expr) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			out = append(out, tok{'s', expr[i : j+1]})
			i = j + 1
		case c == '_' || isLetter(c):
			j := i
			for j < len(expr) && (isLetter(expr[j]) || isDigit(expr[j]) || expr[j] == '_' || expr[j] == ':') {
				j++
			}
			out = append(out, tok{'i', expr[i:j]})
			i = j
		case isDigit(c) || c == '.':
			j := i
			for j < len(expr) && (isLetter(expr[j]) || isDigit(expr[j]) || expr[j] == '.') {
				j++
			}
			out = append(out, tok{'n', expr[i:j]})
			i = j
		case c == '$':
			return nil, fmt.Errorf("template variable at %d: the dashboards use none", i)
		case c == '#':
			return nil, fmt.Errorf("comment at %d", i)
		default:
			out = append(out, tok{'p', string(c)})
			i++
		}
	}
	return out, nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

func parseQuery(expr string) (query, error) {
	toks, err := lex(expr)
	if err != nil {
		return query{}, err
	}
	var (
		q       query
		stack   []string // one entry per open "(": the function it belongs to
		pending string   // an aggregation whose by/without list comes before its body
	)
	peek := func(i int) tok {
		if i < len(toks) {
			return toks[i]
		}
		return tok{}
	}
	// labelList reads "( a, b, ... )" at i and returns the labels and the
	// index after it.
	labelList := func(i int) ([]string, int, error) {
		if peek(i).text != "(" {
			return nil, i, fmt.Errorf("want ( after a grouping keyword")
		}
		var ls []string
		for i++; i < len(toks); i++ {
			switch t := toks[i]; {
			case t.text == ")":
				return ls, i + 1, nil
			case t.kind == 'i':
				ls = append(ls, t.text)
			case t.text == ",":
			default:
				return nil, i, fmt.Errorf("unexpected %q in a label list", t.text)
			}
		}
		return nil, i, fmt.Errorf("unclosed label list")
	}
	for i := 0; i < len(toks); {
		t := toks[i]
		switch {
		case t.kind == 'i' && slices.Contains(keywords, t.text):
			if t.text == "by" || t.text == "without" || t.text == "on" || t.text == "ignoring" ||
				((t.text == "group_left" || t.text == "group_right") && peek(i+1).text == "(") {
				ls, next, err := labelList(i + 1)
				if err != nil {
					return q, err
				}
				q.grouping = append(q.grouping, ls...)
				if t.text == "by" {
					q.by = append(q.by, ls)
				}
				if t.text == "without" {
					return q, fmt.Errorf("without: the legend check cannot follow what it keeps; use by")
				}
				i = next
				continue
			}
			i++
		case t.kind == 'i' && peek(i+1).text == "(":
			stack = append(stack, t.text)
			i += 2
		case t.kind == 'i' && (peek(i+1).text == "by" || peek(i+1).text == "without"):
			pending = t.text // sum by (...) (body)
			i++
		case t.kind == 'i':
			r := ref{name: t.text}
			if len(stack) > 0 {
				r.fn = stack[len(stack)-1]
			}
			i++
			if peek(i).text == "{" {
				for i++; i < len(toks) && toks[i].text != "}"; i++ {
					if toks[i].kind == 'i' {
						r.labels = append(r.labels, toks[i].text)
					}
				}
				if i >= len(toks) {
					return q, fmt.Errorf("unclosed {")
				}
				i++
			}
			q.refs = append(q.refs, r)
		case t.text == "(":
			stack = append(stack, pending)
			pending = ""
			i++
		case t.text == ")":
			if len(stack) == 0 {
				return q, fmt.Errorf("unbalanced )")
			}
			stack = stack[:len(stack)-1]
			i++
		case t.text == "{":
			return q, fmt.Errorf("a selector without a metric name")
		case t.text == "[":
			for i < len(toks) && toks[i].text != "]" {
				i++
			}
			i++
		default:
			i++
		}
	}
	if len(stack) != 0 {
		return q, fmt.Errorf("unbalanced (")
	}
	return q, nil
}

var legendLabel = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

func legendLabels(format string) []string {
	var out []string
	for _, m := range legendLabel.FindAllStringSubmatch(format, -1) {
		out = append(out, m[1])
	}
	return out
}

// ---- what the code exports

var metricKinds = map[string]string{
	"CounterOpts": "counter", "GaugeOpts": "gauge", "HistogramOpts": "histogram", "SummaryOpts": "summary",
}

// exportedMetrics reads every non-test Go file of the module and returns
// the metrics that prometheus.*Opts literals name (Name: "..."), with the
// labels of the New*Vec call around them, plus what the Go and process
// collectors export when serve registers them.
func exportedMetrics(t *testing.T) map[string]metric {
	t.Helper()
	root := repoRoot(t)
	out := map[string]metric{}
	var goCollector, processCollector bool
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			n := d.Name()
			if path != root && (strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_") || n == "vendor" || n == "testdata" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		labels := map[*ast.CompositeLit][]string{}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				fn := selector(n.Fun)
				switch fn {
				case "collectors.NewGoCollector":
					goCollector = true
				case "collectors.NewProcessCollector":
					processCollector = true
				}
				if strings.HasPrefix(fn, "prometheus.New") && strings.HasSuffix(fn, "Vec") && len(n.Args) == 2 {
					if opts, ok := unparen(n.Args[0]).(*ast.CompositeLit); ok {
						labels[opts] = stringList(n.Args[1])
					}
				}
			case *ast.CompositeLit:
				kind, ok := metricKinds[strings.TrimPrefix(selector(n.Type), "prometheus.")]
				if !ok || !strings.HasPrefix(selector(n.Type), "prometheus.") {
					return true
				}
				name := ""
				for _, e := range n.Elts {
					kv, ok := e.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
						if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							name, _ = strconv.Unquote(lit.Value)
						}
					}
				}
				if name == "" {
					return true
				}
				if prev, dup := out[name]; dup {
					t.Errorf("metric %s defined in %s and %s", name, prev.where, rel)
				}
				// The CallExpr around a literal is visited before it.
				out[name] = metric{kind: kind, where: rel, labels: labels[n]}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 || out["patientpulse_ingest_messages_total"].kind != "counter" ||
		!slices.Contains(out["patientpulse_ingest_messages_total"].labels, "transport") {
		t.Fatalf("the scan of the code found only %d metrics, or missed patientpulse_ingest_messages_total{transport}: it is broken", len(out))
	}
	for name, m := range out {
		for _, l := range m.labels {
			if strings.Contains(l, "patient") || strings.Contains(l, "device") {
				t.Errorf("%s (%s) has the label %q: no metric may name a patient or a device", name, m.where, l)
			}
		}
	}
	// The Go and process collectors: their metrics as this platform's
	// client_golang exports them.
	var cs []prometheus.Collector
	if goCollector {
		cs = append(cs, collectors.NewGoCollector())
	} else {
		t.Log("serve registers no Go collector: go_* metrics are not exported")
	}
	if processCollector {
		cs = append(cs, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	} else {
		t.Log("serve registers no process collector: process_* metrics are not exported")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(cs...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		m := metric{kind: strings.ToLower(mf.GetType().String()), where: "client_golang collectors"}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if !slices.Contains(m.labels, l.GetName()) {
					m.labels = append(m.labels, l.GetName())
				}
			}
		}
		if _, dup := out[mf.GetName()]; !dup {
			out[mf.GetName()] = m
		}
	}
	if processCollector && runtime.GOOS != "linux" {
		// Some process_* metrics exist on Linux only; the dashboards are
		// for the Linux container.
		for n, kind := range map[string]string{"process_resident_memory_bytes": "gauge", "process_cpu_seconds_total": "counter",
			"process_open_fds": "gauge", "process_max_fds": "gauge"} {
			if _, ok := out[n]; !ok {
				out[n] = metric{kind: kind, where: "process collector on Linux"}
			}
		}
	}
	return out
}

func selector(e ast.Expr) string {
	if s, ok := e.(*ast.SelectorExpr); ok {
		if x, ok := s.X.(*ast.Ident); ok {
			return x.Name + "." + s.Sel.Name
		}
	}
	return ""
}

func unparen(e ast.Expr) ast.Expr {
	for {
		switch x := e.(type) {
		case *ast.ParenExpr:
			e = x.X
		case *ast.UnaryExpr:
			if x.Op != token.AND {
				return e
			}
			e = x.X
		default:
			return e
		}
	}
}

func stringList(e ast.Expr) []string {
	lit, ok := unparen(e).(*ast.CompositeLit)
	if !ok {
		return nil
	}
	var out []string
	for _, el := range lit.Elts {
		if b, ok := el.(*ast.BasicLit); ok && b.Kind == token.STRING {
			if s, err := strconv.Unquote(b.Value); err == nil {
				out = append(out, s)
			}
		}
	}
	return out
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && regexp.MustCompile(`(?m)^module\s+`+regexp.QuoteMeta(module)+`\s*$`).Match(b) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod of %s above the test", module)
		}
		dir = parent
	}
}

// ---- provisioning, Prometheus and docker-compose.yml

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     any               `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
	} `yaml:"services"`
}

// mounts maps each bind mount's container path to its host path (relative
// to the repository root) for one compose service.
func mounts(t *testing.T, volumes []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, v := range volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue // a named volume
		}
		if len(parts) < 3 || parts[2] != "ro" {
			t.Errorf("bind mount %q: want it read-only (:ro)", v)
		}
		out[parts[1]] = filepath.Clean(parts[0])
	}
	return out
}

func TestProvisioning(t *testing.T) {
	root := repoRoot(t)
	var compose composeFile
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	grafana, ok := compose.Services["grafana"]
	if !ok {
		t.Fatal("docker-compose.yml has no grafana service")
	}
	prom, ok := compose.Services["prometheus"]
	if !ok {
		t.Fatal("docker-compose.yml has no prometheus service")
	}
	pp, ok := compose.Services["patientpulse"]
	if !ok {
		t.Fatal("docker-compose.yml has no patientpulse service")
	}
	for name, s := range map[string][]string{"grafana": grafana.Ports, "prometheus": prom.Ports} {
		for _, p := range s {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %q: bind it to 127.0.0.1", name, p)
			}
		}
	}
	for name, img := range map[string]string{"grafana": grafana.Image, "prometheus": prom.Image} {
		if !regexp.MustCompile(`:v?\d+\.\d+\.\d+$`).MatchString(img) {
			t.Errorf("%s image %q: pin a release (x.y.z)", name, img)
		}
	}
	if v := grafana.Environment["GF_AUTH_ANONYMOUS_ENABLED"]; v != "false" {
		t.Errorf("GF_AUTH_ANONYMOUS_ENABLED %q, want false", v)
	}
	if v := grafana.Environment["GF_SECURITY_ADMIN_PASSWORD"]; !strings.HasPrefix(v, "${GRAFANA_ADMIN_PASSWORD:?") {
		t.Errorf("GF_SECURITY_ADMIN_PASSWORD %q: want ${GRAFANA_ADMIN_PASSWORD:?...}, no default", v)
	}
	env, err := os.ReadFile(filepath.Join(root, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^GRAFANA_ADMIN_PASSWORD=\S+`).Match(env) {
		t.Error(".env.example does not set GRAFANA_ADMIN_PASSWORD")
	}

	gm := mounts(t, grafana.Volumes)
	provDir, dashDir := gm["/etc/grafana/provisioning"], gm["/var/lib/grafana/dashboards"]
	here, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for c, h := range map[string]string{"/etc/grafana/provisioning": provDir, "/var/lib/grafana/dashboards": dashDir} {
		if h == "" {
			t.Fatalf("grafana mounts nothing at %s", c)
		}
		if _, err := os.Stat(filepath.Join(root, h)); err != nil {
			t.Errorf("grafana mounts %s at %s: %v", h, c, err)
		}
	}
	if got, want := filepath.Join(root, provDir), filepath.Join(here, "provisioning"); got != want {
		t.Errorf("grafana's provisioning comes from %s, want %s", got, want)
	}
	if got, want := filepath.Join(root, dashDir), filepath.Join(here, "dashboards"); got != want {
		t.Errorf("grafana's dashboards come from %s, want %s", got, want)
	}
	if home := grafana.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		rel, ok := strings.CutPrefix(home, "/var/lib/grafana/dashboards/")
		if _, err := os.Stat(filepath.Join("dashboards", rel)); !ok || err != nil {
			t.Errorf("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH %s is no mounted dashboard", home)
		}
	}

	// The data source: Prometheus at the compose service, uid "prometheus".
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string         `yaml:"name"`
			UID       string         `yaml:"uid"`
			Type      string         `yaml:"type"`
			Access    string         `yaml:"access"`
			URL       string         `yaml:"url"`
			IsDefault bool           `yaml:"isDefault"`
			Editable  bool           `yaml:"editable"`
			JSONData  map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join("provisioning", "datasources", "prometheus.yml"), &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("datasources: apiVersion %d, %d data sources; want 1 and 1", ds.APIVersion, len(ds.Datasources))
	}
	if d := ds.Datasources[0]; d.UID != datasourceID || d.Type != "prometheus" || d.URL != "http://prometheus:9090" || d.Access != "proxy" {
		t.Errorf("data source %+v: want uid %q, type prometheus, url http://prometheus:9090, access proxy", d, datasourceID)
	}

	// The dashboard provider: the files at the mounted dashboards path.
	var dp struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name                  string `yaml:"name"`
			OrgID                 int    `yaml:"orgId"`
			Folder                string `yaml:"folder"`
			Type                  string `yaml:"type"`
			DisableDeletion       bool   `yaml:"disableDeletion"`
			AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
			UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
			Options               struct {
				Path                      string `yaml:"path"`
				FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join("provisioning", "dashboards", "patientpulse.yml"), &dp)
	if dp.APIVersion != 1 || len(dp.Providers) != 1 {
		t.Fatalf("dashboard providers: apiVersion %d, %d providers; want 1 and 1", dp.APIVersion, len(dp.Providers))
	}
	if p := dp.Providers[0]; p.Type != "file" || p.Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("dashboard provider %+v: want type file at /var/lib/grafana/dashboards", p)
	}

	// Prometheus: its configuration is the mounted file, and it scrapes
	// patientpulse where compose runs it.
	pm := mounts(t, prom.Volumes)
	conf := pm["/etc/prometheus/prometheus.yml"]
	if conf != filepath.Join("deploy", "prometheus", "prometheus.yml") {
		t.Fatalf("prometheus mounts %q at /etc/prometheus/prometheus.yml, want deploy/prometheus/prometheus.yml", conf)
	}
	if c := fmt.Sprint(prom.Command); prom.Command != nil && !strings.Contains(c, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus command %s does not read /etc/prometheus/prometheus.yml", c)
	}
	var pc struct {
		Global        map[string]string `yaml:"global"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			Scheme        string `yaml:"scheme"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, filepath.Join(root, conf), &pc)
	_, port, _ := strings.Cut(pp.Environment["PATIENTPULSE_HTTP_ADDR"], ":")
	if port == "" {
		t.Fatalf("patientpulse's PATIENTPULSE_HTTP_ADDR %q has no port", pp.Environment["PATIENTPULSE_HTTP_ADDR"])
	}
	jobs := map[string][]string{}
	for _, sc := range pc.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %s, want /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, s := range sc.StaticConfigs {
			jobs[sc.JobName] = append(jobs[sc.JobName], s.Targets...)
		}
	}
	if got, want := jobs["patientpulse"], []string{"patientpulse:" + port}; !slices.Equal(got, want) {
		t.Errorf("job patientpulse scrapes %v, want %v", got, want)
	}
	if _, ok := jobs["prometheus"]; !ok {
		t.Error("no job prometheus: Prometheus should scrape itself")
	}
	if pc.Global["scrape_interval"] != "15s" {
		t.Errorf("scrape_interval %q, want 15s", pc.Global["scrape_interval"])
	}
}
