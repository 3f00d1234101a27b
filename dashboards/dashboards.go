// Package dashboards serves the staff web app that the binary embeds: the
// sign-in page and the signed-in page. It is static files only; all data
// comes from the /v1/ API, under the same Content-Security-Policy as
// everything else (no inline script, nothing from another origin).
package dashboards

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed web
var web embed.FS

// Handler serves the web app: / (the signed-in page, which sends a
// visitor without a session to /signin), /signin, and their assets, to
// GET and HEAD only. Mount it at "/" (any method), beside the API.
func Handler() http.Handler {
	root, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(root)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "/signin" {
			r.URL.Path = "/signin.html"
		}
		files.ServeHTTP(w, r)
	})
}
