package notify

import (
	"fmt"
	"strings"

	"github.com/patientpulse/patientpulse/alerts"
)

// What pages say. Every channel but mail under --mail-phi=full says only
// Title and Minimal: the severity, the change, the tier and the link,
// never the patient, the rule or the sentence (they may leave the
// clinic's systems). Full adds them, for mail when the clinic chooses.

// Title is a short line for a subject, a push notification or a chat
// message.
func (m Message) Title() string {
	if m.Digest != nil {
		return fmt.Sprintf("patientpulse: %s for your patients (%s)", plural(len(m.Digest.Alerts), "warning"), m.Digest.Date)
	}
	return fmt.Sprintf("patientpulse: %s alert %s", m.Event.Alert.Severity, m.changed())
}

// changed says what happened to the alert.
func (m Message) changed() string {
	ev := m.Event
	switch ev.Change {
	case alerts.ChangeEscalated:
		if m.Delivery.Recipient != "" {
			return "escalated to you (tier " + ev.Tier + ")"
		}
		return "escalated to tier " + ev.Tier
	case alerts.ChangeAcknowledged:
		return "acknowledged by " + ev.Actor
	case alerts.ChangeResolved:
		if ev.Actor == "" {
			return "resolved (the condition cleared)"
		}
		return "resolved by " + ev.Actor
	case alerts.ChangeSeverityRaised:
		return "raised to " + ev.Alert.Severity
	case alerts.ChangeSnoozed:
		return "snoozed"
	case alerts.ChangeAssigned:
		if ev.Alert.Assignee == "" {
			return "given up by " + ev.Actor
		}
		return "taken on by " + ev.Actor
	}
	return ev.Change
}

// Minimal is the text of a page without patient data.
func (m Message) Minimal() string {
	if m.Digest != nil {
		return fmt.Sprintf("%s opened in the last day for patients in your care. Review them in patientpulse: %s",
			capitalise(plural(len(m.Digest.Alerts), "warning")), m.Link)
	}
	a := m.Event.Alert
	return fmt.Sprintf("%s for one of your patients: %s. Open it: %s", capitalise(article(a.Severity)+" "+a.Severity+" alert"), m.changed(), m.Link)
}

// Full is the text of a page with the patient, rule and sentence.
func (m Message) Full() string {
	if m.Digest != nil {
		var b strings.Builder
		fmt.Fprintf(&b, "%s opened in the last day for patients in your care:\n\n", capitalise(plural(len(m.Digest.Alerts), "warning")))
		for _, a := range m.Digest.Alerts {
			fmt.Fprintf(&b, "- %s, %s: %s\n", a.Patient, a.Rule, a.Sentence)
		}
		fmt.Fprintf(&b, "\nReview them in patientpulse: %s\n", m.Link)
		return b.String()
	}
	a := m.Event.Alert
	var b strings.Builder
	fmt.Fprintf(&b, "Patient:  %s\n", m.patient())
	fmt.Fprintf(&b, "Rule:     %s\n", a.Rule)
	fmt.Fprintf(&b, "Alert:    %s\n", a.Sentence)
	fmt.Fprintf(&b, "Severity: %s\n", a.Severity)
	if a.Tier != "" {
		fmt.Fprintf(&b, "Tier:     %s\n", a.Tier)
	}
	fmt.Fprintf(&b, "Change:   %s\n", m.changed())
	fmt.Fprintf(&b, "\nOpen and acknowledge it: %s\n", m.Link)
	return b.String()
}

// Text is what mail says: Full or Minimal by the clinic's choice.
func (m Message) Text() string {
	if m.FullPHI {
		return m.Full()
	}
	return m.Minimal() + "\n"
}

// patient names the patient: name and id, or the id alone.
func (m Message) patient() string {
	if m.PatientName != "" {
		return m.PatientName + " (" + m.Event.Alert.Patient + ")"
	}
	return m.Event.Alert.Patient
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
