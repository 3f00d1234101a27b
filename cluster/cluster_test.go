package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPartitionOf(t *testing.T) {
	// FNV-1a 32 of each id (the first three are the published test
	// vectors 0x811c9dc5, 0xe40c292c and 0xbf9cf968), modulo n: these must
	// never change, or instances of two versions would disagree.
	tests := []struct {
		name string
		id   string
		n    int
		want int
	}{
		{name: "empty", id: "", n: 64, want: 5},
		{name: "a", id: "a", n: 64, want: 44},
		{name: "foobar", id: "foobar", n: 64, want: 40},
		{name: "short id", id: "p-0001", n: 64, want: 25},
		{name: "word id", id: "patient-42", n: 64, want: 47},
		{name: "uuid", id: "9b2f6c1e-3d4a-4f5b-8c7d-2e1f0a9b8c7d", n: 64, want: 16},
		{name: "other count", id: "patient-42", n: 16, want: 15},
		{name: "one partition", id: "patient-42", n: 1, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := PartitionOf(tc.id, tc.n); got != tc.want {
				t.Errorf("PartitionOf(%q, %d) = %d, want %d", tc.id, tc.n, got, tc.want)
			}
		})
	}
}

func TestPartitionOfSpreads(t *testing.T) {
	const ids, n = 10000, 64
	counts := make([]int, n)
	for i := range ids {
		counts[PartitionOf(fmt.Sprintf("patient-%05d", i), n)]++
	}
	// 156.25 a partition on average, a standard deviation of about 12.4
	// for a uniform hash: ±40 is more than three of them.
	for p, c := range counts {
		if c < 116 || c > 196 {
			t.Errorf("partition %d has %d of %d ids, want 116..196; all: %v", p, c, ids, counts)
		}
	}
}

func TestSingleOwnsEverything(t *testing.T) {
	s := NewSingle(DefaultConfig())
	if s.Partitions() != 64 {
		t.Fatalf("Partitions() = %d, want 64", s.Partitions())
	}
	for set, n := range map[string]int{SetPartitions: 64, SetSessions: 8} {
		owned := s.Owned(set)
		if len(owned) != n {
			t.Errorf("Owned(%s) has %d slots, want %d", set, len(owned), n)
		}
		for slot := range n {
			if owned[slot] != 1 {
				t.Errorf("Owned(%s)[%d] = %d, want epoch 1", set, slot, owned[slot])
			}
			if who, ok := s.OwnerOf(set, slot); !ok || who != s.Self() {
				t.Errorf("OwnerOf(%s, %d) = %q, %v, want %q", set, slot, who, ok, s.Self())
			}
			if err := s.Check(context.Background(), nil, set, slot, 1); err != nil {
				t.Errorf("Check(%s, %d): %v", set, slot, err)
			}
		}
		if _, ok := s.OwnerOf(set, n); ok {
			t.Errorf("OwnerOf(%s, %d) found an owner beyond the set", set, n)
		}
	}
	if got := s.PartitionOf("patient-42"); got != 47 {
		t.Errorf("PartitionOf(patient-42) = %d, want 47", got)
	}
	if owned := s.Owned("nonesuch"); len(owned) != 0 {
		t.Errorf("Owned(nonesuch) = %v, want nothing", owned)
	}
	if err := s.Check(context.Background(), nil, SetPartitions, 64, 1); err == nil {
		t.Error("Check of partition 64 of 64 passed")
	}
	select {
	case <-s.Changes():
		t.Error("Changes received for a lone instance")
	default:
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // fragments of the error; none: valid
	}{
		{name: "default", change: func(*Config) {}},
		{name: "no partitions", change: func(c *Config) { c.Partitions = 0 }, want: []string{"partitions"}},
		{name: "no sessions", change: func(c *Config) { c.Sessions = 0 }, want: []string{"sessions"}},
		{name: "short ttl", change: func(c *Config) { c.TTL = c.Interval }, want: []string{"ttl"}},
		{name: "everything", change: func(c *Config) { *c = Config{} },
			want: []string{"partitions", "sessions", "interval", "ttl"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Interval = 100 * time.Millisecond
			tc.change(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate passed")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v, want it to mention %q", err, w)
				}
			}
		})
	}
}
