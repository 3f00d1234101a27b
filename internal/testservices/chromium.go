package testservices

import (
	"fmt"
	"os"
	"os/exec"
)

// Chromium returns the path of a Chromium or Chrome to drive headless:
// $CHROMIUM when set, else Debian's chromium. The error wraps
// ErrMissingBinary when there is none; browser tests never download one.
func Chromium() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: CHROMIUM=%s: %v", ErrMissingBinary, p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: chromium not found on PATH (Debian: apt-get install chromium)", ErrMissingBinary)
}
