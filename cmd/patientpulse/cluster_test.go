package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/cluster"
	"github.com/patientpulse/patientpulse/ingest"
)

// TestClusterFailover and TestClusterPausedInstance: issue 16's "Done
// when" for several instances; their rig is in cluster_rig_test.go.

// TestClusterFailover is issue 16's "Done when": three instances on one
// Postgres registry; 200 patients stream heart rates over MQTT and HTTPS
// (about 120 messages a second); 30 critical alerts are raised, 15 before
// and 15 after a kill -9 of the instance owning the most partitions. A
// survivor must own its partitions and judge their patients within 10 s,
// drain its MQTT sessions' backlog within 15 s, lose no acknowledged
// message; each surviving console gets each alert opened once; each alert
// escalates once per tier; no transition is recorded twice; the victim,
// restarted, gets its share back within 15 s.
func TestClusterFailover(t *testing.T) {
	needServices(t)
	const (
		partitions = 64
		sessions   = 8
		patients   = 200
		viaHTTP    = 40 // the rest stream over MQTT
	)
	r := newClusterRig(t)
	setup := time.Now()
	var ids, devices []string
	for i := range patients {
		ids = append(ids, fmt.Sprintf("p-cf-%03d", i))
		if i < viaHTTP {
			devices = append(devices, fmt.Sprintf("cf-h-%03d", i))
		} else {
			devices = append(devices, fmt.Sprintf("cf-m-%03d", i))
		}
	}
	tokens := r.enrollWithPlans(ids, devices)
	httpDevs, httpTokens, mqttDevs := devices[:viaHTTP], tokens[:viaHTTP], devices[viaHTTP:]
	rota := r.oncallRota("cf-pager-1", "cf-pager-2")
	consoleToken := strings.TrimSpace(r.admin("", "staff", "token", "--username", "cf-pager-1"))
	t.Logf("%d patients with plans and devices enrolled in %v", patients, time.Since(setup).Round(time.Millisecond))

	r.args = append(r.args, "--alert-fire-after", "0s", "--analysis-interval", "200ms", "--analysis-min-wear-hours", "1",
		"--oncall-schedule", rota, "--device-rate", "0")
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, r.start(fmt.Sprintf("serve-%d", i+1)))
	}
	defer func() {
		if t.Failed() {
			t.Logf("partitions: %v; sessions: %v", r.owned(cluster.SetPartitions), r.owned(cluster.SetSessions))
			for _, n := range nodes {
				t.Logf("%s log:\n%s", n.name, n.logs)
			}
		}
	}()
	waitUntil(t, 15*time.Second, "the partitions and sessions split among the 3 instances", func() bool {
		return r.balanced(cluster.SetPartitions, partitions) && r.balanced(cluster.SetSessions, sessions)
	})
	consoles := map[*node]*console{}
	for _, n := range nodes {
		consoles[n] = openConsole(t, n, consoleToken)
	}

	mqttFleet := startFleet(t, r.broker.URL, mqttDevs, 1600*time.Millisecond)
	httpFleet := startHTTPFleet(r.urls, httpDevs, httpTokens, 2*time.Second)
	streaming := time.Now()
	time.Sleep(5 * time.Second)
	m, h := mqttFleet.ackedBefore(time.Now()), httpFleet.ackedBefore(time.Now())
	mAll, _ := missingOf(m, nil)
	hAll, _ := missingOf(h, nil)
	t.Logf("streaming: %.0f messages/s acknowledged (%d over MQTT, %d over HTTPS in %v)",
		float64(mAll+hAll)/time.Since(streaming).Seconds(), mAll, hAll, time.Since(streaming).Round(time.Millisecond))

	// The victim: the instance holding the most partitions.
	owned := r.owned(cluster.SetPartitions)
	victim := nodes[0]
	for _, n := range nodes {
		if len(owned[n.addr]) > len(owned[victim.addr]) {
			victim = n
		}
	}
	victimParts := owned[victim.addr]
	victimSessions := r.owned(cluster.SetSessions)[victim.addr]
	ofVictim := patientsIn(ids, victimParts, partitions)
	taken := map[string]bool{}
	before := append(pick(ofVictim, 8, taken), pick(ids, 7, taken)...)
	after := append(pick(ofVictim, 10, taken), pick(ids, 5, taken)...)
	afterOfVictim := after[:10]
	if len(before) != 15 || len(after) != 15 {
		t.Fatalf("the victim's partitions hold %d patients: too few to choose from", len(ofVictim))
	}
	t.Logf("victim %s holds %d partitions (%d of the patients) and %d sessions", victim.name, len(victimParts), len(ofVictim), len(victimSessions))
	chosen := append(slices.Clone(before), after...)
	reg := r.registry()
	spikeTokens := map[string]string{} // a second device of each chosen patient
	for _, p := range chosen {
		token, err := reg.EnrollDevice(t.Context(), "cf-spike-"+p, p)
		if err != nil {
			t.Fatal(err)
		}
		spikeTokens[p] = token
	}

	for _, p := range before {
		r.spike("cf-spike-"+p, spikeTokens[p])
	}
	waitUntil(t, 20*time.Second, "the 15 alerts before the kill opened on every console", func() bool {
		for _, c := range consoles {
			if len(c.openedPatients()) < len(before) {
				return false
			}
		}
		return true
	})

	r.kill(victim)
	killed := time.Now()
	for _, p := range after {
		r.spike("cf-spike-"+p, spikeTokens[p])
	}
	survivors := r.alive()

	// Takeover: every partition held by a survivor again.
	var takeover time.Duration
	waitUntil(t, 10*time.Second, "every partition of the killed instance held by a survivor (10 s)", func() bool {
		o := r.owned(cluster.SetPartitions)
		if len(o[""])+len(o[victim.addr]) > 0 {
			return false
		}
		takeover = time.Since(killed)
		return true
	})
	t.Logf("partitions taken over %v after the kill", takeover.Round(time.Millisecond))
	// ... and their patients judged: the alerts raised after the kill for
	// them open, within 10 s of the kill.
	waitUntil(t, time.Until(killed.Add(10*time.Second)), "the alerts raised after the kill for the taken-over partitions' patients opened (10 s after the kill)", func() bool {
		for _, c := range survivors {
			got := consoles[c].openedPatients()
			for _, p := range afterOfVictim {
				if _, ok := got[p]; !ok {
					return false
				}
			}
		}
		return true
	})
	t.Logf("the taken-over partitions' patients judged %v after the kill", time.Since(killed).Round(time.Millisecond))

	// The killed instance's MQTT sessions: a survivor connects as each and
	// stores what the broker queued for it.
	waitUntil(t, 10*time.Second, "every session slot held by a survivor", func() bool {
		o := r.owned(cluster.SetSessions)
		return len(o[""])+len(o[victim.addr]) == 0
	})
	backlog := mqttFleet.ackedBefore(time.Now())
	drain, all := waitStored(t, backlog, "cf-m-", killed, 15*time.Second,
		"the killed instance's MQTT backlog (acknowledged by the time its sessions were taken over)")
	t.Logf("the killed instance's MQTT backlog drained %v after the kill (%d messages acknowledged by then, %d sessions taken over)",
		drain.Round(time.Millisecond), all, len(victimSessions))

	// The victim returns and gets its share back.
	restarted := time.Now()
	back := r.start(victim.name + "-again")
	var rebalance time.Duration
	waitUntil(t, time.Until(restarted.Add(15*time.Second)), "the partitions and sessions split among 3 again, 15 s after the restart", func() bool {
		if !r.balanced(cluster.SetPartitions, partitions) || !r.balanced(cluster.SetSessions, sessions) {
			return false
		}
		rebalance = time.Since(restarted)
		return true
	})
	t.Logf("the restarted instance (%s) has its share %v after it was started", back.name, rebalance.Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	mqttFleet.finish()
	httpFleet.finish()

	checkOpenedOnce(t, survivors, consoles, 30)
	checkEscalatedOnce(t, r, 30, "tier1", "tier2")
	if c := r.contradictions(); len(c) > 0 {
		t.Errorf("contradictory transitions: %v", c)
	}

	for name, f := range map[string]*fleet{"MQTT": mqttFleet, "HTTPS": httpFleet} {
		acked, missing := f.lost(t)
		t.Logf("%s: %d messages acknowledged, %d not in InfluxDB", name, acked, missing)
		if missing > 0 {
			t.Errorf("%s: %d of %d acknowledged messages lost", name, missing, acked)
		}
	}
	if t.Failed() {
		for _, n := range r.nodes {
			t.Logf("log of %s:\n%s", n.name, tail(n.logs.String(), 40))
		}
	}
}

// checkOpenedOnce waits for want alerts opened on the consoles of nodes,
// then checks that each console got each alert once, one alert a patient.
func checkOpenedOnce(t *testing.T, nodes []*node, consoles map[*node]*console, want int) {
	t.Helper()
	waitUntil(t, 20*time.Second, fmt.Sprintf("the %d alerts opened on the surviving consoles", want), func() bool {
		for _, n := range nodes {
			if len(consoles[n].openedPatients()) < want {
				return false
			}
		}
		return true
	})
	alertOf := map[string]string{} // patient → alert id
	for _, n := range nodes {
		times, patient, _ := consoles[n].opened()
		for id, k := range times {
			if k != 1 {
				t.Errorf("console on %s: alert %s (patient %s) opened %d times, want once", n.name, id, patient[id], k)
			}
			if prev, ok := alertOf[patient[id]]; ok && prev != id {
				t.Errorf("patient %s has two alerts opened (%s and %s), want one", patient[id], prev, id)
			}
			alertOf[patient[id]] = id
		}
		if len(times) != want {
			t.Errorf("console on %s: %d alerts opened, want %d", n.name, len(times), want)
		}
	}
}

// checkEscalatedOnce waits until want alerts have escalated to the last
// of tiers, then checks that each escalated exactly once to each tier.
func checkEscalatedOnce(t *testing.T, r *clusterRig, want int, tiers ...string) {
	t.Helper()
	last := tiers[len(tiers)-1]
	var esc map[int64]map[string]int
	waitUntil(t, 90*time.Second, "the alerts' escalations to "+last, func() bool {
		esc = r.escalations()
		done := 0
		for _, got := range esc {
			if got[last] > 0 {
				done++
			}
		}
		return done >= want
	})
	time.Sleep(2 * time.Second) // a duplicate would come within a sweep
	esc = r.escalations()
	if len(esc) != want {
		t.Errorf("%d alerts escalated, want %d", len(esc), want)
	}
	for id, got := range esc {
		ok := len(got) == len(tiers)
		for _, tier := range tiers {
			ok = ok && got[tier] == 1
		}
		if !ok {
			t.Errorf("alert %d escalated %v, want once to each of %v", id, got, tiers)
		}
	}
}

// waitStored waits until every pair of want (devices starting with
// prefix) is stored, at most until since+bound, and returns how long
// after since that was and how many pairs there were.
func waitStored(t *testing.T, want map[string][]int64, prefix string, since time.Time, bound time.Duration, what string) (time.Duration, int) {
	t.Helper()
	for deadline := since.Add(bound); ; time.Sleep(250 * time.Millisecond) {
		all, missing := missingOf(want, storedByDevice(t, prefix))
		if missing == 0 {
			return time.Since(since), all
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d messages not stored %v after it", what, missing, all, bound)
		}
	}
}

// TestClusterPausedInstance stops the instance owning the most partitions
// with SIGSTOP past its lease; a survivor takes its partitions and
// sessions over and raises an alert for one of its former patients; then
// SIGCONT. In a quiet clinic the resumed instance must record nothing (no
// transition, alert event or outbox event appears after the resume) and
// must not connect again as any session it held (the broker closes no
// connection of a survivor's for a client id taken over).
func TestClusterPausedInstance(t *testing.T) {
	needServices(t)
	const partitions = 64
	r := newClusterRig(t)
	var ids, devices []string
	for i := range 20 {
		ids = append(ids, fmt.Sprintf("p-cp-%02d", i))
		devices = append(devices, fmt.Sprintf("cp-%02d", i))
	}
	tokens := r.enrollWithPlans(ids, devices)
	rota := r.oncallRota("cp-pager")
	r.args = append(r.args, "--alert-fire-after", "0s", "--analysis-interval", "200ms", "--analysis-min-wear-hours", "1",
		"--oncall-schedule", rota)
	nodes := []*node{r.start("serve-1"), r.start("serve-2")}
	waitUntil(t, 15*time.Second, "the partitions split between the 2 instances", func() bool {
		return r.balanced(cluster.SetPartitions, partitions) && r.balanced(cluster.SetSessions, 8)
	})
	owned := r.owned(cluster.SetPartitions)
	victim, survivor := nodes[0], nodes[1]
	if len(owned[survivor.addr]) > len(owned[victim.addr]) {
		victim, survivor = survivor, victim
	}
	former := patientsIn(ids, owned[victim.addr], partitions)
	if len(former) == 0 {
		t.Fatal("none of the patients is in the paused instance's partitions")
	}
	patient := former[0]
	device, token := devices[slices.Index(ids, patient)], tokens[slices.Index(ids, patient)]
	victimSessions := r.owned(cluster.SetSessions)[victim.addr]

	if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	t.Cleanup(func() { _ = victim.cmd.Process.Signal(syscall.SIGCONT) })
	waitUntil(t, 10*time.Second, "the survivor holding every partition and session", func() bool {
		return len(r.owned(cluster.SetPartitions)[survivor.addr]) == partitions && len(r.owned(cluster.SetSessions)[survivor.addr]) == 8
	})
	t.Logf("the survivor took over %v after SIGSTOP", time.Since(stopped).Round(time.Millisecond))
	r.spike(device, token)
	waitUntil(t, 15*time.Second, "the alert of the paused instance's former patient opened and escalated", func() bool {
		return r.count(`SELECT count(*) FROM alert_events e JOIN alerts a ON a.id = e.alert_id
			WHERE a.patient_id = $1 AND e.kind = 'escalated'`, patient) > 0
	})
	time.Sleep(time.Second) // past the survivor's own writes of the spike

	marks := func() [3]int64 {
		return [3]int64{
			r.count(`SELECT COALESCE(max(id), 0) FROM transitions`),
			r.count(`SELECT COALESCE(max(id), 0) FROM alert_events`),
			r.count(`SELECT COALESCE(max(id), 0) FROM outbox_events`),
		}
	}
	before := marks()
	kicks := func() int {
		n := 0
		for line := range strings.Lines(r.brokerLog()) {
			for k := range 8 {
				if strings.Contains(line, "Client "+ingest.SessionClientID(clusterBase, k)+" already connected, closing old connection") {
					n++
				}
			}
		}
		return n
	}
	kicksBefore := kicks()
	if err := victim.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGCONT %v after SIGSTOP; the paused instance held sessions %v", time.Since(stopped).Round(time.Millisecond), victimSessions)
	time.Sleep(4 * time.Second) // four lease TTLs: the instance has caught up and rejoined

	if status, _ := getJSON(victim.url+"/healthz", ""); status != http.StatusOK {
		t.Fatalf("the resumed instance does not answer /healthz: %s", tail(victim.logs.String(), 40))
	}
	if after := marks(); after != before {
		t.Errorf("after the resume (quiet clinic) the registry's last transition, alert event and outbox event ids went from %v to %v: the resumed instance recorded something", before, after)
	}
	if got := kicks() - kicksBefore; got > 0 {
		t.Errorf("after the resume the broker closed %d survivor connections for a taken-over session id: the resumed instance reconnected without its lease", got)
	}
	if n := r.count(`SELECT count(*) FROM alerts WHERE patient_id = $1`, patient); n != 1 {
		t.Errorf("%d alerts of %s, want 1", n, patient)
	}
	if c := r.contradictions(); len(c) > 0 {
		t.Errorf("contradictory transitions: %v", c)
	}
	if t.Failed() {
		t.Logf("log of the resumed instance:\n%s", tail(victim.logs.String(), 40))
	}
}
