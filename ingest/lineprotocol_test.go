package ingest

import (
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAppendLine(t *testing.T) {
	at := time.Date(2026, 11, 22, 6, 40, 0, 0, time.UTC) // 1795329600 s
	tests := []struct {
		name    string
		point   Point
		patient string
		device  string
		seq     int64
		want    string
	}{
		{
			name: "sleep",
			point: Point{Measurement: "sleep", Time: at, Fields: []Field{
				{"awake_min", 30}, {"efficiency", 0.91}, {"skin_temp_dev_c", -0.3}, {"total_min", 410}}},
			patient: "p-001", device: "watch-7", seq: 1042,
			want: "sleep,device=watch-7,patient=p-001 awake_min=30,efficiency=0.91,skin_temp_dev_c=-0.3,total_min=410,seq=1042i 1795329600000000000",
		},
		{
			name: "dose tags merged with patient and device",
			point: Point{Measurement: "dose", Time: at, Tags: []Tag{{"medication", "estradiol"}, {"route", "transdermal"}, {"unit", "mg"}},
				Fields: []Field{{"amount", 0.05}}},
			patient: "p-001", device: "app.3", seq: 0,
			want: "dose,device=app.3,medication=estradiol,patient=p-001,route=transdermal,unit=mg amount=0.05,seq=0i 1795329600000000000",
		},
		{
			name: "symptoms tag before patient",
			point: Point{Measurement: "symptoms", Time: at, Tags: []Tag{{"instrument", "mrs"}},
				Fields: []Field{{"hot_flushes", 3}, {"total", 20}}},
			patient: "p", device: "d", seq: 9,
			want: "symptoms,device=d,instrument=mrs,patient=p hot_flushes=3,total=20,seq=9i 1795329600000000000",
		},
		{
			name:    "unsorted tags are sorted",
			point:   Point{Measurement: "dose", Time: at, Tags: []Tag{{"unit", "mg"}, {"a", "1"}, {"medication", "e"}}, Fields: []Field{{"amount", 1}}},
			patient: "p", device: "d", seq: 1,
			want: "dose,a=1,device=d,medication=e,patient=p,unit=mg amount=1,seq=1i 1795329600000000000",
		},
		{
			name: "escaping",
			point: Point{Measurement: "my meas,ure=ment", Time: at, Tags: []Tag{{"k ey", "v,a=l ue"}},
				Fields: []Field{{"f=i,e ld", 1.5}}},
			patient: "p 1", device: "d,=1", seq: 2,
			want: `my\ meas\,ure=ment,device=d\,\=1,k\ ey=v\,a\=l\ ue,patient=p\ 1 f\=i\,e\ ld=1.5,seq=2i 1795329600000000000`,
		},
		{
			name:    "control characters stay on one line",
			point:   Point{Measurement: "heart_rate", Time: at, Fields: []Field{{"bpm", 72}}},
			patient: "p\n1", device: "d\r\t\f", seq: 3,
			want: `heart_rate,device=d\r\t\f,patient=p\n1 bpm=72,seq=3i 1795329600000000000`,
		},
		{
			name: "empty tags, our own tags and seq field are left out",
			point: Point{Measurement: "vitals", Time: at, Tags: []Tag{{"patient", "other"}, {"x", ""}, {"", "y"}, {"device", "other"}},
				Fields: []Field{{"weight_kg", 68.2}, {"seq", 5}}},
			patient: "p", device: "", seq: 4,
			want: "vitals,patient=p weight_kg=68.2,seq=4i 1795329600000000000",
		},
		{
			name:    "numbers: integral, tiny, large, negative seq and time",
			point:   Point{Measurement: "m", Time: time.Date(1969, 12, 31, 23, 59, 59, 5, time.UTC), Fields: []Field{{"a", 410}, {"b", 0.00005}, {"c", 1e21}}},
			patient: "p", device: "d", seq: -1,
			want: "m,device=d,patient=p a=410,b=5e-05,c=1e+21,seq=-1i -999999995",
		},
		{
			name:    "no fields but seq",
			point:   Point{Measurement: "m", Time: time.Unix(0, 0)},
			patient: "p", device: "d", seq: 1,
			want: "m,device=d,patient=p seq=1i 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prev\n")
			got := AppendLine(prefix, &tt.point, tt.patient, tt.device, tt.seq)
			if !strings.HasPrefix(string(got), "prev\n") {
				t.Fatalf("AppendLine lost the bytes it appends to: %q", got)
			}
			line := string(got[len(prefix):])
			if line != tt.want {
				t.Errorf("AppendLine:\n got %s\nwant %s", line, tt.want)
			}
			if _, err := parseLine(line); err != nil {
				t.Errorf("line does not parse back: %v", err)
			}
		})
	}
}

// TestParseLineRoundTrip checks the test parser itself on a line with
// every escape, so that the fuzz test's check of AppendLine can fail.
func TestParseLineRoundTrip(t *testing.T) {
	p := Point{Measurement: "a b,c", Time: time.Unix(1, 2), Tags: []Tag{{"k=", "v ,="}}, Fields: []Field{{"f ", 2.5}}}
	got, err := parseLine(string(AppendLine(nil, &p, "p", "d", 7)))
	if err != nil {
		t.Fatal(err)
	}
	want := parsedLine{
		measurement: "a b,c",
		tags:        []Tag{{"device", "d"}, {"k=", "v ,="}, {"patient", "p"}},
		fields:      []Field{{"f ", 2.5}},
		seq:         7,
		time:        1e9 + 2,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseLine:\n got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"m f=1", "m,t=1 f=1,seq=1 5", "m f=x,seq=1i 5", "m,t= seq=1i 5", "m seq=1i 5 6", "m seq=1i\n5"} {
		if _, err := parseLine(bad); err == nil {
			t.Errorf("parseLine(%q) accepted a bad line", bad)
		}
	}
}

// parsedLine is a line read back by parseLine.
type parsedLine struct {
	measurement string
	tags        []Tag
	fields      []Field // float fields, in order, seq excluded
	seq         int64
	time        int64
}

// parseLine reads a line as InfluxDB would, strictly enough for the tests:
// one line, escaped separators, float fields, a last integer seq field.
func parseLine(line string) (parsedLine, error) {
	var pl parsedLine
	if strings.ContainsAny(line, "\n\r") {
		return pl, errors.New("newline inside the line")
	}
	parts := splitEscaped(line, ' ')
	if len(parts) != 3 {
		return pl, errors.New("want measurement+tags, fields and time separated by unescaped spaces")
	}
	head := splitEscaped(parts[0], ',')
	pl.measurement = unescape(head[0])
	for _, kv := range head[1:] {
		k, v, err := splitPair(kv)
		if err != nil {
			return pl, err
		}
		pl.tags = append(pl.tags, Tag{k, v})
	}
	if !slices.IsSortedFunc(pl.tags, compareTags) {
		return pl, errors.New("tags not sorted")
	}
	fields := splitEscaped(parts[1], ',')
	for i, kv := range fields {
		k, v, err := splitPair(kv)
		if err != nil {
			return pl, err
		}
		if i == len(fields)-1 {
			if k != "seq" || !strings.HasSuffix(v, "i") {
				return pl, errors.New("last field is not an integer seq")
			}
			if pl.seq, err = strconv.ParseInt(strings.TrimSuffix(v, "i"), 10, 64); err != nil {
				return pl, err
			}
			break
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return pl, err
		}
		pl.fields = append(pl.fields, Field{k, f})
	}
	var err error
	pl.time, err = strconv.ParseInt(parts[2], 10, 64)
	return pl, err
}

// splitEscaped splits s at every sep not preceded by a backslash escape.
func splitEscaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func splitPair(kv string) (string, string, error) {
	pair := splitEscaped(kv, '=')
	if len(pair) != 2 || pair[0] == "" || pair[1] == "" {
		return "", "", errors.New("want key=value, both non-empty")
	}
	return unescape(pair[0]), unescape(pair[1]), nil
}

// unescape undoes the escapes of separators, as InfluxDB does; others,
// such as \n, are kept as written.
func unescape(s string) string {
	return strings.NewReplacer(`\,`, ",", `\ `, " ", `\=`, "=").Replace(s)
}

func BenchmarkAppendLine(b *testing.B) {
	env := decodeOK(b, benchEnvelope())
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = buf[:0]
		for i := range env.Points {
			buf = AppendLine(buf, &env.Points[i], "p-001", "watch-7", env.Seq)
			buf = append(buf, '\n')
		}
	}
	b.SetBytes(int64(len(buf)))
}
