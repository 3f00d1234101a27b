#!/bin/sh
# check-config.sh - docker-compose.yml's check-config service: every other
# service waits for it to succeed, so that `docker compose up` starts
# nothing on the placeholder secrets of .env.example, on short ones, or
# without the broker's TLS certificate.
#
# It reads the secrets from its environment (set from .env by the compose
# file) and the certificate from $CERTS_DIR (default /mosquitto/certs, the
# mount of deploy/mosquitto/certs/). $SECRETS names the secrets to check
# (default: those every service needs) and CHECK_CERTS=no skips the
# certificate: the cluster profile's check-cluster-config checks
# POSTGRES_PASSWORD alone that way. It runs as the broker's user (uid
# 1883 in eclipse-mosquitto), so a key it can read the broker can read.
# POSIX sh: it runs in the broker's image, which has busybox's. It never
# prints a secret.
set -u

MIN_LENGTH=16
CERTS_DIR=${CERTS_DIR:-/mosquitto/certs}
SECRETS=${SECRETS:-MOSQUITTO_ADMIN_PASSWORD MOSQUITTO_PIPELINE_PASSWORD INFLUXDB_ADMIN_PASSWORD INFLUXDB_TOKEN GRAFANA_ADMIN_PASSWORD}
CHECK_CERTS=${CHECK_CERTS:-yes}
problems=0

problem() {
	echo "check-config: $*" >&2
	problems=$((problems + 1))
}

# check NAME: the variable NAME must be set, at least $MIN_LENGTH
# characters long, and no placeholder.
check() {
	eval "value=\${$1:-}"
	# shellcheck disable=SC2154 # set by the eval
	lower=$(printf '%s' "$value" | tr 'A-Z' 'a-z')
	case $lower in
	"")
		problem "$1 is not set in .env"
		;;
	*change-me* | *changeme* | *change_me* | *replace-me* | *placeholder* | *"<"* | *">"*)
		problem "$1 is still the placeholder of .env.example: set a generated secret (openssl rand -hex 24)"
		;;
	*)
		if [ "${#value}" -lt "$MIN_LENGTH" ]; then
			problem "$1 is too short (${#value} characters, want at least $MIN_LENGTH): set a generated secret (openssl rand -hex 24)"
		fi
		;;
	esac
}

for name in $SECRETS; do
	check "$name"
done

for f in ca.crt server.crt server.key; do
	[ "$CHECK_CERTS" = no ] && break
	if [ ! -s "$CERTS_DIR/$f" ]; then
		problem "deploy/mosquitto/certs/$f is missing: the broker's TLS listener (8883) needs ca.crt, server.crt and server.key there (a development set: bash scripts/mqtt-certs.sh HOSTNAME)"
	elif [ ! -r "$CERTS_DIR/$f" ]; then
		problem "deploy/mosquitto/certs/$f is not readable by the broker (uid 1883): chown 1883 it, or chmod g+r it with group 1883"
	fi
done

if [ "$problems" -gt 0 ]; then
	echo "check-config: $problems problem(s) in .env or deploy/mosquitto/certs; nothing started" >&2
	exit 1
fi
if [ "$CHECK_CERTS" = no ]; then
	echo "check-config: $SECRETS in place"
else
	echo "check-config: secrets and the broker's certificate are in place"
fi
