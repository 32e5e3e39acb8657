#!/usr/bin/env bash
# How much time does h264-agent add over running FFmpeg directly?
#
#   benches/overhead.sh [--ffmpeg-only] [WORK_DIR]
#
# Generates MPEG-2 + AC-3 clips in MPEG-TS once, into WORK_DIR/clips (default WORK_DIR:
# target/bench-overhead, or target/bench-tiny with CLIPS=tiny), then measures in one run,
# alternating, ROUNDS times each (default 2):
#   (a) plain ffmpeg with the agent's arguments, two files at a time (xargs -P2);
#   (b) target/release/h264-agent --config WORK_DIR/agent.toml --once, with workers = 2, on a
#       fresh copy of the same clips;
#   (c) with BASELINE=PATH, another h264-agent binary (an earlier build) the same way as (b).
# and prints each wall time and CPU time (user + system of the whole process tree), the totals,
# the ratios agent/ffmpeg, CPU-seconds per media-second, and the agent's per-stage breakdown
# (its "stage times" log lines).
#
# Settings (environment):
#   ROUNDS=N          rounds (default 2)
#   PRESET=NAME       libx264 preset of both (default veryfast; e.g. ultrafast)
#   CLIPS=720p|tiny   720p: six 10 s 1280x720 clips (default); tiny: 100 copies of one 2 s
#                     640x360 clip, and the per-file fixed cost in milliseconds
#   BASELINE=PATH     also measure this agent binary, side by side (several: space-separated,
#                     each labelled by its file name)
#   NO_BUILD=1        use target/release/h264-agent as it is
# --ffmpeg-only skips building and running the agent (measures (a) only).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ffmpeg_only=false
if [[ "${1:-}" == "--ffmpeg-only" ]]; then
    ffmpeg_only=true
    shift
fi
rounds="${ROUNDS:-2}"
preset="${PRESET:-veryfast}"
baseline="${BASELINE:-}"
case "${CLIPS:-720p}" in
720p)
    clip_count=6 clip_secs=10 clip_size=1280x720 clip_copies=false
    default_work="$root/target/bench-overhead"
    ;;
tiny)
    clip_count=100 clip_secs=2 clip_size=640x360 clip_copies=true
    default_work="$root/target/bench-tiny"
    ;;
*)
    echo "CLIPS must be 720p or tiny" >&2
    exit 2
    ;;
esac
work="${1:-$default_work}"

mkdir -p "$work"
work="$(cd "$work" && pwd)"
agent="$root/target/release/h264-agent"

bash "$root/scripts/ensure-deps.sh"
if ! $ffmpeg_only && [[ -z "${NO_BUILD:-}" ]]; then
    echo "== building h264-agent (release)"
    cargo build --release --manifest-path "$root/Cargo.toml" -p h264-agent
fi

add() { awk -v a="$1" -v b="$2" 'BEGIN { print a + b }'; }

# --- clips, made once (and the shared helpers) ------------------------------------------------
# shellcheck source=clips.sh
source "$root/benches/clips.sh"
media_secs=$((clip_count * clip_secs))

# Runs "$@" and prints "WALL CPU" in seconds: wall time, and user + system time of it and of
# every process it waited for (FFmpeg's and ffprobe's included).
timed() {
    local TIMEFORMAT='%R %U %S' t
    t="$({ time "$@" >/dev/null 2>&1; } 2>&1)"
    awk '{ printf "%.2f %.2f", $1, $2 + $3 }' <<<"$t"
}

# --- (a) plain ffmpeg ---------------------------------------------------------------------------
# One file, exactly as the agent encodes an MPEG-2 source with audio (less -progress), to a
# temporary name renamed when done.
encode_one() {
    local in="$1" out_dir="$2" preset="$3"
    local name
    name="$(basename "$in" .ts)"
    ffmpeg -hide_banner -nostdin -y -v error -nostats -i "file:$in" \
        -map 0:v:0 -map '0:a?' -c:v libx264 -preset "$preset" -crf 21 -profile:v high \
        -pix_fmt yuv420p -c:a aac -b:a 160k -movflags +faststart \
        -f mp4 "file:$out_dir/.$name.tmp"
    mv "$out_dir/.$name.tmp" "$out_dir/$name.mp4"
}
export -f encode_one

ffmpeg_pass() {
    find "$clips" -name '*.ts' -print0 | sort -z |
        xargs -0 -P2 -I{} bash -c 'encode_one "$1" "$2" "$3"' _ {} "$1" "$preset"
}

run_ffmpeg() {
    local out="$work/ffmpeg-out"
    rm -rf "$out"
    mkdir -p "$out"
    local t
    t="$(timed ffmpeg_pass "$out")"
    local made
    made="$(find "$out" -name '*.mp4' | wc -l)"
    if ((made != clip_count)); then
        echo "ffmpeg run made $made of $clip_count MP4 files" >&2
        exit 1
    fi
    echo "$t"
}

# --- (b) the agent ------------------------------------------------------------------------------

bench_agent_toml "$preset" >"$work/agent.toml"

agent_pass() {
    (cd "$work" && "$1" --config "$work/agent.toml" --once) >"$2" 2>&1
}

# Runs the agent binary "$1" (its log: "$2"); prints "WALL CPU".
run_agent() {
    local bin="$1" log="$2"
    rm -rf "$work/in" "$work/out" "$work/state"
    mkdir -p "$work/in"
    cp "$clips"/*.ts "$work/in/"
    local t
    if ! t="$(timed agent_pass "$bin" "$log")"; then
        echo "$bin --once failed; its log:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
    local made
    made="$(find "$work/out" -name '*.mp4' | wc -l)"
    if ((made != clip_count)); then
        echo "$bin made $made of $clip_count MP4 files; log in $log" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    echo "$t"
}

# Adds the "stage times" of the log "$1" (of the binary labelled "$2") to stages-$2.txt (name
# seconds, one a line).
collect_stages() {
    grep 'stage times' "$1" | grep -o 'stages=.*' | sed 's/^stages=//' | tr ' ' '\n' |
        grep '=' | tr '=' ' ' >>"$work/stages-$2.txt" || true
}

# Prints the CPU seconds of FFmpeg's transcodes in the log "$1" (each job's `converted` line
# carries its FFmpeg's CPU time, read from /proc before it was reaped).
encode_cpu_of() {
    { grep -o 'transcode_cpu_secs=[0-9.]*' "$1" || true; } | cut -d= -f2 |
        awk '{ s += $1 } END { printf "%.3f\n", s + 0 }'
}

# --- measure ------------------------------------------------------------------------------------
echo "== $rounds rounds, $clip_count clips of $clip_secs s $clip_size MPEG-2, 2 at a time," \
    "preset $preset; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A wall=([ffmpeg]=0 [agent]=0) cpu=([ffmpeg]=0 [agent]=0) binary=([agent]="$agent")
declare -A encode_cpu=([agent]=0)
kinds=(ffmpeg)
if ! $ffmpeg_only; then
    kinds+=(agent)
    # BASELINE may name several binaries (space-separated): one is "baseline", several are
    # labelled by their file names.
    read -r -a baselines <<<"$baseline"
    for b in "${baselines[@]}"; do
        label=baseline
        ((${#baselines[@]} > 1)) && label="$(basename "$b")"
        kinds+=("$label")
        binary[$label]="$(realpath -e "$b")" || { echo "BASELINE $b: no such file" >&2; exit 2; }
        wall[$label]=0
        cpu[$label]=0
        encode_cpu[$label]=0
    done
fi
rm -f "$work"/stages*.txt
for round in $(seq 1 "$rounds"); do
    for kind in "${kinds[@]}"; do
        case "$kind" in
        ffmpeg) t="$(run_ffmpeg)" ;;
        *)
            t="$(run_agent "${binary[$kind]}" "$work/$kind.log")"
            collect_stages "$work/$kind.log" "$kind"
            encode_cpu[$kind]="$(add "${encode_cpu[$kind]}" "$(encode_cpu_of "$work/$kind.log")")"
            ;;
        esac
        read -r w c <<<"$t"
        printf 'round %s: %-8s wall %7s s  cpu %7s s\n' "$round" "$kind" "$w" "$c"
        wall[$kind]="$(add "${wall[$kind]}" "$w")"
        cpu[$kind]="$(add "${cpu[$kind]}" "$c")"
    done
done

for kind in "${kinds[@]}"; do
    awk -v k="$kind" -v w="${wall[$kind]}" -v c="${cpu[$kind]}" -v m="$media_secs" -v r="$rounds" \
        'BEGIN { printf "%-8s total wall %7.2f s  cpu %7.2f s  cpu-seconds per media-second %.3f\n", k, w, c, c / (m * r) }'
done
for kind in "${kinds[@]}"; do
    [[ "$kind" == ffmpeg ]] && continue
    awk -v k="$kind" -v a="${wall[$kind]}" -v f="${wall[ffmpeg]}" -v ca="${cpu[$kind]}" \
        -v cf="${cpu[ffmpeg]}" -v n="$clip_count" -v r="$rounds" \
        'BEGIN { printf "ratio %s/ffmpeg: wall %.3f, cpu %.3f; fixed cost per file %.0f ms (wall, 2 at a time: %.0f ms of a worker)\n", k, a / f, ca / cf, (a - f) * 1000 / (n * r), (a - f) * 2000 / (n * r) }'
done
for kind in "${kinds[@]}"; do
    [[ -s "$work/stages-$kind.txt" ]] || continue
    echo "$kind's stage times (wall, summed over its jobs, per round):"
    awk -v r="$rounds" '{ s[$1] += $2; if (!($1 in o)) { o[$1] = ++n; name[n] = $1 } }
        END { for (i = 1; i <= n; i++) printf "  %-14s %8.3f s\n", name[i], s[name[i]] / r }' \
        "$work/stages-$kind.txt"
done
for kind in "${kinds[@]}"; do
    [[ "$kind" == ffmpeg ]] && continue
    awk -v k="$kind" -v e="${encode_cpu[$kind]}" -v c="${cpu[$kind]}" -v cf="${cpu[ffmpeg]}" \
        -v n="$clip_count" -v r="$rounds" -v m="$media_secs" \
        'BEGIN { if (e <= 0) exit
            printf "%s'"'"'s CPU per round: FFmpeg'"'"'s transcodes %.2f s (%.3f per media-second; plain ffmpeg %.2f s), everything else %.2f s (%.0f ms a file: readiness ffprobe, the agent itself)\n", k, e / r, e / (m * r), cf / r, (c - e) / r, (c - e) * 1000 / (n * r) }'
done
