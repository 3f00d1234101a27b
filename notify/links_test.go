package notify

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestLinks: a page's link names its alert until LinkTTL has passed; a
// token changed in any byte, cut short, or signed with another key
// names none.
func TestLinks(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	l := NewLinks(key, "https://pp.example/clinic/")
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	link := l.Ack(42, now)
	token, ok := strings.CutPrefix(link, "https://pp.example/clinic/a/")
	if !ok || token == "" || strings.ContainsAny(token, "/?#=") {
		t.Fatalf("link %q, want https://pp.example/clinic/a/<token>", link)
	}
	if got := l.Console(); got != "https://pp.example/clinic/" {
		t.Errorf("Console() = %q, want the base with one slash", got)
	}
	for _, at := range []time.Time{now, now.Add(LinkTTL - time.Second)} {
		if id, err := l.Verify(token, at); err != nil || id != 42 {
			t.Errorf("Verify at %s = %d, %v; want alert 42", at.Sub(now), id, err)
		}
	}
	for _, at := range []time.Time{now.Add(LinkTTL), now.Add(LinkTTL + time.Hour)} {
		if _, err := l.Verify(token, at); !errors.Is(err, ErrLinkExpired) {
			t.Errorf("Verify %s later: %v, want ErrLinkExpired", at.Sub(now), err)
		}
	}
	if other := l.Ack(43, now); other == link {
		t.Error("alerts 42 and 43 have the same link")
	}

	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		b := []byte(string(raw))
		b[i] ^= 0x01
		if id, err := l.Verify(base64.RawURLEncoding.EncodeToString(b), now); !errors.Is(err, ErrLinkInvalid) {
			t.Errorf("token with byte %d changed: %d, %v; want ErrLinkInvalid", i, id, err)
		}
	}
	for name, bad := range map[string]string{
		"empty": "", "cut": token[:len(token)-2], "longer": token + "AA", "not base64": token[:len(token)-1] + "*",
		"padded": base64.URLEncoding.EncodeToString(raw),
	} {
		if id, err := l.Verify(bad, now); !errors.Is(err, ErrLinkInvalid) {
			t.Errorf("%s token: %d, %v; want ErrLinkInvalid", name, id, err)
		}
	}
	otherKey := NewLinks([]byte("another key of 32 bytes, exactly"), "https://pp.example/clinic")
	if id, err := otherKey.Verify(token, now); !errors.Is(err, ErrLinkInvalid) {
		t.Errorf("token under another key: %d, %v; want ErrLinkInvalid", id, err)
	}
	if got := otherKey.Ack(42, now); got == link {
		t.Error("another key signs the same link")
	}
	same := NewLinks(key, "https://pp.example/clinic")
	if id, err := same.Verify(token, now); err != nil || id != 42 {
		t.Errorf("token under the same key elsewhere: %d, %v; want alert 42", id, err)
	}
}
