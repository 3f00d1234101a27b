package server

import "testing"

func TestLocaleTag(t *testing.T) {
	for tag, ok := range map[string]bool{
		"en-GB": true, "de-DE": true, "en-US": true, "fr": true, "zh-Hans-CN": true, "de-CH-1996": true,
		"": false, "en_GB": false, "en GB": false, "english": false, "en-": false, "-GB": false, "en-GB;": false,
	} {
		if got := localeTag.MatchString(tag); got != ok {
			t.Errorf("locale %q taken %v, want %v", tag, got, ok)
		}
	}
}
