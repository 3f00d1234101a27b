package ingest

import (
	"bytes"
	"encoding/json"
	"slices"
)

// This file splits JSON that json.Valid has accepted into objects' members
// and arrays' elements without copying: the values are subslices of the
// payload. encoding/json's Decoder would do the same with about ten times
// the allocations, and a map would hide repeated keys. The functions still
// check bounds, and report malformed input rather than panic on it.

// member is one member of a JSON object.
type member struct {
	key string
	val json.RawMessage
	dup bool // the key appeared before in the same object
}

// objectMembers splits a valid JSON value that is an object into its
// members, in order, marking repeated keys: encoding/json would silently
// keep the last, letting "bpm":72,"bpm":400 pass as either. ok is false
// when raw is not an object.
func objectMembers(raw []byte) (ms []member, ok bool) {
	return appendMembers(make([]member, 0, 16), raw)
}

// appendMembers is objectMembers appending to ms, so that a caller can
// reuse one slice for many objects.
func appendMembers(ms []member, raw []byte) ([]member, bool) {
	raw = trimSpace(raw)
	if len(raw) < 2 || raw[0] != '{' {
		return nil, false
	}
	ms = ms[:0]
	var seen map[string]bool // for large objects only, where a linear search per key would be quadratic
	for i := skipSpace(raw, 1); i < len(raw) && raw[i] != '}'; {
		keyEnd := valueEnd(raw, i)
		key, isKey := unquote(raw[i:max(keyEnd, i)])
		colon := skipSpace(raw, keyEnd)
		if !isKey || colon >= len(raw) || raw[colon] != ':' {
			return nil, false
		}
		start := skipSpace(raw, colon+1)
		end := valueEnd(raw, start)
		if end < 0 {
			return nil, false
		}
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
		ms = append(ms, member{key: key, val: raw[start:end], dup: dup})
		i = afterComma(raw, end)
	}
	return ms, true
}

// arrayElements returns the first limit elements of a valid JSON value that
// is an array, and how many elements it has. ok is false when raw is not
// an array.
func arrayElements(raw []byte, limit int) (elems []json.RawMessage, n int, ok bool) {
	raw = trimSpace(raw)
	if len(raw) < 2 || raw[0] != '[' {
		return nil, 0, false
	}
	for i := skipSpace(raw, 1); i < len(raw) && raw[i] != ']'; n++ {
		end := valueEnd(raw, i)
		if end < 0 {
			return nil, 0, false
		}
		if n < limit {
			elems = append(elems, raw[i:end])
		}
		i = afterComma(raw, end)
	}
	return elems, n, true
}

// valueEnd returns the index just after the JSON value starting at i, or
// -1 if there is none.
func valueEnd(b []byte, i int) int {
	if i < 0 || i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		for i++; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return -1
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end := valueEnd(b, i)
				if end < 0 {
					return -1
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for ; i < len(b); i++ { // a number, true, false or null
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
	}
	return i
}

// afterComma skips the space and the comma after a value ending at i.
func afterComma(b []byte, i int) int {
	if i = skipSpace(b, i); i < len(b) && b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	return i
}

func skipSpace(b []byte, i int) int {
	for i >= 0 && i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

func trimSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }

// unquote returns the string the JSON string raw stands for; ok is false
// when raw is not a string. Only strings with escapes go through
// encoding/json.
func unquote(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		if name, ok := names[string(raw[1:len(raw)-1])]; ok {
			return name, true // no allocation
		}
		return string(raw[1 : len(raw)-1]), true
	}
	var u string // only here: taking its address moves it to the heap
	err := json.Unmarshal(raw, &u)
	return u, err == nil
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
