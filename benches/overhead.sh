#!/usr/bin/env bash
# How much time does h264-agent add over running FFmpeg directly?
#
#   benches/overhead.sh [--ffmpeg-only] [WORK_DIR]
#
# Generates six 10-second 1280x720 MPEG-2 + AC-3 clips in MPEG-TS once, into WORK_DIR/clips
# (default WORK_DIR: target/bench-overhead), then measures in one run, alternating, ROUNDS times
# each (default 2):
#   (a) plain ffmpeg with the agent's arguments, two files at a time (xargs -P2);
#   (b) target/release/h264-agent --config WORK_DIR/agent.toml --once, with workers = 2, on a
#       fresh copy of the same clips.
# and prints each wall time, the totals and the ratio agent/ffmpeg.
# --ffmpeg-only skips building and running the agent (measures (a) only).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ffmpeg_only=false
if [[ "${1:-}" == "--ffmpeg-only" ]]; then
    ffmpeg_only=true
    shift
fi
work="${1:-$root/target/bench-overhead}"
rounds="${ROUNDS:-2}"
clip_count=6

mkdir -p "$work"
work="$(cd "$work" && pwd)"
agent="$root/target/release/h264-agent"

bash "$root/scripts/ensure-deps.sh"
if ! $ffmpeg_only; then
    echo "== building h264-agent (release)"
    cargo build --release --manifest-path "$root/Cargo.toml" -p h264-agent
fi


# --- clips, made once (and the shared helpers) ------------------------------------------------
# shellcheck source=clips.sh
source "$root/benches/clips.sh"

# --- (a) plain ffmpeg ---------------------------------------------------------------------------
# One file, exactly as the agent encodes an MPEG-2 source with audio (less -progress), to a
# temporary name renamed when done.
encode_one() {
    local in="$1" out_dir="$2"
    local name
    name="$(basename "$in" .ts)"
    ffmpeg -hide_banner -nostdin -y -v error -nostats -i "file:$in" \
        -map 0:v:0 -map '0:a?' -c:v libx264 -preset veryfast -crf 21 -profile:v high \
        -pix_fmt yuv420p -c:a aac -b:a 160k -movflags +faststart \
        -f mp4 "file:$out_dir/.$name.tmp"
    mv "$out_dir/.$name.tmp" "$out_dir/$name.mp4"
}
export -f encode_one

run_ffmpeg() {
    local out="$work/ffmpeg-out"
    rm -rf "$out"
    mkdir -p "$out"
    local start end
    start="$(now)"
    find "$clips" -name '*.ts' -print0 | sort -z |
        xargs -0 -P2 -I{} bash -c 'encode_one "$1" "$2"' _ {} "$out"
    end="$(now)"
    local made
    made="$(find "$out" -name '*.mp4' | wc -l)"
    if ((made != clip_count)); then
        echo "ffmpeg run made $made of $clip_count MP4 files" >&2
        exit 1
    fi
    elapsed "$start" "$end"
}

# --- (b) the agent ------------------------------------------------------------------------------

cat >"$work/agent.toml" <<TOML
[agent]
state_dir = $(toml_string "$work/state")
workers = 2
[[watch]]
source = $(toml_string "$work/in")
output = $(toml_string "$work/out")
[readiness]
stable_for = "0s"
mtime_grace = "0s"
[transcode]
preset = "veryfast"
crf = 21
TOML

run_agent() {
    rm -rf "$work/in" "$work/out" "$work/state"
    mkdir -p "$work/in"
    cp "$clips"/*.ts "$work/in/"
    local start end status=0
    start="$(now)"
    (cd "$work" && "$agent" --config "$work/agent.toml" --once) >"$work/agent.log" 2>&1 ||
        status=$?
    end="$(now)"
    if ((status != 0)); then
        echo "h264-agent --once exited $status; its log:" >&2
        tail -n 40 "$work/agent.log" >&2
        exit 1
    fi
    local made
    made="$(find "$work/out" -name '*.mp4' | wc -l)"
    if ((made != clip_count)); then
        echo "h264-agent made $made of $clip_count MP4 files; log in $work/agent.log" >&2
        exit 1
    fi
    elapsed "$start" "$end"
}

# --- measure ------------------------------------------------------------------------------------
echo "== $rounds rounds, $clip_count clips of 10 s 1280x720 MPEG-2, 2 at a time"
ffmpeg_total=0
agent_total=0
for round in $(seq 1 "$rounds"); do
    t="$(run_ffmpeg)"
    echo "round $round: ffmpeg (xargs -P2)  ${t} s"
    ffmpeg_total="$(awk -v a="$ffmpeg_total" -v b="$t" 'BEGIN { print a + b }')"
    if ! $ffmpeg_only; then
        t="$(run_agent)"
        echo "round $round: h264-agent --once  ${t} s"
        agent_total="$(awk -v a="$agent_total" -v b="$t" 'BEGIN { print a + b }')"
    fi
done

echo "ffmpeg total: ${ffmpeg_total} s"
if ! $ffmpeg_only; then
    echo "agent total:  ${agent_total} s"
    awk -v a="$agent_total" -v f="$ffmpeg_total" \
        'BEGIN { printf "ratio agent/ffmpeg: %.3f\n", a / f }'
fi
