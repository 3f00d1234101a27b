// Package dashboards serves the staff web app that the binary embeds: the
// sign-in page, the patient list, a patient's page (charts against the
// plan, alerts, the plan itself), the on-call console, the administration
// page (patients, devices, staff, the rota, the audit log), the page a
// page's one-tap link opens (/a/TOKEN), which acknowledges its alert, and
// the patient's own page (/me), their weekly summary, which their
// device's token opens. It is static files only; all data comes from the
// /v1/ API and the /v1/ws websocket, under the same
// Content-Security-Policy as everything else (no inline script or style,
// nothing from another origin).
//
// The charts are drawn by uPlot, which `make web` copies from npm into
// web/vendor/ before the build embeds it. A binary built without it
// serves, instead of the app's pages, a page that says how to build it.
package dashboards

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
)

// web holds web/ as the build found it: web/vendor/ only when `make web`
// ran first (the directory is not in git).
//
//go:embed web
var web embed.FS

// bundle is what `make web` puts into web/vendor/.
var bundle = []string{"vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"}

// pages maps the app's addresses to their files (and ackPrefix+TOKEN is
// ack.html). Every page but the sign-in form and the patient's own page (/me)
// needs the bundle.
var pages = map[string]string{
	"/":             "index.html",
	"/index.html":   "index.html",
	"/patient":      "patient.html",
	"/patient.html": "patient.html",
	"/oncall":       "oncall.html",
	"/oncall.html":  "oncall.html",
	"/admin":        "admin.html",
	"/admin.html":   "admin.html",
	"/signin":       "signin.html",
	"/signin.html":  "signin.html",
	"/me":           "me.html",
	"/me.html":      "me.html",
}

// ackPrefix starts the address of a one-tap link, /a/TOKEN (notify.Links):
// ack.html reads the token from its own address.
const ackPrefix = "/a/"

// page returns the file of the app's page at path, if it is one.
func page(path string) (string, bool) {
	if token, ok := strings.CutPrefix(path, ackPrefix); ok && token != "" && !strings.Contains(token, "/") {
		return "ack.html", true
	}
	name, ok := pages[path]
	return name, ok
}

// Handler serves the embedded web app: / (the patient list, which sends
// on-call staff to /oncall and a visitor without a session to /signin),
// /patient?id=ID, /oncall, /admin, /signin, /a/TOKEN, /me and their assets, to GET and
// HEAD only. Mount it at "/" (any method), beside the API.
func Handler() http.Handler {
	root, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return HandlerFS(root)
}

// Bundled reports whether the binary embeds the chart bundle (`make web`
// ran before the build).
func Bundled() bool {
	root, err := fs.Sub(web, "web")
	return err == nil && hasBundle(root)
}

func hasBundle(fsys fs.FS) bool {
	for _, name := range bundle {
		if _, err := fs.Stat(fsys, name); err != nil {
			return false
		}
	}
	return true
}

// HandlerFS is Handler over fsys, a tree laid out as web/ is. Without the
// chart bundle, the app's pages answer 503 with a page that says how to
// build it; the sign-in form and the assets are served all the same.
func HandlerFS(fsys fs.FS) http.Handler {
	files := http.FileServerFS(fsys)
	bundled := hasBundle(fsys)
	etags := etagsOf(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, isPage := page(r.URL.Path)
		if isPage && !bundled && name != "signin.html" && name != "me.html" {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusServiceUnavailable)
			if r.Method == http.MethodGet {
				w.Write([]byte(noBundlePage))
			}
			return
		}
		if isPage {
			if name == "index.html" {
				r.URL.Path = "/" // the file server redirects /index.html to /
			} else {
				r.URL.Path = "/" + name
			}
		}
		file := strings.TrimPrefix(r.URL.Path, "/")
		if file == "" {
			file = "index.html"
		}
		// Assets change with each release: browsers may keep them, but
		// must ask whether they are still current (the ETag answers 304).
		tag, ok := etags[file]
		if !ok { // a folder (no listings) or no such file
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", tag)
		files.ServeHTTP(w, r)
	})
}

// etagsOf returns a strong ETag for each file of fsys: embedded files have
// no modification time to go by.
func etagsOf(fsys fs.FS) map[string]string {
	tags := map[string]string{}
	fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return nil
		}
		sum := sha256.Sum256(data)
		tags[path] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	return tags
}

// noBundlePage is served for the app's pages by a build without the chart
// bundle. It needs nothing but the stylesheet.
const noBundlePage = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Build incomplete · patientpulse</title>
<link rel="stylesheet" href="/app.css">
</head>
<body>
<main id="main" class="narrow">
  <h1>patientpulse</h1>
  <p class="error" id="no-bundle">This patientpulse was built without its web app's chart bundle, so the dashboards cannot be shown.</p>
  <p>Build it with <code>make web</code> (it installs the charting library with npm and copies it into <code>dashboards/web/vendor/</code>), then build the binary again with <code>make build</code>.</p>
</main>
</body>
</html>
`
