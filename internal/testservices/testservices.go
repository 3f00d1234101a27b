// Package testservices gives integration tests the real Mosquitto,
// InfluxDB and Mailpit processes of internal/services, with what a test
// needs on top: Require, MQTT connections that end with the test, and the
// mail that Mailpit was sent, read back through its API.
//
// Tests call StartMosquitto (anonymous access), StartMosquittoWith (say,
// with the dynamic security plugin and no anonymous access), StartInflux,
// StartMailpit or StartMailpitWith (say, with STARTTLS and a certificate
// from SelfSignedCert), and hand the error to Require, which skips the test
// on a developer's machine that lacks a binary (or the plugin) and fails it
// under CI (CI=true), where a missing binary must never pass unnoticed.
// Set KEEP_TEST_SERVICES=1 to keep the directories (configuration, data and
// logs) after a run for inspection.
//
// This package imports `testing`; code that the clinic's binary links
// (`patientpulse bench`) uses internal/services directly.
package testservices

import (
	"errors"
	"os"
	"testing"

	"github.com/patientpulse/patientpulse/internal/services"
)

// ErrMissingBinary reports that mosquitto, influxd, mailpit or chromium is
// not installed (services.ErrMissingBinary).
var ErrMissingBinary = services.ErrMissingBinary

// InstallHint tells a developer how to get the binaries.
const InstallHint = services.InstallHint

// Require handles a start error in a test. A nil error does nothing. An error
// wrapping ErrMissingBinary skips the test with an install hint, unless the
// environment variable CI is "true": under CI a missing binary is a failure,
// never a skip. Any other error fails the test.
func Require(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrMissingBinary) && os.Getenv("CI") != "true" {
		tb.Skipf("%v\n%s", err, InstallHint)
		return
	}
	tb.Fatal(err)
}

// Mosquitto is a broker of internal/services, with Connect for tests.
type Mosquitto struct{ *services.Mosquitto }

// MosquittoOptions changes the broker that StartMosquittoWith starts.
type MosquittoOptions = services.MosquittoOptions

// StartMosquitto is services.StartMosquitto: a broker with anonymous
// access.
func StartMosquitto() (*Mosquitto, error) { return StartMosquittoWith(MosquittoOptions{}) }

// StartMosquittoWith is services.StartMosquittoWith.
func StartMosquittoWith(o MosquittoOptions) (*Mosquitto, error) {
	m, err := services.StartMosquittoWith(o)
	if err != nil {
		return nil, err
	}
	return &Mosquitto{m}, nil
}

// Influx is an influxd of internal/services.
type Influx = services.Influx

// StartInflux is services.StartInflux.
func StartInflux() (*Influx, error) { return services.StartInflux() }

// FreePort returns a loopback TCP port that was free a moment ago, for a
// test's own listeners.
func FreePort() (int, error) { return services.FreePort() }
