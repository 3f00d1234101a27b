package ingest

import (
	"bytes"
	"encoding/json"
	"slices"
)

// This file reads JSON in one pass that both validates it, exactly as
// json.Valid would, and splits it into objects' members and arrays'
// elements without copying: the values are subslices of the payload.
// encoding/json's Decoder would do the same with about ten times the
// allocations, and a map would hide repeated keys; checking with json.Valid
// first, then splitting, would read each byte several times.

// maxDepth is the deepest nesting json.Valid accepts.
const maxDepth = 10000

// scanner reads one JSON text, accepting exactly what json.Valid accepts.
// The first syntax error stops it for good: every later read returns
// nothing, so callers may read on and check err once at the end.
type scanner struct {
	data  []byte
	pos   int  // the next byte to read
	depth int  // objects and arrays open at pos
	err   bool // data is not valid JSON
}

// fail records a syntax error and moves to the end, where nothing more can
// be read.
func (s *scanner) fail() {
	s.err, s.pos = true, len(s.data)
}

// peek skips whitespace and returns the next byte, 0 at the end (a 0 byte
// in the data is never valid there either).
func (s *scanner) peek() byte {
	for ; s.pos < len(s.data); s.pos++ {
		switch c := s.data[s.pos]; c {
		case ' ', '\t', '\r', '\n':
		default:
			return c
		}
	}
	return 0
}

// end checks that only whitespace follows the top-level value, and reports
// whether the data was valid JSON.
func (s *scanner) end() bool {
	if s.peek() != 0 || s.pos < len(s.data) {
		s.fail()
	}
	return !s.err
}

// enter reads open, '{' or '[', which the caller has seen with peek.
func (s *scanner) enter() {
	s.pos++
	if s.depth++; s.depth > maxDepth {
		s.fail()
	}
}

// next reports whether the object or array being read has another member
// or element, after n read so far. It reads the comma before it, or the
// closing bracket close after the last.
func (s *scanner) next(close byte, n int) bool {
	if s.err {
		return false
	}
	switch c := s.peek(); {
	case c == close:
		s.pos++
		s.depth--
		return false
	case n == 0:
		return true
	case c == ',':
		s.pos++
		return true
	}
	s.fail()
	return false
}

// key reads an object member's key and the colon after it.
func (s *scanner) key() string {
	raw, escaped := s.str()
	if s.peek() != ':' {
		s.fail()
		return ""
	}
	s.pos++
	if escaped {
		key, _ := unquote(raw)
		return key
	}
	return intern(raw[1 : len(raw)-1])
}

// object reads the object that comes next, the caller having seen its '{'
// with peek, into ms (reusing its array). It marks repeated keys:
// encoding/json would silently keep the last, letting "bpm":72,"bpm":400
// pass as either. read, when not nil, reads each member's value in place of
// value.
func (s *scanner) object(ms []member, read func(key string, dup bool) []byte) []member {
	s.enter()
	ms = ms[:0]
	var seen map[string]bool // for large objects only, where a linear search per key would be quadratic
	for n := 0; s.next('}', n); n++ {
		key := s.key()
		if seen == nil && len(ms) >= 32 {
			seen = make(map[string]bool, 2*len(ms))
			for _, m := range ms {
				seen[m.key] = true
			}
		}
		dup := seen[key] || seen == nil && slices.ContainsFunc(ms, func(m member) bool { return m.key == key })
		if seen != nil {
			seen[key] = true
		}
		var val []byte
		if read != nil {
			val = read(key, dup)
		} else {
			val = s.value()
		}
		ms = append(ms, member{key: key, val: val, dup: dup})
	}
	return ms
}

// value reads any value and returns it. It reads nested objects and arrays
// with a stack of their closing brackets rather than by recursion, so that
// deep nesting costs bytes, not a deep goroutine stack.
func (s *scanner) value() []byte {
	c := s.peek()
	start := s.pos
	if c != '{' && c != '[' { // the usual case, made quick
		s.scalar()
		return s.data[start:s.pos]
	}
	var buf [16]byte
	closers := buf[:0] // of the objects and arrays open, innermost last
	for !s.err {
		if c := s.peek(); c == '{' || c == '[' {
			s.enter()
			if s.next(c+2, 0) { // c+2 is '}' or ']'
				closers = append(closers, c+2)
				if c == '{' {
					s.key()
				}
				continue // to the first member's or element's value
			}
		} else {
			s.scalar()
		}
		// A value is complete: close what it completes, then go on to the
		// next member or element, if any.
		for len(closers) > 0 && !s.next(closers[len(closers)-1], 1) {
			closers = closers[:len(closers)-1]
		}
		if len(closers) == 0 {
			break
		}
		if closers[len(closers)-1] == '}' {
			s.key()
		}
	}
	return s.data[start:s.pos]
}

// scalar reads a string, number, true, false or null.
func (s *scanner) scalar() {
	switch c := s.peek(); {
	case c == '"':
		s.str()
	case c == '-' || isDigit(c):
		s.number()
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == 'n':
		s.literal("null")
	default:
		s.fail()
	}
}

// str reads a string and returns it with its quotes, and whether it has
// escapes. Like json.Valid it rejects control characters and unknown
// escapes but not invalid UTF-8, which decoding replaces.
func (s *scanner) str() (raw []byte, escaped bool) {
	if s.peek() != '"' {
		s.fail()
		return nil, false
	}
	b, start := s.data, s.pos
	for i := start + 1; i < len(b); {
		if plain[b[i]] {
			i++
			continue
		}
		switch c := b[i]; {
		case c == '"':
			s.pos = i + 1
			return b[start:s.pos], escaped
		case c < 0x20:
			s.fail()
			return nil, false
		case i+1 < len(b) && isEscape(b[i+1]):
			i += 2
		case i+5 < len(b) && b[i+1] == 'u' && isHex(b[i+2]) && isHex(b[i+3]) && isHex(b[i+4]) && isHex(b[i+5]):
			i += 6
		default:
			s.fail()
			return nil, false
		}
		escaped = true
	}
	s.fail() // unterminated
	return nil, false
}

// number reads a number: an optional minus, an integer part without
// leading zeros, an optional fraction and an optional exponent.
func (s *scanner) number() {
	b, i := s.data, s.pos
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && isDigit(b[i]):
		i = digits(b, i)
	default:
		s.fail()
		return
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			s.fail()
			return
		}
		i = digits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			s.fail()
			return
		}
		i = digits(b, i)
	}
	s.pos = i
}

// literal reads word, one of true, false and null.
func (s *scanner) literal(word string) {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(word)) {
		s.fail()
		return
	}
	s.pos += len(word)
}

// digits returns the index of the first byte from i on that is not a digit.
func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// plain marks the bytes a string holds as they are: all but the quote, the
// backslash and control characters.
var plain = func() (t [256]bool) {
	for c := 0x20; c < len(t); c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// isEscape reports whether c may follow a backslash, other than the u of \uXXXX.
func isEscape(c byte) bool {
	switch c {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return true
	}
	return false
}

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// member is one member of a JSON object.
type member struct {
	key string
	val json.RawMessage
	dup bool // the key appeared before in the same object
}

// objectMembers splits raw, a valid JSON object, into its members, in
// order, marking repeated keys; ms's array, if any, is reused.
func objectMembers(ms []member, raw []byte) []member {
	if ms == nil {
		ms = make([]member, 0, 16)
	}
	s := scanner{data: raw}
	return s.object(ms, nil)
}

// unquote returns the string the JSON string raw stands for; ok is false
// when raw is not a string. The schema's names are not allocated again.
func unquote(raw []byte) (string, bool) {
	b, ok := unquoteBytes(raw)
	if !ok {
		return "", false
	}
	return intern(b), true
}

// intern returns b as a string, without allocating it when it is one of
// the schema's names.
func intern(b []byte) string {
	if name, ok := names[string(b)]; ok {
		return name
	}
	return string(b)
}

// unquoteBytes is unquote without making a string: without escapes, the
// string is a subslice of raw. Only strings with escapes go through
// encoding/json.
func unquoteBytes(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], true
	}
	var u string // only here: taking its address moves it to the heap
	err := json.Unmarshal(raw, &u)
	return []byte(u), err == nil
}

// names interns the keys and values the schema knows, so that unquote
// need not allocate them: field names, types, instruments, items, routes
// and units. It is set by init, as the schema's checks themselves unquote.
var names map[string]string

func init() { names = schemaNames() }

func schemaNames() map[string]string {
	m := make(map[string]string)
	add := func(ss ...string) {
		for _, s := range ss {
			m[s] = s
		}
	}
	add("seq", "samples", "type", "time", "start", "end", "items")
	add(routes...)
	add(units...)
	add(instrumentNames...)
	add(omhNames...)
	for name, k := range kinds {
		add(name)
		for _, n := range k.numbers {
			add(n.name)
		}
		for _, n := range k.strings {
			add(n.name)
		}
	}
	for _, in := range instruments {
		for _, g := range in.groups {
			add(g.items...)
		}
	}
	return m
}

// isNull reports whether raw is absent or JSON null; both mean "not given".
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// isNumber reports whether the valid JSON value raw is a number.
func isNumber(raw json.RawMessage) bool {
	return len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
}
