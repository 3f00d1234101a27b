package notify

import (
	"context"
	"errors"
	"net/mail"
	"net/url"
	"regexp"
	"strings"

	"github.com/patientpulse/patientpulse/registry"
)

// maxEmail is the longest address SMTP carries (RFC 5321's path limit,
// less its angle brackets).
const maxEmail = 254

// pagerDutyKey is what a PagerDuty Events v2 integration (routing) key
// looks like.
var pagerDutyKey = regexp.MustCompile(`^[A-Za-z0-9]{20,64}$`)

// CheckContact checks a staff member's contact channels, as the API and
// the staff command take them, and reports every problem at once. An
// empty channel is unset and valid. Its errors quote none of the values:
// the ntfy URL and the PagerDuty key are credentials.
func CheckContact(c registry.StaffContact) error {
	var errs []error
	if c.Email != "" {
		if err := checkEmail(c.Email); err != nil {
			errs = append(errs, err)
		}
	}
	if c.NtfyURL != "" {
		if err := checkURL("ntfy", c.NtfyURL); err != nil {
			errs = append(errs, err)
		} else if u, _ := url.Parse(c.NtfyURL); strings.Trim(u.Path, "/") == "" {
			errs = append(errs, errors.New("ntfy URL must name a topic, as in https://ntfy.sh/TOPIC"))
		}
	}
	if c.PagerDutyKey != "" && !pagerDutyKey.MatchString(c.PagerDutyKey) {
		errs = append(errs, errors.New("PagerDuty integration key must be 20 to 64 letters and digits (the integration's routing key)"))
	}
	switch {
	case c.DigestHour < -1 || c.DigestHour > 23:
		errs = append(errs, errors.New("digest hour must be 0 to 23, or none"))
	case c.DigestHour >= 0 && c.Email == "":
		errs = append(errs, errors.New("a daily digest needs an email address: it is mailed"))
	}
	return errors.Join(errs...)
}

// LoadContact returns the stored contact of the staff member username: a
// blank one (no channel, no digest) when they have none or are disabled,
// and an error wrapping registry.ErrNotFound when there is no such member.
func LoadContact(ctx context.Context, reg *registry.Registry, username string) (registry.StaffContact, error) {
	if _, err := reg.StaffMember(ctx, username); err != nil {
		return registry.StaffContact{}, err
	}
	cs, err := reg.StaffContacts(ctx, username)
	if err != nil {
		return registry.StaffContact{}, err
	}
	c, ok := cs[username]
	if !ok {
		c = registry.StaffContact{Username: username, DigestHour: -1}
	}
	return c, nil
}

// checkEmail accepts a bare address (nurse@clinic.example): no display
// name, comment or angle brackets, nothing a mail header could be split
// at.
func checkEmail(s string) error {
	if strings.ContainsAny(s, "\r\n") || len(s) > maxEmail {
		return errors.New("email must be one address of at most 254 characters")
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return errors.New("email must be a bare address such as nurse@clinic.example, without a name or angle brackets")
	}
	return nil
}
