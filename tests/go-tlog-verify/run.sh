#!/usr/bin/env bash
# Independent check of custodia-tlog with Go's golang.org/x/mod/sumdb/{note,tlog}.
#
# Needs Debian's golang-go and golang-golang-x-mod-dev (builds offline against
# /usr/share/gocode/src/golang.org/x/mod). Writes fixtures with our Rust example, verifies
# them with Go, then flips bits in every fixture file and requires Go to reject each one.
# Then vault.sh does the same for a log produced by a real vault (see that script).
#
#   bash tests/go-tlog-verify/run.sh            # verify + tamper checks
#   bash tests/go-tlog-verify/run.sh --vectors  # regenerate crates/custodia-tlog/testdata/go-tlog-reference.txt
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

export GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local
export GOCACHE="${GOCACHE:-$work/gocache}" GOPATH="${GOPATH:-$work/gopath}"
if [ ! -d /usr/share/gocode/src/golang.org/x/mod/sumdb ]; then
  echo "run.sh: install golang-go and golang-golang-x-mod-dev" >&2
  exit 2
fi
(cd "$here" && go build -o "$work/go-tlog-verify" .)
gv="$work/go-tlog-verify"

if [ "${1:-}" = "--vectors" ]; then
  "$gv" vectors > "$root/crates/custodia-tlog/testdata/go-tlog-reference.txt"
  echo "wrote crates/custodia-tlog/testdata/go-tlog-reference.txt"
  exit 0
fi

(cd "$root" && cargo build -q -p custodia-tlog --example write_go_fixture)
fixture="$root/target/debug/examples/write_go_fixture"

fail=0
# Sizes chosen to cover a single leaf, exact tile edges, shared right-edge tiles, and two tile levels.
for spec in "1 1 0" "256 255 128" "1000 300 617" "70000 65536 69999"; do
  set -- $spec
  dir="$work/fixture-$1"
  "$fixture" "$dir" "$1" "$2" "$3" >/dev/null
  if ! "$gv" verify "$dir"; then
    echo "FAIL: Go rejected the untampered fixture of size $1" >&2
    fail=1
    continue
  fi
  [ "$1" = 1000 ] || continue
  # Tamper: every file, three positions each.
  checked=0
  while IFS= read -r f; do
    rel="${f#$dir/}"
    for off in 0 mid last; do
      t="$work/tampered"
      rm -rf "$t"; cp -r "$dir" "$t"
      "$gv" flip "$t/$rel" "$off"
      if "$gv" verify "$t" >/dev/null 2>&1; then
        echo "FAIL: Go accepted $rel with a bit flipped at $off" >&2
        fail=1
      fi
      checked=$((checked + 1))
    done
  done < <(find "$dir" -type f | sort)
  echo "tamper: $checked single-bit flips across $(find "$dir" -type f | wc -l) files, all rejected unless listed above"
done

# The same checks on a log written by a real vault (demo, witness, serve, audit export).
if ! bash "$here/vault.sh" "$gv"; then
  fail=1
fi
exit $fail
