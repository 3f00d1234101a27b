package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patientpulse/patientpulse/dashboards"
	"github.com/patientpulse/patientpulse/internal/testservices"
)

// browser starts a headless Chromium for the test and returns a tab's
// context. It accepts the development certificate. The pages need the
// chart bundle that `make web` embeds: without it the test is skipped,
// or fails under CI.
func browser(t *testing.T) context.Context {
	t.Helper()
	if !dashboards.Bundled() {
		msg := "the web app's chart bundle is not embedded: run `make web` (make test does) before go test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	bin, err := testservices.Chromium()
	testservices.Require(t, err)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox refuses to start
		chromedp.IgnoreCertErrors,
		chromedp.UserDataDir(t.TempDir()),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser, without a timeout
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// screenshot saves the page as name.png in the test's artifact directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// text returns the text of the element sel selects.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// location returns the tab's URL.
func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatalf("location: %v", err)
	}
	return u
}

// TestSignInPage signs in through the form in a real Chromium over HTTPS:
// a wrong password is explained on the page, the right one leads to the
// clinician's own patients only, and signing out leads back to the form,
// after which the old session no longer opens the page.
func TestSignInPage(t *testing.T) {
	needServices(t)
	ctx := browser(t)
	dir := newDataDir(t)
	cli(t, dir, "patients", "add", "--id", "p-b1", "--name", "Beatrice Example")
	cli(t, dir, "patients", "add", "--id", "p-b2", "--name", "Not Hers")
	mustStaff(t, dir, staffPassword+"\n", "staff", "add", "--username", "dr-bee", "--role", "clinician")
	mustStaff(t, dir, "", "staff", "assign", "--username", "dr-bee", "--patient", "p-b1")
	srv := startServeOver(t, insecureClient(), "https", dir, "t-browser", "--tls-self-signed")

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	user, pass := chromedp.CSS("#username"), chromedp.CSS("#password")
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.url+"/")); err != nil {
		t.Fatal(err)
	}
	// No session: the page sends the browser to the form.
	waitJS(t, ctx, "the sign-in form", `location.pathname === "/signin" && document.readyState === "complete"`)
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(user),
		chromedp.SendKeys(user, "dr-bee"),
		chromedp.SendKeys(pass, "not the password"),
		chromedp.Submit(pass),
		chromedp.WaitVisible(chromedp.CSS("#error")),
	)
	if err != nil {
		t.Fatalf("wrong password: %v", err)
	}
	if loc, msg := location(t, ctx), text(t, ctx, "#error"); !strings.HasSuffix(loc, "/signin?error=credentials") ||
		!strings.Contains(msg, "Wrong username or password") {
		t.Errorf("after a wrong password: at %s, error %q", loc, msg)
	}
	screenshot(t, ctx, "signin-error")

	err = chromedp.Do(ctx,
		chromedp.SetValue(user, "dr-bee"),
		chromedp.SetValue(pass, staffPassword),
		chromedp.Submit(pass),
		chromedp.WaitVisible(chromedp.CSS("#patients")),
	)
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if who, table := text(t, ctx, "#who"), text(t, ctx, "#patients"); who != "Signed in as dr-bee (clinician)" ||
		!strings.Contains(table, "Beatrice Example") || strings.Contains(table, "Not Hers") {
		t.Errorf("signed-in page: who %q, patients %q; want dr-bee's patient only", who, table)
	}
	screenshot(t, ctx, "signed-in")

	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#signout")),
		chromedp.WaitVisible(user),
		chromedp.Navigate(srv.url+"/"),
		chromedp.WaitVisible(user), // the ended session no longer opens the page
	)
	if err != nil {
		t.Fatalf("sign out: %v", err)
	}
	srv.stop()
	for _, s := range []string{"p-b1", "p-b2", "Beatrice Example", staffPassword} {
		if strings.Contains(srv.logs.String(), s) {
			t.Errorf("serve's log mentions %q", s)
		}
	}
}

// axeViolation is an accessibility rule axe-core found broken.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"` // each offending element's selector
}

// axeCheck runs axe-core (installed into dashboards/node_modules by make
// web) on the page as it is, and fails the test on each serious or
// critical violation, naming the rule and the elements.
func axeCheck(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "dashboards", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core: %v (make web installs it)", err)
	}
	found, err := chromedp.Run(ctx, chromedp.Evaluate[[]axeViolation](string(src)+`
		;axe.run(document, {resultTypes: ["violations"]}).then((r) => r.violations.map((v) => ({
			id: v.id, impact: v.impact || "", help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")) })))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe-core on %s: %v", page, err)
	}
	for _, v := range found {
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Errorf("%s: %s accessibility violation %s (%s) at %q", page, v.Impact, v.ID, v.Help, v.Nodes)
		} else {
			t.Logf("%s: %s accessibility finding %s (%s) at %q", page, v.Impact, v.ID, v.Help, v.Nodes)
		}
	}
}
