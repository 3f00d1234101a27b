package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"time"
)

// Errors of Links.Verify.
var (
	ErrLinkInvalid = errors.New("not a valid page link")
	ErrLinkExpired = errors.New("this page link has expired: open the alert from the console")
)

// LinkTTL is how long a page's link stays valid.
const LinkTTL = 24 * time.Hour

// LinkKeyName is the name of the links' signing key in the registry.
const LinkKeyName = "page-links"

// Links makes and checks the one-tap acknowledgement links pages carry:
// <base>/a/<token>, the token naming one alert and its expiry, signed with
// a key every instance on the registry shares. A link only opens the
// alert: the staff member still signs in, and may act on it only as the
// API's authorization allows.
type Links struct {
	key  []byte
	base string // the console's public URL, without a trailing slash
}

// NewLinks returns links under base signed with key.
func NewLinks(key []byte, base string) *Links {
	return &Links{key: key, base: strings.TrimSuffix(base, "/")}
}

// Ack returns the link to alert id, valid for LinkTTL from now.
func (l *Links) Ack(id int64, now time.Time) string {
	var b [32]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(id))
	binary.BigEndian.PutUint64(b[8:16], uint64(now.Add(LinkTTL).Unix()))
	copy(b[16:], l.mac(b[:16]))
	return l.base + "/a/" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Console returns the link to the console.
func (l *Links) Console() string { return l.base + "/" }

// Verify returns the alert a token names, or an error wrapping
// ErrLinkInvalid or ErrLinkExpired.
func (l *Links) Verify(token string, now time.Time) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != 32 || !hmac.Equal(b[16:], l.mac(b[:16])) {
		return 0, ErrLinkInvalid
	}
	if now.Unix() >= int64(binary.BigEndian.Uint64(b[8:16])) {
		return 0, ErrLinkExpired
	}
	return int64(binary.BigEndian.Uint64(b[0:8])), nil
}

func (l *Links) mac(b []byte) []byte {
	m := hmac.New(sha256.New, l.key)
	m.Write([]byte("patientpulse page link v1\x00"))
	m.Write(b)
	return m.Sum(nil)[:16]
}
