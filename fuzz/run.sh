#!/usr/bin/env bash
# Bounded coverage-guided fuzzing on stable Rust: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# cargo-fuzz needs nightly only for -Zsanitizer; libFuzzer's coverage feedback needs nothing but
# LLVM's SanitizerCoverage pass, which stable rustc runs through codegen flags (the same flags
# cargo-fuzz passes). So this builds every target instrumented, in release with debug
# assertions and overflow checks, into its own target dir (target/fuzz-instrumented, so the
# main build cache is never invalidated), then runs each one for SECONDS (default 30) over
# fuzz/corpus/<target>/. New coverage found during the run goes to a scratch copy under
# target/, not into the repo; fold it back in with `fuzz/run.sh --merge` (below).
#
# Without AddressSanitizer a crash means a panic, an abort, a timeout (-timeout=10 s per
# input), running out of memory (-rss_limit_mb=2048) or an assertion of the target, which
# covers all our safe code can get wrong. The crash input is kept under
# target/fuzz-instrumented/artifacts/<target>/ and the script exits non-zero.
#
#   fuzz/run.sh 30                     # CI: every target, 30 s each
#   fuzz/run.sh 600 audit_event        # one target, longer
#   fuzz/run.sh --merge                # minimise fuzz/corpus/* with what the last runs found
#                                      # (set-cover merge, then at most FUZZ_CORPUS_KB=32 KB of
#                                      # found inputs per target beside the seed-* files)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out="$root/target/fuzz-instrumented"
triple=$(rustc -vV | sed -n 's/^host: //p')

merge=0
budget_kb=${FUZZ_CORPUS_KB:-32}
if [[ ${1:-} == --merge ]]; then merge=1; shift; fi
seconds=${1:-30}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=($(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^custodia-fuzz$'))
fi

# The flags cargo-fuzz uses, minus -Zsanitizer (nightly only). --target keeps them off build
# scripts and proc macros, which are not linked with libFuzzer.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cdebug-assertions -Coverflow-checks"
build_start=$(date +%s)
CARGO_TARGET_DIR="$out" cargo build --release --manifest-path fuzz/Cargo.toml --target "$triple" \
  -p custodia-fuzz --bins
echo "instrumented build: $(( $(date +%s) - build_start )) s"
bin="$out/$triple/release"

status=0

# One target: fuzz for $seconds, write "<line>" to $out/<t>.result and the exit code to .rc.
fuzz_one() {
  local t=$1 corpus="$root/fuzz/corpus/$1" scratch="$out/corpus/$1" artifacts="$out/artifacts/$1"
  local log="$out/$1.log" rc=0
  mkdir -p "$corpus" "$scratch" "$artifacts"
  # The committed corpus is read-only input; new finds go to the scratch dir (first argument).
  "$bin/$t" "$scratch" "$corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || rc=$?
  local execs cov ft init_cov line
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  ft=$( (grep -o 'ft: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  init_cov=$( (grep -m1 'INITED' "$log" || true) | (grep -o 'cov: [0-9]*' || true) | cut -d' ' -f2)
  line=$(printf '%-22s %10s execs  cov %s -> %s  ft %s' "$t" "${execs:-?}" "${init_cov:-?}" "${cov:-?}" "${ft:-?}")
  if [[ $rc -ne 0 ]]; then
    line="$line  CRASHED (exit $rc): $(ls "$artifacts" | head -3 | tr '\n' ' ')"
  fi
  echo "$line" >"$out/$t.result"
  echo "$rc" >"$out/$t.rc"
}

merge_one() {
  local t=$1 corpus="$root/fuzz/corpus/$1" scratch="$out/corpus/$1" fresh="$out/merged/$1"
  mkdir -p "$corpus" "$scratch"
  rm -rf "$fresh"
  mkdir -p "$fresh"
  # Minimise: the smallest set of inputs (committed + found) with the same coverage.
  "$bin/$t" -merge=1 -set_cover_merge=1 -rss_limit_mb=2048 -timeout=10 "$fresh" "$corpus" "$scratch" 2>"$out/$t.merge.log" || {
    echo "$t: merge failed, see $out/$t.merge.log"; return 1; }
  # Seeds keep their names (the generator rewrites them); merged files are named by SHA-1.
  local seed f size total=0
  for seed in "$corpus"/seed-*; do
    [[ -e $seed ]] && rm -f "$fresh/$(sha1sum "$seed" | cut -d' ' -f1)"
  done
  # Keep git small: at most $budget_kb KB of found inputs per target beside the seeds,
  # dropping the largest first (they are the slowest to run and the least focused).
  for f in $(ls -S -r "$fresh"); do
    size=$(stat -c %s "$fresh/$f")
    if (( total + size > budget_kb * 1024 )); then rm -f "$fresh/$f"; else total=$((total + size)); fi
  done
  find "$corpus" -type f ! -name 'seed-*' -delete
  cp "$fresh"/* "$corpus"/ 2>/dev/null || true
  echo "$t: corpus $(ls "$corpus" | wc -l) files, $(cat "$corpus"/* | wc -c) bytes"
}

if [[ $merge == 1 ]]; then
  for t in "${targets[@]}"; do merge_one "$t" || status=1; done
  exit $status
fi

# libFuzzer is single-threaded: run one target per core at a time (FUZZ_JOBS to override).
jobs=${FUZZ_JOBS:-$(nproc)}
fuzz_start=$(date +%s)
running=0
for t in "${targets[@]}"; do
  rm -f "$out/$t.result" "$out/$t.rc"
  fuzz_one "$t" &
  running=$((running + 1))
  if (( running >= jobs )); then wait -n || true; running=$((running - 1)); fi
done
wait

echo
echo "fuzz summary: ${seconds} s per target, ${jobs} at a time, $(( $(date +%s) - fuzz_start )) s in all"
for t in "${targets[@]}"; do
  echo "  $(cat "$out/$t.result" 2>/dev/null || echo "$t: no result")"
  if [[ $(cat "$out/$t.rc" 2>/dev/null || echo 1) != 0 ]]; then
    status=1
    echo "---- $t failed; crash input under $out/artifacts/$t/; the end of $out/$t.log:"
    tail -40 "$out/$t.log"
  fi
done
exit $status
