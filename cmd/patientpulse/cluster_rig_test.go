package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/cluster"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// The cluster tests run several serve processes from the built binary on
// one Postgres registry (issue 16, "Done when"): they kill or pause one and
// read what the others did from the registry, the broker's log, InfluxDB
// and a console on every instance. The instances share the package's
// influxd (the devices are the tests' own); each test starts its own
// Mosquitto, whose persistent sessions it leaves behind.

// clusterBase is the MQTT client id base every instance of a test shares.
const clusterBase = "pp-cluster"

// Short cluster timings, so that a takeover happens within a second or two.
var clusterTimings = []string{"--cluster-heartbeat", "250ms", "--cluster-lease-ttl", "1s"}

// node is one serve process of a cluster.
type node struct {
	name    string
	addr    string // host:port, also its --cluster-address
	url     string
	dataDir string
	cmd     *exec.Cmd
	logs    *testservices.LogBuffer
	killed  bool // guarded by the rig's mu: cmd.Wait writes cmd.ProcessState unguarded
}

// clusterRig is a clinic of serve processes on one Postgres registry and
// one Mosquitto of the test's own.
type clusterRig struct {
	t      *testing.T
	dsn    string
	db     *sql.DB
	broker *testservices.Mosquitto
	args   []string // every instance's serve flags besides its addresses
	inited bool
	mu     sync.Mutex
	nodes  []*node // guarded by mu
}

func newClusterRig(t *testing.T, extra ...string) *clusterRig {
	t.Helper()
	m := ownBroker(t)
	dsn := testservices.PostgresDB(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	args := append([]string{"--db", dsn, "--mqtt-url", m.URL, "--mqtt-client-id", clusterBase}, clusterTimings...)
	return &clusterRig{t: t, dsn: dsn, db: db, broker: m, args: append(args, extra...)}
}

// admin runs an admin command on the rig's registry (the first one with
// --init) and returns its stdout.
func (r *clusterRig) admin(stdin string, args ...string) string {
	r.t.Helper()
	args = append(args, "--db", r.dsn)
	if !r.inited {
		args = append(args, "--init")
		r.inited = true
	}
	out, _ := mustStaff(r.t, "", stdin, args...)
	return out
}

// start runs one more instance, named name, and waits for its /readyz.
func (r *clusterRig) start(name string) *node {
	r.t.Helper()
	port, err := testservices.FreePort()
	if err != nil {
		r.t.Fatal(err)
	}
	n := &node{name: name, addr: fmt.Sprintf("127.0.0.1:%d", port), dataDir: filepath.Join(r.t.TempDir(), name)}
	n.url = "http://" + n.addr
	n.cmd, n.logs = serveProcessAt(r.t, n.dataDir, n.addr, append(slices.Clone(r.args), "--cluster-address", n.addr)...)
	r.mu.Lock()
	r.nodes = append(r.nodes, n)
	r.mu.Unlock()
	return n
}

// alive is the instances not killed.
func (r *clusterRig) alive() []*node {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*node
	for _, n := range r.nodes {
		if !n.killed {
			out = append(out, n)
		}
	}
	return out
}

// urls is the live instances' base URLs.
func (r *clusterRig) urls() []string {
	var out []string
	for _, n := range r.alive() {
		out = append(out, n.url)
	}
	return out
}

// kill ends n with SIGKILL and waits for it.
func (r *clusterRig) kill(n *node) {
	r.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	n.killed = true
	r.mu.Unlock()
	_ = n.cmd.Wait()
}

// lease is one slot's lease as the registry holds it.
type lease struct {
	holder string // the holder's --cluster-address; "" when free or expired
	epoch  int64
}

// leases reads the live leases of set by slot: a slot whose lease expired
// (by the database's clock) has no holder.
func (r *clusterRig) leases(set string) map[int]lease {
	r.t.Helper()
	rows, err := r.db.Query(`SELECT l.slot, l.epoch, COALESCE(m.address, '')
		FROM cluster_leases l LEFT JOIN cluster_members m ON m.id = l.holder AND l.expires > now()
		WHERE l.set_name = $1`, set)
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		r.t.Fatalf("read cluster_leases: %v: serve did not join the cluster", err)
	}
	if err != nil {
		r.t.Fatalf("read cluster_leases: %v", err)
	}
	defer rows.Close()
	out := map[int]lease{}
	for rows.Next() {
		var slot int
		var l lease
		if err := rows.Scan(&slot, &l.epoch, &l.holder); err != nil {
			r.t.Fatal(err)
		}
		out[slot] = l
	}
	if err := rows.Err(); err != nil {
		r.t.Fatal(err)
	}
	return out
}

// owned is the slots of set each instance (by address) holds.
func (r *clusterRig) owned(set string) map[string][]int {
	out := map[string][]int{}
	for slot, l := range r.leases(set) {
		out[l.holder] = append(out[l.holder], slot)
	}
	return out
}

// balanced says whether every live instance holds its fair share of set
// (n/live rounded down or up) and no slot is free or held by another.
func (r *clusterRig) balanced(set string, slots int) bool {
	owned := r.owned(set)
	live := r.alive()
	if len(owned) != len(live) {
		return false
	}
	for _, n := range live {
		if k := len(owned[n.addr]); k < slots/len(live) || k > (slots+len(live)-1)/len(live) {
			return false
		}
	}
	return true
}

// count runs a counting query on the registry.
func (r *clusterRig) count(query string, args ...any) int64 {
	r.t.Helper()
	var n int64
	if err := r.db.QueryRow(query, args...).Scan(&n); err != nil {
		r.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// brokerLog is the rig's Mosquitto log so far.
func (r *clusterRig) brokerLog() string {
	raw, err := os.ReadFile(filepath.Join(r.broker.Dir, "mosquitto.log"))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(raw)
}

// hrRule is the plans' critical rule: a heart rate above 120 bpm in a day.
const hrRule = `  - {id: hr-high, kind: threshold, metric: heart_rate.bpm, over: 1d, aggregate: max, above: 120, min_days: 1, severity: critical}` + "\n"

// enrollWithPlans adds each patient with the heart-rate plan and the
// device of the same index, and returns the devices' tokens. It makes the
// registry calls of patients add, devices enroll and plans apply on one
// connection: the commands themselves open the registry each time (about
// 100 ms on Postgres, 45 s for 200 patients even four at a time).
func (r *clusterRig) enrollWithPlans(patients, devices []string) []string {
	r.t.Helper()
	reg := r.registry()
	ctx := r.t.Context()
	tokens := make([]string, len(patients))
	for i, p := range patients {
		if err := reg.AddPatient(ctx, registry.Patient{ID: p}); err != nil {
			r.t.Fatal(err)
		}
		token, err := reg.EnrollDevice(ctx, devices[i], p)
		if err != nil {
			r.t.Fatal(err)
		}
		tokens[i] = token
		doc := "patient: " + p + "\neffective: " + ts(time.Now().Add(-48*time.Hour)) + "\nrules:\n" + hrRule
		plan, err := analysis.ParsePlanWithin([]byte(doc), planHorizon)
		if err != nil {
			r.t.Fatal(err)
		}
		if _, err := analysis.SavePlanWithin(ctx, reg, &plan, planHorizon); err != nil {
			r.t.Fatal(err)
		}
	}
	return tokens
}

// planHorizon is how far back the plans' windows may reach.
const planHorizon = 90 * 24 * time.Hour

// registry opens the rig's registry (made by the first admin command)
// until the test ends.
func (r *clusterRig) registry() *registry.Registry {
	r.t.Helper()
	if !r.inited {
		r.admin("", "patients", "list")
	}
	reg, err := registry.Open(r.t.Context(), r.dsn)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { reg.Close() })
	return reg
}

// oncallRota writes a schedule of tiers (name, minutes after opening, one
// staff member each, round the clock) and adds each member as on-call
// staff.
func (r *clusterRig) oncallRota(tiers ...string) string {
	r.t.Helper()
	var b strings.Builder
	b.WriteString("timezone: UTC\ntiers:\n")
	for i, staff := range tiers {
		r.admin(staffPassword+"\n", "staff", "add", "--username", staff, "--role", "oncall")
		fmt.Fprintf(&b, "  - name: tier%d\n    after: %dm\n    shifts: [{staff: [%s], days: [all], from: \"00:00\", to: \"24:00\"}]\n", i+1, i, staff)
	}
	path := filepath.Join(r.t.TempDir(), "oncall.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return path
}

// spike posts a heart rate of 150 bpm for device (seq 1) to the first
// live instance that answers 202, and returns when one did. A paused
// instance does not answer: each try gives up after a second.
func (r *clusterRig) spike(device, token string) {
	r.t.Helper()
	body := fmt.Appendf(nil, `{"seq": 1, "samples": [{"type": "heart_rate", "time": %q, "bpm": 150}]}`, ts(time.Now().Add(-time.Minute)))
	client := &http.Client{Timeout: time.Second}
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		for _, n := range r.alive() {
			status, doc, _, err := postWith(client, n.url, token, "application/json", body)
			if err == nil && status == http.StatusAccepted {
				return
			}
			last = fmt.Sprintf("%s: %d %v %v", n.name, status, doc, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.t.Fatalf("spike of %s not accepted by any instance: %s", device, last)
}

// console is one staff websocket on an instance, recording every message
// with the time it arrived.
type console struct {
	node *node
	mu   sync.Mutex
	msgs []consoleMsg
}

type consoleMsg struct {
	at  time.Time
	doc map[string]any
}

func openConsole(t *testing.T, n *node, token string) *console {
	t.Helper()
	g := dialAndGreet(t, n.url, token)
	c := &console{node: n}
	go func() {
		for m := range g.conn.msgs {
			c.mu.Lock()
			c.msgs = append(c.msgs, consoleMsg{time.Now(), m})
			c.mu.Unlock()
		}
	}()
	return c
}

// opened is the alert ids of the "opened" alert messages received, with
// how many times each came, and each one's patient and first arrival.
func (c *console) opened() (times map[string]int, patient map[string]string, first map[string]time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	times, patient, first = map[string]int{}, map[string]string{}, map[string]time.Time{}
	for _, m := range c.msgs {
		if m.doc["type"] != "alert" || m.doc["change"] != "opened" {
			continue
		}
		a, _ := m.doc["alert"].(map[string]any)
		id := fmt.Sprint(a["id"])
		if times[id] == 0 {
			first[id] = m.at
		}
		times[id]++
		patient[id] = fmt.Sprint(a["patient"])
	}
	return times, patient, first
}

// openedPatients is the patients with at least one opened alert.
func (c *console) openedPatients() map[string]time.Time {
	_, patient, first := c.opened()
	out := map[string]time.Time{}
	for id, p := range patient {
		out[p] = first[id]
	}
	return out
}

// startHTTPFleet streams heart rates from devices over HTTPS, each to the
// next of the urls in turn, one message every every; a 202 is its
// acknowledgement. It returns a fleet (see startFleet) whose lost reads
// them back.
func startHTTPFleet(urls func() []string, devices, tokens []string, every time.Duration) *fleet {
	f := &fleet{devices: devices, acked: map[string]map[int64]time.Time{}, stop: make(chan struct{})}
	base := time.Now().UTC().Add(-12 * time.Hour).Truncate(time.Second)
	for _, dev := range devices {
		f.acked[dev] = map[int64]time.Time{}
	}
	for i, dev := range devices {
		f.done.Go(func() {
			for seq, turn := int64(1), i; ; seq++ {
				select {
				case <-f.stop:
					return
				default:
				}
				body := fmt.Appendf(nil, `{"seq": %d, "samples": [{"type": "heart_rate", "time": %q, "bpm": %d}]}`,
					seq, ts(base.Add(time.Duration(seq)*time.Second)), 50+seq%50)
				if live := urls(); len(live) > 0 {
					turn++
					status, _, _, err := tryPost(live[turn%len(live)], tokens[i], "application/json", body)
					if err == nil && status == http.StatusAccepted {
						f.mu.Lock()
						f.acked[dev][seq] = time.Now()
						f.mu.Unlock()
					}
				}
				time.Sleep(every)
			}
		})
	}
	return f
}

// ackedBefore is the (device, seq) pairs f had acknowledged by at.
func (f *fleet) ackedBefore(at time.Time) map[string][]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]int64{}
	for dev, seqs := range f.acked {
		for seq, when := range seqs {
			if !when.After(at) {
				out[dev] = append(out[dev], seq)
			}
		}
	}
	return out
}

// storedByDevice reads the seqs stored for every device whose id starts
// with prefix, in one query.
func storedByDevice(t *testing.T, prefix string) map[string]map[int64]bool {
	t.Helper()
	client := influxdb2.NewClient(influx.URL, "")
	defer client.Close()
	flux := fmt.Sprintf(`from(bucket: "patientpulse") |> range(start: -2d, stop: 1h)
		|> filter(fn: (r) => r._field == "seq" and strings.hasPrefix(v: r.device, prefix: %q))
		|> keep(columns: ["device", "_value"])`, prefix)
	res, err := client.QueryAPI("").Query(context.Background(), `import "strings"`+"\n"+flux)
	if err != nil {
		t.Fatalf("flux query: %v", err)
	}
	out := map[string]map[int64]bool{}
	for res.Next() {
		rec := res.Record()
		dev, _ := rec.ValueByKey("device").(string)
		seq, _ := rec.Value().(int64)
		if out[dev] == nil {
			out[dev] = map[int64]bool{}
		}
		out[dev][seq] = true
	}
	if res.Err() != nil {
		t.Fatalf("flux result: %v", res.Err())
	}
	return out
}

// missingOf counts the pairs of want not in stored.
func missingOf(want map[string][]int64, stored map[string]map[int64]bool) (all, missing int) {
	for dev, seqs := range want {
		for _, seq := range seqs {
			all++
			if !stored[dev][seq] {
				missing++
			}
		}
	}
	return all, missing
}

// escalations counts the escalated events of every alert by tier.
func (r *clusterRig) escalations() map[int64]map[string]int {
	r.t.Helper()
	rows, err := r.db.Query(`SELECT alert_id, body FROM alert_events WHERE kind = 'escalated'`)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]map[string]int{}
	for rows.Next() {
		var id int64
		var body string
		if err := rows.Scan(&id, &body); err != nil {
			r.t.Fatal(err)
		}
		var doc struct{ Tier string }
		_ = json.Unmarshal([]byte(body), &doc)
		if out[id] == nil {
			out[id] = map[string]int{}
		}
		out[id][doc.Tier]++
	}
	return out
}

// contradictions lists every (patient, rule) whose transitions record the
// same change twice in a row.
func (r *clusterRig) contradictions() []string {
	r.t.Helper()
	rows, err := r.db.Query(`SELECT patient_id, rule_id, change FROM transitions ORDER BY patient_id, rule_id, id`)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	var lastKey, lastChange string
	for rows.Next() {
		var patient, rule, change string
		if err := rows.Scan(&patient, &rule, &change); err != nil {
			r.t.Fatal(err)
		}
		key := patient + " " + rule
		if key == lastKey && change == lastChange {
			out = append(out, fmt.Sprintf("%s: %s twice in a row", key, change))
		}
		lastKey, lastChange = key, change
	}
	return out
}

// patientsIn returns the patients of ids whose partition is in parts.
func patientsIn(ids []string, parts []int, partitions int) []string {
	var out []string
	for _, id := range ids {
		if slices.Contains(parts, cluster.PartitionOf(id, partitions)) {
			out = append(out, id)
		}
	}
	return out
}

// pick returns up to n of from not in taken, marking them taken.
func pick(from []string, n int, taken map[string]bool) []string {
	var out []string
	for _, id := range from {
		if len(out) == n {
			break
		}
		if !taken[id] {
			taken[id] = true
			out = append(out, id)
		}
	}
	return out
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
