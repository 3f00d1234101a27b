package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// feedPoints are n points as Decode makes them, of several kinds, with
// times to the nanosecond and values that a decimal round trip could
// change.
func feedPoints(n int) []Point {
	base := time.Date(2026, 3, 1, 7, 30, 0, 123456789, time.UTC)
	points := make([]Point, n)
	for i := range points {
		t := base.Add(time.Duration(i)*time.Minute + time.Duration(i))
		switch i % 3 {
		case 0:
			points[i] = Point{Sample: i, Measurement: "heart_rate", Tags: []Tag{{"source", "watch"}},
				Fields: []Field{{"bpm", 61 + float64(i)/3}}, Time: t}
		case 1:
			points[i] = Point{Sample: i, Measurement: "vitals",
				Tags:   []Tag{{"position", "sitting, left arm"}, {"unit", "mm=Hg"}},
				Fields: []Field{{"diastolic", 80.1}, {"systolic", 0.1 + 0.2}}, Time: t}
		default:
			points[i] = Point{Sample: i, Measurement: "dose", Fields: []Field{{"taken", math.Copysign(0, -1)}}, Time: t}
		}
	}
	return points
}

func TestFeedCodecRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		patient string
		points  []Point
	}{
		{name: "fifty points", patient: "p-1", points: feedPoints(50)},
		{name: "no points", patient: "p-2", points: []Point{}},
		{name: "time before 1970 and unknown measurement", patient: "p-3", points: []Point{{
			Sample: 7, Measurement: "new_kind", Fields: []Field{{"x", math.MaxFloat64}, {"y", math.SmallestNonzeroFloat64}},
			Time: time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC)}}},
		{name: "zero time", patient: "", points: []Point{{Measurement: "sleep"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := appendFeed(nil, tc.patient, tc.points)
			patient, points, err := decodeFeed(msg)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if patient != tc.patient || len(points) != len(tc.points) {
				t.Fatalf("got %q with %d points, want %q with %d", patient, len(points), tc.patient, len(tc.points))
			}
			for i := range points {
				if !reflect.DeepEqual(points[i], tc.points[i]) {
					t.Fatalf("point %d: got %+v, want %+v", i, points[i], tc.points[i])
				}
			}
			for i := range points { // -0 equals 0 for DeepEqual: compare bits
				for j, f := range points[i].Fields {
					if math.Float64bits(f.Value) != math.Float64bits(tc.points[i].Fields[j].Value) {
						t.Errorf("point %d field %s: bits of %v changed", i, f.Key, f.Value)
					}
				}
			}
		})
	}
}

// TestFeedCodecMalformed: every truncation of a message, a wrong version
// and trailing bytes are refused, without a panic or a huge allocation.
func TestFeedCodecMalformed(t *testing.T) {
	msg := appendFeed(nil, "p-1", feedPoints(5))
	for n := range len(msg) {
		if _, _, err := decodeFeed(msg[:n]); !errors.Is(err, errFeedMalformed) {
			t.Fatalf("message cut to %d of %d bytes: err %v", n, len(msg), err)
		}
	}
	for _, bad := range [][]byte{
		append([]byte{2}, msg[1:]...),
		append(append([]byte(nil), msg...), 0),
		{feedVersion, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, // claims 4 billion points
		[]byte(`{"patient":"p-1"}`),
	} {
		if _, _, err := decodeFeed(bad); !errors.Is(err, errFeedMalformed) {
			t.Errorf("decode %q: err %v", bad, err)
		}
	}
}

func FuzzDecodeFeed(f *testing.F) {
	f.Add(appendFeed(nil, "p-1", feedPoints(3)))
	f.Fuzz(func(t *testing.T, msg []byte) {
		patient, points, err := decodeFeed(msg)
		if err != nil {
			return
		}
		again := appendFeed(nil, patient, points)
		if _, back, err := decodeFeed(again); err != nil || !reflect.DeepEqual(back, points) {
			t.Fatalf("re-encoded message does not read back: %v", err)
		}
	})
}

// BenchmarkFeedCodec encodes and decodes a message of 50 points; JSON of
// the same points is beside it for comparison.
func BenchmarkFeedCodec(b *testing.B) {
	points := feedPoints(50)
	b.Run("binary", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = appendFeed(buf[:0], "p-1", points)
			if _, _, err := decodeFeed(buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(buf)), "bytes/msg")
	})
	b.Run("json", func(b *testing.B) {
		type message struct {
			Patient string
			Points  []Point
		}
		var size int
		b.ReportAllocs()
		for b.Loop() {
			buf, err := json.Marshal(message{"p-1", points})
			if err != nil {
				b.Fatal(err)
			}
			var m message
			if err := json.Unmarshal(buf, &m); err != nil {
				b.Fatal(err)
			}
			size = len(buf)
		}
		b.ReportMetric(float64(size), "bytes/msg")
	})
}

func startMosquitto(t testing.TB) *testservices.Mosquitto {
	t.Helper()
	m, err := testservices.StartMosquitto()
	testservices.Require(t, err)
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop mosquitto: %v", err)
		}
	})
	return m
}

// feedMessage is what a feed's function was called with.
type feedMessage struct {
	patient string
	points  []Point
}

type testFeed struct {
	*Feed
	got chan feedMessage
}

// startFeed runs a feed of instance on m until the test ends, with
// patients p-<n> in partition n.
func startFeed(t testing.TB, m *testservices.Mosquitto, instance string) *testFeed {
	t.Helper()
	return startFeedWith(t, m, instance, func(*Feed) {})
}

// startFeedWith is startFeed, with setup called before Run.
func startFeedWith(t testing.TB, m *testservices.Mosquitto, instance string, setup func(*Feed)) *testFeed {
	t.Helper()
	partition := func(patient string) int {
		var n int
		fmt.Sscanf(patient, "p-%d", &n)
		return n
	}
	cfg := MQTTConfig{URL: m.URL, ClientID: "pp-test", MaxReconnect: time.Second}
	f := &testFeed{Feed: NewFeed(cfg, instance, partition, nil, slog.New(slog.NewTextHandler(io.Discard, nil))),
		got: make(chan feedMessage, 1000)}
	setup(f.Feed)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, func(p string, pts []Point) { f.got <- feedMessage{p, pts} }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("feed Run: %v", err)
		}
	})
	return f
}

// awaitFeedUp publishes a probe of patient p-0 until every feed has it,
// so that their subscriptions are known to be up.
func awaitFeedUp(t testing.TB, from *testFeed, feeds ...*testFeed) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, f := range feeds {
		for {
			if time.Now().After(deadline) {
				t.Fatal("feed not up within 10s")
			}
			_ = from.Publish(context.Background(), "p-0", nil)
			select {
			case <-f.got:
			case <-time.After(200 * time.Millisecond):
				continue
			}
			break
		}
	}
	time.Sleep(100 * time.Millisecond) // late probes
	for _, f := range feeds {
		for len(f.got) > 0 {
			<-f.got
		}
	}
}

// TestFeedRoundTrip: what one instance publishes reaches every
// instance's function exactly (points equal), in order per partition; a
// malformed message is counted and dropped, and what follows it arrives.
func TestFeedRoundTrip(t *testing.T) {
	m := startMosquitto(t)
	a, b := startFeed(t, m, "a"), startFeed(t, m, "b")
	awaitFeedUp(t, a, a, b)

	var want []feedMessage
	for i := range 20 {
		patient := fmt.Sprintf("p-%d", 1+i%2)
		points := feedPoints(1 + i)
		points[0].Sample = i // tells the messages of a patient apart
		want = append(want, feedMessage{patient, points})
		if err := a.Publish(context.Background(), patient, points); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	raw, err := m.Connect(t, "raw", "", "")
	if err != nil {
		t.Fatal(err)
	}
	raw.Send(t, FeedTopic(1), "not a feed message")
	if err := a.Publish(context.Background(), "p-1", feedPoints(2)); err != nil {
		t.Fatal(err)
	}
	want = append(want, feedMessage{"p-1", feedPoints(2)})

	for _, f := range []*testFeed{a, b} {
		got := map[string][]feedMessage{}
		for range want {
			select {
			case msg := <-f.got:
				got[msg.patient] = append(got[msg.patient], msg)
			case <-time.After(10 * time.Second):
				t.Fatalf("feed %s: %d messages of %d within 10s", f.instance, len(got["p-1"])+len(got["p-2"]), len(want))
			}
		}
		wantBy := map[string][]feedMessage{}
		for _, msg := range want {
			wantBy[msg.patient] = append(wantBy[msg.patient], msg)
		}
		if !reflect.DeepEqual(got, wantBy) {
			t.Errorf("feed %s: messages differ or out of order per partition", f.instance)
		}
		waitFor(t, func() bool { return counterValue(f.malformed) == 1 })
	}
}

// TestFeedPublishWaitsForBroker: Publish returns only with the broker's
// PUBACK: a broker that holds it (stopped) makes it fail with
// ErrFeedUnavailable, as does one that is down; once the broker is back,
// Publish succeeds again.
func TestFeedPublishWaitsForBroker(t *testing.T) {
	m := startMosquitto(t)
	f := startFeed(t, m, "a")
	f.publishWait = 300 * time.Millisecond
	awaitFeedUp(t, f, f)
	if err := f.Publish(context.Background(), "p-1", feedPoints(1)); err != nil {
		t.Fatalf("publish: %v", err)
	}

	pid := m.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := f.Publish(context.Background(), "p-1", feedPoints(1))
	took := time.Since(start)
	syscall.Kill(pid, syscall.SIGCONT)
	if !errors.Is(err, ErrFeedUnavailable) || took < 300*time.Millisecond {
		t.Fatalf("publish to a stopped broker: %v after %s, want ErrFeedUnavailable after 300ms", err, took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Publish(ctx, "p-1", feedPoints(1)); !errors.Is(err, ErrFeedUnavailable) {
		t.Errorf("publish with an ended context: %v", err)
	}

	if err := m.Down(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return errors.Is(f.Publish(context.Background(), "p-1", feedPoints(1)), ErrFeedUnavailable)
	})
	if err := m.Up(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return f.Publish(context.Background(), "p-1", feedPoints(1)) == nil })
	if counterValue(f.publishFailures) < 3 {
		t.Errorf("publish failures counted %v, want at least 3", counterValue(f.publishFailures))
	}
}

// TestFeedResubscribes: after the broker restarts (a clean session's
// subscription is gone), the feed subscribes again, says so through
// OnSubscribed, and receives again.
func TestFeedResubscribes(t *testing.T) {
	m := startMosquitto(t)
	subscribed := make(chan struct{}, 10)
	f := startFeedWith(t, m, "a", func(f *Feed) { f.OnSubscribed(func() { subscribed <- struct{}{} }) })
	awaitFeedUp(t, f, f)
	select {
	case <-subscribed:
	default:
		t.Fatal("feed up, and OnSubscribed not called")
	}
	if !f.Subscribed() {
		t.Error("feed up, and Subscribed false")
	}
	if err := m.Down(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !f.Subscribed() })
	if err := m.Up(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("OnSubscribed not called again within 10s of the broker's restart")
	}
	awaitFeedUp(t, f, f)
	if err := f.Publish(context.Background(), "p-4", feedPoints(3)); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case msg := <-f.got:
			if msg.patient == "p-0" { // a late probe
				continue
			}
			if msg.patient != "p-4" || !reflect.DeepEqual(msg.points, feedPoints(3)) {
				t.Errorf("got %q with %d points after the restart", msg.patient, len(msg.points))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("nothing received after the broker's restart")
		}
		return
	}
}

// BenchmarkFeedPublish publishes messages of 10 points from many
// goroutines at once (as the collectors' workers do) on a real Mosquitto,
// each waiting for its PUBACK, with a second instance subscribed.
func BenchmarkFeedPublish(b *testing.B) {
	m := startMosquitto(b)
	a, other := startFeed(b, m, "a"), startFeed(b, m, "b")
	awaitFeedUp(b, a, a, other)
	for _, f := range []*testFeed{a, other} {
		go func() {
			for range f.got { // drained, as a consumer would
			}
		}()
	}
	points := feedPoints(10)
	b.SetParallelism(32)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := a.Publish(context.Background(), "p-1", points); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
