#!/usr/bin/env bash
# test.sh - `make test`'s test runs, in three lanes at once, so that the
# whole of CI stays well under 30 minutes on a 2-core machine:
#   1. cmd/patientpulse's two longest tests, which mostly wait: the
#      4-minute InfluxDB outage with a broker restart, and bench --quick;
#      without the race detector (the paths they drive are raced by the
#      other tests) and so lighter on the cores the other lanes use;
#   2. cmd/patientpulse's other tests on SQLite, then those of
#      POSTGRES_CMD_RUN again on Postgres;
#   3. every other package, one at a time, then REGISTRY_PKGS on Postgres.
# Each test process starts its own Mosquitto, influxd and Mailpit on free
# loopback ports. It exits non-zero when any lane failed, naming it.
#
#   GO=go REGISTRY_PKGS="./alerts ..." POSTGRES_CMD_RUN='^(...)$' bash scripts/test.sh
set -uo pipefail
GO=${GO:-go}
long='^(TestLongOutageAndBrokerRestart|TestBenchCommand)$'
cmd=./cmd/patientpulse

echo "testing in three lanes at once (usually 15-20 minutes; the packages' results appear as each ends):"
echo "  1. $cmd's outage and bench tests, without the race detector"
echo "  2. $cmd's other tests on SQLite, then its registry tests on Postgres"
echo "  3. the other packages on SQLite, then the registry's users on Postgres"

"$GO" test -count=1 -timeout 20m -run "$long" "$cmd" &
lane1=$!
{
	"$GO" test -race -count=1 -timeout 25m -skip "$long" "$cmd" &&
		PP_TEST_REGISTRY=postgres "$GO" test -race -count=1 -timeout 20m -run "$POSTGRES_CMD_RUN" "$cmd"
} &
lane2=$!
others=$("$GO" list ./... | grep -v '/cmd/patientpulse$')
# shellcheck disable=SC2086 # word splitting intended: package lists
"$GO" test -race -count=1 -timeout 20m -p 1 $others &&
	PP_TEST_REGISTRY=postgres "$GO" test -race -count=1 -timeout 20m -p 1 $REGISTRY_PKGS
lane3=$?
wait $lane2
lane2=$?
wait $lane1
lane1=$?

failed=0
for lane in 1 2 3; do
	rc=$(eval echo "\$lane$lane")
	if [ "$rc" -ne 0 ]; then
		echo "test lane $lane failed (exit $rc)" >&2
		failed=1
	fi
done
exit $failed
