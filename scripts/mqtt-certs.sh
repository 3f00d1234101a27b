#!/usr/bin/env bash
# mqtt-certs.sh - a private CA and a certificate for the broker's TLS
# listener (8883) in docker-compose.yml, for trials: written to
# deploy/mosquitto/certs/ (ca.crt, server.crt, server.key), the CA's key to
# .local/mqtt-ca.key, away from the broker.
#
#   bash scripts/mqtt-certs.sh HOSTNAME [HOSTNAME...]
#
# The certificate names every HOSTNAME (and localhost); devices verify the
# broker with ca.crt. It refuses to overwrite existing files. The key is
# made readable by uid 1883, the broker's user in eclipse-mosquitto, and by
# no one else (chown needs root; otherwise it says what to run).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/deploy/mosquitto/certs
CA_KEY=$ROOT/.local/mqtt-ca.key
DAYS=${PP_CERT_DAYS:-825}

if (($# == 0)); then
	sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
fi
command -v openssl >/dev/null || { echo "mqtt-certs.sh: openssl is needed (apt-get install openssl)" >&2; exit 1; }
for f in "$DIR/ca.crt" "$DIR/server.crt" "$DIR/server.key" "$CA_KEY"; do
	if [[ -e $f ]]; then
		echo "mqtt-certs.sh: $f exists; move the old set away first" >&2
		exit 1
	fi
done
mkdir -p "$DIR" "$(dirname "$CA_KEY")"
san="DNS:localhost"
for h in "$@"; do
	if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+=",IP:$h"; else san+=",DNS:$h"; fi
done

umask 077
openssl req -x509 -newkey rsa:3072 -nodes -days "$DAYS" -subj "/CN=patientpulse MQTT CA" \
	-keyout "$CA_KEY" -out "$DIR/ca.crt" 2>/dev/null
openssl req -newkey rsa:3072 -nodes -subj "/CN=$1" -keyout "$DIR/server.key" -out "$DIR/server.csr" 2>/dev/null
openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$CA_KEY" -CAcreateserial \
	-days "$DAYS" -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san") \
	-out "$DIR/server.crt" 2>/dev/null
rm -f "$DIR/server.csr" "$DIR/ca.srl"
chmod 644 "$DIR/ca.crt" "$DIR/server.crt"
chmod 600 "$DIR/server.key" "$CA_KEY"
if chown 1883 "$DIR/server.key" 2>/dev/null; then
	owner="owned by uid 1883"
else
	owner="NOT yet readable by the broker: run sudo chown 1883 ${DIR#"$ROOT"/}/server.key"
fi
echo "mqtt-certs.sh: made ${DIR#"$ROOT"/}/{ca.crt,server.crt,server.key} for $san, valid $DAYS days; server.key $owner"
echo "mqtt-certs.sh: the CA's key is ${CA_KEY#"$ROOT"/}; give devices ${DIR#"$ROOT"/}/ca.crt"
