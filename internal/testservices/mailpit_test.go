package testservices

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"strings"
	"testing"
	"time"
)

// page is a mail as an on-call page might be: headers and a text body, with
// CRLF line ends.
func page(from, to, subject, messageID, body string) []byte {
	return []byte(strings.ReplaceAll(fmt.Sprintf("From: PatientPulse <%s>\nTo: %s\nSubject: %s\n"+
		"Message-ID: <%s>\nDate: %s\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n%s\n",
		from, to, subject, messageID, time.Now().Format(time.RFC1123Z), body), "\n", "\r\n"))
}

func TestMailpit(t *testing.T) {
	t.Parallel()
	m, err := StartMailpit()
	Require(t, err)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if !strings.HasPrefix(m.SMTPAddr(), "127.0.0.1:") || !strings.HasPrefix(m.URL(), "http://127.0.0.1:") {
		t.Fatalf("SMTPAddr %q, URL %q: want 127.0.0.1:port and http://127.0.0.1:port", m.SMTPAddr(), m.URL())
	}
	if got := m.Messages(t); len(got) != 0 {
		t.Fatalf("a new Mailpit holds %d messages, want none", len(got))
	}

	// AUTH PLAIN over plain SMTP on the loopback, as net/smtp allows.
	before := time.Now().Add(-time.Second)
	auth := smtp.PlainAuth("", "pp-sender", "any password", "127.0.0.1")
	err = smtp.SendMail(m.SMTPAddr(), auth, "alerts@patientpulse.test", []string{"oncall@clinic.test"},
		page("alerts@patientpulse.test", "On call <oncall@clinic.test>", "CRITICAL: sim-p007 hematocrit 55%",
			"page-1@patientpulse.test", "Hematocrit 55% is above the plan's limit of 54%."))
	if err != nil {
		t.Fatalf("send with AUTH PLAIN: %v", err)
	}

	msg := m.WaitForMessage(t, 10*time.Second, func(msg Message) bool {
		return strings.HasPrefix(msg.Subject, "CRITICAL: sim-p007")
	})
	if msg.From.Address != "alerts@patientpulse.test" || msg.From.Name != "PatientPulse" ||
		len(msg.To) != 1 || msg.To[0].Address != "oncall@clinic.test" || msg.To[0].Name != "On call" {
		t.Errorf("From %v, To %v: want PatientPulse <alerts@patientpulse.test>, On call <oncall@clinic.test>", msg.From, msg.To)
	}
	if msg.Username != "pp-sender" {
		t.Errorf("Username %q, want pp-sender: the AUTH PLAIN's", msg.Username)
	}
	if msg.MessageID != "page-1@patientpulse.test" || msg.Header.Get("Message-ID") != "<page-1@patientpulse.test>" {
		t.Errorf("MessageID %q, header Message-ID %q: want page-1@patientpulse.test, with angle brackets in the header",
			msg.MessageID, msg.Header.Get("Message-ID"))
	}
	if msg.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("header Content-Type %q, want text/plain; charset=utf-8", msg.Header.Get("Content-Type"))
	}
	if strings.TrimSpace(msg.Text) != "Hematocrit 55% is above the plan's limit of 54%." || msg.HTML != "" {
		t.Errorf("Text %q, HTML %q: want the body as text, no HTML", msg.Text, msg.HTML)
	}

	list := m.Messages(t)
	if len(list) != 1 {
		t.Fatalf("Messages: %d, want 1", len(list))
	}
	if s := list[0]; s.ID != msg.ID || s.MessageID != msg.MessageID || s.Subject != msg.Subject ||
		s.From != msg.From || len(s.To) != 1 || s.To[0] != msg.To[0] ||
		s.Created.Before(before) || s.Created.After(time.Now()) {
		t.Errorf("Messages()[0] = %+v, want the summary of %+v, created just now", s, msg)
	}

	// Down, the server refuses connections; up again, it has the message.
	if err := m.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", m.SMTPAddr(), time.Second); err == nil {
		conn.Close()
		t.Fatalf("SMTP at %s still accepts connections after Stop", m.SMTPAddr())
	}
	if err := m.Stop(); err != nil {
		t.Errorf("second Stop: %v, want nil", err)
	}
	if err := m.Start(); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	if got := m.Messages(t); len(got) != 1 || got[0].ID != msg.ID {
		t.Errorf("after Stop and Start, Messages = %+v, want the one sent before", got)
	}

	m.DeleteAll(t)
	if got := m.Messages(t); len(got) != 0 {
		t.Errorf("after DeleteAll, %d messages, want none", len(got))
	}

	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(m.Dir); !keepDirs() && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, %s: %v; want it removed", m.Dir, err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if err := m.Start(); err == nil {
		t.Error("Start after Close succeeded, want an error")
	}
}

func TestMailpitSTARTTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, certPEM := SelfSignedCert(t)
	m, err := StartMailpitWith(MailpitOptions{TLSCert: certFile, TLSKey: keyFile, RequireTLS: true})
	Require(t, err)
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(certPEM) {
		t.Fatal("SelfSignedCert's PEM holds no certificate")
	}
	dial := func() *smtp.Client {
		t.Helper()
		c, err := smtp.Dial(m.SMTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Hello("pp-test"); err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Without STARTTLS the server takes no mail.
	if err := dial().Mail("alerts@patientpulse.test"); err == nil || !strings.HasPrefix(err.Error(), "530") {
		t.Errorf("MAIL FROM before STARTTLS: %v, want 530", err)
	}
	// A client that does not trust the certificate gives up.
	err = dial().StartTLS(&tls.Config{ServerName: "127.0.0.1"})
	if unknown := (x509.UnknownAuthorityError{}); !errors.As(err, &unknown) {
		t.Errorf("STARTTLS trusting the system's roots only: %v, want x509.UnknownAuthorityError", err)
	}

	c := dial()
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("no STARTTLS offered")
	}
	if err := c.StartTLS(&tls.Config{ServerName: "127.0.0.1", RootCAs: roots}); err != nil {
		t.Fatalf("STARTTLS trusting the certificate: %v", err)
	}
	if state, ok := c.TLSConnectionState(); !ok || len(state.VerifiedChains) == 0 {
		t.Fatalf("after STARTTLS: TLS %v, %d verified chains; want a verified connection", ok, len(state.VerifiedChains))
	}
	if err := c.Auth(smtp.PlainAuth("", "pp-sender", "any password", "127.0.0.1")); err != nil {
		t.Fatalf("AUTH PLAIN after STARTTLS: %v", err)
	}
	if err := c.Mail("alerts@patientpulse.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("oncall@clinic.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(page("alerts@patientpulse.test", "oncall@clinic.test", "over STARTTLS",
		"page-2@patientpulse.test", "sent encrypted")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}

	msg := m.WaitForMessage(t, 10*time.Second, func(msg Message) bool { return msg.MessageID == "page-2@patientpulse.test" })
	if msg.Subject != "over STARTTLS" || msg.Username != "pp-sender" || strings.TrimSpace(msg.Text) != "sent encrypted" {
		t.Errorf("got Subject %q, Username %q, Text %q: want the mail sent over STARTTLS by pp-sender",
			msg.Subject, msg.Username, msg.Text)
	}
}

func TestMailpitOptions(t *testing.T) {
	for _, o := range []MailpitOptions{
		{TLSCert: "cert.pem"},
		{TLSKey: "key.pem"},
		{RequireTLS: true},
	} {
		if _, err := StartMailpitWith(o); err == nil || errors.Is(err, ErrMissingBinary) {
			t.Errorf("StartMailpitWith(%+v): %v, want an error about the options", o, err)
		}
	}
}
