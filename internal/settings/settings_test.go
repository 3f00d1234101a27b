package settings

import (
	"flag"
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
