#!/usr/bin/env bash
# How much faster is a remux of already-compliant H.264 than re-encoding the same file?
#
#   benches/remux.sh [WORK_DIR]
#
# Makes once, into WORK_DIR/clips (default WORK_DIR: target/bench-remux), two 60-second
# 1280x720 H.264 clips (High profile, yuv420p, progressive, 29.97 frames/s) with AAC audio in
# MPEG-TS: what the agent copies rather than re-encodes. Then runs, alternating, ROUNDS times
# each (default 2), target/release/h264-agent --once (workers = 2, veryfast, CRF 21) on a
# fresh copy of them:
#   (remux)  with the default `remux = true`: the video is copied, the audio too;
#   (encode) with `remux = false`: the same files re-encoded with libx264;
# and prints each wall time, the totals and the ratio encode/remux (goal: 20 or more). The
# agent's log says which mode each job took; the script checks it.
# NO_BUILD=1 uses target/release/h264-agent as it is.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-$root/target/bench-remux}"
rounds="${ROUNDS:-2}"
clip_count=2

mkdir -p "$work"
work="$(cd "$work" && pwd)"
agent="$root/target/release/h264-agent"

bash "$root/scripts/ensure-deps.sh"
if [[ -z "${NO_BUILD:-}" ]]; then
    echo "== building h264-agent (release)"
    cargo build --release --manifest-path "$root/Cargo.toml" -p h264-agent
fi

# shellcheck source=common.sh
source "$root/benches/common.sh"
add() { awk -v a="$1" -v b="$2" 'BEGIN { print a + b }'; }

clips="$work/clips"
clip_spec="h264 high 1280x720 30000/1001 aac 60s x$clip_count"
if [[ "$(cat "$clips/.spec" 2>/dev/null)" != "$clip_spec" ]]; then
    echo "== generating $clip_count compliant H.264 clips in $clips"
    rm -rf "$clips"
    mkdir -p "$clips"
    for i in $(seq 1 "$clip_count"); do
        ffmpeg -hide_banner -nostdin -y -v error \
            -f lavfi -i "testsrc2=size=1280x720:rate=30000/1001" \
            -f lavfi -i "sine=frequency=$((300 * i)):sample_rate=48000" \
            -t 60 -map 0:v -map 1:a \
            -c:v libx264 -preset ultrafast -profile:v high -pix_fmt yuv420p \
            -c:a aac -b:a 128k -ac 2 \
            -f mpegts "file:$clips/h264-$i.ts"
    done
    echo "$clip_spec" >"$clips/.spec"
fi

config() {
    bench_agent_toml veryfast "remux = $1"
}
config true >"$work/remux.toml"
config false >"$work/encode.toml"

# Runs the agent in mode "$1" (remux or encode); prints the wall time.
run_agent() {
    local mode="$1"
    rm -rf "$work/in" "$work/out" "$work/state"
    mkdir -p "$work/in"
    cp "$clips"/*.ts "$work/in/"
    local log="$work/agent-$mode.log" start end status=0
    start="$(now)"
    (cd "$work" && "$agent" --config "$work/$mode.toml" --once) >"$log" 2>&1 || status=$?
    end="$(now)"
    if ((status != 0)); then
        echo "h264-agent --once ($mode) exited $status; its log:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    local made
    made="$(grep ' converted ' "$log" | grep -cE "mode=\"?$mode" || true)"
    if ((made != clip_count)); then
        echo "h264-agent converted $made of $clip_count files in mode $mode; log in $log" >&2
        exit 1
    fi
    elapsed "$start" "$end"
}

echo "== $rounds rounds, $clip_count clips of 60 s 1280x720 H.264 + AAC, 2 at a time;" \
    "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A total=([remux]=0 [encode]=0)
for round in $(seq 1 "$rounds"); do
    for mode in remux encode; do
        t="$(run_agent "$mode")"
        printf 'round %s: %-6s %7s s\n' "$round" "$mode" "$t"
        total[$mode]="$(add "${total[$mode]}" "$t")"
    done
done
echo "remux total:  ${total[remux]} s"
echo "encode total: ${total[encode]} s"
awk -v e="${total[encode]}" -v r="${total[remux]}" \
    'BEGIN { printf "ratio encode/remux: %.1f (goal: 20 or more)\n", e / r }'
