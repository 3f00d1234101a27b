package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/notify"
	"github.com/patientpulse/patientpulse/registry"
)

// TestClusterFreesDeadInstanceClaims: the clinic's webhook holds every
// request while four critical alerts open on two instances, so that
// their deliveries are claimed, mid-attempt; the instance holding the
// most claims is killed (SIGKILL) and the webhook answers again. The
// survivor must see it leave and deliver what it was attempting within
// seconds, not when its claims run out (2 × --notify-timeout + 30 s:
// 150 s here).
func TestClusterFreesDeadInstanceClaims(t *testing.T) {
	needServices(t)
	const secret = "a webhook secret of the clinic"
	release := make(chan struct{})
	var mu sync.Mutex
	delivered := map[string]int{} // delivery id → requests answered 200
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done(): // its instance was killed
			return
		}
		mu.Lock()
		delivered[r.Header.Get(notify.WebhookDeliveryHeader)]++
		mu.Unlock()
	}))
	defer hook.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	r := newClusterRig(t, "--alert-fire-after", "0s", "--webhook-url", hook.URL, "--webhook-secret", secret,
		"--webhook-events", "opened", "--notify-timeout", "60s")
	reg := r.registry()
	for i := range 4 {
		p := fmt.Sprintf("p-claims-%d", i)
		if err := reg.AddPatient(t.Context(), registry.Patient{ID: p}); err != nil {
			t.Fatal(err)
		}
		doc := "patient: " + p + "\neffective: " + ts(time.Now().Add(-48*time.Hour)) + "\nrules:\n" +
			"  - {id: vitals-silent, kind: silence, metric: vitals, for: 24h, severity: critical}\n"
		plan, err := analysis.ParsePlanWithin([]byte(doc), planHorizon)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := analysis.SavePlanWithin(t.Context(), reg, &plan, planHorizon); err != nil {
			t.Fatal(err)
		}
	}
	a, b := r.start("serve-a"), r.start("serve-b")
	claims := func() map[string]int64 { // by holder's address
		rows, err := r.db.Query(`SELECT COALESCE(m.address, d.claimed_by), count(*) FROM outbox_deliveries d
			LEFT JOIN cluster_members m ON m.id = d.claimed_by
			WHERE d.state = 'pending' AND d.claimed_until IS NOT NULL GROUP BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int64{}
		for rows.Next() {
			var addr string
			var n int64
			if err := rows.Scan(&addr, &n); err != nil {
				t.Fatal(err)
			}
			out[addr] = n
		}
		return out
	}
	waitUntil(t, 30*time.Second, "four webhook deliveries claimed mid-attempt", func() bool {
		var n int64
		for _, c := range claims() {
			n += c
		}
		return n == 4
	})
	held := claims()
	victim := a
	if held[b.addr] > held[a.addr] {
		victim = b
	}
	if held[a.addr]+held[b.addr] != 4 {
		t.Fatalf("claims by holder %v: want the four held by %s and %s", held, a.addr, b.addr)
	}
	r.kill(victim)
	killed := time.Now()
	close(release)
	waitUntil(t, 30*time.Second, "every delivery delivered after the kill", func() bool {
		return r.count(`SELECT count(*) FROM outbox_deliveries WHERE state = 'pending'`) == 0
	})
	took := time.Since(killed)
	t.Logf("%s killed holding %d of the 4 claims; every delivery delivered %v after the kill", victim.name, held[victim.addr],
		took.Round(10*time.Millisecond))
	if took > 15*time.Second {
		t.Errorf("the dead instance's deliveries were delivered %v after the kill, want within 15s", took.Round(time.Second))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(delivered) != 4 {
		t.Errorf("webhook received %d distinct deliveries, want 4: %v", len(delivered), delivered)
	}
}
