#!/usr/bin/env bash
# services.sh - the local Mosquitto, InfluxDB 1.8 and Mailpit (an SMTP
# server that keeps the mail it is sent) that patientpulse runs against on a
# developer's machine and in the demo.
#
#   bash scripts/services.sh install   install mosquitto (apt), influxd 1.8.10 and mailpit 1.33.1 (go install)
#   bash scripts/services.sh install-ui  build .local/bin/mailpit-ui, a mailpit with its web UI, once (make demo)
#   bash scripts/services.sh start     start all three on loopback, write .local/patientpulse.yaml
#   bash scripts/services.sh stop      stop them
#   bash scripts/services.sh status    show what runs; exit 0 only if all run and answer
#   bash scripts/services.sh apt-install PKG...   install Debian packages (used by make tools)
#
# Everything lives under .local/ in the project root (ignored by git): data
# in .local/mosquitto, .local/influxdb and .local/mailpit, pid files in
# .local/run, logs in .local/log. The broker admits no anonymous client:
# its accounts are in the dynamic security plugin's file
# .local/mosquitto/dynamic-security.json, made on the first start with an
# admin account whose generated password is kept in
# .local/mosquitto/admin.password; the pipeline's own account
# (password in .local/mosquitto/pipeline.password) is made by patientpulse
# serve, and each device's by patientpulse devices enroll, both with the
# settings in .local/patientpulse.yaml (0600). InfluxDB runs with
# authentication on: its admin user is made on the first start with a
# generated password kept in .local/influxdb/admin.password (0600), and
# patientpulse uses it (influx-token admin:password in the same file);
# InfluxDB refuses a request without it. Mailpit takes any SMTP AUTH
# username and password (or none), over plain SMTP, and shows the mail in
# its API (/api/v1/messages) and, when start finds .local/bin/mailpit-ui
# (which install-ui builds), in its web UI too: the mailpit of go install
# has none. The ports are not the standard
# ones because many machines, this project's included, already run a
# system Mosquitto on 1883:
#
#   PP_MQTT_PORT        Mosquitto                (default 11883)
#   PP_INFLUX_PORT      InfluxDB HTTP            (default 18086)
#   PP_INFLUX_RPC_PORT  InfluxDB backup/restore  (default 18088)
#   PP_SMTP_PORT        Mailpit SMTP             (default 11025)
#   PP_MAILPIT_PORT     Mailpit web UI and API   (default 18025)
#   MOSQUITTO, INFLUXD, MAILPIT  paths of the binaries, to override the search
#   MOSQUITTO_DYNSEC_PLUGIN  path of mosquitto_dynamic_security.so
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL=$ROOT/.local
RUN_DIR=$LOCAL/run
LOG_DIR=$LOCAL/log
MQTT_PORT=${PP_MQTT_PORT:-11883}
INFLUX_PORT=${PP_INFLUX_PORT:-18086}
INFLUX_RPC_PORT=${PP_INFLUX_RPC_PORT:-18088}
SMTP_PORT=${PP_SMTP_PORT:-11025}
MAILPIT_PORT=${PP_MAILPIT_PORT:-18025}
INFLUXD_MODULE=github.com/influxdata/influxdb/cmd/influxd@v1.8.10
MAILPIT_VERSION=v1.33.1
MAILPIT_MODULE=github.com/axllent/mailpit@$MAILPIT_VERSION
MAILPIT_UI=$LOCAL/bin/mailpit-ui
# Written when the build of $MAILPIT_UI fails, with the version it tried,
# so that the demo does not try it again each time; its log is kept.
MAILPIT_UI_FAILED=$LOCAL/bin/mailpit-ui.failed
MAILPIT_UI_LOG=$LOG_DIR/mailpit-ui-build.log
MOSQUITTO_CONF=$ROOT/deploy/mosquitto/mosquitto.conf
DYNSEC_FILE=$LOCAL/mosquitto/dynamic-security.json
ADMIN_PASSWORD_FILE=$LOCAL/mosquitto/admin.password
PIPELINE_PASSWORD_FILE=$LOCAL/mosquitto/pipeline.password
BROKER_ADMIN="admin"
INFLUX_PASSWORD_FILE=$LOCAL/influxdb/admin.password
INFLUX_ADMIN="admin"
PIPELINE_USER="patientpulse"

# progress WHAT USUALLY CMD...: says what a long step does and how long it
# usually takes, then that it is still at it.
# shellcheck source=scripts/progress.sh
source "$ROOT/scripts/progress.sh"

die() {
	printf 'services.sh: %s\n' "$*" >&2
	exit 1
}

# as_root runs a command as root, through sudo when we are not root.
as_root() {
	if ((EUID == 0)); then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root for: $*"
	fi
}

# find_mosquitto prints the path of the mosquitto binary, or fails.
find_mosquitto() {
	if [[ -n ${MOSQUITTO:-} ]]; then
		[[ -x $MOSQUITTO ]] && echo "$MOSQUITTO"
		return
	fi
	command -v mosquitto && return
	# Debian and Homebrew install it in sbin, not on a normal user's PATH.
	local c
	for c in /usr/sbin/mosquitto /usr/local/sbin/mosquitto \
		/opt/homebrew/sbin/mosquitto /usr/local/opt/mosquitto/sbin/mosquitto; do
		if [[ -x $c ]]; then
			echo "$c"
			return
		fi
	done
	return 1
}

# find_dynsec_plugin prints the path of Mosquitto's dynamic security plugin
# (in Debian's mosquitto package), or fails.
find_dynsec_plugin() {
	if [[ -n ${MOSQUITTO_DYNSEC_PLUGIN:-} ]]; then
		[[ -f $MOSQUITTO_DYNSEC_PLUGIN ]] && echo "$MOSQUITTO_DYNSEC_PLUGIN"
		return
	fi
	local c
	for c in /usr/lib/*/mosquitto_dynamic_security.so /usr/lib/mosquitto_dynamic_security.so \
		/usr/local/lib/mosquitto_dynamic_security.so /opt/homebrew/lib/mosquitto_dynamic_security.so; do
		if [[ -f $c ]]; then
			echo "$c"
			return
		fi
	done
	return 1
}

# go_bin_dirs prints the directories go install puts binaries in.
go_bin_dirs() {
	local gobin="" gopath="" p
	if command -v go >/dev/null; then
		gobin=$(go env GOBIN)
		gopath=$(go env GOPATH)
	fi
	gobin=${gobin:-${GOBIN:-}}
	if [[ -n $gobin ]]; then
		echo "$gobin"
		return
	fi
	gopath=${gopath:-${GOPATH:-$HOME/go}}
	local IFS=:
	for p in $gopath; do
		echo "$p/bin"
	done
}

# influxd_ok tells whether $1 is an influxd 1.x (one built with go install
# says "vunknown"); 2.x has another configuration and API.
influxd_ok() {
	[[ -x $1 ]] || return 1
	! "$1" version 2>/dev/null | grep -Eq '^InfluxDB v([2-9]|[1-9][0-9])\.'
}

# find_influxd prints the path of an influxd 1.x, or fails.
find_influxd() {
	if [[ -n ${INFLUXD:-} ]]; then
		influxd_ok "$INFLUXD" && echo "$INFLUXD"
		return
	fi
	local c dir
	if c=$(command -v influxd) && influxd_ok "$c"; then
		echo "$c"
		return
	fi
	while IFS= read -r dir; do
		if influxd_ok "$dir/influxd"; then
			echo "$dir/influxd"
			return
		fi
	done < <(go_bin_dirs)
	return 1
}

# find_mailpit prints the path of the mailpit binary, or fails.
find_mailpit() {
	if [[ -n ${MAILPIT:-} ]]; then
		[[ -x $MAILPIT ]] && echo "$MAILPIT"
		return
	fi
	command -v mailpit && return
	local dir
	while IFS= read -r dir; do
		if [[ -x $dir/mailpit ]]; then
			echo "$dir/mailpit"
			return
		fi
	done < <(go_bin_dirs)
	return 1
}

# apt_install installs Debian packages, updating the package lists first
# only when there are none or when the install fails.
apt_install() {
	command -v apt-get >/dev/null ||
		die "no apt-get: install $* with your system's package manager (macOS: brew install mosquitto)"
	local what="installing $* from Debian's packages with apt-get"
	if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
		progress "updating Debian's package lists (apt-get update)" "10-60 seconds" as_root apt-get update
	fi
	if ! progress "$what" "under a minute; chromium or docker-compose 1-3 minutes" \
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"; then
		progress "updating Debian's package lists (apt-get update)" "10-60 seconds" as_root apt-get update
		progress "$what" "under a minute; chromium or docker-compose 1-3 minutes" \
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
	fi
}

cmd_install() {
	if find_mosquitto >/dev/null; then
		echo "mosquitto: $(find_mosquitto)"
		if ! command -v mosquitto_pub >/dev/null; then
			apt_install mosquitto-clients
		fi
	else
		apt_install mosquitto mosquitto-clients
		echo "mosquitto: $(find_mosquitto)"
		echo "note: Debian's package also starts a system broker on 1883; patientpulse's local one uses $MQTT_PORT"
	fi

	local influxd
	if influxd=$(find_influxd); then
		echo "influxd: $influxd"
	else
		command -v go >/dev/null || die "go is needed to build influxd: install Go, then run this again"
		# Nothing else is printed meanwhile: go install is silent until done.
		progress "building influxd 1.8.10 into $(go_bin_dirs | head -n1) with go install, once" \
			"1-2 minutes, to download and compile its modules" go install "$INFLUXD_MODULE"
		influxd=$(find_influxd) || die "go install succeeded but no influxd 1.x in $(go_bin_dirs | paste -sd ' ')"
		echo "influxd: $influxd"
	fi

	local mailpit
	if mailpit=$(find_mailpit); then
		echo "mailpit: $mailpit"
	else
		command -v go >/dev/null || die "go is needed to build mailpit: install Go, then run this again"
		# Built with go install, it has Mailpit's API but not its web UI's
		# script and styles (its release builds have them; install-ui
		# builds one for the demo).
		progress "building mailpit 1.33.1 into $(go_bin_dirs | head -n1) with go install, once" \
			"2-4 minutes, to download and compile its modules" go install "$MAILPIT_MODULE"
		mailpit=$(find_mailpit) || die "go install succeeded but no mailpit in $(go_bin_dirs | paste -sd ' ')"
		echo "mailpit: $mailpit"
	fi
}

# mailpit_ui_ok tells whether $1 is a mailpit of $MAILPIT_VERSION: a
# build of another version is made again.
mailpit_ui_ok() {
	[[ -x $1 ]] && "$1" version --no-release-check 2>/dev/null | grep -q " $MAILPIT_VERSION compiled "
}

# logged runs a command with its output appended to $MAILPIT_UI_LOG.
logged() { "$@" >>"$MAILPIT_UI_LOG" 2>&1; }

# build_mailpit_ui builds Mailpit with its web UI into $MAILPIT_UI, in a
# copy of the module's source, as its release does (npm ci; npm run
# package, which bundles the UI into server/ui/dist with esbuild; go build
# with the version in config.Version), but for two packages of its
# package-lock.json that the npm registry does not serve: rapidoc 12, used
# only by the API's documentation page (/api/v1/), which is left out of the
# packages and of the bundle (that page stays blank), and sass-embedded
# 1.108.1, a peer dependency the build does not use (--legacy-peer-deps).
# So npm install, which keeps every other locked version, stands for npm
# ci; no package's install script runs (npm 11 runs none by default
# either). go build takes go install's flags, to reuse what go install
# compiled: with CGO_ENABLED=0, as the release builds, it compiles every
# package again (4 minutes on a busy machine). Output goes to $MAILPIT_UI_LOG.
# Each step checks its own failure: a caller's if turns set -e off in here.
build_mailpit_ui() (
	local dir tmp
	command -v npm >/dev/null || die "npm is needed to build Mailpit's web UI (make web installs it)"
	command -v go >/dev/null || die "go is needed to build mailpit"
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/mailpit-ui.XXXXXX") || exit 1
	trap 'rm -rf "$tmp"' EXIT
	# The module cache's copy is read-only.
	dir=$(cd "$tmp" && go mod download -json "$MAILPIT_MODULE" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -n $dir && -f $dir/package-lock.json ]] || die "go mod download $MAILPIT_MODULE gave no source with a package-lock.json"
	cp -R "$dir" "$tmp/src" && chmod -R u+w "$tmp/src" && cd "$tmp/src" || exit 1
	npm pkg delete dependencies.rapidoc || exit 1
	sed -i 's#entryPoints: \["server/ui-src/app.js", "server/ui-src/docs.js"\]#entryPoints: ["server/ui-src/app.js"]#' esbuild.config.mjs
	grep -q 'entryPoints: \["server/ui-src/app.js"\]' esbuild.config.mjs ||
		die "esbuild.config.mjs of $MAILPIT_MODULE is not as expected: see how its release builds the UI"
	progress "mailpit UI: installing its packages with npm (about 300, pinned by its package-lock.json)" \
		"30-60 seconds; seconds with npm's cache" \
		logged npm install --legacy-peer-deps --ignore-scripts --no-audit --no-fund || exit 1
	progress "mailpit UI: bundling it with esbuild (npm run package)" "20-40 seconds" logged npm run package || exit 1
	[[ -s server/ui/dist/app.js && -s server/ui/dist/app.css ]] || die "npm run package made no server/ui/dist/app.js and app.css"
	progress "mailpit UI: compiling mailpit with it embedded (go build)" \
		"15-60 seconds after go install built mailpit; 2-4 minutes otherwise" \
		logged go build -ldflags "-w -X github.com/axllent/mailpit/config.Version=$MAILPIT_VERSION" -o "$MAILPIT_UI.new" . || exit 1
	mailpit_ui_ok "$MAILPIT_UI.new" || die "the mailpit built is not $MAILPIT_VERSION"
	mv "$MAILPIT_UI.new" "$MAILPIT_UI"
)

# cmd_install_ui builds $MAILPIT_UI once; it fails, saying why and that the
# mailpit of go install (API only) stands in, when there is none.
cmd_install_ui() {
	local start=$SECONDS
	if mailpit_ui_ok "$MAILPIT_UI"; then
		echo "mailpit with web UI: ${MAILPIT_UI#"$ROOT"/}"
		return 0
	fi
	local rel_log=${MAILPIT_UI_LOG#"$ROOT"/} rel_failed=${MAILPIT_UI_FAILED#"$ROOT"/}
	if [[ $(cat "$MAILPIT_UI_FAILED" 2>/dev/null) == "$MAILPIT_VERSION" ]]; then
		echo "mailpit: no web UI: its build failed before (log: $rel_log); to try again: rm $rel_failed" >&2
		return 1
	fi
	mkdir -p "$LOG_DIR" "$(dirname "$MAILPIT_UI")"
	: >"$MAILPIT_UI_LOG"
	echo "mailpit: building Mailpit ${MAILPIT_VERSION#v} with its web UI into ${MAILPIT_UI#"$ROOT"/}, once (usually 1-3 minutes; log: $rel_log)"
	if build_mailpit_ui; then
		rm -f "$MAILPIT_UI_FAILED"
		echo "mailpit: built with its web UI in $((SECONDS - start))s: ${MAILPIT_UI#"$ROOT"/}"
		return 0
	fi
	echo "$MAILPIT_VERSION" >"$MAILPIT_UI_FAILED"
	tail -n 5 "$MAILPIT_UI_LOG" >&2 || true
	echo "mailpit: the web UI build failed (log: $rel_log); the mailpit of go install serves only the API. To try again: rm $rel_failed" >&2
	return 1
}

# running_pid prints the pid of the service $1 (mosquitto, influxd or
# mailpit) that we started, or fails: the pid file must name a live process
# of that program, not a stranger that got the pid after a reboot.
running_pid() {
	local pidfile=$RUN_DIR/$1.pid pid comm
	[[ -f $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	comm=$(cat "/proc/$pid/comm" 2>/dev/null || ps -p "$pid" -o comm= 2>/dev/null || true)
	[[ $comm == *"$1"* ]] || return 1
	echo "$pid"
}

# port_in_use tells whether something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# http_status prints the status code of GET http://127.0.0.1:$1$2, or
# nothing when there is no answer.
http_status() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 0
		printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
		read -r -t 2 _ code _ <&3 || true
		echo "${code:-}"
	) 2>/dev/null
}

# urlencode prints $1 form-encoded (application/x-www-form-urlencoded).
urlencode() {
	local LC_ALL=C s=$1 i c out=""
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9._~-]) out+=$c ;;
		*) printf -v c '%%%02X' "'$c" && out+=$c ;;
		esac
	done
	printf '%s' "$out"
}

# influx_query runs the InfluxQL statement $3 on the influxd on port $1,
# as user:password $2 (none when empty), and prints the status code, a
# space and the body ("000 " when there is no answer). Bash alone, through
# /dev/tcp: no password on any command line.
influx_query() {
	local LC_ALL=C port=$1 auth=$2 body
	body="q=$(urlencode "$3")"
	(
		exec 3<>"/dev/tcp/127.0.0.1/$port" || {
			echo "000 "
			exit 0
		}
		{
			printf 'POST /query HTTP/1.0\r\nHost: 127.0.0.1\r\n'
			if [[ -n $auth ]]; then
				printf 'Authorization: Basic %s\r\n' "$(printf '%s' "$auth" | base64 | tr -d '\n')"
			fi
			printf 'Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s' "${#body}" "$body"
		} >&3
		code="" reply=""
		read -r -t 5 _ code _ <&3 || true
		while IFS= read -r -t 5 line <&3 && [[ $line != $'\r' && -n $line ]]; do :; done
		reply=$(timeout 5 cat <&3 || true)
		printf '%s %s\n' "${code:-000}" "$reply"
	) 2>/dev/null
}

# influx_ok tells whether a reply of influx_query is a success: 200 and no
# statement error.
influx_ok() { [[ $1 == "200 "* && $1 != *'"error"'* ]]; }

mqtt_ready() { port_in_use "$1"; }
influx_ready() { [[ $(http_status "$1" /ping) == 204 ]]; }
# mailpit_ready checks the API on port $1 and the SMTP port recorded beside it.
mailpit_ready() {
	[[ $(http_status "$1" /api/v1/messages) == 200 ]] && port_in_use "$(cat "$RUN_DIR/mailpit.smtp-port" 2>/dev/null)"
}

# recorded_port prints the port the running service $1 was started on.
recorded_port() { cat "$RUN_DIR/$1.port" 2>/dev/null || true; }

# require_free_port refuses to go on when a port that should be ours is taken.
require_free_port() {
	local port=$1 what=$2 var=$3
	if port_in_use "$port"; then
		die "port $port ($what) is taken by something that is not ours; find it with: ss -ltnp 'sport = :$port' - or pick another port with $var=..."
	fi
}

# launch starts a service in its own session (so a Ctrl-C in the terminal
# that ran start does not reach it) with its output appended to its log,
# and records its pid and port.
launch() {
	local name=$1 port=$2
	shift 2
	local detach=()
	command -v setsid >/dev/null && detach=(setsid)
	# Without job control this background child leads no process group, so
	# setsid and nohup exec in place and $! is the service's own pid.
	${detach[@]+"${detach[@]}"} nohup "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
	echo $! >"$RUN_DIR/$name.pid"
	echo "$port" >"$RUN_DIR/$name.port"
}

# await waits until service $1 answers ($2 = readiness check, $3 = port,
# $4 = seconds); on failure it stops the service and shows its log's tail.
await() {
	local name=$1 check=$2 port=$3 secs=$4 i pid
	pid=$(<"$RUN_DIR/$name.pid")
	for ((i = 0; i < secs * 10; i++)); do
		if "$check" "$port"; then
			return 0
		fi
		# Only liveness here: until setsid and nohup have exec'd, the
		# process does not bear the service's name yet.
		if ! kill -0 "$pid" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	echo "services.sh: $name did not come up on port $port; tail of $LOG_DIR/$name.log:" >&2
	tail -n 20 "$LOG_DIR/$name.log" >&2 || true
	stop_one "$name" >/dev/null
	exit 1
}

# new_secret prints a random password: 48 hex digits.
new_secret() {
	od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
}

# init_accounts makes the broker's account store on the first start: the
# dynamic security plugin's file with the admin account, whose generated
# password is kept in $ADMIN_PASSWORD_FILE (0600), and a password for the
# pipeline's own account, which patientpulse serve makes.
init_accounts() {
	local ctrl password
	if [[ ! -s $DYNSEC_FILE ]]; then
		ctrl=$(command -v mosquitto_ctrl) ||
			die "mosquitto_ctrl not found (Debian's mosquitto package has it): run 'bash scripts/services.sh install'"
		(umask 077 && new_secret >"$ADMIN_PASSWORD_FILE")
		password=$(<"$ADMIN_PASSWORD_FILE")
		# On stdin, asked twice: not in the process list.
		printf '%s\n%s\n' "$password" "$password" | (umask 077 && "$ctrl" dynsec init "$DYNSEC_FILE" "$BROKER_ADMIN" >/dev/null)
		[[ -s $DYNSEC_FILE ]] || die "mosquitto_ctrl dynsec init made no $DYNSEC_FILE"
		chmod 600 "$DYNSEC_FILE"
		echo "mosquitto: made its account store with the admin account $BROKER_ADMIN (password in ${ADMIN_PASSWORD_FILE#"$ROOT"/})"
	elif [[ ! -s $ADMIN_PASSWORD_FILE ]]; then
		die "${ADMIN_PASSWORD_FILE#"$ROOT"/} is missing: remove ${DYNSEC_FILE#"$ROOT"/} to make the broker's accounts afresh (then give the enrolled devices theirs again with 'patientpulse devices broker-add')"
	fi
	if [[ ! -s $PIPELINE_PASSWORD_FILE ]]; then
		(umask 077 && new_secret >"$PIPELINE_PASSWORD_FILE")
	fi
}

write_mosquitto_conf() {
	local conf=$LOCAL/mosquitto/mosquitto.conf plugin
	plugin=$(find_dynsec_plugin) ||
		die "Mosquitto's dynamic security plugin (mosquitto_dynamic_security.so) not found: install Debian's mosquitto package, or set MOSQUITTO_DYNSEC_PLUGIN"
	{
		echo "# Generated by scripts/services.sh from deploy/mosquitto/mosquitto.conf;"
		echo "# change that file, not this one. Local overrides at the end."
		sed -E '/^[[:space:]]*(listener|certfile|keyfile|cafile|capath|tls_version|require_certificate|persistence_location|plugin|plugin_opt_config_file|log_dest|user)([[:space:]]|$)/d' "$MOSQUITTO_CONF"
		echo
		echo "listener $MQTT_PORT 127.0.0.1"
		echo "persistence_location $LOCAL/mosquitto/"
		echo "plugin $plugin"
		echo "plugin_opt_config_file $DYNSEC_FILE"
		echo "log_dest stdout"
		# As root, Mosquitto would switch to the mosquitto user, which cannot
		# write to .local; as another user this line has no effect.
		echo "user $(id -un)"
	} >"$conf"
	echo "$conf"
}

write_influxd_conf() {
	local conf=$LOCAL/influxdb/influxdb.conf dir=$LOCAL/influxdb
	cat >"$conf" <<EOF
# Generated by scripts/services.sh.
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"

[meta]
  dir = "$dir/meta"

[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:$INFLUX_PORT"
  auth-enabled = true
  log-enabled = false
  flux-enabled = true

[monitor]
  store-enabled = false

[subscriber]
  enabled = false
EOF
	echo "$conf"
}

start_mosquitto() {
	local bin=$1 pid conf
	if pid=$(running_pid mosquitto); then
		MQTT_PORT=$(recorded_port mosquitto)
		grep -q '^plugin_opt_config_file ' "$LOCAL/mosquitto/mosquitto.conf" 2>/dev/null ||
			die "the running mosquitto (pid $pid) has an older configuration, without the broker's accounts: run 'bash scripts/services.sh stop', then start again"
		echo "mosquitto: already running (pid $pid) on 127.0.0.1:$MQTT_PORT"
	else
		init_accounts
		conf=$(write_mosquitto_conf)
		launch mosquitto "$MQTT_PORT" "$bin" -c "$conf"
		echo "mosquitto: started (pid $(<"$RUN_DIR/mosquitto.pid")) on 127.0.0.1:$MQTT_PORT"
	fi
	await mosquitto mqtt_ready "$MQTT_PORT" 10
	# Mosquitto saves a persistent session's plain subscriptions across its
	# restart, not its shared ones ($share/...): say so before anyone runs
	# several instances against it (README, "Broker restarts").
	local version
	version=$("$bin" -h 2>/dev/null | head -n 1 || true)
	case $version in
	mosquitto\ version*)
		echo "mosquitto: $version keeps plain subscriptions across its restart, not shared ones: one serve (no --mqtt-share-group) loses nothing when it restarts, several would (README, \"Broker restarts\")"
		;;
	esac
}

# init_influx_auth makes InfluxDB's admin user once, on the first start
# with auth on (influxd takes CREATE USER ... WITH ALL PRIVILEGES without
# credentials only while it has no admin user), with a generated password
# kept in $INFLUX_PASSWORD_FILE (0600); later starts check that password.
# Either way it checks that a request without credentials is refused.
init_influx_auth() {
	local port=$1 password reply
	if [[ ! -s $INFLUX_PASSWORD_FILE ]]; then
		(umask 077 && new_secret >"$INFLUX_PASSWORD_FILE")
	fi
	password=$(<"$INFLUX_PASSWORD_FILE")
	if ! influx_ok "$(influx_query "$port" "$INFLUX_ADMIN:$password" "SHOW USERS")"; then
		reply=$(influx_query "$port" "" "CREATE USER \"$INFLUX_ADMIN\" WITH PASSWORD '$password' WITH ALL PRIVILEGES")
		if ! influx_ok "$reply"; then
			stop_one influxd >/dev/null
			die "influxd has an admin user already, but not with ${INFLUX_PASSWORD_FILE#"$ROOT"/}'s password (${reply%% *}): put that password back, or remove .local/influxdb to start afresh (its data goes too)"
		fi
		echo "influxd: made its admin user $INFLUX_ADMIN (password in ${INFLUX_PASSWORD_FILE#"$ROOT"/})"
	fi
	reply=$(influx_query "$port" "" "SHOW DATABASES")
	if [[ $reply != "401 "* ]]; then
		stop_one influxd >/dev/null
		die "influxd on 127.0.0.1:$port answered a query without credentials (${reply%% *}, want 401): its authentication is off"
	fi
}

start_influxd() {
	local bin=$1 pid conf var
	if pid=$(running_pid influxd); then
		INFLUX_PORT=$(recorded_port influxd)
		grep -q '^ *auth-enabled = true' "$LOCAL/influxdb/influxdb.conf" 2>/dev/null ||
			die "the running influxd (pid $pid) has an older configuration, without authentication: run 'bash scripts/services.sh stop', then start again"
		echo "influxd: already running (pid $pid) on 127.0.0.1:$INFLUX_PORT"
	else
		conf=$(write_influxd_conf)
		(
			# influxd lets INFLUXDB_* variables override its configuration
			# file; a developer's own (say INFLUXDB_TOKEN for compose) must
			# not move our ports or directories.
			for var in $(compgen -e); do
				if [[ $var == INFLUXDB_* ]]; then unset "$var"; fi
			done
			export INFLUXDB_HTTP_FLUX_ENABLED=true
			launch influxd "$INFLUX_PORT" "$bin" run -config "$conf"
		)
		echo "influxd: started (pid $(<"$RUN_DIR/influxd.pid")) on 127.0.0.1:$INFLUX_PORT"
	fi
	await influxd influx_ready "$INFLUX_PORT" 30
	init_influx_auth "$INFLUX_PORT"
}

# start_mailpit starts Mailpit, which takes any SMTP AUTH (or none) over
# plain SMTP, with its messages in .local/mailpit/mailpit.db, or finds it
# running.
start_mailpit() {
	local bin=$1 pid
	if pid=$(running_pid mailpit); then
		MAILPIT_PORT=$(recorded_port mailpit)
		SMTP_PORT=$(cat "$RUN_DIR/mailpit.smtp-port" 2>/dev/null || true)
		echo "mailpit: already running (pid $pid), SMTP on 127.0.0.1:$SMTP_PORT, web UI and API on 127.0.0.1:$MAILPIT_PORT"
	else
		echo "$SMTP_PORT" >"$RUN_DIR/mailpit.smtp-port"
		launch mailpit "$MAILPIT_PORT" "$bin" --smtp "127.0.0.1:$SMTP_PORT" --listen "127.0.0.1:$MAILPIT_PORT" \
			--database "$LOCAL/mailpit/mailpit.db" --smtp-auth-accept-any --smtp-auth-allow-insecure \
			--smtp-disable-rdns --disable-version-check
		echo "mailpit: started (pid $(<"$RUN_DIR/mailpit.pid")), SMTP on 127.0.0.1:$SMTP_PORT, web UI and API on 127.0.0.1:$MAILPIT_PORT"
	fi
	await mailpit mailpit_ready "$MAILPIT_PORT" 15
}

write_patientpulse_yaml() {
	# It holds the broker's and InfluxDB's passwords.
	(
		umask 077
		cat >"$LOCAL/patientpulse.yaml" <<EOF
# Written by scripts/services.sh start for the local services; rewritten on
# every start. Use: patientpulse serve --config .local/patientpulse.yaml
mqtt-url: tcp://127.0.0.1:$MQTT_PORT
influx-url: http://127.0.0.1:$INFLUX_PORT
influx-bucket: patientpulse
# InfluxDB 1.8's admin user, as user:password; serve creates the database.
influx-token: "$INFLUX_ADMIN:$(<"$INFLUX_PASSWORD_FILE")"
data-dir: "$LOCAL/data"
# The broker's accounts are patientpulse's to manage (dynamic security
# plugin): devices enroll/revoke add and remove each device's, serve makes
# its own (mqtt-username) with the admin account.
broker-accounts: true
broker-admin-username: $BROKER_ADMIN
broker-admin-password: "$(<"$ADMIN_PASSWORD_FILE")"
mqtt-username: $PIPELINE_USER
mqtt-password: "$(<"$PIPELINE_PASSWORD_FILE")"
EOF
	)
	chmod 600 "$LOCAL/patientpulse.yaml"
}

cmd_start() {
	local mosquitto influxd mailpit
	mosquitto=$(find_mosquitto) || die "mosquitto not found: run 'bash scripts/services.sh install'"
	influxd=$(find_influxd) || die "influxd 1.x not found: run 'bash scripts/services.sh install'"
	if [[ -z ${MAILPIT:-} ]] && mailpit_ui_ok "$MAILPIT_UI"; then
		mailpit=$MAILPIT_UI
	else
		mailpit=$(find_mailpit) || die "mailpit not found: run 'bash scripts/services.sh install'"
	fi
	mkdir -p "$RUN_DIR" "$LOG_DIR" "$LOCAL/mosquitto" "$LOCAL/influxdb" "$LOCAL/mailpit" "$LOCAL/data"
	# Check every port before starting anything, so that a conflict leaves
	# nothing half started.
	if ! running_pid mosquitto >/dev/null; then
		require_free_port "$MQTT_PORT" MQTT PP_MQTT_PORT
	fi
	if ! running_pid influxd >/dev/null; then
		require_free_port "$INFLUX_PORT" "InfluxDB HTTP" PP_INFLUX_PORT
		require_free_port "$INFLUX_RPC_PORT" "InfluxDB RPC" PP_INFLUX_RPC_PORT
	fi
	if ! running_pid mailpit >/dev/null; then
		require_free_port "$SMTP_PORT" "Mailpit SMTP" PP_SMTP_PORT
		require_free_port "$MAILPIT_PORT" "Mailpit web UI and API" PP_MAILPIT_PORT
	fi

	start_mosquitto "$mosquitto"
	start_influxd "$influxd"
	start_mailpit "$mailpit"
	write_patientpulse_yaml
	local mail_read="read the mail at http://127.0.0.1:$MAILPIT_PORT/api/v1/messages (no web UI in this mailpit: install-ui builds one)"
	if [[ $(http_status "$MAILPIT_PORT" /dist/app.js) == 200 ]]; then
		mail_read="read the mail in its web UI, http://127.0.0.1:$MAILPIT_PORT/, or at /api/v1/messages"
	fi

	cat <<EOF

Local services are up:
  MQTT      tcp://127.0.0.1:$MQTT_PORT    log .local/log/mosquitto.log
            no anonymous access; admin account $BROKER_ADMIN, password in .local/mosquitto/admin.password
  InfluxDB  http://127.0.0.1:$INFLUX_PORT  (1.8, Flux on; log .local/log/influxd.log)
            auth on; admin user $INFLUX_ADMIN, password in ${INFLUX_PASSWORD_FILE#"$ROOT"/}
  SMTP      smtp://127.0.0.1:$SMTP_PORT  (Mailpit: keeps every mail; any AUTH or none; log .local/log/mailpit.log)
            $mail_read
Run patientpulse against them:
  go run ./cmd/patientpulse serve --config .local/patientpulse.yaml
Stop them:
  bash scripts/services.sh stop
EOF
}

# stop_one stops service $1 with SIGTERM, waiting up to 30s before SIGKILL.
stop_one() {
	local name=$1 pid i
	if ! pid=$(running_pid "$name"); then
		rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.port" "$RUN_DIR/$name.smtp-port"
		echo "$name: not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "$name: no exit within 30s of SIGTERM, killing (pid $pid)"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.port" "$RUN_DIR/$name.smtp-port"
	echo "$name: stopped (pid $pid)"
}

cmd_stop() {
	stop_one mosquitto
	stop_one influxd
	stop_one mailpit
}

# status_one prints the state of service $1; it fails unless it runs and
# answers ($2 = readiness check).
status_one() {
	local name=$1 check=$2 pid port
	if ! pid=$(running_pid "$name"); then
		echo "$name: not running"
		return 1
	fi
	port=$(recorded_port "$name")
	if "$check" "$port"; then
		echo "$name: running (pid $pid) on 127.0.0.1:$port, answering"
	else
		echo "$name: running (pid $pid) on 127.0.0.1:$port, NOT answering; see .local/log/$name.log"
		return 1
	fi
}

cmd_status() {
	local rc=0
	status_one mosquitto mqtt_ready || rc=3
	status_one influxd influx_ready || rc=3
	status_one mailpit mailpit_ready || rc=3
	if [[ -f $LOCAL/patientpulse.yaml ]]; then
		echo "config: .local/patientpulse.yaml"
	fi
	return "$rc"
}

usage() {
	sed -n '2,40s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

case ${1:-} in
install) cmd_install ;;
install-ui) cmd_install_ui ;;
apt-install)
	shift
	apt_install "$@"
	;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
