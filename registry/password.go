package registry

// Password hashing for staff accounts: argon2id, stored as PHC strings.

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// dummyHash is verified against for an unknown username, so that a login
// with one takes as long as a login with a wrong password. Its all-zero key
// matches no password.
var dummyHash = argonDefaults.encode(make([]byte, 16), make([]byte, argonDefaults.keyLen))

// argonParams are the argon2id settings of one hash.
type argonParams struct {
	memory  uint32 // KiB
	time    uint32 // passes
	threads uint8
	saltLen int // bytes
	keyLen  uint32
}

// argonDefaults are the parameters new hashes get: 64 MiB, 3 passes, 2
// lanes (above OWASP's argon2id minimums). Raising them needs no migration:
// each stored hash carries its own, and Authenticate rehashes on login.
var argonDefaults = argonParams{memory: 64 * 1024, time: 3, threads: 2, saltLen: 16, keyLen: 32}

// hashSlots bounds the hashes computed at once, each holding memory KiB,
// so that a burst of logins cannot exhaust the process's memory.
var hashSlots = make(chan struct{}, 4)

// encode returns the PHC string of a hash.
func (p argonParams) encode(salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// errBadHash reports a stored hash this package cannot read. It never
// repeats the hash.
var errBadHash = errors.New("stored password hash is not an argon2id PHC string this version reads")

// parsePHC reads "$argon2id$v=19$m=M,t=T,p=P$SALT$KEY", base64 without
// padding. It refuses parameters no sane hash has, which would otherwise
// let a damaged row make a login allocate without bound.
func parsePHC(s string) (p argonParams, salt, key []byte, err error) {
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, errBadHash
	}
	kv := strings.Split(f[3], ",")
	if len(kv) != 3 {
		return p, nil, nil, errBadHash
	}
	var n [3]uint64
	for i, k := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(kv[i], k)
		if !ok {
			return p, nil, nil, errBadHash
		}
		if n[i], err = strconv.ParseUint(v, 10, 32); err != nil {
			return p, nil, nil, errBadHash
		}
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(f[4]); err != nil {
		return p, nil, nil, errBadHash
	}
	if key, err = b64.DecodeString(f[5]); err != nil {
		return p, nil, nil, errBadHash
	}
	if n[2] < 1 || n[2] > 16 || n[1] < 1 || n[1] > 10 || n[0] < 8*n[2] || n[0] > 1<<20 ||
		len(salt) < 8 || len(salt) > 64 || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errBadHash
	}
	p = argonParams{memory: uint32(n[0]), time: uint32(n[1]), threads: uint8(n[2]), saltLen: len(salt), keyLen: uint32(len(key))}
	return p, salt, key, nil
}

// commonPasswordList is commonpasswords.txt: 49,233 passwords, one a
// line, lower-cased, most common first. It is passwords.json of the npm
// package @zxcvbn-ts/language-common 4.1.3 (MIT licence, in
// commonpasswords.LICENSE), lower-cased with repeats dropped:
//
//	npm pack @zxcvbn-ts/language-common@4.1.3
//	tar -xzf zxcvbn-ts-language-common-4.1.3.tgz package/src/passwords.json
//	python3 -c 'import json; seen = set(); print("\n".join(w for w in (p.lower() for p in json.load(open("package/src/passwords.json"))) if not (w in seen or seen.add(w))))' > commonpasswords.txt
//
//go:embed commonpasswords.txt
var commonPasswordList string

// commonPasswords returns the set of commonPasswordList, built on first use.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 50000)
	for _, p := range strings.Split(commonPasswordList, "\n") {
		if p != "" {
			set[p] = struct{}{}
		}
	}
	return set
})

// minCommonStem is the shortest common password that, with digits or
// symbols added before or after it, makes a password refused: shorter
// ones ("abc", "123") are too short to be what a guesser tries first.
const minCommonStem = 4

// minUsernameInPassword is the shortest username that a password may not
// contain: a one- or two-letter username is inside too many good
// passwords.
const minUsernameInPassword = 3

// CheckPassword applies the password rules of NIST SP 800-63B (5.1.1.2) to
// a new password of username: at least MinPasswordLen characters, at most
// maxPasswordLen bytes, not on the bundled list of common passwords (in
// any case, nor with only digits or symbols added around one), not one
// character or a short group of them repeated, not a run of consecutive
// characters (abcd..., 1234...), and not containing the username (in any
// case). Its error wraps ErrWeakPassword and says which rule was broken,
// never repeating the password.
func CheckPassword(username, password string) error {
	n := utf8.RuneCountInString(password)
	if n < MinPasswordLen {
		return fmt.Errorf("%w: a password must have at least %d characters", ErrWeakPassword, MinPasswordLen)
	}
	if len(password) > maxPasswordLen {
		return fmt.Errorf("%w: a password must have at most %d bytes", ErrWeakPassword, maxPasswordLen)
	}
	lower := strings.ToLower(password)
	if len(username) >= minUsernameInPassword && strings.Contains(lower, strings.ToLower(username)) {
		return fmt.Errorf("%w: a password must not contain the username", ErrWeakPassword)
	}
	common := commonPasswords()
	if _, ok := common[lower]; ok {
		return fmt.Errorf("%w: this password is on the list of commonly used passwords: choose another", ErrWeakPassword)
	}
	stem := strings.TrimFunc(lower, func(r rune) bool {
		return unicode.IsDigit(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r)
	})
	if _, ok := common[stem]; ok && utf8.RuneCountInString(stem) >= minCommonStem {
		return fmt.Errorf("%w: this password is a commonly used password with digits or symbols added: choose another", ErrWeakPassword)
	}
	if repeated(lower) {
		return fmt.Errorf("%w: a password must not be one character, or a short group of characters, repeated", ErrWeakPassword)
	}
	if consecutive(lower) {
		return fmt.Errorf("%w: a password must not be a run of consecutive characters (abcd..., 1234...)", ErrWeakPassword)
	}
	return nil
}

// maxRepeatedUnit is the longest group of characters whose repetition
// makes a password refused ("abab...", "1231...", "passpass...").
const maxRepeatedUnit = 4

// repeated reports whether s is a group of at most maxRepeatedUnit
// characters repeated (the last repeat may be cut short).
func repeated(s string) bool {
	r := []rune(s)
	for unit := 1; unit <= maxRepeatedUnit && unit < len(r); unit++ {
		same := true
		for i := unit; i < len(r) && same; i++ {
			same = r[i] == r[i-unit]
		}
		if same {
			return true
		}
	}
	return false
}

// consecutive reports whether each character of s follows the one before
// it, all up or all down ("abcdefghijkl", "987654321098": digits wrap).
func consecutive(s string) bool {
	r := []rune(s)
	for _, step := range []rune{1, -1} {
		ok := true
		for i := 1; i < len(r) && ok; i++ {
			next := r[i-1] + step
			switch {
			case r[i-1] == '9' && step == 1:
				next = '0'
			case r[i-1] == '0' && step == -1:
				next = '9'
			}
			ok = r[i] == next
		}
		if ok {
			return true
		}
	}
	return false
}

// hashPassword checks password's length and returns its argon2id PHC
// string with argonDefaults and a fresh random salt.
func hashPassword(ctx context.Context, password string) (string, error) {
	if utf8.RuneCountInString(password) < MinPasswordLen {
		return "", fmt.Errorf("%w: a password must have at least %d characters", ErrWeakPassword, MinPasswordLen)
	}
	if len(password) > maxPasswordLen {
		return "", fmt.Errorf("%w: a password must have at most %d bytes", ErrWeakPassword, maxPasswordLen)
	}
	salt := make([]byte, argonDefaults.saltLen)
	rand.Read(salt) // never returns an error; it crashes the program on failure
	key, err := deriveKey(ctx, argonDefaults, password, salt)
	if err != nil {
		return "", err
	}
	return argonDefaults.encode(salt, key), nil
}

// verifyPassword reports whether password matches the PHC string hash,
// derived with the hash's own parameters and compared in constant time.
func verifyPassword(ctx context.Context, hash, password string) (bool, error) {
	p, salt, want, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	got, err := deriveKey(ctx, p, password, salt)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// deriveKey runs argon2id in one of hashSlots, waiting for one at most as
// long as ctx lasts.
func deriveKey(ctx context.Context, p argonParams, password string, salt []byte) ([]byte, error) {
	select {
	case hashSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("hash password: %w", ctx.Err())
	}
	defer func() { <-hashSlots }()
	return argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, p.keyLen), nil
}
