#!/usr/bin/env bash
# Issue 15's benchmark, side by side with ccusage in one run: a year of a heavy user's Claude
# Code transcripts (`tokentray-loadgen transcripts`), read by `tokentray import` and by
# `ccusage daily --offline --json` on the same HOME. Prints one line per figure; BENCHMARKS.md
# ("Transcripts: a year against ccusage") has the results and the machine.
#
#   cargo build --release --no-default-features --features loadgen --bins
#   bench/transcripts-year.sh            # WORK=/tmp/tokentray-transcripts-year DAYS=365 RUNS=3
#
# The generated year is kept in $WORK and reused by the next run (delete it to regenerate).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/target/release}
ccusage=${CCUSAGE:-$root/tests/.cache/ccusage/node_modules/.bin/ccusage}
work=${WORK:-/tmp/tokentray-transcripts-year}
days=${DAYS:-365}
runs=${RUNS:-3}

home="$work/home"
claude="$home/.claude"
export HOME="$home" CLAUDE_CONFIG_DIR="$claude" XDG_CONFIG_HOME="$home/.config"
config="$work/none.toml" # no config file: every default

# Step 1: the year, once.
if [ ! -d "$claude/projects" ]; then
  mkdir -p "$claude"
  "$bin/tokentray-loadgen" transcripts --dir "$claude" --days "$days" >"$work/plan.txt"
fi
echo "[year] $(find "$claude/projects" -name '*.jsonl' | wc -l) files," \
  "$(du -sm "$claude/projects" | cut -f1) MB; generator: $(head -c 400 "$work/plan.txt" | tr '\n' ' ')"

# `measure NAME CMD...`: wall time and peak RSS of one run of CMD (its output to $work/NAME.out).
measure() {
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err"
  read -r secs kib <"$work/$name.time"
  echo "[$name] ${secs} s, peak RSS $((kib / 1024)) MiB"
}

# Step 2: first import against ccusage's full read, alternating, each on a fresh history.
for i in $(seq "$runs"); do
  measure "ccusage-daily-$i" "$ccusage" daily --offline --json
  rm -rf "$work/data"
  measure "import-first-$i" "$bin/tokentray" --data-dir "$work/data" --config "$config" import
done
echo "[db] $(du -sm "$work/data" | cut -f1) MB on disk after the import"

# Step 3: what a later start costs: an import with nothing new, and spawn → listening of `serve`
# with the year imported against an empty history (both follow the same transcripts).
measure "import-again" "$bin/tokentray" --data-dir "$work/data" --config "$config" import
cat "$work/import-again.out"
"$bin/tokentray-loadgen" startup --bin "$bin/tokentray" --runs 10 --data-dir "$work/data" |
  sed 's/^/[startup, year imported] /'
rm -rf "$work/empty"
"$bin/tokentray-loadgen" startup --bin "$bin/tokentray" --runs 10 --data-dir "$work/empty" |
  sed 's/^/[startup, empty history] /'

# Step 4: a report by project after the import, against ccusage's re-read for its answer.
for i in $(seq "$runs"); do
  measure "report-by-project-$i" "$bin/tokentray" --data-dir "$work/data" --config "$config" \
    report all --by project --json
  measure "ccusage-session-$i" "$ccusage" session --offline --json
done

# Step 5: the totals, side by side (ccusage prices from its table, tokentray from cost-state).
python3 - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
cc = json.load(open(f"{work}/ccusage-daily-1.out"))["totals"]
tt = json.load(open(f"{work}/report-by-project-1.out"))
print("[totals] ccusage   tokens", cc["totalTokens"], "cost", round(cc["totalCost"], 2))
print("[totals] tokentray tokens", int(tt["tokens"]["total"]), "cost", round(tt["cost_usd"], 2))
EOF
