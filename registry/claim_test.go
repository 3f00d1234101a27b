package registry

import (
	"slices"
	"testing"
	"time"
)

// TestClaimDue: a due delivery is claimed by one holder at a time (a
// second claimer gets none of it, and NextDue puts it at the end of the
// claim), again by another once the claim runs out (its holder died),
// free again at its next attempt once FinishAttempt recorded one, and at
// once when its holder's claims are released (ReleaseClaimsOf, or
// ReleaseAllClaims); a delivery behind a claimed one of the same alert and
// channel waits.
func TestClaimDue(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		o := newOutboxRig(t, be)
		ctx := t.Context()
		row := o.open("r-1", 0, outbox("opened", o.at(0), pd("a", "bob", "k1"), pd("b", "carol", "k2")))
		o.change(row, AlertAcknowledged, time.Second, outbox("acknowledged", o.at(time.Second), pd("a2", "bob", "k1")))
		ids := func(ds []Due) []string {
			var out []string
			for _, d := range ds {
				out = append(out, d.ID)
			}
			slices.Sort(out)
			return out
		}
		now := o.at(time.Minute)
		got, err := o.r.ClaimDue(ctx, now, 10, nil, "one", now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"a", "b"}; !slices.Equal(ids(got), want) {
			t.Fatalf("first claim: %v, want %v (a2 waits behind a)", ids(got), want)
		}
		got, err = o.r.ClaimDue(ctx, now.Add(time.Second), 10, nil, "two", now.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Fatalf("second claimer got %v while claimed", ids(got))
		}
		next, ok, err := o.r.NextDue(ctx, nil)
		if err != nil || !ok || !next.Equal(now.Add(time.Minute)) {
			t.Fatalf("NextDue = %v, %v, %v; want the claim's end %v", next, ok, err, now.Add(time.Minute))
		}
		// "one" recorded b, then died holding a.
		if err := o.finish("b", 1, time.Minute, DeliveryDelivered, time.Time{}); err != nil {
			t.Fatal(err)
		}
		later := now.Add(time.Minute)
		got, err = o.r.ClaimDue(ctx, later, 10, nil, "two", later.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"a"}; !slices.Equal(ids(got), want) {
			t.Fatalf("claim after the first ran out: %v, want %v", ids(got), want)
		}
		// A failed attempt ends the claim: the retry is free at its time.
		if err := o.finish("a", 1, 2*time.Minute, DeliveryPending, later.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		got, err = o.r.ClaimDue(ctx, later.Add(time.Second), 10, nil, "three", later.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"a"}; !slices.Equal(ids(got), want) {
			t.Fatalf("claim of the retry: %v, want %v", ids(got), want)
		}
		// "three" left the cluster holding a: a survivor frees its
		// claims, not another's.
		if n, err := o.r.ReleaseClaimsOf(ctx, []string{"two", "someone"}); err != nil || n != 0 {
			t.Fatalf("ReleaseClaimsOf of holders without claims: %d, %v; want 0", n, err)
		}
		if got, err = o.r.ClaimDue(ctx, later.Add(time.Second), 10, nil, "four", later.Add(time.Minute)); err != nil || len(got) != 0 {
			t.Fatalf("claim while three holds a: %v, %v; want none", ids(got), err)
		}
		if n, err := o.r.ReleaseClaimsOf(ctx, []string{"someone", "three"}); err != nil || n != 1 {
			t.Fatalf("ReleaseClaimsOf three: %d, %v; want 1", n, err)
		}
		got, err = o.r.ClaimDue(ctx, later.Add(time.Second), 10, nil, "four", later.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"a"}; !slices.Equal(ids(got), want) {
			t.Fatalf("claim after ReleaseClaimsOf: %v, want %v", ids(got), want)
		}
		// "four" was killed holding a; alone again, the instance frees it.
		if err := o.r.ReleaseAllClaims(ctx); err != nil {
			t.Fatal(err)
		}
		got, err = o.r.ClaimDue(ctx, later.Add(time.Second), 10, nil, "five", later.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"a"}; !slices.Equal(ids(got), want) {
			t.Fatalf("claim after ReleaseAllClaims: %v, want %v", ids(got), want)
		}
	})
}

// TestUnknownSignIns: the failed sign-ins of an unknown username are
// counted by its hash, from any registry on the store, and forgotten
// once older than the window.
func TestUnknownSignIns(t *testing.T) {
	eachBackend(t, func(t *testing.T, be backend) {
		r, _ := openTest(t, be)
		ctx := t.Context()
		t0 := time.Now().UTC().Truncate(time.Second)
		h1, h2 := "1111111111111111111111111111111111111111111111111111111111111111",
			"2222222222222222222222222222222222222222222222222222222222222222"
		for i, f := range []struct {
			hash, address string
			at            time.Duration
		}{{h1, "10.0.0.1", 0}, {h1, "10.0.0.2", time.Second}, {h1, "10.0.0.1", 2 * time.Second}, {h2, "10.0.0.1", 3 * time.Second}} {
			if err := r.AddUnknownSignIn(ctx, f.hash, f.address, t0.Add(f.at), t0.Add(-time.Hour)); err != nil {
				t.Fatal(i, err)
			}
		}
		c := SignInCounts{Address: 7}
		if err := r.UnknownSignInCounts(ctx, h1, "10.0.0.1", t0.Add(-time.Minute), &c); err != nil {
			t.Fatal(err)
		}
		want := SignInCounts{Account: 3, AccountAddresses: 2, AccountAddress: 2, LastFailure: t0.Add(2 * time.Second), Address: 7}
		if c != want {
			t.Errorf("counts = %+v, want %+v", c, want)
		}
		if err := r.UnknownSignInCounts(ctx, h1, "10.0.0.1", t0.Add(time.Second), &c); err != nil {
			t.Fatal(err)
		}
		if c.Account != 2 || c.AccountAddress != 1 {
			t.Errorf("counts since t0+1s = %+v, want 2 failures, 1 from the address", c)
		}
		// A failure an hour later forgets the old ones.
		if err := r.AddUnknownSignIn(ctx, h2, "10.0.0.1", t0.Add(time.Hour), t0.Add(time.Hour-time.Minute)); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := r.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM signin_unknown`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%d failures kept, want 1", n)
		}
	})
}
