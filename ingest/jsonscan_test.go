package ingest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// scanValid reads b as Decode reads a message that is not an object.
func scanValid(b []byte) bool {
	s := scanner{data: b}
	s.value()
	return s.end()
}

// validityCases are inputs on the edges of JSON's grammar.
var validityCases = []string{
	``, ` `, `x`, "\x00", `{}`, `[]`, ` {} `, "\t\r\n[]\n", `{} {}`, `{}x`, `[]]`, `{`, `}`, `[`, `]`, `[,]`, `[1,]`, `[,1]`, `[1 2]`,
	`{"a"}`, `{"a":}`, `{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{"a":1 "b":2}`, `{1:1}`, `{"a":1}}`, `[}`, `{]`, `[{]}`, `{"a":[}`,
	`0`, `-0`, `01`, `-01`, `1.`, `.1`, `1.5`, `1e`, `1e+`, `1e5`, `1E-5`, `1.5e+05`, `-`, `--1`, `+1`, `1-`, `0x1`, `1e5.5`, `Infinity`, `NaN`,
	`true`, `false`, `null`, `tru`, `nul`, `nulll`, `True`, `nullx`, `[true,false,null]`,
	`""`, `"a"`, `"`, `"\"`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\a"`, `"\x41"`, `"\u0041"`, `"\u00e9"`, `"\uD83D\uDE00"`, `"\uD800"`,
	`"\u004"`, `"\u004g"`, `"\U0041"`, "\"\x01\"", "\"\x1f\"", "\"\x7f\"", "\"\xff\xfe\"", "\"\xc3\xa9\"", "\"a\tb\"", "\"a\nb\"",
	"\xef\xbb\xbf{}", "{}\x00", "{\"a\":1}\f", "\v[]", "[1,\u00a02]",
	`{"seq": 1, "samples": [{"type": "heart_rate", "time": "2026-11-22T09:15:00Z", "bpm": 72}]}`,
	`{"seq": 1, "samples": [{"type": "heart_rate", "time": "2026-11-22T09:15:00Z", "bpm": 72},]}`,
	`{"seq": 1, "samples": [{"type": "heart_rate", "items": {"a": [1, {"b": [null]}]}}]}`,
	`{"seq": 1, "samples": [{"type": "heart_rate", "items": {"a": [1, {"b": [null}]}}]}`,
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	strings.Repeat(`{"a":`, maxDepth) + "1" + strings.Repeat("}", maxDepth),
	strings.Repeat(`{"a":`, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1),
	`{"seq": 1, "samples": [` + strings.Repeat("[", maxDepth-2) + strings.Repeat("]", maxDepth-2) + `]}`,
	`{"seq": 1, "samples": [` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `]}`,
	`{"seq": 1, "samples": [{"type": ` + strings.Repeat("[", maxDepth-3) + strings.Repeat("]", maxDepth-3) + `}]}`,
	`{"seq": 1, "samples": [{"type": ` + strings.Repeat("[", maxDepth-2) + strings.Repeat("]", maxDepth-2) + `}]}`,
}

func TestScannerAgreesWithValid(t *testing.T) {
	for _, in := range validityCases {
		want := json.Valid([]byte(in))
		if got := scanValid([]byte(in)); got != want {
			t.Errorf("scanner says valid = %v for %.80q, json.Valid %v", got, in, want)
		}
		if got := decodesAsJSON([]byte(in)); got != want {
			t.Errorf("Decode says valid = %v for %.80q, json.Valid %v", got, in, want)
		}
	}
}

// decodesAsJSON reports whether Decode took payload for JSON.
func decodesAsJSON(payload []byte) bool {
	_, err := Decode(payload, testNow, DefaultLimits())
	return err == nil || !strings.Contains(err.Error(), "not valid JSON")
}

// FuzzScanner checks that the scanner accepts exactly what json.Valid
// accepts, and that it splits objects as encoding/json reads them.
func FuzzScanner(f *testing.F) {
	for _, in := range validityCases {
		if len(in) < 1000 {
			f.Add([]byte(in))
		}
	}
	f.Add(benchEnvelope())
	f.Fuzz(func(t *testing.T, b []byte) {
		valid := json.Valid(b)
		if got := scanValid(b); got != valid {
			t.Fatalf("scanner says valid = %v, json.Valid %v", got, valid)
		}
		if got := decodesAsJSON(b); got != valid {
			t.Fatalf("Decode says valid = %v, json.Valid %v", got, valid)
		}
		if !valid || bytes.TrimLeft(b, " \t\r\n")[0] != '{' {
			return
		}
		ms := objectMembers(nil, bytes.TrimLeft(b, " \t\r\n"))
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.Token() // {
		seen := map[string]bool{}
		n := 0
		for ; dec.More(); n++ {
			tok, _ := dec.Token()
			key := tok.(string)
			var val json.RawMessage
			if err := dec.Decode(&val); err != nil {
				t.Fatal(err)
			}
			if n >= len(ms) {
				t.Fatalf("member %d, %q: %s, missing", n, key, val)
			}
			// A key's invalid UTF-8 is kept as it is, unless it has escapes.
			if m := ms[n]; string([]rune(m.key)) != key || !bytes.Equal(m.val, val) || m.dup != seen[m.key] {
				t.Fatalf("member %d is %q: %s (repeated %v), want %q: %s (repeated %v)", n, m.key, m.val, m.dup, key, val, seen[m.key])
			}
			seen[ms[n].key] = true
		}
		if n != len(ms) {
			t.Fatalf("%d members, want %d", len(ms), n)
		}
	})
}
