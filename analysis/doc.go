// Package analysis judges each patient's data against the treatment plan
// their clinician set, and reports every change of a rule's verdict as a
// transition that a clinician can read.
//
// # Days
//
// Rules work on days: calendar days in the clinic's time zone
// (Config.Location). A sample belongs to the day of its point time (end
// for intervals: a night belongs to the morning it ends). A window of N
// days ending at a time t is the N days up to and including t's day; the
// current day counts while it lasts.
//
// # Wear time
//
// A day is judged for a metric only when it has enough data for it:
//   - sleep: a sleep record that day;
//   - symptoms: a check-in that day (of the rule's instrument, if set);
//   - activity and heart_rate: samples in at least Config.MinWearHours
//     distinct hours of the day (10 of 24 by default);
//   - vitals and dose: a sample that day.
//
// Days below that bar are left out. When a rule cannot judge because too
// few days are left, its verdict is "not judged" with the reason, and it
// neither starts nor stops holding.
//
// # Daily values
//
// A rule with per_day rolls each judged day's samples of its metric into
// one value: their sum, mean, min, max, count, or the last one. Trend and
// baseline rules without per_day use the mean.
//
// # Rule kinds
//
// threshold: over the window of `over` days, the aggregate (mean, min, max,
// sum, count or median) of the daily values when per_day is set, else of
// every sample of the judged days. It needs min_days judged days (default
// half the window's days, rounded up, at least 1). It holds while the value
// is below `below` or above `above`.
//
// trend: the least-squares slope, in units per day, of the daily values
// over the window against their day number. It needs min_days judged days
// (default half the window, at least 3). It holds while the slope is above
// slope_above or below slope_below.
//
// baseline: the z-score of the recent window against the patient's own
// baseline: z = (mean(recent) - mean(baseline)) / sd(baseline), where recent
// is the `recent` days ending today, baseline the `baseline` days before
// them, both of daily values, and sd the sample standard deviation. The
// baseline needs min_days judged days (default half, at least 3) and a
// non-zero sd; the recent window at least one judged day. It holds while z
// is below z_below or above z_above.
//
// silence: the time since the newest stored sample of the measurement (or
// of measurement.field), whatever the plan: found in InfluxDB when the
// patient is loaded, however old, and kept up to date by the live feed. It
// holds once that exceeds `for`. With no sample ever stored it counts from
// the first plan version's effective time.
//
// adherence: the share of scheduled doses of the medication that were
// logged, over the `over` span ending now. Each dose is scheduled by the
// regimen of the plan version in force at its time, counted from that
// version's effective time at the clinic's clock time (a monthly one keeps
// the day of the month, or falls on the last day of a shorter month); a
// version whose regimen lacks the medication schedules none of it. A
// scheduled dose is logged when a dose sample of that medication lies
// within half an interval of it (each sample counts for one scheduled dose
// at most), and it is counted only once that half interval is over, so a
// dose not yet late is never a missed one. It needs at least one counted
// dose. It holds while the share is below `below`.
//
// score: the instrument's total or subscale from the latest check-in that
// has it (a subscale is stored only when complete) and is at most 90 days
// old, or with `over` the mean over that many days of check-ins. It holds
// while the score is above `above`, below `below`, or in `band` or a worse
// published band (see the bands of MRS and AMS).
//
// timing: the procedures of kind `procedure` (planned or done; a done one
// for `not_within` or `at_least` days after it, a planned one as long as
// it is planned) against events, in calendar days: with not_within N and
// `of`, a procedure fewer than N days before or after an event; with
// at_least N and `after`, one fewer than N days after an event (0: the
// same day). An event is each planned or done procedure of `of.procedure`
// but itself, or of `of.medication`: each dose the regimen of the version
// in force makes due (counted as adherence counts them), or with
// `started` the effective time of each version whose regimen has it when
// the one before did not (the first version that has it included), with
// `changed` those and each version that changes its dose. A done
// procedure too close holds the rule; a planned one makes the verdict a
// forecast (reported as its own transition, at most of warning severity),
// so that the clinician planning it is warned before it is done; as it is
// done the forecast clears.
//
// followup: what must happen after the latest regimen change (a version
// whose regimen differs from the one before it, the first included; with
// `medication`, one that starts that medication or changes its dose):
// due on the change's day plus due_after, then every `every` days (with
// only `every`, from the change's day plus every). A due day is met by
// the newest sample of `metric` (however old: read from InfluxDB as a
// silence's is), or the newest done procedure of `procedure`, when it is
// no earlier than grace days before it (a late one meets it). Its state
// is due from grace days before the due day, overdue once grace days
// after it have passed unmet, and then the rule holds; grace is 7 days
// unless given (at most half of every).
//
// # Plan versions
//
// A plan change never blinds monitoring: the data are the patient's, not
// the plan's. Every judgement uses the rules and bounds of the version in
// force at the time judged, over the rule's whole window, days before that
// version took effect included. A rule with `since: change` ("is the new
// dose working?") judges only the days since its version took effect: its
// window is cut at the first day that starts at or after the effective
// time (a score rule without `over` judges only check-ins since then, and
// adherence only doses since then), and until it has enough of them it is
// not judged. The baseline window of a baseline rule is the patient's
// history in any case.
//
// A rule that holds, re-judged at a sweep or under a new version, is passed
// on (not recorded) as a ChangeUpdate transition with its value and
// sentence now, so that an open alert says what the rule says now.
//
// # Forecasts
//
// A threshold rule with `forecast` that does not hold projects its value:
// the least-squares line through the daily values of its window (per_day,
// or the daily mean) gives the slope b, and a windowed mean of a linear
// series moves by b per day, so the value is predicted to cross the bound
// in (bound - value) / b days. The forecast holds when that is within the
// horizon and the slope is clear of noise: |b| at least twice its standard
// error, with at least min_days judged days (and 3). It is reported as its
// own transition.
//
// # Several instances
//
// With several instances of serve (Evaluator.SetMembership), patients are
// hashed into partitions and an evaluator holds, judges and records only
// the patients of the partitions its instance owns: each write of
// transitions, rule states and views carries the partition's lease epoch
// (a registry.Fence), so an instance that lost a partition records
// nothing. A partition gained is read back in bulk and judged at once;
// one lost is let go. What the patient list and page show of a patient
// (each rule's verdict, each measurement's newest sample) is written as
// the patient's view in the registry when it changes, in batches, so
// that every instance can answer for every patient.
package analysis
