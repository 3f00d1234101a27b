package notify

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
	"github.com/patientpulse/patientpulse/analysis"
	"github.com/patientpulse/patientpulse/internal/testservices"
	"github.com/patientpulse/patientpulse/registry"
)

// The mail tests send through a real Mailpit and read what arrived
// through its API.

const (
	mailFrom     = "alerts@clinic.test"
	mailTo       = "dr.who@clinic.test"
	mailUser     = "pp-sender"
	mailPassword = "s3cret-smtp-password"
	mailLink     = "https://pp.example/a/bWFpbC1saW5rLXRva2Vu"
	// The alert's patient data: a minimal mail carries none of it. The
	// sentence's markup must reach the HTML part escaped.
	mailPatient  = "pt-4c1e0b"
	mailName     = "Jane Mailpatient"
	mailRule     = "mrs-severe"
	mailSentence = "MRS total 22 is above the plan's 16 <since> check-in & before"
)

// startMailpit starts a Mailpit that the test closes.
func startMailpit(t *testing.T, o testservices.MailpitOptions) *testservices.Mailpit {
	t.Helper()
	m, err := testservices.StartMailpitWith(o)
	testservices.Require(t, err)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("closing Mailpit: %v", err)
		}
	})
	return m
}

// newEmail returns the channel of cfg, which must be valid.
func newEmail(t *testing.T, cfg SMTPConfig) *Email {
	t.Helper()
	e, err := NewEmail(cfg)
	if err != nil {
		t.Fatalf("NewEmail: %v", err)
	}
	return e
}

// mailAlert is a critical alert escalated to tier 2, mailed to mailTo.
func mailAlert(id string, full bool) Message {
	return Message{
		Delivery: registry.OutboxDelivery{ID: id, AlertID: 9, Channel: ChannelEmail, Recipient: "dr.who", Target: mailTo},
		Event: alerts.Event{Change: alerts.ChangeEscalated, Tier: "2", OnCall: []string{"dr.who"}, At: time.Now(),
			Alert: alerts.Alert{ID: 9, Patient: mailPatient, Rule: mailRule, State: "firing", Severity: analysis.SeverityCritical,
				Sentence: mailSentence, Tier: "2"}},
		PatientName: mailName,
		Link:        mailLink,
		FullPHI:     full,
	}
}

// mailDigest is a digest of two warnings, one of them the alert's patient's.
func mailDigest(id string, full bool) Message {
	return Message{
		Delivery: registry.OutboxDelivery{ID: id, Channel: ChannelEmail, Recipient: "dr.who", Target: mailTo},
		Digest: &Digest{Username: "dr.who", Date: "2026-12-03", Alerts: []alerts.Alert{
			{ID: 3, Patient: mailPatient, Rule: mailRule, Severity: analysis.SeverityWarning, Sentence: mailSentence},
			{ID: 4, Patient: "pt-99", Rule: "sleep-short", Severity: analysis.SeverityWarning, Sentence: "7-day mean sleep 5.9 h"},
		}},
		Link:    "https://pp.example/",
		FullPHI: full,
	}
}

// waitForMail returns the mail of the delivery id.
func waitForMail(t *testing.T, m *testservices.Mailpit, id string) testservices.Message {
	t.Helper()
	return m.WaitForMessage(t, 10*time.Second, func(msg testservices.Message) bool {
		return msg.MessageID == id+"@patientpulse"
	})
}

// assertNoMail fails t if Mailpit holds any message.
func assertNoMail(t *testing.T, m *testservices.Mailpit) {
	t.Helper()
	if got := m.Messages(t); len(got) != 0 {
		t.Errorf("Mailpit holds %d messages, want none", len(got))
	}
}

// assertFailed fails t unless res is an attempt that failed, with retry
// as wanted, a status of status, an error that mentions want and never
// the password.
func assertFailed(t *testing.T, res Result, retry bool, status int, want string) {
	t.Helper()
	if res.Delivered() || res.Retry != retry || res.Status != status || !strings.Contains(res.Err, want) {
		t.Errorf("Send = %+v, want a failure with Retry %v, Status %d and an error mentioning %q", res, retry, status, want)
	}
	if strings.Contains(res.Err, mailPassword) {
		t.Errorf("the error %q holds the password", res.Err)
	}
}

// TestEmailContent: an escalation and a digest, each mailed with minimal
// and full PHI over plain SMTP with AUTH on the loopback, arrive with the
// message's title, the delivery's Message-ID and header, the text part the
// message's text, and an HTML part with the same content, escaped, and
// the link as a button; a minimal mail names no patient, rule or
// sentence.
func TestEmailContent(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t, testservices.MailpitOptions{})
	e := newEmail(t, SMTPConfig{URL: "smtp://" + mailUser + "@" + mp.SMTPAddr(), Password: mailPassword,
		From: "patientpulse <" + mailFrom + ">"})
	phi := []string{mailName, mailPatient, mailRule, "MRS total 22"}
	for _, c := range []struct {
		name   string
		m      Message
		button string
		html   []string // in the HTML part besides the link and button
	}{
		{name: "minimal alert", m: mailAlert("minimal-alert", false), button: "Open and acknowledge",
			html: []string{"A critical alert for one of your patients: escalated to you (tier 2)."}},
		{name: "full alert", m: mailAlert("full-alert", true), button: "Open and acknowledge",
			html: []string{mailName + " (" + mailPatient + ")", mailRule,
				"MRS total 22 is above the plan&#39;s 16 &lt;since&gt; check-in &amp; before", "critical"}},
		{name: "minimal digest", m: mailDigest("digest-dr.who-2026-12-03", false), button: "Review them in patientpulse",
			html: []string{"2 warnings opened in the last day for patients in your care."}},
		{name: "full digest", m: mailDigest("digest-dr.who-2026-12-04", true), button: "Review them in patientpulse",
			html: []string{"<strong>" + mailPatient + "</strong>, " + mailRule + ": MRS total 22", "pt-99", "7-day mean sleep 5.9 h"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := e.Send(t.Context(), c.m)
			if !res.Delivered() || res.Status != 250 {
				t.Fatalf("Send = %+v, want delivered with 250", res)
			}
			got := waitForMail(t, mp, c.m.Delivery.ID)
			if got.Subject != c.m.Title() {
				t.Errorf("Subject %q, want %q", got.Subject, c.m.Title())
			}
			if got.From.Address != mailFrom || got.From.Name != "patientpulse" || len(got.To) != 1 || got.To[0].Address != mailTo {
				t.Errorf("From %v, To %v: want patientpulse <%s> to %s", got.From, got.To, mailFrom, mailTo)
			}
			if got.Username != mailUser {
				t.Errorf("sent as %q, want AUTH as %q", got.Username, mailUser)
			}
			if h := got.Header["X-Patientpulse-Delivery"]; len(h) != 1 || h[0] != c.m.Delivery.ID {
				t.Errorf("X-Patientpulse-Delivery %q, want %q", h, c.m.Delivery.ID)
			}
			if ct := got.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative;") {
				t.Errorf("Content-Type %q, want multipart/alternative", ct)
			}
			if d, err := mail.ParseDate(got.Header.Get("Date")); err != nil || time.Since(d).Abs() > time.Minute {
				t.Errorf("Date %q (%v), want now", got.Header.Get("Date"), err)
			}
			text := strings.ReplaceAll(got.Text, "\r\n", "\n")
			if strings.TrimSpace(text) != strings.TrimSpace(c.m.Text()) {
				t.Errorf("text part:\n%s\nwant:\n%s", text, c.m.Text())
			}
			for _, want := range append(c.html, `<a href="`+c.m.Link+`"`, ">"+c.button+"</a>") {
				if !strings.Contains(got.HTML, want) {
					t.Errorf("the HTML part lacks %q:\n%s", want, got.HTML)
				}
			}
			if strings.Contains(got.HTML, "<since>") {
				t.Errorf("the HTML part holds the sentence unescaped:\n%s", got.HTML)
			}
			for _, p := range phi {
				inText, inHTML := strings.Contains(got.Text, p), strings.Contains(got.HTML, p)
				if !c.m.FullPHI && (inText || inHTML) {
					t.Errorf("a minimal mail holds %q (text %v, HTML %v)", p, inText, inHTML)
				}
				// The digest names patients by id, never by name.
				if c.m.FullPHI && (c.m.Digest == nil || p != mailName) && (!inText || !inHTML) {
					t.Errorf("a full mail lacks %q (text %v, HTML %v)", p, inText, inHTML)
				}
			}
		})
	}
}

// TestEmailSTARTTLS: smtp:// to a server that requires STARTTLS, with a
// self-signed certificate, delivers with AUTH once CAFile trusts the
// certificate; without it the attempt fails, to be retried, and nothing
// is sent.
func TestEmailSTARTTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _ := testservices.SelfSignedCert(t)
	mp := startMailpit(t, testservices.MailpitOptions{TLSCert: certFile, TLSKey: keyFile, RequireTLS: true})
	cfg := SMTPConfig{URL: "smtp://" + mailUser + ":" + mailPassword + "@" + mp.SMTPAddr(), From: mailFrom}

	res := newEmail(t, cfg).Send(t.Context(), mailAlert("untrusted", false))
	assertFailed(t, res, true, 0, "certificate")
	assertNoMail(t, mp)

	cfg.CAFile = certFile
	m := mailAlert("over-starttls", true)
	if res := newEmail(t, cfg).Send(t.Context(), m); !res.Delivered() {
		t.Fatalf("Send = %+v, want delivered", res)
	}
	got := waitForMail(t, mp, "over-starttls")
	if got.Username != mailUser || got.Subject != m.Title() {
		t.Errorf("got a mail from %q titled %q, want from %q titled %q", got.Username, got.Subject, mailUser, m.Title())
	}
}

// TestEmailImplicitTLS: smtps:// speaks TLS from the first byte, to a
// TLS terminator in front of Mailpit (as stunnel would stand before a
// relay), which speaks nothing else; it delivers once CAFile trusts the
// certificate. (Mailpit could listen for TLS itself, --smtp-require-tls,
// but testservices does not offer that option.)
func TestEmailImplicitTLS(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t, testservices.MailpitOptions{})
	certFile, keyFile, _ := testservices.SelfSignedCert(t)
	addr := tlsTerminator(t, certFile, keyFile, mp.SMTPAddr())
	cfg := SMTPConfig{URL: "smtps://" + mailUser + ":" + mailPassword + "@" + addr, From: mailFrom}

	res := newEmail(t, cfg).Send(t.Context(), mailAlert("untrusted", false))
	assertFailed(t, res, true, 0, "certificate")
	assertNoMail(t, mp)

	cfg.CAFile = certFile
	m := mailAlert("over-smtps", false)
	if res := newEmail(t, cfg).Send(t.Context(), m); !res.Delivered() {
		t.Fatalf("Send = %+v, want delivered", res)
	}
	if got := waitForMail(t, mp, "over-smtps"); got.Username != mailUser || got.Subject != m.Title() {
		t.Errorf("got a mail from %q titled %q, want from %q titled %q", got.Username, got.Subject, mailUser, m.Title())
	}
}

// tlsTerminator listens for TLS on a loopback port with the certificate
// and passes each connection's plain text on to upstream; it returns its
// address.
func tlsTerminator(t *testing.T, certFile, keyFile, upstream string) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				up, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				conns.Go(func() {
					_, _ = io.Copy(up, c)
					up.Close() // the client is gone: so is the server's side
				})
				_, _ = io.Copy(c, up)
			})
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-accepting
		conns.Wait()
	})
	return l.Addr().String()
}

// TestEmailRefusesPlaintext: a server that offers no STARTTLS is refused
// unless it is on a loopback address: neither the credentials nor the
// mail go to it unencrypted. 0.0.0.0 reaches the loopback Mailpit without
// being a loopback address.
func TestEmailRefusesPlaintext(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t, testservices.MailpitOptions{})
	_, port, err := net.SplitHostPort(mp.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{
		"smtp://" + mailUser + ":" + mailPassword + "@0.0.0.0:" + port,
		"smtp://0.0.0.0:" + port,
	} {
		res := newEmail(t, SMTPConfig{URL: url, From: mailFrom}).Send(t.Context(), mailAlert("plaintext", true))
		assertFailed(t, res, true, 0, "no STARTTLS")
	}
	assertNoMail(t, mp)
}

// TestEmailRefusedRecipient: a recipient the server refuses with a 5xx
// reply is a final failure, with the reply's code.
func TestEmailRefusedRecipient(t *testing.T) {
	t.Parallel()
	mp := startMailpit(t, testservices.MailpitOptions{})
	e := newEmail(t, SMTPConfig{URL: "smtp://" + mailUser + ":" + mailPassword + "@" + mp.SMTPAddr(), From: mailFrom})
	m := mailAlert("refused", false)
	// Mailpit refuses an address over 1024 bytes with 500.
	m.Delivery.Target = strings.Repeat("x", 1100) + "@clinic.test"
	assertFailed(t, e.Send(t.Context(), m), false, 500, "RCPT TO: 500")
	assertNoMail(t, mp)
}

// TestEmailNoServer: a closed port, and a server that never answers
// before the attempt's deadline, are failures worth retrying, without a
// status.
func TestEmailNoServer(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silent := l.Addr().String()
	held := make(chan net.Conn, 8) // open, never greeted
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for c := range held {
			c.Close()
		}
	})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	for _, c := range []struct{ name, addr, want string }{
		{"closed port", closedAddr, "connect: dial tcp " + closedAddr},
		{"silent server", silent, "greeting: no answer before the attempt's deadline"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEmail(t, SMTPConfig{URL: "smtp://" + mailUser + ":" + mailPassword + "@" + c.addr, From: mailFrom})
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			assertFailed(t, e.Send(ctx, mailAlert("no-server", false)), true, 0, c.want)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Send took %s, want it to end with the attempt's deadline", d)
			}
		})
	}
}

// TestSMTPConfigValidate checks the settings' problems, all at once and
// without the password.
func TestSMTPConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  SMTPConfig
		want []string
	}{
		{name: "disabled", cfg: SMTPConfig{}},
		{name: "starttls", cfg: SMTPConfig{URL: "smtp://u:" + mailPassword + "@mail.clinic.test:587", From: mailFrom}},
		{name: "implicit TLS, password apart", cfg: SMTPConfig{URL: "smtps://u@mail.clinic.test", Password: mailPassword, From: "PP <" + mailFrom + ">"}},
		{name: "no credentials", cfg: SMTPConfig{URL: "smtp://127.0.0.1:1025", From: mailFrom}},
		{name: "everything wrong", cfg: SMTPConfig{URL: "http://u@", From: "not an address", CAFile: "/nonexistent/ca.pem"},
			want: []string{"must be smtp:// (STARTTLS) or smtps://", "has no host", "names a user but there is no password",
				`smtp-from "not an address"`, "smtp CA file"}},
		{name: "password without a user", cfg: SMTPConfig{URL: "smtp://mail.clinic.test", Password: mailPassword},
			want: []string{"names no user", "smtp-from is required"}},
		{name: "unparsable", cfg: SMTPConfig{URL: "smtp://u:" + mailPassword + "@mail clinic:x", From: mailFrom},
			want: []string{"does not parse"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(c.want) {
				t.Errorf("Validate() gave %d problems, want %d: %q", n, len(c.want), err)
			}
			if strings.Contains(err.Error(), mailPassword) {
				t.Errorf("Validate() = %q echoes the password", err)
			}
			if _, nerr := NewEmail(c.cfg); nerr == nil {
				t.Error("NewEmail succeeded with an invalid config")
			}
		})
	}
}

// TestLoginAuth: the LOGIN mechanism, which Mailpit offers beside PLAIN
// (PLAIN is chosen there), answers the server's prompts and, like PLAIN,
// gives nothing to a host that is neither behind TLS nor a loopback one.
func TestLoginAuth(t *testing.T) {
	a := &loginAuth{user: mailUser, password: mailPassword, host: "mail.clinic.test"}
	if _, _, err := a.Start(&smtp.ServerInfo{Name: "mail.clinic.test", Auth: []string{"LOGIN"}}); err == nil {
		t.Error("Start without TLS to a remote host succeeded, want a refusal")
	}
	if _, _, err := a.Start(&smtp.ServerInfo{Name: "other.clinic.test", TLS: true, Auth: []string{"LOGIN"}}); err == nil {
		t.Error("Start with another host's name succeeded, want a refusal")
	}
	if mech, resp, err := a.Start(&smtp.ServerInfo{Name: "mail.clinic.test", TLS: true, Auth: []string{"LOGIN"}}); mech != "LOGIN" || resp != nil || err != nil {
		t.Errorf("Start over TLS = %q, %q, %v; want LOGIN with no initial response", mech, resp, err)
	}
	for _, c := range []struct{ challenge, want string }{{"Username:", mailUser}, {"Password:", mailPassword}} {
		if got, err := a.Next([]byte(c.challenge), true); err != nil || string(got) != c.want {
			t.Errorf("Next(%q) = %q, %v; want %q", c.challenge, got, err, c.want)
		}
	}
	if _, err := a.Next([]byte("Realm:"), true); err == nil {
		t.Error("Next of an unknown challenge succeeded, want an error")
	}
	loop := &loginAuth{user: mailUser, password: mailPassword, host: "127.0.0.1"}
	if _, _, err := loop.Start(&smtp.ServerInfo{Name: "127.0.0.1", Auth: []string{"LOGIN"}}); err != nil {
		t.Errorf("Start without TLS to the loopback = %v, want nil", err)
	}
}
