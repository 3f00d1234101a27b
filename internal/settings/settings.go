// Package settings layers a command's configuration: the defaults held by
// its flag set, then a YAML file, then PREFIX_* environment variables, then
// the command line, so that flags win. Every layer goes through the flags'
// own parsers, and every problem of every layer is reported at once.
package settings

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load parses args into fs and layers the configuration file named by the
// flag fileFlag (or its environment variable) and the environment below
// the flags given on the command line. A file key that names no flag is a
// problem too: a typo must not pass unnoticed. An empty environment
// variable counts as unset. getenv is os.Getenv outside tests. Load
// returns all problems joined. It leaves fs's values and Usage as it found
// them, but for the values set, so that a usage message printed during or
// after Load is the flag package's own.
func Load(fs *flag.FlagSet, args []string, envPrefix, fileFlag string, getenv func(string) string) error {
	st := &state{source: "flag", explicit: map[string]string{}}
	defer wrap(fs, st)()
	if err := fs.Parse(args); err != nil {
		return err // a usage error: unknown flag or missing value
	}
	if path := configPath(fs, fileFlag, envPrefix, getenv); path != "" {
		st.source = "config file " + path
		applyFile(fs, path, st)
	}
	applyEnv(fs, envPrefix, getenv, st)
	st.source = "" // the command line again: its problems are recorded already
	for name, value := range st.explicit {
		_ = fs.Set(name, value)
	}
	return errors.Join(st.problems...)
}

// EnvName is the environment variable that sets the flag name.
func EnvName(prefix, name string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func configPath(fs *flag.FlagSet, fileFlag, prefix string, getenv func(string) string) string {
	if fileFlag == "" || fs.Lookup(fileFlag) == nil {
		return ""
	}
	if v := fs.Lookup(fileFlag).Value.String(); v != "" {
		return v
	}
	return getenv(EnvName(prefix, fileFlag))
}

func applyFile(fs *flag.FlagSet, path string, st *state) {
	data, err := os.ReadFile(path)
	if err != nil {
		st.problems = append(st.problems, fmt.Errorf("config file: %w", err))
		return
	}
	// A node keeps each value's text as written: decoded into Go values,
	// a password 0x1F would become 31 and a client id 00123 would become 83.
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		st.problems = append(st.problems, fmt.Errorf("config file %s: %w", path, err))
		return
	}
	if len(doc.Content) == 0 {
		return // an empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		st.problems = append(st.problems, fmt.Errorf("config file %s: want a mapping of settings", path))
		return
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, value := root.Content[i].Value, root.Content[i+1]
		switch {
		case fs.Lookup(key) == nil:
			st.problems = append(st.problems, fmt.Errorf("config file %s: unknown setting %q", path, key))
		case value.Kind != yaml.ScalarNode:
			st.problems = append(st.problems, fmt.Errorf("config file %s: %s: want a single value", path, key))
		case value.Tag == "!!null":
			// "key:" with no value keeps the default
		default:
			_ = fs.Set(key, value.Value)
		}
	}
}

func applyEnv(fs *flag.FlagSet, prefix string, getenv func(string) string, st *state) {
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(prefix, f.Name)
		if v := getenv(name); v != "" {
			st.source = "environment " + name
			_ = fs.Set(f.Name, v)
		}
	})
}

// wrap puts a recording around each of fs's values until the returned
// function is called, which leaves fs as wrap found it but for the values
// set. Meanwhile fs's usage message (-h, or a parse error) is printed from
// the flags' own values: the flag package names a flag's type, quotes a
// string's default and leaves out a zero default by the Value's dynamic
// type, which a recording would hide.
func wrap(fs *flag.FlagSet, st *state) (unwrap func()) {
	var flags []*flag.Flag
	var recs []*recording
	fs.VisitAll(func(f *flag.Flag) {
		r := &recording{Value: f.Value, name: f.Name, st: st}
		flags, recs = append(flags, f), append(recs, r)
		f.Value = r
	})
	own := func() {
		for i, f := range flags {
			f.Value = recs[i].Value
		}
	}
	recorded := func() {
		for i, f := range flags {
			f.Value = recs[i]
		}
	}
	usage := fs.Usage
	fs.Usage = func() {
		own()
		defer recorded()
		if usage != nil {
			usage()
			return
		}
		// The flag package's default usage, which it keeps unexported.
		if fs.Name() == "" {
			fmt.Fprintf(fs.Output(), "Usage:\n")
		} else {
			fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
		}
		fs.PrintDefaults()
	}
	return func() {
		own()
		fs.Usage = usage
	}
}

// state is shared by the recording values of one Load.
type state struct {
	source   string            // where values come from now; "" to record nothing
	explicit map[string]string // flag name → value given on the command line
	problems []error
}

// recording wraps a flag's value so that a bad value is recorded as a
// problem instead of stopping the parse, and remembers what the command
// line said so that it can be applied again over the file and environment.
type recording struct {
	flag.Value
	name string
	st   *state
}

// String returns the wrapped value's text, and "" for a zero recording,
// which the flag package makes to tell a default worth showing.
func (r *recording) String() string {
	if r == nil || r.Value == nil {
		return ""
	}
	return r.Value.String()
}

// Set never fails, so that every problem is collected. The flag package's
// own values report "parse error" without echoing the value, which may be a
// secret.
func (r *recording) Set(s string) error {
	if r.st.source == "flag" {
		r.st.explicit[r.name] = s
	}
	if err := r.Value.Set(s); err != nil && r.st.source != "" {
		r.st.problems = append(r.st.problems, fmt.Errorf("%s (%s): invalid value: %w", r.name, r.st.source, err))
	}
	return nil
}

// IsBoolFlag keeps "-flag" without a value working for boolean flags.
func (r *recording) IsBoolFlag() bool {
	b, ok := r.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
