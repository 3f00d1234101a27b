package analysis

import (
	"os"
	"testing"
)

// menopausePlan is the menopause template, parsed.
func menopausePlan(tb testing.TB) Plan {
	tb.Helper()
	data, err := os.ReadFile("../examples/plans/menopause-estradiol-progesterone.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	p, err := ParsePlan(data)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestWords: every rule of the menopause template, and its regimen, in
// the words a clinician reads on the plan page.
func TestWords(t *testing.T) {
	p := menopausePlan(t)
	want := map[string]string{
		"sleep-short":            "alert when the 7-day mean of sleep (daily sum) is below 7 h",
		"flushes-high":           "alert when the 7-day mean of hot flushes is above 2; warn when its trend predicts that within 14 days",
		"mrs-severe":             "alert when the latest MRS total is in the severe band or worse (17 or more)",
		"mood-worsening":         "alert when MRS depressive mood rises by more than 0.1 a day over 14 days",
		"hrv-drop":               "alert when the 3-day mean of HRV is more than 2 standard deviations below its 28-day baseline",
		"watch-silent":           "alert when no heart rate data arrives for 24 h",
		"checkins-silent":        "alert when no symptoms data arrives for 14 days",
		"estradiol-adherence":    "alert when fewer than 80% of scheduled estradiol doses are logged over 14 days",
		"progesterone-adherence": "alert when fewer than 80% of scheduled progesterone doses are logged over 14 days",
		"needling-after-start":   "microneedling: warn when one is planned less than 28 days after the start of estradiol, alert when one is done",
		"peel-near-needling":     "chemical peel: warn when one is planned within 14 days of microneedling, alert when one is done",
		"estradiol-recheck":      "expect an estradiol result 6 weeks after each regimen change, give or take 2 weeks; alert when it is overdue",
		"review-visit":           "expect a review visit 3 weeks after each regimen change, give or take 1 week; alert when it is overdue",
	}
	for _, r := range p.Rules {
		if got := r.Words(); got != want[r.ID] {
			t.Errorf("%s: %q\n want %q", r.ID, got, want[r.ID])
		}
	}
	if got := p.Regimen[0].Words(); got != "estradiol 0.05 mg transdermal, twice weekly" {
		t.Errorf("regimen: %q", got)
	}
}
