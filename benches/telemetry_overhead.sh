#!/usr/bin/env bash
# Does OpenTelemetry export slow the agent down when the collector is down?
#
#   benches/telemetry_overhead.sh [WORK_DIR]
#
# Generates six 10-second 1280x720 MPEG-2 + AC-3 clips in MPEG-TS once, into WORK_DIR/clips
# (default WORK_DIR: target/bench-telemetry), then runs, alternating, ROUNDS times each
# (default 2), target/release/h264-agent --config WORK_DIR/agent.toml --once on a fresh copy of
# the clips (workers = 2, veryfast, CRF 21):
#   (off)  without telemetry: no [telemetry] section, every OTEL_* variable unset;
#   (down) with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a collector that is down: by default a
#          loopback port nobody listens on (connections refused); COLLECTOR=URL picks another,
#          e.g. COLLECTOR=http://10.255.255.1:4317 for one whose packets vanish (connections
#          time out).
# and prints, per run, three wall times: the whole --once run; its conversion, from the log's
# "h264-agent started" to its "h264-agent stopped"; and the sum of the jobs' own wall times
# (wall_secs of each "converted" log line). Then the totals and the ratios down/off. Only the
# whole run includes start-up and the bounded telemetry flush at exit (at most 3 s for the spans
# and 3 s for the metrics when the collector never answers).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-$root/target/bench-telemetry}"
rounds="${ROUNDS:-2}"
clip_count=6

mkdir -p "$work"
work="$(cd "$work" && pwd)"
agent="$root/target/release/h264-agent"

bash "$root/scripts/ensure-deps.sh"
echo "== building h264-agent (release)"
cargo build --release --manifest-path "$root/Cargo.toml" -p h264-agent

add() { awk -v a="$1" -v b="$2" 'BEGIN { print a + b }'; }

# A loopback port that was free a moment ago: connections to it are refused.
closed_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
collector="${COLLECTOR:-http://127.0.0.1:$(closed_port)}"

# --- clips, made once (and the shared helpers) ------------------------------------------------
# shellcheck source=clips.sh
source "$root/benches/clips.sh"

# --- the agent ----------------------------------------------------------------------------------

bench_agent_toml veryfast >"$work/agent.toml"

# Seconds since the epoch of the timestamp that starts the first log line matching `pattern`.
log_time() {
    local stamp
    stamp="$(grep -m1 "$2" "$1" | cut -d' ' -f1)"
    date -d "$stamp" +%s.%N
}

# Runs the agent once in mode `off` or `down`; prints "WALL CONVERSION JOBS" (seconds).
run_agent() {
    local mode="$1"
    rm -rf "$work/in" "$work/out" "$work/state"
    mkdir -p "$work/in"
    cp "$clips"/*.ts "$work/in/"
    local log="$work/agent-$mode.log"
    local -a env_args=(env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_PROTOCOL
        -u OTEL_SDK_DISABLED -u OTEL_SERVICE_NAME -u OTEL_RESOURCE_ATTRIBUTES)
    if [[ "$mode" == down ]]; then
        env_args+=("OTEL_EXPORTER_OTLP_ENDPOINT=$collector")
    fi
    local start end status=0
    start="$(now)"
    (cd "$work" && "${env_args[@]}" "$agent" --config "$work/agent.toml" --once) \
        >"$log" 2>&1 || status=$?
    end="$(now)"
    if ((status != 0)); then
        echo "h264-agent --once ($mode) exited $status; its log:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    local made
    made="$(find "$work/out" -name '*.mp4' | wc -l)"
    if ((made != clip_count)); then
        echo "h264-agent ($mode) made $made of $clip_count MP4 files; log in $log" >&2
        exit 1
    fi
    if [[ "$mode" == down ]] && ! grep -q "exporting traces and metrics over OTLP" "$log"; then
        echo "the agent did not export in mode down; log in $log" >&2
        exit 1
    fi
    local jobs conversion
    jobs="$(grep ' converted ' "$log" | grep -o 'wall_secs=[0-9.]*' | cut -d= -f2 |
        awk '{ s += $1 } END { printf "%.2f", s }')"
    conversion="$(elapsed "$(log_time "$log" 'h264-agent started')" \
        "$(log_time "$log" 'h264-agent stopped')")"
    echo "$(elapsed "$start" "$end") $conversion $jobs"
}

# --- measure ------------------------------------------------------------------------------------
echo "== $rounds rounds, $clip_count clips of 10 s 1280x720 MPEG-2, 2 at a time"
echo "== collector (down): $collector"
declare -A wall_total=([off]=0 [down]=0) conv_total=([off]=0 [down]=0)
declare -A jobs_total=([off]=0 [down]=0)
for round in $(seq 1 "$rounds"); do
    for mode in off down; do
        read -r wall conversion jobs <<<"$(run_agent "$mode")"
        printf 'round %s: telemetry %-4s  whole run %6s s  conversion %6s s  jobs %7s s\n' \
            "$round" "$mode" "$wall" "$conversion" "$jobs"
        wall_total[$mode]="$(add "${wall_total[$mode]}" "$wall")"
        conv_total[$mode]="$(add "${conv_total[$mode]}" "$conversion")"
        jobs_total[$mode]="$(add "${jobs_total[$mode]}" "$jobs")"
    done
done

for mode in off down; do
    printf '%-15s whole runs %7s s  conversion %7s s  jobs %7s s\n' "telemetry $mode:" \
        "${wall_total[$mode]}" "${conv_total[$mode]}" "${jobs_total[$mode]}"
done
awk -v d="${wall_total[down]}" -v o="${wall_total[off]}" \
    -v cd="${conv_total[down]}" -v co="${conv_total[off]}" \
    -v jd="${jobs_total[down]}" -v jo="${jobs_total[off]}" \
    'BEGIN { printf "ratio down/off: whole runs %.3f, conversion %.3f, jobs %.3f\n", d / o, cd / co, jd / jo }'
