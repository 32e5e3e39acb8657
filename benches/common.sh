# Shared by the benchmark scripts (sourced, not run): timing helpers, TOML quoting and the
# agent's configuration. Needs: $work (an absolute folder).

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# A TOML basic string holding "$1".
toml_string() {
    local s="${1//\\/\\\\}"
    printf '"%s"' "${s//\"/\\\"}"
}

# The benchmarks' agent configuration, on standard output: WORK/in converted into WORK/out,
# state in WORK/state, two workers, no readiness delays, libx264 CRF 21 at the preset "$1";
# further arguments are extra `[transcode]` lines.
bench_agent_toml() {
    cat <<TOML
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
preset = $(toml_string "$1")
crf = 21
TOML
    shift
    local line
    for line in "$@"; do printf '%s\n' "$line"; done
}
