package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// newToken returns a new bearer token: prefix (which says what the token
// is for) and the unpadded base64url encoding of 32 random bytes.
func newToken(prefix string) string {
	var secret [32]byte
	rand.Read(secret[:]) // never returns an error; it crashes the program on failure
	return prefix + base64.RawURLEncoding.EncodeToString(secret[:])
}

// hashToken returns the hex SHA-256 of a token, the form the registry
// stores. A token carries 256 random bits, so an unsalted fast hash is
// enough: there is nothing to guess.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
