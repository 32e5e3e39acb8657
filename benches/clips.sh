# Shared by the benchmark scripts (sourced, not run): the helpers of common.sh, and the benchmark
# clips (MPEG-2 with AC-3 in MPEG-TS, as a broadcast recorder writes), made once into
# "$work/clips" and kept while their spec is unchanged.
# Needs: $work (an absolute folder) and $clip_count. Optional: $clip_secs (default 10),
# $clip_size (default 1280x720), $clip_copies (true: one clip made and copied $clip_count times,
# for many small files; default false: each clip its own tone).

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

clip_secs="${clip_secs:-10}"
clip_size="${clip_size:-1280x720}"
clip_copies="${clip_copies:-false}"
clips="$work/clips"
clip_spec="mpeg2video $clip_size 30000/1001 8M ac3 192k ${clip_secs}s x$clip_count"
if $clip_copies; then
    clip_spec="$clip_spec copies"
fi

# Makes one clip, the i-th (its tone's frequency), at "$2".
make_clip() {
    ffmpeg -hide_banner -nostdin -y -v error \
        -f lavfi -i "testsrc2=size=$clip_size:rate=30000/1001" \
        -f lavfi -i "sine=frequency=$((200 * $1)):sample_rate=48000" \
        -t "$clip_secs" -map 0:v -map 1:a \
        -c:v mpeg2video -b:v 8M -maxrate 10M -bufsize 4M -pix_fmt yuv420p \
        -c:a ac3 -b:a 192k -ac 2 \
        -f mpegts "file:$2"
}

if [[ "$(cat "$clips/.spec" 2>/dev/null)" != "$clip_spec" ]]; then
    echo "== generating $clip_count clips in $clips"
    rm -rf "$clips"
    mkdir -p "$clips"
    if $clip_copies; then
        make_clip 1 "$clips/.one.ts"
    fi
    for i in $(seq 1 "$clip_count"); do
        if $clip_copies; then
            cp "$clips/.one.ts" "$clips/clip-$i.ts"
        else
            make_clip "$i" "$clips/clip-$i.ts"
        fi
    done
    rm -f "$clips/.one.ts"
    echo "$clip_spec" >"$clips/.spec"
fi
