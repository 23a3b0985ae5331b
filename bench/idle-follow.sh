#!/usr/bin/env bash
# Issue 15's idle figure on the year: a `serve` following a heavy user's year of transcripts,
# with nothing written, must cost no CPU and make no periodic wake-ups; the same with
# `[transcripts] expose = true`, whose first round (the transcripts' share of the whole year on
# `/metrics`) is measured on the way. BENCHMARKS.md ("Idle with a year of transcripts") has the
# results and the machine.
#
#   cargo build --release --no-default-features --features loadgen --bins
#   bench/transcripts-year.sh            # generates the year in $WORK (once)
#   bench/idle-follow.sh                 # WORK=/tmp/tokentray-transcripts-year IDLE=60
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/target/release}
work=${WORK:-/tmp/tokentray-transcripts-year}
idle=${IDLE:-60}
home="$work/home"
export HOME="$home" CLAUDE_CONFIG_DIR="$home/.claude" XDG_CONFIG_HOME="$home/.config"
[ -d "$home/.claude/projects" ] || { echo "no year in $work: run bench/transcripts-year.sh" >&2; exit 1; }
ticks=$(getconf CLK_TCK)

# `cpu PID`: utime+stime in ticks, and the voluntary context switches of all its threads.
cpu() {
  local t v=0
  t=$(awk '{print $14 + $15}' "/proc/$1/stat")
  for s in /proc/"$1"/task/*/status; do
    v=$((v + $(awk '/^voluntary_ctxt_switches/ {print $2}' "$s")))
  done
  echo "$t $v"
}

# `idle NAME CONFIG`: serve on a copy of the imported year, wait for the import and (with
# expose) the first round, then measure $idle seconds of nothing written.
idle_run() {
  local name=$1 config=$2 data="$work/idle-$1" log="$work/idle-$1.log"
  rm -rf "$data" && cp -r "$work/data" "$data"
  printf '%s' "$config" >"$work/idle-$name.toml"
  local started=$(date +%s.%N)
  "$bin/tokentray" --data-dir "$data" --config "$work/idle-$name.toml" serve \
    --otlp-grpc 127.0.0.1:0 --otlp-http 127.0.0.1:0 --metrics 127.0.0.1:0 >"$log.out" 2>"$log" &
  local pid=$!
  until grep -q "following the transcripts" "$log" 2>/dev/null; do sleep 0.1; done
  if [ -n "$config" ]; then
    until grep -q "transcripts exposed" "$log" 2>/dev/null; do sleep 0.1; done
    echo "[$name] start → first round exposed: $(echo "$(date +%s.%N) - $started" | bc) s," \
      "serve CPU so far $(( $(cpu $pid | cut -d' ' -f1) * 1000 / ticks )) ms"
  fi
  sleep 5
  read -r t0 v0 < <(cpu $pid)
  sleep "$idle"
  read -r t1 v1 < <(cpu $pid)
  echo "[$name] idle ${idle} s: $((t1 - t0)) ticks of CPU ($(( (t1 - t0) * 1000 / ticks )) ms)," \
    "$((v1 - v0)) voluntary context switches, RSS $(awk '/^VmRSS/ {print $2 / 1024 " MiB"}' /proc/$pid/status)"
  kill $pid && wait $pid 2>/dev/null || true
}

# The year imported once (transcripts-year.sh leaves it in $work/data).
[ -f "$work/data/tokentray.sqlite3" ] ||
  "$bin/tokentray" --data-dir "$work/data" --config "$work/none.toml" import >/dev/null
export TOKENTRAY_LOG=${TOKENTRAY_LOG:-info,tokentray_core::transcripts::expose=debug}
idle_run follow ""
idle_run expose $'[transcripts]\nexpose = true\n'
