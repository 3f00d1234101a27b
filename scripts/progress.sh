#!/usr/bin/env bash
# progress.sh - run a long command, saying first what it does and how long
# it usually takes, then every 20 seconds that it is still at it, and at the
# end how long it took. The Makefile and the other scripts use it for the
# steps that print nothing for minutes (go build, go install, npm ci, apt).
#
#   bash scripts/progress.sh WHAT USUALLY COMMAND [ARG...]
#   bash scripts/progress.sh "building patientpulse with go build" \
#       "1-3 minutes the first time, seconds after" go build ./cmd/patientpulse
#
# Sourced, it defines the function progress with the same arguments.
# PP_PROGRESS_EVERY sets the reminder's period in seconds (default 20).
# The command's output and exit status pass through unchanged; the
# messages go to standard error, so that a caller capturing the command's
# output gets only that.

progress() {
	local what=$1 usually=$2 start=$SECONDS ticker rc=0
	shift 2
	printf '%s (usually %s)...\n' "$what" "$usually" >&2
	(
		# A read that times out, not a sleep: TERM ends it at once, and no
		# child process is left behind holding the terminal or a pipe open.
		# The pipe is opened read-write, so it never reaches end of file.
		exec 3<> <(:)
		while ! read -r -t "${PP_PROGRESS_EVERY:-20}" -u 3 _; do
			printf '  ... still %s (%ds so far)\n' "$what" "$((SECONDS - start))" >&2
		done
	) &
	ticker=$!
	"$@" || rc=$?
	kill "$ticker" 2>/dev/null || true
	wait "$ticker" 2>/dev/null || true
	if ((rc == 0)); then
		printf '%s: done in %ds\n' "$what" "$((SECONDS - start))" >&2
	else
		printf '%s: FAILED after %ds (exit %d)\n' "$what" "$((SECONDS - start))" "$rc" >&2
	fi
	return "$rc"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -uo pipefail
	if (($# < 3)); then
		sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
		exit 2
	fi
	progress "$@"
fi
