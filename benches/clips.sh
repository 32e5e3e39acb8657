# Shared by the benchmark scripts (sourced, not run): timing helpers, TOML quoting, and the
# benchmark clips (ten-second 720p MPEG-2 with AC-3 in MPEG-TS, as a broadcast recorder writes),
# made once into "$work/clips" and kept while their spec is unchanged.
# Needs: $work (an absolute folder) and $clip_count.

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# A TOML basic string holding "$1".
toml_string() {
    local s="${1//\\/\\\\}"
    printf '"%s"' "${s//\"/\\\"}"
}

clips="$work/clips"
clip_spec="mpeg2video 1280x720 30000/1001 8M ac3 192k 10s x$clip_count"
if [[ "$(cat "$clips/.spec" 2>/dev/null)" != "$clip_spec" ]]; then
    echo "== generating $clip_count clips in $clips"
    rm -rf "$clips"
    mkdir -p "$clips"
    for i in $(seq 1 "$clip_count"); do
        ffmpeg -hide_banner -nostdin -y -v error \
            -f lavfi -i "testsrc2=size=1280x720:rate=30000/1001" \
            -f lavfi -i "sine=frequency=$((200 * i)):sample_rate=48000" \
            -t 10 -map 0:v -map 1:a \
            -c:v mpeg2video -b:v 8M -maxrate 10M -bufsize 4M -pix_fmt yuv420p \
            -c:a ac3 -b:a 192k -ac 2 \
            -f mpegts "file:$clips/clip-$i.ts"
    done
    echo "$clip_spec" >"$clips/.spec"
fi
