package testservices

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patientpulse/patientpulse/internal/services"
)

// Mailpit is a Mailpit of internal/services, with a client of its HTTP API
// (https://mailpit.axllent.org/docs/api-v1/) for tests: the messages it
// was sent, read back.
type Mailpit struct{ *services.Mailpit }

// MailpitOptions changes the server that StartMailpitWith starts.
type MailpitOptions = services.MailpitOptions

// StartMailpit is services.StartMailpit: plain SMTP, any AUTH accepted.
func StartMailpit() (*Mailpit, error) { return StartMailpitWith(MailpitOptions{}) }

// StartMailpitWith is services.StartMailpitWith: say, STARTTLS with a
// certificate from SelfSignedCert.
func StartMailpitWith(o MailpitOptions) (*Mailpit, error) {
	m, err := services.StartMailpitWith(o)
	if err != nil {
		return nil, err
	}
	return &Mailpit{m}, nil
}

// MessageSummary is a message as Mailpit lists it (GET /api/v1/messages).
type MessageSummary struct {
	ID        string // Mailpit's id of the message, for Message
	MessageID string // the Message-ID header, without the angle brackets
	From      mail.Address
	To        []mail.Address
	Cc        []mail.Address
	Bcc       []mail.Address // the Bcc header, and the envelope's recipients no header names
	Subject   string
	Created   time.Time // when Mailpit received it
	Username  string    // the SMTP AUTH username, if any
	Snippet   string    // the start of the text
}

// Message is a message read whole: Mailpit's summary of it (GET
// /api/v1/message/{ID}) and its headers (GET /api/v1/message/{ID}/headers).
type Message struct {
	ID        string // Mailpit's id of the message
	MessageID string // the Message-ID header, without the angle brackets
	From      mail.Address
	To        []mail.Address
	Cc        []mail.Address
	Bcc       []mail.Address // the Bcc header, and the envelope's recipients no header names
	ReplyTo   []mail.Address
	Subject   string
	Date      time.Time // the Date header, else when Mailpit received it
	Username  string    // the SMTP AUTH username, if any
	Text      string    // the text/plain part, decoded
	HTML      string    // the text/html part, decoded
	Header    mail.Header
}

// mailpitClient is for every API call: each answers quickly or not at all.
var mailpitClient = &http.Client{Timeout: 10 * time.Second}

// api sends a request to Mailpit's API and decodes a JSON answer into out
// (none when out is nil). A status other than 200 fails the test.
func (m *Mailpit) api(tb testing.TB, method, path string, out any) {
	tb.Helper()
	req, err := http.NewRequest(method, m.URL()+path, nil)
	if err != nil {
		tb.Fatalf("mailpit: %v", err)
	}
	resp, err := mailpitClient.Do(req)
	if err != nil {
		tb.Fatalf("mailpit: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("mailpit: %s %s: %v", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("mailpit: %s %s: %s: %s", method, path, resp.Status, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			tb.Fatalf("mailpit: %s %s: %v in %s", method, path, err, body)
		}
	}
}

// Messages lists every message Mailpit holds, newest first.
func (m *Mailpit) Messages(tb testing.TB) []MessageSummary {
	tb.Helper()
	var list struct {
		Messages []MessageSummary `json:"messages"`
	}
	m.api(tb, http.MethodGet, "/api/v1/messages?limit=0", &list) // 0: all of them
	return list.Messages
}

// Message reads the message with Mailpit's id, with its headers. Mailpit
// marks it read.
func (m *Mailpit) Message(tb testing.TB, id string) Message {
	tb.Helper()
	var msg Message
	path := "/api/v1/message/" + url.PathEscape(id)
	m.api(tb, http.MethodGet, path, &msg)
	m.api(tb, http.MethodGet, path+"/headers", &msg.Header)
	return msg
}

// DeleteAll deletes every message.
func (m *Mailpit) DeleteAll(tb testing.TB) {
	tb.Helper()
	m.api(tb, http.MethodDelete, "/api/v1/messages", nil)
}

// WaitForMessage returns a message for which match is true (the newest,
// when several are there already), waiting up to timeout for one to
// arrive; then it fails the test, listing the messages there are. match
// sees each message once, read whole.
func (m *Mailpit) WaitForMessage(tb testing.TB, timeout time.Duration, match func(Message) bool) Message {
	tb.Helper()
	read := map[string]bool{} // Mailpit's ids of the messages match has seen
	deadline := time.Now().Add(timeout)
	for {
		list := m.Messages(tb)
		for _, s := range list {
			if read[s.ID] {
				continue
			}
			read[s.ID] = true
			if msg := m.Message(tb, s.ID); match(msg) {
				return msg
			}
		}
		if time.Now().After(deadline) {
			subjects := make([]string, len(list))
			for i, s := range list {
				subjects[i] = fmt.Sprintf("%q from %s", s.Subject, s.From.Address)
			}
			tb.Fatalf("mailpit: no matching message within %s among the %d there are: %v", timeout, len(list), subjects)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SelfSignedCert makes a self-signed certificate (ECDSA P-256, a day
// long) for 127.0.0.1 and localhost, and writes it and its key as PEM files
// into a temporary directory of the test's: for a server's TLSCert and
// TLSKey. A client trusts the certificate by adding certPEM to its roots
// (x509.CertPool's AppendCertsFromPEM).
func SelfSignedCert(tb testing.TB) (certFile, keyFile string, certPEM []byte) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	return certFile, keyFile, certPEM
}
