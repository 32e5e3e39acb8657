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
#       with a candidate profile (crf 24) under `nice -n 10`, as the agent's shadow runner does
#       (one worker, `rollout.shadow.workers = 1`);
# and prints the production wall times, the ratio (b)/(a) (goal: within 1.05 on a machine
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

convert() { # convert CRF IN OUT [nice]
    local cmd=(ffmpeg -hide_banner -nostdin -y -v error -i "file:$2" -map 0:v:0 -map '0:a?'
        -c:v libx264 -preset veryfast -crf "$1" -profile:v high -pix_fmt yuv420p
        -c:a aac -b:a 128k -movflags +faststart -f mp4 "file:$3")
    if [[ "${4:-}" == nice ]]; then nice -n 10 "${cmd[@]}"; else "${cmd[@]}"; fi
}

production() { # production OUT_DIR: every clip, one after another; prints the wall time
    local t0; t0=$(now)
    for c in "$clips"/clip-*.ts; do convert 23 "$c" "$1/$(basename "$c" .ts).mp4"; done
    elapsed "$t0" "$(now)"
}

shadow_loop() { # converts the clips with the candidate, niced, until killed
    while true; do
        for c in "$clips"/clip-*.ts; do convert 24 "$c" "$work/shadow/$(basename "$c" .ts).mp4" nice; done
    done
}

mkdir -p "$work/prod" "$work/shadow"
alone=0; beside=0
for r in $(seq 1 "$rounds"); do
    a=$(production "$work/prod"); echo "round $r: production alone        ${a}s"
    shadow_loop & pid=$!
    sleep 1
    b=$(production "$work/prod"); echo "round $r: production beside shadow ${b}s"
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    pkill -P "$pid" 2>/dev/null || true
    alone=$(awk -v x="$alone" -v y="$a" 'BEGIN{print x+y}')
    beside=$(awk -v x="$beside" -v y="$b" 'BEGIN{print x+y}')
done
echo "production alone:   ${alone}s; beside shadow work: ${beside}s; ratio $(awk -v a="$alone" -v b="$beside" 'BEGIN{printf "%.3f", b/a}')"

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
