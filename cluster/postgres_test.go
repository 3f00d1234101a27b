package cluster

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the registry's database/sql driver, for Check

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// testConfig leases for 500 ms renewed every 100 ms, so that a test sees
// takeovers in seconds.
func testConfig() Config {
	return Config{Address: "127.0.0.1:0", Partitions: 64, Sessions: 8, Interval: 100 * time.Millisecond, TTL: 500 * time.Millisecond}
}

// member is a running Postgres membership of a test.
type member struct {
	*Postgres
	log  *testservices.LogBuffer
	stop func() // ends Run without giving the leases back, as a death does
}

// start joins the cluster of dsn and runs the member until the test ends,
// then closes it. hook, if not nil, runs before each of Run's heartbeats.
func start(t *testing.T, dsn string, cfg Config, hook func()) *member {
	t.Helper()
	log := &testservices.LogBuffer{}
	p, err := Join(context.Background(), dsn, cfg, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	p.beforeBeat = hook
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &member{Postgres: p, log: log, stop: stop}
}

// eventually polls cond until it reports no problem, failing the test
// with the last problem after a deadline generous enough for a loaded
// two-core machine.
func eventually(t *testing.T, what string, cond func() string) time.Duration {
	t.Helper()
	begin := time.Now()
	deadline := begin.Add(20 * time.Second)
	for {
		problem := cond()
		if problem == "" {
			return time.Since(begin)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still, after %v: %s", what, time.Since(begin).Round(time.Millisecond), problem)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fair reports a problem unless the members together own each slot of set
// exactly once, each slots/members or one more, and each knows every
// other slot's owner.
func fair(ms []*member, set string, slots int) string {
	owner := map[int]string{}
	var counts []int
	for _, m := range ms {
		owned := m.Owned(set)
		counts = append(counts, len(owned))
		if n := len(owned); n < slots/len(ms) || n > (slots+len(ms)-1)/len(ms) {
			return fmt.Sprintf("%s owns %d slots of %s, not its share of %d among %d", m.Self(), n, set, slots, len(ms))
		}
		for slot := range owned {
			if other, ok := owner[slot]; ok {
				return fmt.Sprintf("slot %d of %s owned by %s and %s", slot, set, other, m.Self())
			}
			owner[slot] = m.Self()
		}
	}
	if len(owner) != slots {
		return fmt.Sprintf("%d of %d slots of %s owned (counts %v)", len(owner), slots, set, counts)
	}
	for _, m := range ms {
		for slot := range slots {
			if who, ok := m.OwnerOf(set, slot); !ok || who != owner[slot] {
				return fmt.Sprintf("%s sees slot %d of %s held by %q, not %s", m.Self(), slot, set, who, owner[slot])
			}
		}
	}
	return ""
}

// fairAll is fair for both sets.
func fairAll(ms []*member) string {
	if p := fair(ms, SetPartitions, 64); p != "" {
		return p
	}
	return fair(ms, SetSessions, 8)
}

// logged reports whether a line of log holds every fragment.
func logged(log string, fragments ...string) bool {
	for line := range strings.Lines(log) {
		all := true
		for _, f := range fragments {
			all = all && strings.Contains(line, f)
		}
		if all {
			return true
		}
	}
	return false
}

func TestMembersSplitSlotsFairly(t *testing.T) {
	dsn := testservices.PostgresDB(t)
	cfg := testConfig()
	a := start(t, dsn, cfg, nil)
	if got := len(a.Owned(SetPartitions)); got != 64 {
		t.Fatalf("the first member owns %d partitions when Join returns, want 64", got)
	}
	for slot, epoch := range a.Owned(SetPartitions) {
		if epoch != 1 {
			t.Fatalf("partition %d has epoch %d on first acquisition, want 1", slot, epoch)
		}
	}
	changes := a.Changes()
	b := start(t, dsn, cfg, nil)
	c := start(t, dsn, cfg, nil)
	took := eventually(t, "three members split the slots", func() string { return fairAll([]*member{a, b, c}) })
	t.Logf("three members fair after %v: partitions %d/%d/%d", took.Round(time.Millisecond),
		len(a.Owned(SetPartitions)), len(b.Owned(SetPartitions)), len(c.Owned(SetPartitions)))
	select {
	case <-changes:
	default:
		t.Error("the first member's Changes did not receive after it gave slots away")
	}
	if !logged(a.log.String(), `msg="slots lost"`, "set=partitions", "reason=rebalanced") {
		t.Errorf("the first member logged no rebalancing:\n%s", a.log.String())
	}
	if !logged(b.log.String(), `msg="slots gained"`, "set=partitions", "epochs=") {
		t.Errorf("the second member logged no gain:\n%s", b.log.String())
	}
}

func TestDeadMemberIsTakenOverAndReturns(t *testing.T) {
	dsn := testservices.PostgresDB(t)
	cfg := testConfig()
	ms := []*member{start(t, dsn, cfg, nil), start(t, dsn, cfg, nil), start(t, dsn, cfg, nil)}
	eventually(t, "three members split the slots", func() string { return fairAll(ms) })

	victim, survivors := ms[0], ms[1:]
	held := victim.Owned(SetPartitions)
	victim.stop() // no Close: its leases stay until they expire
	took := eventually(t, "survivors take the dead member's partitions", func() string {
		if p := fairAll(survivors); p != "" {
			return p
		}
		for slot, old := range held {
			for _, s := range survivors {
				if epoch, ok := s.Owned(SetPartitions)[slot]; ok && epoch <= old {
					return fmt.Sprintf("partition %d taken over with epoch %d, not above %d", slot, epoch, old)
				}
			}
		}
		return ""
	})
	t.Logf("%d partitions of a dead member taken over %v after it stopped (TTL %v, heartbeat %v)",
		len(held), took.Round(time.Millisecond), cfg.TTL, cfg.Interval)
	if owned := victim.Owned(SetPartitions); len(owned) != 0 {
		t.Errorf("the dead member still lists %d partitions as owned past its leases", len(owned))
	}

	back := start(t, dsn, cfg, nil)
	took = eventually(t, "a returning member gets its share", func() string { return fairAll(append(survivors, back)) })
	t.Logf("a returning member had %d partitions %v after joining", len(back.Owned(SetPartitions)), took.Round(time.Millisecond))
}

func TestPausedMemberIsFenced(t *testing.T) {
	dsn := testservices.PostgresDB(t)
	cfg := testConfig()
	var gate atomic.Pointer[chan struct{}]
	paused := make(chan struct{}, 1)
	hook := func() {
		if g := gate.Load(); g != nil {
			select {
			case paused <- struct{}{}:
			default:
			}
			<-*g
		}
	}
	m := start(t, dsn, cfg, hook)
	others := []*member{start(t, dsn, cfg, nil), start(t, dsn, cfg, nil)}
	all := append([]*member{m}, others...)
	eventually(t, "three members split the slots", func() string { return fairAll(all) })

	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	check := func(set string, slot int, epoch int64) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback() // read only
		return m.Check(ctx, tx, set, slot, epoch)
	}

	g := make(chan struct{})
	gate.Store(&g)
	<-paused // Run is stuck before a heartbeat, as under SIGSTOP
	held := map[string]map[int]int64{SetPartitions: m.Owned(SetPartitions), SetSessions: m.Owned(SetSessions)}
	if len(held[SetPartitions]) == 0 {
		t.Fatal("the member to pause owns no partition")
	}
	for slot, epoch := range held[SetPartitions] {
		if err := check(SetPartitions, slot, epoch); err != nil {
			t.Fatalf("Check of a held partition %d epoch %d before the pause: %v", slot, epoch, err)
		}
		break
	}
	eventually(t, "the others take the paused member's slots", func() string { return fairAll(others) })
	if owned := m.Owned(SetPartitions); len(owned) != 0 {
		t.Errorf("the paused member lists %d partitions past its leases", len(owned))
	}
	for set, slots := range held {
		for slot, epoch := range slots {
			if err := check(set, slot, epoch); !errors.Is(err, ErrFenced) {
				t.Errorf("Check(%s %d, epoch %d) of a paused member = %v, want ErrFenced", set, slot, epoch, err)
			}
		}
	}

	logged := len(m.log.String())
	gate.Store(nil)
	close(g)
	eventually(t, "the resumed member gets a share back", func() string { return fairAll(all) })
	after := m.log.String()[logged:]
	first := strings.Index(after, "msg=\"slots ")
	line, _, _ := strings.Cut(after[max(first, 0):], "\n")
	if first < 0 || !strings.HasPrefix(line, `msg="slots lost"`) || !strings.Contains(line, "reason=expired") {
		t.Errorf("the resumed member's first word on slots is not dropping its expired partitions:\n%s", after)
	}
	for set, slots := range held {
		owned := m.Owned(set)
		for slot, old := range slots {
			if epoch, ok := owned[slot]; ok && epoch <= old {
				t.Errorf("the resumed member owns %s %d under epoch %d, not above its old %d", set, slot, epoch, old)
			}
		}
	}
}

func TestCheckHoldsOffTakeover(t *testing.T) {
	dsn := testservices.PostgresDB(t)
	cfg := testConfig()
	a := start(t, dsn, cfg, nil)
	b := start(t, dsn, cfg, nil)
	eventually(t, "two members split the slots", func() string { return fairAll([]*member{a, b}) })
	var slot int
	var epoch int64
	for slot, epoch = range a.Owned(SetPartitions) {
		break
	}

	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() // after Commit, a no-op
	if err := a.Check(ctx, tx, SetPartitions, slot, epoch); err != nil {
		t.Fatalf("Check of a held partition: %v", err)
	}
	a.stop() // the writer's transaction outlives its lease
	eventually(t, "the survivor takes every other partition", func() string {
		if n := len(b.Owned(SetPartitions)); n != 63 {
			return fmt.Sprintf("it owns %d partitions, want 63", n)
		}
		return ""
	})
	// Several more heartbeats, each skipping the locked lease.
	time.Sleep(5 * cfg.Interval)
	if _, ok := b.Owned(SetPartitions)[slot]; ok {
		t.Fatalf("partition %d taken while a checked write of epoch %d was open", slot, epoch)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit the checked write: %v", err)
	}
	eventually(t, "the survivor takes the partition once the write committed", func() string {
		if e, ok := b.Owned(SetPartitions)[slot]; !ok || e <= epoch {
			return fmt.Sprintf("partition %d: owned %v epoch %d", slot, ok, e)
		}
		return ""
	})
}

func TestCloseGivesLeasesBack(t *testing.T) {
	dsn := testservices.PostgresDB(t)
	cfg := testConfig()
	// Leases that would outlive the test: only Close can free them in time.
	cfg.TTL = time.Minute
	a := start(t, dsn, cfg, nil)
	b := start(t, dsn, cfg, nil)
	eventually(t, "two members split the slots", func() string { return fairAll([]*member{a, b}) })

	a.stop()
	if err := a.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if owned := a.Owned(SetPartitions); len(owned) != 0 {
		t.Errorf("a closed member lists %d partitions", len(owned))
	}
	eventually(t, "the remaining member owns every slot", func() string {
		// Its share counts the leaver until its heartbeat is TTL old:
		// the leaver's row must be gone for the share to be everything.
		return fairAll([]*member{b})
	})
	var members int
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT count(*) FROM cluster_members`).Scan(&members); err != nil {
		t.Fatal(err)
	}
	if members != 1 {
		t.Errorf("%d members recorded after one left, want 1", members)
	}
}

func TestJoinRefusesOtherSlotCounts(t *testing.T) {
	dsn := testservices.PostgresDB(t)
	cfg := testConfig()
	start(t, dsn, cfg, nil)
	cfg.Partitions = 32
	cfg.Sessions = 4
	p, err := Join(context.Background(), dsn, cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		p.Close(context.Background()) // the test has failed anyway
		t.Fatal("Join with 32 partitions into a clinic of 64 succeeded")
	}
	if !errors.Is(err, ErrSetSize) {
		t.Fatalf("Join: %v, want ErrSetSize", err)
	}
	for _, want := range []string{"partitions has 64 slots in the database, 32 configured", "sessions has 8 slots in the database, 4 configured"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Join: %v, want it to say %q", err, want)
		}
	}
}

func TestJoinRefusesMalformedDSNWithoutRepeatingIt(t *testing.T) {
	_, err := Join(context.Background(), "postgres://u:sekrit@[::1", testConfig(), slog.New(slog.DiscardHandler))
	if err == nil || strings.Contains(err.Error(), "sekrit") {
		t.Fatalf("Join of a malformed dsn: %v", err)
	}
}
