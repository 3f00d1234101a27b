package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
)

// InfluxConfig locates the InfluxDB bucket. InfluxDB 2.x takes a token,
// an organisation and a bucket; InfluxDB 1.8 serves the same write and
// query API with bucket "database/retention-policy" (or just "database"),
// token "user:password" (or empty without auth) and any organisation.
type InfluxConfig struct {
	URL     string
	Token   string
	Org     string
	Bucket  string
	Timeout time.Duration // per write or query request
	Gzip    bool          // compress writes: worth it only over a slow link; on the same host or LAN it costs CPU
}

// Validate reports every problem at once.
func (c InfluxConfig) Validate() error {
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, errors.New("influx-url must be an http:// or https:// URL"))
	}
	if c.Bucket == "" {
		errs = append(errs, errors.New("influx-bucket must not be empty"))
	}
	if c.Timeout < time.Second {
		errs = append(errs, errors.New("influx-timeout must be at least 1s"))
	}
	return errors.Join(errs...)
}

// Influx is the Sink that writes to InfluxDB with the client's blocking
// write API (gzip only when InfluxConfig.Gzip), leaving batching and
// retries to the Writer.
type Influx struct {
	cfg    InfluxConfig
	client influxdb2.Client
	write  api.WriteAPIBlocking
	http   *http.Client
}

var _ Sink = (*Influx)(nil)

// NewInflux returns a sink for cfg; it does not connect until used.
func NewInflux(cfg InfluxConfig) *Influx {
	opts := influxdb2.DefaultOptions().
		SetUseGZip(cfg.Gzip).
		SetHTTPRequestTimeout(uint(cfg.Timeout / time.Second)).
		SetLogLevel(0) // its log lines may quote rejected lines, which carry patient ids
	client := influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	return &Influx{
		cfg:    cfg,
		client: client,
		write:  client.WriteAPIBlocking(cfg.Org, cfg.Bucket),
		http:   &http.Client{Timeout: cfg.Timeout},
	}
}

// Close releases idle connections.
func (s *Influx) Close() { s.client.Close() }

// Write stores lines in one request. Errors never quote InfluxDB's
// message, which may echo a line and so a patient id: they carry the
// status only. 400, 413 and 422 (2.x: outside the retention period, or
// a schema conflict) are final (ErrRejected); anything else,
// including authorisation and missing-bucket errors that an operator can
// fix, is worth retrying rather than losing data over.
func (s *Influx) Write(ctx context.Context, lines []byte) error {
	err := s.write.WriteRecord(ctx, string(lines))
	if err == nil {
		return nil
	}
	var herr *influxhttp.Error
	if !errors.As(err, &herr) || herr.StatusCode == 0 {
		return fmt.Errorf("influxdb write: %w", unwrapNet(err))
	}
	switch herr.StatusCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return fmt.Errorf("%w: influxdb answered %d %s", ErrRejected, herr.StatusCode, herr.Code)
	default:
		return &statusError{status: herr.StatusCode, retryAfter: time.Duration(herr.RetryAfter) * time.Second}
	}
}

// statusError is a retryable InfluxDB answer.
type statusError struct {
	status     int
	retryAfter time.Duration
}

func (e *statusError) Error() string             { return fmt.Sprintf("influxdb answered %d", e.status) }
func (e *statusError) RetryAfter() time.Duration { return e.retryAfter }

func unwrapNet(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err // drop the URL: it is ours, and long
	}
	return err
}

// Ping reports whether InfluxDB answers.
func (s *Influx) Ping(ctx context.Context) error {
	if _, err := s.client.Ping(ctx); err != nil {
		return fmt.Errorf("influxdb ping: %w", unwrapNet(err))
	}
	return nil
}

// EnsureBucket makes sure the bucket (2.x) or database (1.8) exists,
// creating it when missing, or says why it cannot. It wraps ErrUnavailable
// while InfluxDB cannot be reached.
func (s *Influx) EnsureBucket(ctx context.Context) error {
	status, body, err := s.get(ctx, "/api/v2/buckets?name="+url.QueryEscape(s.cfg.Bucket))
	switch {
	case err != nil:
		return fmt.Errorf("%w: influxdb at %s: %v", ErrUnavailable, s.redactedURL(), err)
	case status == http.StatusNotFound: // InfluxDB 1.x serves no bucket API
		return s.ensureDatabase(ctx)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("influxdb refused the token (%d): check --influx-token", status)
	case status >= 500:
		return fmt.Errorf("%w: influxdb answered %d to a bucket lookup", ErrUnavailable, status)
	case status != http.StatusOK:
		return fmt.Errorf("influxdb answered %d to a bucket lookup", status)
	}
	var found struct{ Buckets []struct{ Name string } }
	if err := json.Unmarshal(body, &found); err != nil {
		return fmt.Errorf("influxdb bucket lookup: %w", err)
	}
	if len(found.Buckets) > 0 {
		return nil
	}
	org, err := s.client.OrganizationsAPI().FindOrganizationByName(ctx, s.cfg.Org)
	if err != nil {
		return fmt.Errorf("bucket %q is missing and organisation %q cannot be read to create it (check --influx-org and the token's permissions): %w",
			s.cfg.Bucket, s.cfg.Org, err)
	}
	if _, err := s.client.BucketsAPI().CreateBucketWithName(ctx, org, s.cfg.Bucket); err != nil {
		return fmt.Errorf("bucket %q is missing and cannot be created (create it, or give the token write access to buckets): %w",
			s.cfg.Bucket, err)
	}
	return nil
}

// ensureDatabase creates the 1.x database named by the bucket's part
// before any "/" (CREATE DATABASE is a no-op when it exists), and checks
// that a retention policy named after the "/" exists.
func (s *Influx) ensureDatabase(ctx context.Context) error {
	db, rp, _ := strings.Cut(s.cfg.Bucket, "/")
	if _, err := s.query1(ctx, fmt.Sprintf("CREATE DATABASE %q", db)); err != nil {
		return err
	}
	if rp == "" {
		return nil
	}
	out, err := s.query1(ctx, fmt.Sprintf("SHOW RETENTION POLICIES ON %q", db))
	if err != nil {
		return err
	}
	if !strings.Contains(out, fmt.Sprintf("[%q,", rp)) {
		return fmt.Errorf("influxdb 1.x database %q has no retention policy %q: create it, or name the database alone in --influx-bucket", db, rp)
	}
	return nil
}

// query1 runs an InfluxQL statement on a 1.x server and returns its JSON.
// A "user:password" token goes as Basic credentials: influxd 1.x reads u
// and p from the URL only, never from a form body, and a URL would carry
// the password into access logs.
func (s *Influx) query1(ctx context.Context, stmt string) (string, error) {
	q := url.Values{"q": {stmt}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL+"/query", strings.NewReader(q.Encode()))
	if err != nil {
		return "", err
	}
	if user, pass, ok := strings.Cut(s.cfg.Token, ":"); ok {
		req.SetBasicAuth(user, pass)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: influxdb 1.x query: %v", ErrUnavailable, unwrapNet(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), `"error"`) {
		return "", fmt.Errorf("influxdb 1.x refused %q (%d): %s", stmt, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// redactedURL is the InfluxDB URL without any password in it, for messages.
func (s *Influx) redactedURL() string {
	u, err := url.Parse(s.cfg.URL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func (s *Influx) get(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if s.cfg.Token != "" {
		req.Header.Set("Authorization", "Token "+s.cfg.Token)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, nil, unwrapNet(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}
