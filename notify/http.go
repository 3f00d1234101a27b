package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	userAgent = "patientpulse-notify/1"
	maxError  = 200 // bytes of a recorded error
)

// checkURL checks a channel's URL; it never echoes it (it may carry
// credentials).
func checkURL(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s URL does not parse", what)
	}
	if u.Host == "" {
		return fmt.Errorf("%s URL has no host", what)
	}
	if u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("%s URL must be https:// (http:// only to a loopback address)", what)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// poster makes the HTTP channels' requests and judges their answers.
type poster struct {
	client     *http.Client
	redactions []string // parts of URLs and keys kept out of recorded errors
}

// newPoster returns a poster whose errors leave out the credentials and
// query of each of secrets (URLs or keys).
func newPoster(secrets ...string) *poster {
	p := &poster{client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect could carry the body elsewhere
	}}}
	for _, s := range secrets {
		p.redact(s)
	}
	return p
}

// redact keeps s, and a URL's credentials and query, out of errors.
func (p *poster) redact(s string) {
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		if u.User != nil {
			pw, _ := u.User.Password()
			p.redactions = append(p.redactions, u.User.String(), pw)
		}
		p.redactions = append(p.redactions, u.RawQuery, u.EscapedPath())
		return
	}
	p.redactions = append(p.redactions, s)
}

// do posts body once and judges the answer: 2xx delivers; 408, 429 and
// 5xx (and no answer) are worth retrying, after the receiver's
// Retry-After when it gives one; any other status is final.
func (p *poster) do(ctx context.Context, rawURL, contentType string, body []byte, headers map[string]string) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return Result{Err: "invalid URL"}
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", userAgent)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return Result{Err: p.netError(ctx, err), Retry: true}
	}
	// Read a little for the connection's reuse; what the receiver says may
	// echo the message, so it is never kept.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	res := Result{Status: resp.StatusCode}
	c := resp.StatusCode
	if c/100 == 2 {
		return res
	}
	res.Err = fmt.Sprintf("HTTP %d", c)
	res.Retry = c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500
	if res.Retry {
		res.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return res
}

// netError is a short description of a failed request, without the URL.
func (p *poster) netError(ctx context.Context, err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		if dl, ok := ctx.Deadline(); ok {
			return "no answer before the attempt's deadline (" + dl.UTC().Format(time.RFC3339) + ")"
		}
		return "timeout"
	}
	return shorten(err.Error(), p.redactions)
}

// shorten removes redactions from s and cuts it to maxError bytes.
func shorten(s string, redactions []string) string {
	for _, r := range redactions {
		if r != "" && r != "/" {
			s = strings.ReplaceAll(s, r, "***")
		}
	}
	if len(s) > maxError {
		s = strings.ToValidUTF8(s[:maxError], "")
	}
	return s
}

// retryAfter parses a Retry-After value: seconds or an HTTP date; 0 when
// there is none.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		return time.Duration(min(s, 1<<31)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
