package alerts

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidateRenotify(t *testing.T) {
	for _, c := range []struct {
		name     string
		renotify time.Duration
		wantErr  bool
	}{
		{name: "the default", renotify: DefaultConfig().Renotify},
		{name: "a minute", renotify: time.Minute},
		{name: "unset", renotify: 0, wantErr: true},
		{name: "under a minute", renotify: 30 * time.Second, wantErr: true},
		{name: "negative", renotify: -time.Hour, wantErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Renotify = c.renotify
			err := cfg.Validate()
			if (err != nil) != c.wantErr || err != nil && !strings.Contains(err.Error(), "alert-renotify") {
				t.Errorf("Validate() = %v, want an error: %v", err, c.wantErr)
			}
		})
	}
	if d := DefaultConfig().Renotify; d != 24*time.Hour {
		t.Errorf("default Renotify %v, want 24h", d)
	}
}
