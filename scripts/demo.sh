#!/usr/bin/env bash
# demo.sh - `make demo`: the local services, the pipeline, a demo patient
# whose watch sends samples over MQTT and whose phone app sends them over
# HTTPS, and demo staff logins. Ctrl-C stops everything this script started.
#
#   PP_HTTP_PORT  the pipeline's HTTP port (default 8080)
#   (and the PP_*_PORT settings of scripts/services.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=$ROOT/bin/patientpulse
CONFIG=.local/patientpulse.yaml
HTTP_PORT=${PP_HTTP_PORT:-8080}
URL=http://127.0.0.1:$HTTP_PORT
MQTT_PORT=${PP_MQTT_PORT:-11883}
PATIENT=demo-p001
WATCH=demo-watch-001
APP=demo-app-001

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

# Always (re)built: a binary from an older checkout would not know the
# settings that services.sh writes.
go build -trimpath -o "$BIN" ./cmd/patientpulse
bash scripts/services.sh start

# token ID enrols device ID once and keeps its token under .local (0600),
# since the registry keeps only its hash. A device enrolled on an earlier
# run gets its broker account again from its token (the broker's account
# store may be newer than the registry).
token() {
	local device=$1 file=.local/$1.token
	if [[ -s $file ]] && ! "$BIN" devices list --config "$CONFIG" | grep -q "^$device "; then
		rm -f "$file" # kept from a registry since removed
	fi
	if [[ ! -s $file ]]; then
		if "$BIN" devices list --config "$CONFIG" | grep -q "^$device "; then
			echo "demo: $device is enrolled but its token ($file) is lost; move .local/data (the demo's registry) away to start afresh" >&2
			exit 1
		fi
		(umask 077 && "$BIN" devices enroll --config "$CONFIG" --patient "$PATIENT" --device "$device" >"$file.new")
		mv "$file.new" "$file"
	else
		"$BIN" devices broker-add --config "$CONFIG" --device "$device" <"$file"
	fi
	cat "$file"
}
"$BIN" patients list --config "$CONFIG" | grep -q "^$PATIENT " ||
	"$BIN" patients add --config "$CONFIG" --id "$PATIENT" --name "Demo Patient"
WATCH_TOKEN=$(token "$WATCH")
APP_TOKEN=$(token "$APP")

# login USER ROLE adds a staff member once, with a generated password kept
# under .local (0600), and prints the password.
login() {
	local user=$1 role=$2 file=.local/$1.password
	if [[ -s $file ]] && ! "$BIN" staff list --config "$CONFIG" | grep -q "^$user "; then
		rm -f "$file" # kept from a registry since removed
	fi
	if [[ ! -s $file ]]; then
		if "$BIN" staff list --config "$CONFIG" | grep -q "^$user "; then
			echo "demo: $user exists but its password ($file) is lost; move .local/data (the demo's registry) away to start afresh" >&2
			exit 1
		fi
		(umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$file.new")
		"$BIN" staff add --config "$CONFIG" --username "$user" --role "$role" <"$file.new" >/dev/null
		mv "$file.new" "$file"
	fi
	cat "$file"
}
CLINICIAN_PASSWORD=$(login demo-clinician clinician)
ADMIN_PASSWORD=$(login demo-admin admin)
"$BIN" staff assign --config "$CONFIG" --username demo-clinician --patient "$PATIENT" 2>/dev/null
# The demo patient's plan: the menopause template, in force since 30 days ago.
if ! "$BIN" plans show --config "$CONFIG" --patient "$PATIENT" >/dev/null 2>&1; then
	sed -e "s/^patient: .*/patient: $PATIENT/" -e "s/^effective: [^ ]*/effective: $(date -u -d '-30 days' +%Y-%m-%dT00:00:00Z)/" \
		examples/plans/menopause-estradiol-progesterone.yaml | "$BIN" plans apply --config "$CONFIG" -f -
fi

"$BIN" serve --config "$CONFIG" --http-addr "127.0.0.1:$HTTP_PORT" >>.local/log/serve.log 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do
	curl -sf "$URL/readyz" >/dev/null && break
	sleep 0.5
done
curl -sf "$URL/readyz" >/dev/null || { tail -20 .local/log/serve.log; echo "demo: serve did not become ready" >&2; exit 1; }

now() { date -u -d "$1" +%Y-%m-%dT%H:%M:%SZ; }
# The watch publishes and hears the answer on one connection (mosquitto_rr:
# publish, then wait for a message on the errors topic): its account is
# bound to its own client id, so a second connection would replace it.
echo "demo: the watch publishes a night's sleep and heart rate over MQTT, one reading out of range"
mosquitto_rr -p "$MQTT_PORT" -q 1 -i "$WATCH" -u "$WATCH" -P "$WATCH_TOKEN" -W 10 \
	-t "pp/v1/devices/$WATCH/data" -e "pp/v1/devices/$WATCH/errors" -m "{\"seq\": $(date +%s), \"samples\": [
  {\"type\": \"sleep\", \"start\": \"$(now '-8 hours')\", \"end\": \"$(now '-1 hour')\", \"total_min\": 400, \"deep_min\": 70, \"rem_min\": 90, \"light_min\": 210, \"awake_min\": 30, \"efficiency\": 0.9},
  {\"type\": \"heart_rate\", \"time\": \"$(now '-5 minutes')\", \"bpm\": 68},
  {\"type\": \"heart_rate\", \"time\": \"$(now '-1 minute')\", \"bpm\": 400}]}" | sed 's/^/errors topic: /' ||
	echo "demo: no answer on the errors topic within 10s" >&2
echo "demo: the phone app posts a symptom check-in and a dose over HTTPS"
curl -s -X POST "$URL/v1/ingest" -H "Authorization: Bearer $APP_TOKEN" -H 'Content-Type: application/json' \
	-d "{\"seq\": $(date +%s), \"samples\": [
  {\"type\": \"symptoms\", \"time\": \"$(now '-10 minutes')\", \"instrument\": \"mrs\", \"items\": {\"hot_flushes\": 3, \"sleep_problems\": 2}},
  {\"type\": \"dose\", \"time\": \"$(now '-2 hours')\", \"medication\": \"estradiol\", \"route\": \"transdermal\", \"amount\": 0.05, \"unit\": \"mg\"}]}"
echo

cat <<EOF

patientpulse is running (log: .local/log/serve.log)
  dashboard      $URL/  sign in as demo-clinician / $CLINICIAN_PASSWORD
                 (or demo-admin / $ADMIN_PASSWORD: every patient, staff, audit log)
  API            $URL  (health $URL/healthz, readiness $URL/readyz, metrics $URL/metrics)
  MQTT broker    tcp://127.0.0.1:$MQTT_PORT  (no anonymous access: a device logs in with its id and token)
  InfluxDB       $(grep influx-url "$CONFIG" | cut -d' ' -f2)  (bucket patientpulse)
  demo patient   $PATIENT  (plan: patientpulse plans show --config $CONFIG --patient $PATIENT)
  demo devices   $WATCH (MQTT: username $WATCH, password its token) and $APP (HTTPS)
  demo tokens    .local/$WATCH.token, .local/$APP.token
The dashboard lists the clinician's patients; the plan's verdicts are at
  $URL/v1/patients/$PATIENT/transitions  (signed in, or with a staff API token)
Charts and alerts come with later releases. Send more data with the
commands in the README.
Ctrl-C stops everything.
EOF
wait "${pids[0]}"
