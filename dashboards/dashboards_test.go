package dashboards

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

// TestAckPage: a page's one-tap link, /a/TOKEN, opens ack.html, whatever
// the token; nothing else under /a/ does.
func TestAckPage(t *testing.T) {
	files := fstest.MapFS{
		"index.html":               {Data: []byte("<title>list</title>")},
		"ack.html":                 {Data: []byte("<title>acknowledge</title>")},
		"vendor/uPlot.iife.min.js": {Data: []byte("var uPlot")},
		"vendor/uPlot.min.css":     {Data: []byte(".uplot{}")},
	}
	h := HandlerFS(files)
	for _, c := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/a/AAAAAAAAACoAAAAAaWNhbGwtc2lnbmVkLXRva2Vu", 200, "acknowledge"},
		{"GET", "/a/x?from=mail", 200, "acknowledge"},
		{"HEAD", "/a/x", 200, ""},
		{"GET", "/a/", 404, ""},
		{"GET", "/a/x/y", 404, ""},
		{"GET", "/a", 404, ""},
		{"POST", "/a/x", 405, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		if rec.Code != c.code || !strings.Contains(string(body), c.body) {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, rec.Code, body, c.code, c.body)
		}
		if c.code == 200 && (rec.Header().Get("ETag") == "" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html")) {
			t.Errorf("%s %s: ETag %q, Content-Type %q", c.method, c.path, rec.Header().Get("ETag"), rec.Header().Get("Content-Type"))
		}
	}
	// Without ack.html (a build before the page existed) the link is not found.
	delete(files, "ack.html")
	rec := httptest.NewRecorder()
	HandlerFS(files).ServeHTTP(rec, httptest.NewRequest("GET", "/a/x", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /a/x without ack.html: %d, want 404", rec.Code)
	}
}
