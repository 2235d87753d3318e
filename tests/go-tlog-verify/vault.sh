#!/usr/bin/env bash
# Go's x/mod sumdb note/tlog check a log the VAULT produced (called by run.sh, or alone).
#
# A small demo vault, an older checkpoint kept aside, one more logged action, a witness
# (`custodia witness serve`) cosigning through `custodia serve --witness`, then
# `custodia audit export` writes the fixture layout main.go verifies: the cosigned checkpoint,
# an entry's tlog-proof, a consistency proof from the older checkpoint, and every tile and entry
# bundle. Go must accept it, and reject it with any single bit flipped in any file.
#
#   bash tests/go-tlog-verify/vault.sh GO_VERIFIER_BINARY
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
gv="$1"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

(cd "$root" && cargo build -q -p custodia)
c="$root/target/debug/custodia"
export CUSTODIA_LOG=error
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$c" demo --dir "$work/demo" --captures 30 --days 3 --quiet >/dev/null
v="$work/demo/vault"
cp "$v/log/checkpoint" "$work/old-checkpoint"
"$c" device enroll --vault "$v" --site anzalduas --lane lane-go --lane-dir "$work/lane-go" >/dev/null

"$c" audit key --vault "$v" | tr -d '\n' > "$work/log.vkey"
"$c" witness keygen --name witness.example/oig --out "$work/witness.key" | tr -d '\n' > "$work/witness.vkey"
wp=$(free_port); vp=$(free_port)
"$c" witness serve --key-file "$work/witness.key" --log-key "@$work/log.vkey" --state "$work/witness.state" \
  --listen "127.0.0.1:$wp" >/dev/null & pids+=($!)
sleep 0.5
"$c" serve --dir "$v" --listen "127.0.0.1:$vp" --witness "http://127.0.0.1:$wp" >/dev/null & serve=$!; pids+=($serve)
# Wait until the published checkpoint is cosigned and stays so (epoch maintenance at start-up
# may add events; the witness then cosigns the newer checkpoint).
ok=0
for _ in $(seq 1 120); do
  if grep -q "— witness.example/oig " "$v/log/checkpoint" 2>/dev/null; then ok=$((ok + 1)); else ok=0; fi
  [ "$ok" -ge 6 ] && break
  sleep 0.5
done
[ "$ok" -ge 6 ] || { echo "vault.sh: the witness never cosigned" >&2; exit 1; }
kill -INT "$serve"; wait "$serve" || true

size=$(sed -n 2p "$v/log/checkpoint")
fix="$work/fixture"
"$c" audit export --vault "$v" --out "$fix" --entry $((size / 2)) --old "$work/old-checkpoint" >/dev/null
cp "$work/log.vkey" "$fix/log.vkey"; cp "$work/witness.vkey" "$fix/witness.vkey"
"$c" audit verify "$fix" --key "@$work/log.vkey" --witness "@$work/witness.vkey" --state "$work/auditor.state" --quiet

fail=0
if ! "$gv" verify "$fix"; then
  echo "FAIL: Go rejected the vault's log" >&2
  exit 1
fi
# Tamper: one bit in each file that carries a signature, proof or hashes, at three places.
checked=0
while IFS= read -r f; do
  rel="${f#$fix/}"
  case "$rel" in origin|log.vkey|witness.vkey) continue ;; esac
  for off in 0 mid last; do
    t="$work/tampered"; rm -rf "$t"; cp -r "$fix" "$t"
    "$gv" flip "$t/$rel" "$off"
    if "$gv" verify "$t" >/dev/null 2>&1; then
      echo "FAIL: Go accepted the vault's $rel with a bit flipped at $off" >&2
      fail=1
    fi
    checked=$((checked + 1))
  done
done < <(find "$fix" -type f | sort)
echo "vault log: Go verified size $size (old $(sed -n 2p "$fix/old-checkpoint")), $checked single-bit flips all rejected unless listed above"
exit $fail
