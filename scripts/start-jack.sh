#!/usr/bin/env bash
# Start a paced virtual audio device for tests: a JACK server with the dummy driver
# (Debian jackd2). The dummy driver consumes audio at the real rate, unlike ALSA's null
# device (see DESIGN.md section 7). Idempotent: does nothing if the server already runs.
#
# Usage: scripts/start-jack.sh [NAME]        start (default NAME: $JACK_DEFAULT_SERVER or gpusynth)
#        scripts/start-jack.sh --stop [NAME] stop the server this script started (by its pid file)
# Env:   JACK_RATE (48000), JACK_PERIOD (256), JACK_WAIT_S (10), JACK_LOG (/tmp/jackd-$USER-NAME.log)
# Clients then use JACK_DEFAULT_SERVER=NAME (and JACK_NO_START_SERVER=1 so libjack never
# auto-starts a server of its own). Exit status: 0 when the server is up, 1 otherwise.
set -u

STOP=0
if [ "${1:-}" = "--stop" ]; then STOP=1; shift; fi
NAME="${1:-${JACK_DEFAULT_SERVER:-gpusynth}}"
RATE="${JACK_RATE:-48000}"
PERIOD="${JACK_PERIOD:-256}"
WAIT_S="${JACK_WAIT_S:-10}"
TAG="$(id -u)-$NAME"
LOG="${JACK_LOG:-/tmp/jackd-$TAG.log}"
PIDFILE="/tmp/jackd-$TAG.pid"
export JACK_NO_START_SERVER=1
export JACK_DEFAULT_SERVER="$NAME"

is_up() { jack_wait -s "$NAME" -c 2>/dev/null | grep -qx running; }

if [ "$STOP" = 1 ]; then
    if [ -f "$PIDFILE" ]; then
        pid="$(cat "$PIDFILE")"
        if kill -0 "$pid" 2>/dev/null && grep -q jackd "/proc/$pid/cmdline" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$PIDFILE"
    fi
    exit 0
fi

if ! command -v jackd >/dev/null || ! command -v jack_wait >/dev/null; then
    echo "start-jack: jackd/jack_wait not found (Debian/Ubuntu: apt install jackd2)" >&2
    exit 1
fi

if is_up; then
    echo "$NAME"
    exit 0
fi

start() {  # $@: extra jackd options
    nohup jackd "$@" -n "$NAME" -d dummy -r "$RATE" -p "$PERIOD" >"$LOG" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PIDFILE"
    local tries=$((WAIT_S * 10))
    for _ in $(seq "$tries"); do
        if is_up; then return 0; fi
        kill -0 "$pid" 2>/dev/null || return 1  # jackd died
        sleep 0.1
    done
    kill "$pid" 2>/dev/null
    return 1
}

if start || start --no-realtime; then
    echo "$NAME"
    exit 0
fi
echo "start-jack: jackd did not come up; log: $LOG" >&2
tail -n 20 "$LOG" >&2
rm -f "$PIDFILE"
exit 1
