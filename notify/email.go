package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/patientpulse/patientpulse/alerts"
)

// SMTPConfig sets up mail (--smtp-url, --smtp-from; the password also
// from PATIENTPULSE_SMTP_PASSWORD).
type SMTPConfig struct {
	// URL is smtp://user:pass@host:587 (STARTTLS) or
	// smtps://user:pass@host:465 (implicit TLS); the port defaults to 587
	// and 465, the credentials are optional. "" disables mail.
	URL      string
	From     string // the sender's address, with a name if wanted: "patientpulse <alerts@clinic.example>"
	Password string // replaces the URL's password when not empty
	// CAFile is a PEM file of certificate authorities to trust besides
	// the system's: for a clinic's internal relay.
	CAFile string
}

// Validate reports every problem at once; it never echoes the URL or the
// password. An empty URL disables mail and is valid whatever the other
// settings.
func (c SMTPConfig) Validate() error {
	if c.URL == "" {
		return nil
	}
	var errs []error
	if u, err := url.Parse(c.URL); err != nil {
		errs = append(errs, errors.New("smtp URL does not parse"))
	} else {
		if u.Scheme != "smtp" && u.Scheme != "smtps" {
			errs = append(errs, errors.New("smtp URL must be smtp:// (STARTTLS) or smtps:// (implicit TLS)"))
		}
		if u.Hostname() == "" {
			errs = append(errs, errors.New("smtp URL has no host"))
		}
		pw, hasPW := u.User.Password()
		switch {
		case u.User == nil && c.Password != "":
			errs = append(errs, errors.New("an SMTP password is set but the smtp URL names no user"))
		case u.User != nil && u.User.Username() == "":
			errs = append(errs, errors.New("smtp URL has credentials without a user"))
		case u.User != nil && c.Password == "" && (!hasPW || pw == ""):
			errs = append(errs, errors.New("smtp URL names a user but there is no password (in the URL or PATIENTPULSE_SMTP_PASSWORD)"))
		}
	}
	if c.From == "" {
		errs = append(errs, errors.New("smtp-from is required with smtp-url"))
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		errs = append(errs, fmt.Errorf("smtp-from %q is not a mail address", c.From))
	}
	if c.CAFile != "" {
		if _, err := loadCAs(c.CAFile); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// loadCAs returns the system's certificate authorities with those of the
// PEM file.
func loadCAs(file string) (*x509.CertPool, error) {
	pemData, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("smtp CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("smtp CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// Email mails each delivery to its target address over SMTP: one message
// with a text and an HTML part, its Message-ID made of the delivery id
// (the same for every attempt, so that a redelivery can be recognised)
// and that id in X-Patientpulse-Delivery too.
//
// smtp:// uses STARTTLS; it sends nothing, credentials or mail, over an
// unencrypted connection except to a loopback host (a local relay): a
// server that offers no STARTTLS elsewhere is refused, as is one whose
// certificate does not verify. smtps:// speaks TLS from the start.
type Email struct {
	addr     string // host:port
	host     string // for the certificate and AUTH
	implicit bool   // smtps://
	tls      *tls.Config
	user     string // "" for no AUTH
	password string
	from     string // the envelope's sender
	fromHdr  string // the From header
	helo     string // the name this host gives in EHLO
	// redact keeps the credentials out of errors and words network
	// errors as the HTTP channels do.
	redact *poster
}

var _ Channel = (*Email)(nil)

// NewEmail returns the mail channel of cfg, or Validate's error.
func NewEmail(cfg SMTPConfig) (*Email, error) {
	if cfg.URL == "" {
		return nil, errors.New("mail is not set up: no smtp URL")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.URL) // Validate parsed it
	from, _ := mail.ParseAddress(cfg.From)
	e := &Email{host: u.Hostname(), implicit: u.Scheme == "smtps", from: from.Address, fromHdr: from.String(),
		helo: "localhost", redact: newPoster(cfg.URL, cfg.Password)}
	port := u.Port()
	switch {
	case port != "":
	case e.implicit:
		port = "465"
	default:
		port = "587"
	}
	e.addr = net.JoinHostPort(e.host, port)
	e.tls = &tls.Config{ServerName: e.host, MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		var err error
		if e.tls.RootCAs, err = loadCAs(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	if u.User != nil {
		e.user = u.User.Username()
		e.password, _ = u.User.Password()
		if cfg.Password != "" {
			e.password = cfg.Password
		}
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		e.helo = h
	}
	return e, nil
}

// Send mails m to m.Delivery.Target once. A reply of 2xx to the message
// delivers it; a 5xx reply is final (Status is its code); a 4xx reply, no
// answer, or a connection that is not what it must be (no STARTTLS, a
// certificate that does not verify) is worth retrying. The attempt ends
// with ctx.
func (e *Email) Send(ctx context.Context, m Message) Result {
	to, err := mail.ParseAddress(m.Delivery.Target)
	if err != nil {
		return Result{Err: "the recipient is not a mail address"}
	}
	msg, err := compose(m, e.fromHdr, to.String(), time.Now())
	if err != nil {
		return Result{Err: err.Error()}
	}
	return e.deliver(ctx, to.Address, msg)
}

// deliver speaks SMTP with the server to hand it msg for rcpt.
func (e *Email) deliver(ctx context.Context, rcpt string, msg []byte) Result {
	var conn net.Conn
	var err error
	dialer := &net.Dialer{}
	if e.implicit {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: e.tls}).DialContext(ctx, "tcp", e.addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", e.addr)
	}
	if err != nil {
		return e.failed(ctx, "connect", err)
	}
	// The attempt's deadline, or its end, cuts short whatever waits on
	// the server.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c, err := smtp.NewClient(conn, e.host)
	if err != nil {
		_ = conn.Close()
		return e.failed(ctx, "greeting", err)
	}
	defer c.Close()
	if err := c.Hello(e.helo); err != nil {
		return e.failed(ctx, "EHLO", err)
	}
	if !e.implicit {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(e.tls); err != nil {
				return e.failed(ctx, "STARTTLS", err)
			}
		} else if !isLoopback(e.host) {
			return Result{Err: "the server offers no STARTTLS: mail is sent unencrypted only to a loopback host", Retry: true}
		}
	}
	if e.user != "" {
		if res, ok := e.auth(ctx, c); !ok {
			return res
		}
	}
	if err := c.Mail(e.from); err != nil {
		return e.failed(ctx, "MAIL FROM", err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		return e.failed(ctx, "RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return e.failed(ctx, "DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return e.failed(ctx, "DATA", err)
	}
	if err := w.Close(); err != nil { // the server's answer to the message
		return e.failed(ctx, "end of DATA", err)
	}
	_ = c.Quit() // the server has the message; what it says after does not matter
	return Result{Status: 250}
}

// auth authenticates with PLAIN or, failing that, LOGIN (which some
// providers offer alone).
func (e *Email) auth(ctx context.Context, c *smtp.Client) (Result, bool) {
	ok, mechs := c.Extension("AUTH")
	offered := strings.Fields(strings.ToUpper(mechs))
	var a smtp.Auth
	switch {
	case ok && slices.Contains(offered, "PLAIN"):
		a = smtp.PlainAuth("", e.user, e.password, e.host)
	case ok && slices.Contains(offered, "LOGIN"):
		a = &loginAuth{user: e.user, password: e.password, host: e.host}
	default:
		return Result{Err: "the server offers neither AUTH PLAIN nor LOGIN, and a user is set"}, false
	}
	if err := c.Auth(a); err != nil {
		return e.failed(ctx, "AUTH", err), false
	}
	return Result{}, true
}

// failed is the result of a failed step: an SMTP reply's code, final for
// 5xx; anything else (no answer, a broken connection, TLS) worth
// retrying. It holds no credential.
func (e *Email) failed(ctx context.Context, step string, err error) Result {
	var reply *textproto.Error
	if errors.As(err, &reply) {
		return Result{Status: reply.Code, Err: shorten(step+": "+reply.Error(), e.redact.redactions), Retry: reply.Code < 500}
	}
	return Result{Err: shorten(step+": "+e.redact.netError(ctx, err), nil), Retry: true}
}

// loginAuth is the LOGIN mechanism: the user and the password, each
// when the server asks. Like smtp.PlainAuth it sends them only over TLS
// or to a loopback host.
type loginAuth struct{ user, password, host string }

func (a *loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !isLoopback(server.Name) {
		return "", nil, errors.New("unencrypted connection")
	}
	if server.Name != a.host {
		return "", nil, errors.New("wrong host name")
	}
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch strings.ToLower(strings.TrimSpace(string(fromServer))) {
	case "username:":
		return []byte(a.user), nil
	case "password:":
		return []byte(a.password), nil
	}
	return nil, errors.New("unexpected LOGIN challenge")
}

// compose is m as a MIME message from from to to (header forms) at now.
func compose(m Message, from, to string, now time.Time) ([]byte, error) {
	id := m.Delivery.ID
	if id == "" || strings.ContainsFunc(id, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-')
	}) {
		return nil, errors.New("the delivery id is not fit for a Message-ID")
	}
	var html bytes.Buffer
	if err := mailHTML.Execute(&html, htmlView(m)); err != nil {
		return nil, fmt.Errorf("render the HTML part: %w", err)
	}
	var body bytes.Buffer
	parts := multipart.NewWriter(&body)
	for _, p := range []struct{ typ, content string }{{"text/plain", m.Text()}, {"text/html", html.String()}} {
		w, err := parts.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.typ + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(p.content)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := parts.Close(); err != nil {
		return nil, err
	}
	var msg bytes.Buffer
	for _, h := range [][2]string{
		{"From", from},
		{"To", to},
		{"Subject", mime.QEncoding.Encode("utf-8", m.Title())},
		{"Date", now.Format(time.RFC1123Z)},
		{"Message-ID", "<" + id + "@patientpulse>"},
		{WebhookDeliveryHeader, id},
		{"Auto-Submitted", "auto-generated"}, // no out-of-office replies (RFC 3834)
		{"MIME-Version", "1.0"},
		{"Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": parts.Boundary()})},
	} {
		fmt.Fprintf(&msg, "%s: %s\r\n", h[0], h[1])
	}
	msg.WriteString("\r\n")
	msg.Write(body.Bytes())
	return msg.Bytes(), nil
}

// mailView is what the HTML part shows: what the text part says, laid
// out, with the link as a button.
type mailView struct {
	Title  string
	Lead   string
	Rows   [][2]string    // an alert's label and value (full PHI)
	Items  []alerts.Alert // a digest's warnings (full PHI)
	Link   string
	Button string
}

func htmlView(m Message) mailView {
	v := mailView{Title: m.Title(), Link: m.Link}
	if m.Digest != nil {
		v.Lead = capitalise(plural(len(m.Digest.Alerts), "warning")) + " opened in the last day for patients in your care."
		v.Button = "Review them in patientpulse"
		if m.FullPHI {
			v.Items = m.Digest.Alerts
		}
		return v
	}
	a := m.Event.Alert
	v.Button = "Open and acknowledge"
	alert := capitalise(article(a.Severity) + " " + a.Severity + " alert")
	if !m.FullPHI {
		v.Lead = alert + " for one of your patients: " + m.changed() + "."
		return v
	}
	v.Lead = alert + ": " + m.changed() + "."
	v.Rows = [][2]string{{"Patient", m.patient()}, {"Rule", a.Rule}, {"Alert", a.Sentence}, {"Severity", a.Severity}}
	if a.Tier != "" {
		v.Rows = append(v.Rows, [2]string{"Tier", a.Tier})
	}
	return v
}

var mailHTML = template.Must(template.New("mail").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body style="font-family: -apple-system, 'Segoe UI', Roboto, Arial, sans-serif; font-size: 15px; color: #1b1b1b">
<p style="font-size: 17px">{{.Lead}}</p>
{{- with .Rows}}
<table style="border-collapse: collapse; margin: 12px 0">
{{- range .}}
<tr><th style="text-align: left; padding: 4px 16px 4px 0; vertical-align: top">{{index . 0}}</th><td style="padding: 4px 0">{{index . 1}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- with .Items}}
<ul>
{{- range .}}
<li><strong>{{.Patient}}</strong>, {{.Rule}}: {{.Sentence}}</li>
{{- end}}
</ul>
{{- end}}
<p style="margin: 24px 0"><a href="{{.Link}}" style="display: inline-block; padding: 12px 24px; background: #0b57d0; color: #ffffff; text-decoration: none; border-radius: 6px; font-weight: bold">{{.Button}}</a></p>
<p style="color: #5f6368; font-size: 13px">If the button does not work, open this address: {{.Link}}</p>
</body></html>
`))
