#!/usr/bin/env bash
# demo.sh - `make demo`: the local services, the pipeline, and a simulated
# HRT clinic: a cohort of virtual patients with their plans, whose watches
# send over MQTT and whose phone apps send over HTTPS (patientpulse
# simulate), demo staff logins and an on-call rota, and a Mailpit that
# keeps the mail serve sends (when serve has --smtp-url), with its web UI
# (built once by services.sh install-ui). Ctrl-C stops everything this
# script started.
#
#   PP_HTTP_PORT     the pipeline's HTTP port (default 8080)
#   PP_DEMO_PATIENTS how many virtual patients (default 12)
#   (and the PP_*_PORT settings of scripts/services.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=$ROOT/bin/patientpulse
CONFIG=.local/patientpulse.yaml
HTTP_PORT=${PP_HTTP_PORT:-8080}
URL=http://127.0.0.1:$HTTP_PORT
MQTT_PORT=${PP_MQTT_PORT:-11883}
SMTP_PORT=${PP_SMTP_PORT:-11025}
MAIL_URL=http://127.0.0.1:${PP_MAILPIT_PORT:-18025}
PATIENTS=${PP_DEMO_PATIENTS:-12}

pids=()
cleanup() {
	# A second Ctrl-C (or make passing the signal on) must not cut the cleanup short.
	trap "" INT TERM
	trap - EXIT
	echo
	echo "demo: stopping"
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	bash scripts/services.sh stop
}
trap cleanup INT TERM EXIT

# shellcheck source=scripts/progress.sh
source scripts/progress.sh

# Always (re)built: a binary from an older checkout would not know the
# settings that services.sh writes.
progress "demo: building patientpulse with go build" \
	"seconds after make demo's own build; 1-3 minutes on a first build" \
	go build -trimpath -o "$BIN" ./cmd/patientpulse
# Once: a Mailpit with its web UI, to watch the pages arrive; when its
# build fails, the mailpit of make tools (API only) stands in.
bash scripts/services.sh install-ui || true
echo "demo: starting the local Mosquitto, InfluxDB and Mailpit (usually a few seconds)"
bash scripts/services.sh start

# The mailpit of go install, standing in when install-ui failed, serves
# its API but no web UI.
mail_api_note=""
if ! curl -sf -o /dev/null "$MAIL_URL/dist/app.js"; then
	mail_api_note=$'\n                 '"this Mailpit has no web UI (its build: .local/log/mailpit-ui-build.log): read the mail at $MAIL_URL/api/v1/messages"
fi

# admin runs an admin command on the demo's registry, .local/data, which
# the first one creates (--init); the demo names it once, below, instead
# of each command on stderr.
admin() {
	{ "$BIN" "$@" --config "$CONFIG" --init 2>&1 >&3 3>&- | { grep -v '^registry: ' || true; } >&2; } 3>&1
}
echo "demo: registry $(grep '^data-dir:' "$CONFIG" | cut -d'"' -f2)/patientpulse.db"

# login USER ROLE adds a staff member once, with a generated password kept
# under .local (0600), and prints the password.
login() {
	local user=$1 role=$2 file=.local/$1.password
	if [[ -s $file ]] && ! admin staff list | grep -q "^$user "; then
		rm -f "$file" # kept from a registry since removed
	fi
	if [[ ! -s $file ]]; then
		if admin staff list | grep -q "^$user "; then
			echo "demo: $user exists but its password ($file) is lost; move .local/data (the demo's registry) away to start afresh" >&2
			exit 1
		fi
		(umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$file.new")
		admin staff add --username "$user" --role "$role" <"$file.new" >/dev/null
		mv "$file.new" "$file"
	fi
	cat "$file"
}
CLINICIAN_PASSWORD=$(login demo-clinician clinician)
ONCALL_PASSWORD=$(login demo-oncall oncall)
ADMIN_PASSWORD=$(login demo-admin admin)
# Where the rota's members are paged: mail, which Mailpit keeps.
for user in demo-oncall demo-admin; do
	admin staff contact --username "$user" --email "$user@demo.clinic.invalid" >/dev/null
done

# The on-call rota: demo-oncall first, the admin a quarter of an hour on.
cat >.local/oncall.yaml <<EOF
timezone: UTC
tiers:
  - {name: primary, after: 0m, shifts: [{staff: [demo-oncall], days: [all], from: "00:00", to: "24:00"}]}
  - {name: secondary, after: 15m, shifts: [{staff: [demo-admin], days: [all], from: "00:00", to: "24:00"}]}
EOF

"$BIN" serve --config "$CONFIG" --http-addr "127.0.0.1:$HTTP_PORT" --oncall-schedule .local/oncall.yaml \
	--alert-fire-after 0s --analysis-interval 5s \
	--smtp-url "smtp://127.0.0.1:$SMTP_PORT" --smtp-from patientpulse@demo.clinic.invalid >>.local/log/serve.log 2>&1 &
pids+=($!)
echo "demo: starting patientpulse serve on $URL (usually a few seconds; log: .local/log/serve.log)"
for _ in $(seq 1 60); do
	curl -sf "$URL/readyz" >/dev/null && break
	sleep 0.5
done
curl -sf "$URL/readyz" >/dev/null || { tail -20 .local/log/serve.log; echo "demo: serve did not become ready" >&2; exit 1; }

# The clinic: 30 days of history at once, then live every minute.
"$BIN" simulate --config "$CONFIG" --url "$URL" --patients "$PATIENTS" --backfill 720h --interval 1m \
	--clinician demo-clinician >>.local/log/simulate.log 2>&1 &
pids+=($!)
echo "demo: simulating $PATIENTS patients; sending their last 30 days (usually 10-60 seconds; log: .local/log/simulate.log)"
for _ in $(seq 1 240); do
	grep -q "history sent" .local/log/simulate.log 2>/dev/null && break
	kill -0 "${pids[1]}" 2>/dev/null || { tail -5 .local/log/simulate.log; echo "demo: simulate stopped" >&2; exit 1; }
	sleep 0.5
done
grep "history sent" .local/log/simulate.log | tail -1
echo "demo: publishing last week's summaries to the simulated devices (a few seconds)"
"$BIN" summaries publish --config "$CONFIG" 2>>.local/log/simulate.log | sed 's/^/demo: /' ||
	{ tail -3 .local/log/simulate.log; echo "demo: summaries publish failed" >&2; exit 1; }

cat <<EOF

patientpulse is running with a simulated clinic (logs: .local/log/serve.log, .local/log/simulate.log)
  dashboard      $URL/
                   clinician   demo-clinician / $CLINICIAN_PASSWORD   (the $PATIENTS simulated patients)
                   on call     demo-oncall / $ONCALL_PASSWORD   (every active alert; critical ones are mailed to this account)
                   admin       demo-admin / $ADMIN_PASSWORD   (everything: staff, audit log; paged 15 minutes on)
  API            $URL  (health $URL/healthz, readiness $URL/readyz, metrics $URL/metrics)
  MQTT broker    tcp://127.0.0.1:$MQTT_PORT  (no anonymous access: each device logs in with its id and token)
  InfluxDB       $(grep influx-url "$CONFIG" | cut -d' ' -f2)  (bucket patientpulse)
  mail (Mailpit): $MAIL_URL — pages to on-call staff arrive here; their links acknowledge in one tap
                 SMTP smtp://127.0.0.1:$SMTP_PORT  (any login, or none)$mail_api_note
  patients       sim-p001 ... : responding to treatment, and one persona for each rule kind
                 (sleep decline, missed doses, a silent watch, worsening mood, an HRV drop,
                 rising hot flushes caught by a forecast, severe symptoms, high hematocrit)
  plans          patientpulse plans show --config $CONFIG --patient sim-p002
  summaries      each patient's week, retained on pp/v1/devices/<device>/summary; again: patientpulse summaries publish --config $CONFIG
                 a patient's own page: enrol a device for them at $URL/admin, then open $URL/me#token=<its token>
Ctrl-C stops everything.
EOF
wait "${pids[0]}"
