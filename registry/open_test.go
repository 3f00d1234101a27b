package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenMustExist(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "patientpulse.db")

	_, err := Open(ctx, path, MustExist())
	if !errors.Is(err, ErrNoRegistry) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open(MustExist) of a missing registry: %v, want ErrNoRegistry naming %s", err, path)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open(MustExist) created %s (stat: %v)", dir, err)
	}

	// prepareFile's empty file, left by an interrupted first open, is no registry.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, "file:"+path, MustExist()); !errors.Is(err, ErrNoRegistry) {
		t.Fatalf("Open(MustExist) of an empty file: %v, want ErrNoRegistry", err)
	}

	reg, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.AddPatient(ctx, Patient{ID: "p-1"}); err != nil {
		t.Fatal(err)
	}
	reg.Close()
	reg, err = Open(ctx, path, MustExist())
	if err != nil {
		t.Fatalf("Open(MustExist) of an existing registry: %v", err)
	}
	defer reg.Close()
	if ps, err := reg.ListPatients(ctx); err != nil || len(ps) != 1 {
		t.Fatalf("ListPatients = %v, %v; want p-1", ps, err)
	}
}

func TestLocation(t *testing.T) {
	abs, err := filepath.Abs("data/patientpulse.db")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, dsn, want string }{
		{name: "relative path", dsn: "data/patientpulse.db", want: abs},
		{name: "absolute path", dsn: "/srv/pp/patientpulse.db", want: "/srv/pp/patientpulse.db"},
		{name: "file URI", dsn: "file:/srv/pp/pp.db?_pragma=synchronous(OFF)", want: "/srv/pp/pp.db"},
		{name: "memory", dsn: ":memory:", want: "in memory"},
		{name: "memory URI", dsn: "file:x?mode=memory", want: "in memory"},
		{name: "postgres with password", dsn: "postgres://pp:s3cret@db.clinic:5432/patientpulse?sslmode=require",
			want: "postgres://pp@db.clinic:5432/patientpulse"},
		{name: "postgres password in query", dsn: "postgresql://db.clinic/pp?user=pp&password=s3cret",
			want: "postgres://db.clinic/pp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Location(tt.dsn); got != tt.want {
				t.Errorf("Location(%q) = %q, want %q", tt.dsn, got, tt.want)
			}
		})
	}
}
