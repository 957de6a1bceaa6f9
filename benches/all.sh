#!/usr/bin/env bash
# Run every benchmark and print the README's performance table: for each path, imgforge, the
# manual way and the machine's reference, all measured in the same run, their ratios, the
# target the project set and whether it is met. Absolute times only mean something on the
# machine they came from (the table says which); the ratios are what compares across machines.
#
# Usage: benches/all.sh                 (every bench, its default number of runs)
#        BENCHES="prepare fetch" benches/all.sh     a subset
#        IMGFORGE=/path/to/imgforge benches/all.sh  that binary instead of a fresh release build
#        RENDER=results.txt benches/all.sh          the table of results gathered by earlier runs
# Each bench keeps its own full output in $OUT (default /tmp/imgforge-bench-all/<name>.log).
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHES=${BENCHES:-"fetch prepare build scheduled"}
OUT=${OUT:-/tmp/imgforge-bench-all}
mkdir -p "$OUT"
export BENCH_RESULTS=$OUT/results.txt
if [ -n "${RENDER:-}" ]; then # RENDER=file: print the table of results gathered earlier, run nothing
  cp "$RENDER" "$BENCH_RESULTS"
  BENCHES=
else
  : >"$BENCH_RESULTS"
fi

if [ -z "${IMGFORGE:-}" ] && [ -n "$BENCHES" ]; then
  cargo build --release --locked --quiet
  export IMGFORGE=$PWD/target/release/imgforge
fi

for bench in $BENCHES; do
  echo "== benches/$bench.sh (full output: $OUT/$bench.log)"
  if ! bash "benches/$bench.sh" >"$OUT/$bench.log" 2>&1; then
    echo "benches/$bench.sh failed; its last lines:" >&2
    tail -20 "$OUT/$bench.log" >&2
    exit 1
  fi
done

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) × $cpu, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -r); each row's sides in the same run."
echo
echo "| path | imgforge | manual way | reference | imgforge / manual | imgforge / reference | target | met |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
seconds() { if [ "$1" = - ]; then echo -; else echo "$1 s"; fi; }
while IFS='|' read -r name ours manual limit target note; do
  by_manual=-
  by_limit=-
  [ "$manual" != - ] && by_manual=$(awk "BEGIN {printf \"%.2f×\", $ours / $manual}")
  [ "$limit" != - ] && by_limit=$(awk "BEGIN {printf \"%.2f×\", $ours / $limit}")
  met=yes
  shown=()
  IFS=',' read -ra conditions <<<"$target"
  for condition in "${conditions[@]}"; do
    side=${condition%%<=*}
    bound=${condition##*<=}
    case $side in
      manual) value=$(awk "BEGIN {print $ours / $manual}"); shown+=("≤ ${bound}× manual") ;;
      reference) value=$(awk "BEGIN {print $ours / $limit}"); shown+=("≤ ${bound}× reference") ;;
      imgforge) value=$ours; shown+=("< ${bound} s") ;;
      *) echo "unknown target side '$side' in '$target' ($name)" >&2; exit 1 ;;
    esac
    awk "BEGIN {exit !($value <= $bound)}" || met=no
  done
  echo "| $name | $(seconds "$ours") | $(seconds "$manual") | $(seconds "$limit") | $by_manual | $by_limit | $(printf '%s; ' "${shown[@]}" | sed 's/; $//') | $met |"
  echo "$note" >>"$OUT/notes.txt"
done <"$BENCH_RESULTS"
echo
echo "Sides: $(paste -sd';' "$OUT/notes.txt" | sed 's/;/; /g')."
rm -f "$OUT/notes.txt"
