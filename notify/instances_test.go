package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/auth"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// instance is what one instance of serve runs of the alerts' way to the
// consoles, over a registry of its own on a shared Postgres database: an
// alerts manager, a hub behind auth on a websocket server, and the
// registry's Listen waking the hub.
type instance struct {
	reg     *registry.Registry
	manager *alerts.Manager
	hub     *Hub
	srv     *httptest.Server
}

// startInstance starts an instance on dsn. The hub's own poll is an hour,
// so that only NOTIFY (and the in-process wake) makes it read the outbox.
func startInstance(t *testing.T, dsn string) *instance {
	t.Helper()
	reg, err := registry.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := auth.New(reg, auth.DefaultConfig(), reg, log, nil)
	acfg := alerts.DefaultConfig()
	acfg.FireAfter = 0 // open at the transition
	in := &instance{reg: reg, manager: alerts.NewManager(acfg, reg, log, nil)}
	cfg := DefaultHubConfig()
	cfg.ChangePoll = time.Hour
	in.hub = NewHub(cfg, a, in.manager, log, nil)
	in.manager.Deliver(nil, in.hub.Wake)
	mux := http.NewServeMux()
	mux.Handle("GET /v1/ws", a.Authenticate(in.hub))
	in.srv = httptest.NewServer(mux)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = in.hub.Run(ctx) })
	wg.Go(func() { _ = in.manager.Run(ctx) })
	wg.Go(func() { _ = reg.Listen(ctx, in.hub.Wake, nil) })
	t.Cleanup(func() { stop(); wg.Wait(); in.hub.Close(); in.srv.Close() })
	return in
}

// TestConsolesAcrossInstances: a console connected to instance B
// receives exactly one opened per alert raised on instance A, in the
// order they were raised, also for alerts raised while B's LISTEN
// connection is cut (pg_terminate_backend) and after it is back.
func TestConsolesAcrossInstances(t *testing.T) {
	t.Parallel()
	dsn := testservices.PostgresDB(t)
	ctx := t.Context()
	setup, err := registry.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { setup.Close() })
	if err := setup.AddPatient(ctx, registry.Patient{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	if err := setup.AddStaff(ctx, "alice", registry.RoleAdmin, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	token, err := setup.IssueStaffToken(ctx, "alice", "test")
	if err != nil {
		t.Fatal(err)
	}
	a, b := startInstance(t, dsn), startInstance(t, dsn)

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(b.srv.URL, "http")+"/v1/ws",
		http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &hubConn{t: t, conn: conn}
	c.next("hello")
	c.next("snapshot")

	raise := func(i int) {
		a.manager.Transition(analysis.Transition{Patient: "p-1", Rule: fmt.Sprintf("r%02d", i), Kind: "threshold",
			Change: analysis.ChangeFired, Holds: true, Severity: analysis.SeverityCritical, Metric: "heart_rate",
			Value: 150, Bound: 100, Side: "above", PlanVersion: 1, At: time.Now().UTC(), Sentence: "heart rate above 100"})
	}
	// The console's opened alerts, by rule, as they come; a websocket
	// read that times out breaks the connection, so one goroutine reads.
	opened := make(chan string, 100)
	readErr := make(chan error, 1)
	_ = conn.SetReadDeadline(time.Time{}) // next's is for one message
	go func() {
		for {
			var m struct {
				Type string `json:"type"`
				alerts.Event
			}
			if err := conn.ReadJSON(&m); err != nil {
				readErr <- err
				return
			}
			if m.Type == "alert" && m.Event.Change == alerts.ChangeOpened {
				opened <- m.Alert.Rule
			}
		}
	}()
	var got []string // the rules of the opened alerts the console received, in order
	// readOpened reads until the console has n opened alerts in all, then
	// for a while more, to see that none comes twice.
	readOpened := func(n int) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for len(got) < n {
			select {
			case r := <-opened:
				got = append(got, r)
			case err := <-readErr:
				t.Fatalf("console on B: %d opened of %d, then: %v", len(got), n, err)
			case <-deadline:
				t.Fatalf("console on B: %d opened of %d after 15 s", len(got), n)
			}
		}
		quiet := time.After(time.Second)
		for {
			select {
			case r := <-opened:
				got = append(got, r)
			case <-quiet:
				return
			}
		}
	}
	want := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("r%02d", i))
		}
		return out
	}

	for i := range 10 {
		raise(i)
	}
	readOpened(10)
	if w := want(10); !equalStrings(got, w) {
		t.Fatalf("console on B got %v, want %v", got, w)
	}

	// Cut B's LISTEN connection while alerts are raised on A.
	var cut int
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'patientpulse listen' AND datname = current_database()`).Scan(&cut); err != nil {
		t.Fatal(err)
	}
	if cut != 2 { // A's and B's
		t.Fatalf("%d listening connections cut, want 2", cut)
	}
	for i := 10; i < 20; i++ {
		raise(i)
	}
	readOpened(20)
	if w := want(20); !equalStrings(got, w) {
		t.Fatalf("console on B got %v, want %v", got, w)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDeliveryOnceAcrossInstances: with two dispatchers running on two
// registries of one Postgres database, each due webhook delivery is
// posted once; and one claimed by an instance that died (its claim left
// in the registry) is posted by a survivor once the claim runs out.
func TestDeliveryOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	dsn := testservices.PostgresDB(t)
	ctx := t.Context()
	var mu sync.Mutex
	posts := map[string]int{} // by delivery id
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // a receiver that takes a moment, so that attempts would overlap
		mu.Lock()
		posts[r.Header.Get(WebhookDeliveryHeader)]++
		mu.Unlock()
	}))
	t.Cleanup(receiver.Close)

	regs := make([]*registry.Registry, 2)
	for i := range regs {
		reg, err := registry.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		regs[i] = reg
	}
	if err := regs[0].AddPatient(ctx, registry.Patient{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	const n = 30
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range n {
		row := registry.AlertRow{Patient: "p-1", Key: fmt.Sprintf("r%02d", i), State: registry.AlertFiring, Severity: "critical",
			OpenedAt: now, UpdatedAt: now, Tier: -1, Body: []byte("{}")}
		body, err := json.Marshal(alerts.Event{Change: alerts.ChangeOpened, At: now, Alert: alerts.Alert{Patient: "p-1", Rule: row.Key,
			State: row.State, Severity: row.Severity, OpenedAt: now, UpdatedAt: now}})
		if err != nil {
			t.Fatal(err)
		}
		out := &registry.Outbox{Kind: alerts.ChangeOpened, At: now, Body: body,
			Deliveries: []registry.OutboxDelivery{{ID: fmt.Sprintf("d-%02d", i), Channel: ChannelWebhook}}}
		if _, err := regs[0].OpenAlert(ctx, row, registry.AlertEvent{At: now, Kind: alerts.ChangeOpened}, out); err != nil {
			t.Fatal(err)
		}
	}
	// An instance that died while attempting d-00 left its claim.
	if claimed, err := regs[0].ClaimDue(ctx, time.Now(), 1, nil, "dead", time.Now().Add(time.Second)); err != nil || len(claimed) != 1 {
		t.Fatalf("claim as the dead instance: %v, %v", claimed, err)
	}
	diedAt := time.Now()

	cfg := DefaultDispatchConfig()
	cfg.Poll = 50 * time.Millisecond
	cfg.Timeout = 5 * time.Second
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	links := NewLinks([]byte("0123456789abcdef0123456789abcdef"), "https://pp.example")
	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, reg := range regs {
		d := NewDispatcher(cfg, reg, map[string]Channel{ChannelWebhook: NewWebhook(WebhookConfig{URL: receiver.URL, Secret: "0123456789abcdef"})},
			links, log, nil)
		wg.Go(func() { _ = d.Run(runCtx) })
		wg.Go(func() { _ = reg.Listen(runCtx, d.Wake, nil) })
	}
	t.Cleanup(func() { stop(); wg.Wait() })

	deadline := time.Now().Add(20 * time.Second)
	for {
		counts, err := regs[1].DeliveryCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts[registry.DeliveryDelivered] == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries %v after 20 s, want %d delivered", counts, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ds, err := regs[1].Deliveries(ctx, registry.DeliveryFilter{AlertID: 1})
	if err != nil || len(ds) != 1 {
		t.Fatalf("d-00: %v, %v", ds, err)
	}
	if after := ds[0].DoneAt.Sub(diedAt); after < 900*time.Millisecond {
		t.Errorf("d-00, claimed by the dead instance for 1 s, delivered %v after, before its claim ran out", after)
	}
	time.Sleep(200 * time.Millisecond) // an attempt made twice would be posted by now
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		id := fmt.Sprintf("d-%02d", i)
		if posts[id] != 1 {
			t.Errorf("%s posted %d times, want 1", id, posts[id])
		}
	}
}
