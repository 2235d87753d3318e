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
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out="$root/target/fuzz-instrumented"
triple=$(rustc -vV | sed -n 's/^host: //p')

merge=0
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
summary=()
for t in "${targets[@]}"; do
  corpus="$root/fuzz/corpus/$t"
  scratch="$out/corpus/$t"
  artifacts="$out/artifacts/$t"
  mkdir -p "$corpus" "$scratch" "$artifacts"
  if [[ $merge == 1 ]]; then
    # Minimise: keep the smallest set of inputs (committed + found) with the same coverage.
    fresh="$out/merged/$t"
    rm -rf "$fresh"
    mkdir -p "$fresh"
    "$bin/$t" -merge=1 -rss_limit_mb=2048 -timeout=10 "$fresh" "$corpus" "$scratch" 2>"$out/$t.merge.log" || {
      echo "$t: merge failed, see $out/$t.merge.log"; status=1; continue; }
    # Seeds keep their names (the generator rewrites them); merged files are named by SHA-1.
    for seed in "$corpus"/seed-*; do
      [[ -e $seed ]] && rm -f "$fresh/$(sha1sum "$seed" | cut -d' ' -f1)"
    done
    find "$corpus" -type f ! -name 'seed-*' -delete
    cp "$fresh"/* "$corpus"/ 2>/dev/null || true
    echo "$t: corpus $(ls "$corpus" | wc -l) files, $(du -sk "$corpus" | cut -f1) KB"
    continue
  fi
  log="$out/$t.log"
  set +e
  # The committed corpus is read-only input; new finds go to the scratch dir (first argument).
  "$bin/$t" "$scratch" "$corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  ft=$( (grep -o 'ft: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  init_cov=$( (grep -m1 'INITED' "$log" || true) | (grep -o 'cov: [0-9]*' || true) | cut -d' ' -f2)
  line=$(printf '%-22s %10s execs  cov %s -> %s  ft %s' "$t" "${execs:-?}" "${init_cov:-?}" "${cov:-?}" "${ft:-?}")
  if [[ $rc -ne 0 ]]; then
    line="$line  CRASHED (exit $rc): $(ls "$artifacts" | head -3 | tr '\n' ' ')"
    echo "---- $t failed; the end of its log ($log):"
    tail -40 "$log"
    status=1
  fi
  echo "$line"
  summary+=("$line")
done

if [[ $merge == 0 ]]; then
  echo
  echo "fuzz summary (${seconds} s per target; crash inputs under $out/artifacts/):"
  printf '  %s\n' "${summary[@]}"
fi
exit $status
