package clustertest

import (
	"errors"
	"maps"
	"testing"

	"github.com/patientpulse/patientpulse/cluster"
)

// TestFakeCheck: Check lets through only an owned partition under its
// epoch, not refused; Set forgets refusals; every Check is counted.
func TestFakeCheck(t *testing.T) {
	tests := []struct {
		name   string
		owned  map[int]int64
		refuse []int
		set    string
		slot   int
		epoch  int64
		fenced bool
	}{
		{name: "owned under its epoch", owned: map[int]int64{0: 2}, set: cluster.SetPartitions, slot: 0, epoch: 2},
		{name: "another epoch", owned: map[int]int64{0: 2}, set: cluster.SetPartitions, slot: 0, epoch: 1, fenced: true},
		{name: "not owned", owned: map[int]int64{0: 2}, set: cluster.SetPartitions, slot: 1, epoch: 2, fenced: true},
		{name: "not owned, epoch 0", owned: map[int]int64{}, set: cluster.SetPartitions, slot: 1, epoch: 0, fenced: true},
		{name: "refused", owned: map[int]int64{0: 2, 1: 2}, refuse: []int{1}, set: cluster.SetPartitions, slot: 1, epoch: 2, fenced: true},
		{name: "another partition refused", owned: map[int]int64{0: 2, 1: 2}, refuse: []int{1}, set: cluster.SetPartitions, slot: 0, epoch: 2},
		{name: "another set", owned: map[int]int64{0: 2}, set: cluster.SetSessions, slot: 0, epoch: 2, fenced: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake(2, tt.owned)
			f.Refuse(tt.refuse...)
			err := f.Check(t.Context(), nil, tt.set, tt.slot, tt.epoch)
			if got := errors.Is(err, cluster.ErrFenced); got != tt.fenced || (!tt.fenced && err != nil) {
				t.Errorf("Check: %v, want fenced %v", err, tt.fenced)
			}
			if f.Checks() != 1 {
				t.Errorf("Checks() = %d after one Check", f.Checks())
			}
		})
	}
}

// TestFakeSet: Set replaces what Owned says, clears refusals, and signals
// Changes once however many times it is called meanwhile; Refuse leaves
// Owned and Changes alone; the test's map is not shared.
func TestFakeSet(t *testing.T) {
	mine := map[int]int64{0: 1}
	f := NewFake(4, mine)
	mine[3] = 9
	if got := f.Owned(cluster.SetPartitions); !maps.Equal(got, map[int]int64{0: 1}) {
		t.Fatalf("Owned %v, want the map as given to NewFake", got)
	}
	f.Refuse(0)
	select {
	case <-f.Changes():
		t.Fatal("Refuse signalled a change")
	default:
	}
	if _, ok := f.Owned(cluster.SetPartitions)[0]; !ok {
		t.Fatal("a refused partition left Owned")
	}
	f.Set(map[int]int64{0: 2, 1: 2})
	f.Set(map[int]int64{0: 3, 1: 3})
	select {
	case <-f.Changes():
	default:
		t.Fatal("Set signalled no change")
	}
	select {
	case <-f.Changes():
		t.Fatal("two Sets signalled twice")
	default:
	}
	if err := f.Check(t.Context(), nil, cluster.SetPartitions, 0, 3); err != nil {
		t.Errorf("Check after Set: %v, want the refusal forgotten", err)
	}
	if owner, ok := f.OwnerOf(cluster.SetPartitions, 1); !ok || owner != f.Self() {
		t.Errorf("OwnerOf an owned partition: %q, %v", owner, ok)
	}
	if _, ok := f.OwnerOf(cluster.SetPartitions, 2); ok {
		t.Error("OwnerOf a partition not owned says it is known")
	}
	if got := f.Owned(cluster.SetSessions); len(got) != 0 {
		t.Errorf("Owned(sessions) %v, want none", got)
	}
}
