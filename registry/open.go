package registry

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoRegistry reports that Open, told MustExist, found no registry at
// its dsn: a SQLite file that is missing or empty.
var ErrNoRegistry = errors.New("no registry")

// OpenOption changes how Open opens a registry.
type OpenOption func(*openOptions)

type openOptions struct {
	mustExist bool
}

// MustExist makes Open refuse to create a registry: when dsn names a
// SQLite file that is missing or empty, Open returns an error wrapping
// ErrNoRegistry and creates nothing, not even the file's directory. The
// admin commands open with it, so that a command run in the wrong
// directory, or without the deployment's --config, fails instead of
// working on a new, empty registry. In-memory stores are always new.
func MustExist() OpenOption {
	return func(o *openOptions) { o.mustExist = true }
}

// existing checks that path is a registry's file: present and not empty
// (prepareFile leaves an empty file until SQLite writes the schema).
func existing(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w at %s", ErrNoRegistry, path)
	case err != nil:
		return fmt.Errorf("registry file: %w", err)
	case fi.IsDir():
		return fmt.Errorf("registry file %s is a directory", path)
	case fi.Size() == 0:
		return fmt.Errorf("%w at %s (the file is empty)", ErrNoRegistry, path)
	}
	return nil
}

// Location names the registry dsn points at, for operators' messages: a
// SQLite file's absolute path, "in memory", or a Postgres server's
// "postgres://user@host:port/db" with any password removed (from the URL
// or its query). It never fails: a dsn it cannot read is named as such.
func Location(dsn string) string {
	switch {
	case dsn == ":memory:":
		return "in memory"
	case isPostgres(dsn):
		u, err := url.Parse(dsn)
		if err != nil {
			return "postgres (unreadable dsn)"
		}
		loc := url.URL{Scheme: "postgres", Host: u.Host, Path: u.Path}
		if u.User != nil {
			loc.User = url.User(u.User.Username())
		}
		return loc.String()
	case strings.HasPrefix(dsn, "file:"):
		base, rawQuery, _ := strings.Cut(dsn, "?")
		query, _ := url.ParseQuery(rawQuery)
		path, err := uriPath(base)
		if err != nil {
			return "sqlite (unreadable file: URI)"
		}
		if path == "" || path == ":memory:" || query.Get("mode") == "memory" {
			return "in memory"
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		return path
	}
	if abs, err := filepath.Abs(dsn); err == nil {
		return abs
	}
	return dsn
}
