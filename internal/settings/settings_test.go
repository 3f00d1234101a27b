package settings

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type values struct {
	addr    string
	n       int
	wait    time.Duration
	verbose bool
	config  string
}

func newFlags() (*flag.FlagSet, *values) {
	v := &values{}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&v.addr, "http-addr", "127.0.0.1:8080", "")
	fs.IntVar(&v.n, "max-samples", 500, "")
	fs.DurationVar(&v.wait, "flush-interval", time.Second, "")
	fs.BoolVar(&v.verbose, "verbose", false, "")
	fs.StringVar(&v.config, "config", "", "")
	return fs, v
}

func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte("http-addr: 0.0.0.0:9000\nmax-samples: 7\nflush-interval: 3s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PP_MAX_SAMPLES": "8", "PP_CONFIG": file}
	tests := []struct {
		name    string
		args    []string
		want    values
		wantErr bool
	}{
		{name: "file then env", args: nil,
			want: values{addr: "0.0.0.0:9000", n: 8, wait: 3 * time.Second, config: file}},
		{name: "flags win", args: []string{"--max-samples=9", "--verbose", "--http-addr", "x:1"},
			want: values{addr: "x:1", n: 9, wait: 3 * time.Second, verbose: true, config: file}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, v := newFlags()
			if err := Load(fs, tc.args, "PP_", "config", func(k string) string { return env[k] }); err != nil {
				t.Fatalf("Load: %v", err)
			}
			if *v != tc.want {
				t.Errorf("got %+v, want %+v", *v, tc.want)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(file, []byte("max-sample: 7\nflush-interval: soon\nhttp-addr: [a, b]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, _ := newFlags()
	env := map[string]string{"PP_VERBOSE": "perhaps"}
	err := Load(fs, []string{"--config", file, "--max-samples=lots"}, "PP_", "config", func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("Load accepted bad settings")
	}
	for _, want := range []string{
		`unknown setting "max-sample"`,
		"flush-interval (config file " + file + "): invalid value",
		"http-addr: want a single value",
		"verbose (environment PP_VERBOSE): invalid value",
		"max-samples (flag): invalid value",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "lots") || strings.Contains(err.Error(), "perhaps") {
		t.Errorf("error echoes a value: %v", err)
	}
}

func TestLoadKeepsFileTextAsWritten(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("http-addr: 00123\nmax-samples: 0x1F\n# a comment\nflush-interval:\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, v := newFlags()
	if err := Load(fs, []string{"--config", file}, "PP_", "config", func(string) string { return "" }); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if v.addr != "00123" || v.n != 31 || v.wait != time.Second {
		t.Errorf("got %+v, want the text 00123, 0x1F parsed by the flag as 31, and the default wait", *v)
	}
}

// TestUsage: the usage message printed while Load parses (-h, a bad flag)
// and after it is the flag package's own for these flags: each flag's type
// and its default as written, a zero default left out, and no "panic
// calling String method" from the flag package's look at a zero Value.
func TestUsage(t *testing.T) {
	// want is the flag package's message for flags never given to Load.
	plain, _ := newFlags()
	var want bytes.Buffer
	plain.SetOutput(&want)
	plain.PrintDefaults()
	for _, line := range []string{
		"-http-addr string\n", `(default "127.0.0.1:8080")`, "-max-samples int\n", "(default 500)",
		"-flush-interval duration\n", "(default 1s)", "-verbose\n",
	} {
		if !strings.Contains(want.String(), line) {
			t.Fatalf("the flag package's own message lacks %q:\n%s", line, want.String())
		}
	}
	for _, line := range []string{"(default false)", `(default "")`} {
		if strings.Contains(want.String(), line) {
			t.Fatalf("the flag package's own message shows a zero default, %q:\n%s", line, want.String())
		}
	}

	tests := []struct {
		name    string
		custom  bool     // the flag set has a Usage of its own
		args    []string // for Load
		wantErr string   // in Load's error; "" for none
		after   bool     // print with PrintDefaults once Load has returned
		header  string   // printed before the defaults
	}{
		{name: "-h", args: []string{"-h"}, wantErr: "help requested", header: "Usage of test:\n"},
		{name: "unknown flag", args: []string{"--nope"}, wantErr: "not defined", header: "flag provided but not defined: -nope\nUsage of test:\n"},
		{name: "-h with a usage of its own", custom: true, args: []string{"-h"}, wantErr: "help requested", header: "Usage: test [flags]\n"},
		{name: "after Load", args: []string{"--max-samples=9"}, after: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, v := newFlags()
			var out bytes.Buffer
			fs.SetOutput(&out)
			if tt.custom {
				fs.Usage = func() {
					fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n", fs.Name())
					fs.PrintDefaults()
				}
			}
			err := Load(fs, tt.args, "PP_", "config", func(string) string { return "" })
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Load = %v, want an error containing %q", err, tt.wantErr)
			}
			if tt.after {
				if v.n != 9 {
					t.Errorf("max-samples %d after Load, want 9", v.n)
				}
				fs.PrintDefaults()
			}
			got := out.String()
			if strings.Contains(got, "panic") {
				t.Errorf("usage reports a panic:\n%s", got)
			}
			if got != tt.header+want.String() {
				t.Errorf("usage:\n%s\nwant:\n%s", got, tt.header+want.String())
			}
		})
	}
}

// TestRecordingZeroString: the flag package calls String on a zero Value of
// a flag's type (a nil pointer, or a new zero struct); it must not panic.
func TestRecordingZeroString(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    *recording
	}{
		{name: "nil", r: nil},
		{name: "zero", r: &recording{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.String(); got != "" {
				t.Errorf("String() = %q, want \"\"", got)
			}
		})
	}
}
