#!/usr/bin/env bash
# What does shadow work cost production, is the speed gate's CPU-time ratio fair, and what does
# a comparison cost?
#
#   benches/shadow.sh [WORK_DIR]
#
# Uses the benchmark clips of clips.sh (ten-second 720p MPEG-2 + AC-3 in MPEG-TS) and the
# FFmpeg commands the agent runs, and measures in one run, alternating, ROUNDS times each
# (default 2):
#   (a) production alone: the clips converted one after another with the production profile
#       (libx264 veryfast crf 23, AAC), at normal priority; then the candidate profile (crf 24)
#       alone, the same way (its true CPU cost);
#   (b) production while one shadow worker (`rollout.shadow.workers = 1`) converts the same
#       clips with the candidate profile under `nice -n 10` (the agent before the idle class);
#   (c) the same with the shadow worker as the agent runs it now: the idle scheduling class
#       and the idle I/O class (`chrt --idle 0 ionice -c 3 -t`), libx264's threads as the
#       candidate's settings give them;
#   (d) the same as (c) with libx264 on one thread (`-threads 1`);
# and prints the production wall times, the ratios (b)/(a), (c)/(a), (d)/(a) (goal: within
# 1.05), the candidate/production CPU-time ratio the agent would report in each case against
# the true one of (a), and the cost of the comparison's quality measure (FFmpeg's ssim + psnr
# against the decoded source, the agent's filter graph, whole clips) per media minute.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-$root/target/bench-shadow}"
rounds="${ROUNDS:-2}"
clip_count="${CLIPS:-4}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
# shellcheck source=clips.sh
source "$root/benches/clips.sh"

convert() { # convert CRF IN OUT [nice|idle|idle1]
    local threads=()
    if [[ "${4:-}" == idle1 ]]; then threads=(-threads 1); fi
    local cmd=(ffmpeg -hide_banner -nostdin -y -v error -i "file:$2" -map 0:v:0 -map '0:a?'
        -c:v libx264 -preset veryfast -crf "$1" -profile:v high -pix_fmt yuv420p
        -c:a aac -b:a 128k -movflags +faststart "${threads[@]}" -f mp4 "file:$3")
    case "${4:-}" in
        nice) nice -n 10 "${cmd[@]}" ;;
        idle | idle1) chrt --idle 0 ionice -c 3 -t "${cmd[@]}" ;;
        *) "${cmd[@]}" ;;
    esac
}

# CPU seconds (user + system) of the children of a subshell, from the `times` builtin's
# second line ("0m1.250s 0m0.040s").
cpu_secs() {
    tail -n 1 | awk '{ t = 0; for (i = 1; i <= NF; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] } print t }'
}

timed_convert() { # timed_convert CPU_FILE CRF IN OUT [MODE]: converts, appends its CPU seconds
    local file="$1"; shift
    (convert "$@"; times) | cpu_secs >>"$file"
}

sequence() { # sequence CRF CPU_FILE [MODE]: every clip, one after another; prints the wall time
    local t0; t0=$(now)
    for c in "$clips"/clip-*.ts; do
        timed_convert "$2" "$1" "$c" "$work/prod/$(basename "$c" .ts).mp4" "${3:-}"
    done
    elapsed "$t0" "$(now)"
}

shadow_loop() { # shadow_loop MODE: converts the clips with the candidate until killed
    while true; do
        for c in "$clips"/clip-*.ts; do
            timed_convert "$work/cpu/candidate-$1" 24 "$c" "$work/shadow/$(basename "$c" .ts).mp4" "$1"
        done
    done
}

beside() { # beside MODE: production's wall time while a shadow worker runs
    local pid b
    # The worker in a process group of its own (job control), stopped as a whole.
    set -m
    shadow_loop "$1" &
    pid=$!
    set +m
    sleep 1
    b=$(sequence 23 "$work/cpu/production-$1")
    kill -TERM -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "$b"
}

mean() { awk '{ s += $1; n++ } END { if (n) printf "%.3f", s / n; else print 0 }' "$1"; }
sum() { awk -v x="$1" -v y="$2" 'BEGIN{print x+y}'; }

rm -rf "$work/cpu"
mkdir -p "$work/prod" "$work/shadow" "$work/cpu"
alone=0; niced=0; idle=0; idle1=0
for r in $(seq 1 "$rounds"); do
    a=$(sequence 23 "$work/cpu/production-alone"); echo "round $r: production alone                         ${a}s"
    sequence 24 "$work/cpu/candidate-alone" >/dev/null
    sequence 24 "$work/cpu/candidate-alone1" idle1 >/dev/null
    b=$(beside nice); echo "round $r: beside shadow work (nice 10)             ${b}s"
    c=$(beside idle); echo "round $r: beside shadow work (idle class)         ${c}s"
    d=$(beside idle1); echo "round $r: beside shadow work (idle class, 1 thread) ${d}s"
    alone=$(sum "$alone" "$a"); niced=$(sum "$niced" "$b"); idle=$(sum "$idle" "$c"); idle1=$(sum "$idle1" "$d")
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a > 0) printf "%.3f", b/a; else print "n/a" }'; }
echo "production alone: ${alone}s; beside shadow work at nice 10: ${niced}s (ratio $(ratio "$alone" "$niced")); in the idle class: ${idle}s (ratio $(ratio "$alone" "$idle")); in the idle class on one thread: ${idle1}s (ratio $(ratio "$alone" "$idle1"))"

# The speed gate's measure: the candidate's CPU seconds per clip over production's.
p_alone=$(mean "$work/cpu/production-alone")
echo "CPU seconds per clip: production alone $p_alone, candidate alone $(mean "$work/cpu/candidate-alone") (one thread: $(mean "$work/cpu/candidate-alone1"))"
echo "candidate/production CPU ratio alone (the truth): $(ratio "$p_alone" "$(mean "$work/cpu/candidate-alone")") (one thread: $(ratio "$p_alone" "$(mean "$work/cpu/candidate-alone1")"))"
for m in nice idle idle1; do
    p=$(mean "$work/cpu/production-$m")
    c=$(mean "$work/cpu/candidate-$m")
    n=$(wc -l <"$work/cpu/candidate-$m" 2>/dev/null || echo 0)
    if [[ "$n" -gt 0 ]]; then
        echo "  as measured beside production ($m): production $p, candidate $c ($n clips): ratio $(ratio "$p" "$c")"
    else
        echo "  as measured beside production ($m): no candidate clip finished while production ran (it got no CPU)"
    fi
done

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
rm -rf "$work/prod" "$work/shadow" "$work/cpu"
