#!/usr/bin/env bash
# What does shadow work cost production, and what does a comparison cost?
#
#   benches/shadow.sh [WORK_DIR]
#
# Uses the benchmark clips of clips.sh (ten-second 720p MPEG-2 + AC-3 in MPEG-TS) and the
# FFmpeg commands the agent runs, and measures in one run, alternating, ROUNDS times each
# (default 2):
#   (a) production alone: the clips converted one after another with the production profile
#       (libx264 veryfast crf 23, AAC), at normal priority;
#   (b) production during a shadow step: the same, while a shadow worker converts the same clips
#       with a candidate profile (crf 24) under `nice -n 10` (one worker,
#       `rollout.shadow.workers = 1`);
#   (c) the same with the shadow worker at the lowest priority the agent's shadow runner uses:
#       `nice -n 19`, the idle I/O class (`ionice -c 3`) and libx264 on one thread
#       (`-threads 1`), so that it takes only what production leaves;
# and prints the production wall times, the ratios (b)/(a) and (c)/(a) (goal: within 1.05 on a machine
# whose cores production alone does not saturate), and the cost of the comparison's quality
# measure (FFmpeg's ssim + psnr against the decoded source, the agent's filter graph, whole
# clips) per media minute.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-$root/target/bench-shadow}"
rounds="${ROUNDS:-2}"
clip_count="${CLIPS:-4}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
# shellcheck source=clips.sh
source "$root/benches/clips.sh"

convert() { # convert CRF IN OUT [nice|lowest]
    local threads=()
    if [[ "${4:-}" == lowest ]]; then threads=(-threads 1); fi
    local cmd=(ffmpeg -hide_banner -nostdin -y -v error -i "file:$2" -map 0:v:0 -map '0:a?'
        -c:v libx264 -preset veryfast -crf "$1" "${threads[@]}" -profile:v high -pix_fmt yuv420p
        -c:a aac -b:a 128k -movflags +faststart -f mp4 "file:$3")
    case "${4:-}" in
        nice) nice -n 10 "${cmd[@]}" ;;
        lowest) ionice -c 3 nice -n 19 "${cmd[@]}" ;;
        *) "${cmd[@]}" ;;
    esac
}

production() { # production OUT_DIR: every clip, one after another; prints the wall time
    local t0; t0=$(now)
    for c in "$clips"/clip-*.ts; do convert 23 "$c" "$1/$(basename "$c" .ts).mp4"; done
    elapsed "$t0" "$(now)"
}

shadow_loop() { # shadow_loop nice|lowest: converts the clips with the candidate until killed
    while true; do
        for c in "$clips"/clip-*.ts; do convert 24 "$c" "$work/shadow/$(basename "$c" .ts).mp4" "$1"; done
    done
}

beside() { # beside nice|lowest: production's wall time while a shadow worker runs
    local pid b
    shadow_loop "$1" & pid=$!
    sleep 1
    b=$(production "$work/prod")
    pkill -P "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    pkill -P "$pid" 2>/dev/null || true
    echo "$b"
}

mkdir -p "$work/prod" "$work/shadow"
sum() { awk -v x="$1" -v y="$2" 'BEGIN{print x+y}'; }
alone=0; niced=0; lowest=0
for r in $(seq 1 "$rounds"); do
    a=$(production "$work/prod"); echo "round $r: production alone                    ${a}s"
    b=$(beside nice); echo "round $r: beside shadow work (nice 10)        ${b}s"
    c=$(beside lowest); echo "round $r: beside shadow work (19, idle I/O, 1 thread) ${c}s"
    alone=$(sum "$alone" "$a"); niced=$(sum "$niced" "$b"); lowest=$(sum "$lowest" "$c")
done
ratio() { awk -v a="$alone" -v b="$1" 'BEGIN{printf "%.3f", b/a}'; }
echo "production alone: ${alone}s; beside shadow work at nice 10: ${niced}s (ratio $(ratio "$niced")); at nice 19, idle I/O, one thread: ${lowest}s (ratio $(ratio "$lowest"))"

# The comparison's quality measure: both filters, one pass, per clip.
t0=$(now)
for c in "$clips"/clip-*.ts; do
    out="$work/prod/$(basename "$c" .ts).mp4"
    ffmpeg -hide_banner -nostdin -nostats -v info -i "file:$c" -i "file:$out" -filter_complex \
        "[1:v:0]settb=AVTB,setpts=PTS-STARTPTS,format=yuv420p,split[d1][d2];[0:v:0]settb=AVTB,setpts=PTS-STARTPTS,scale=1280:720:flags=bicubic,format=yuv420p,split[r1][r2];[d1][r1]ssim[s];[d2][r2]psnr[p]" \
        -map '[s]' -map '[p]' -f null - 2>&1 | grep -E "SSIM|PSNR" | sed 's/^/  /' | head -2
done
secs=$(elapsed "$t0" "$(now)")
minutes=$(awk -v n="$clip_count" 'BEGIN{print n*10/60}')
echo "quality measure: ${secs}s for ${minutes} media minutes: $(awk -v s="$secs" -v m="$minutes" 'BEGIN{printf "%.1f", s/m}') s per media minute (whole clips; the agent samples 3 x 4 s per output)"
rm -rf "$work/prod" "$work/shadow"
