#!/bin/bash
# A real Flink 2.3.0 restore from self-contained copies made by the `_metadata` writer.
#
# Job A (RocksDB, incremental checkpoints) runs and is cancelled; its newest retained checkpoint is copied by
# `flink-metadata-rewrite self-contained` into directories outside the store: two with every handle relative to
# the copy, one naming its files by absolute path inside the copy. Then A's whole checkpoint directory is moved
# away, so nothing can be read from where Flink wrote it. Flink's own deserializer (Refs2.java) checks each copy.
# B restores from a relative copy (NO_CLAIM), E from the absolute one (CLAIM): both must reach RUNNING, report
# the copy as their restore, complete checkpoints, and write only restorable checkpoints (Refs2); D restores for
# real from E's first checkpoint. `snapfs convert --to self-contained` makes a converted savepoint of A's newest
# checkpoint in a SnapFS store over the same directory, every other snapshot of A is deleted with `snapfs delete`,
# and job H restores from the converted one. C restores from a relative copy in CLAIM mode: on Flink 2.3.0 its checkpoints
# show FLINK-39964 (reused relative handles re-anchored to each chk-N); the script shows a real restore failing,
# then repairs C's first checkpoint (`flink-metadata-rewrite repair`) and restores job G from it.
#
# usage: Scripts/flink-self-contained-check.sh
# env:   SNAPFS_E2E_DIR (default /var/tmp/snapfs-self-contained), SNAPFS_E2E_PORT (default 18181; RPC PORT-2000),
#        SNAPFS_FLINK_CACHE (default /var/tmp/snapfs-flink-cache). Stops the cluster it started on exit.
set -euo pipefail
T0=$(date +%s)
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${SNAPFS_E2E_DIR:-/var/tmp/snapfs-self-contained}
CACHE=${SNAPFS_FLINK_CACHE:-/var/tmp/snapfs-flink-cache}
PORT=${SNAPFS_E2E_PORT:-18181}
TOOLS=${SNAPFS_FLINK_TOOLS:-$(cd "$HERE/.." && pwd)/shared/tools/flink}
REST=http://127.0.0.1:$PORT
STORE=$WORK/store
FLINK_HOME=$WORK/flink/pyflink
export FLINK_HOME
FAILURES=0
log() { echo "[$(date +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*"; }
fail() { log "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
die() { log "FATAL: $*"; exit 1; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

mkdir -p "$CACHE" "$WORK"
if ! ls "$CACHE"/apache_flink-2.3.0-*.whl >/dev/null 2>&1 || ! ls "$CACHE"/apache_flink_libraries-2.3.0-*.whl >/dev/null 2>&1; then
  log "downloading apache-flink 2.3.0 wheels from PyPI"
  pip download --no-deps apache-flink==2.3.0 apache-flink-libraries==2.3.0 -d "$CACHE" >/dev/null
fi
if [ ! -x "$FLINK_HOME/bin/start-cluster.sh" ]; then
  log "unpacking Flink"
  rm -rf "$WORK/flink"; mkdir -p "$WORK/flink"
  for w in "$CACHE"/apache_flink-2.3.0-*.whl "$CACHE"/apache_flink_libraries-2.3.0-*.whl; do unzip -qo "$w" -d "$WORK/flink"; done
  chmod +x "$FLINK_HOME"/bin/*
fi
mkdir -p "$WORK/log" "$WORK/tmp"
sed -e "s/port: 18081/port: $PORT/" -e "s/port: 16123/port: $((PORT - 2000))/" \
    -e "s#file:///srv/flink-store#file://$STORE#" "$TOOLS/config.yaml" > "$FLINK_HOME/conf/config.yaml"
printf 'io:\n  tmp:\n    dirs: %s\nstate.backend.rocksdb.compaction.style: NONE\n' "$WORK/tmp" >> "$FLINK_HOME/conf/config.yaml"
# Logs and pid files in the work directory: Flink's default pid directory is /tmp, shared by every cluster of
# this user, so stop-cluster.sh would otherwise stop other clusters on the machine too.
mkdir -p "$WORK/pid"
python3 - "$FLINK_HOME/conf/config.yaml" "$WORK/log" "$WORK/pid" <<'PY'
import sys
p, log, pid = sys.argv[1], sys.argv[2], sys.argv[3]; lines = open(p).read().splitlines()
i = lines.index("env:"); lines.insert(i + 1, "  log:\n    dir: " + log + "\n  pid:\n    dir: " + pid)
open(p, "w").write("\n".join(lines) + "\n")
PY
if [ ! -f "$WORK/statejob.jar" ] || [ ! -f "$WORK/classes/Refs2.class" ]; then
  log "building the state job and Refs2"
  rm -rf "$WORK/classes"; mkdir -p "$WORK/classes"
  javac -cp "$FLINK_HOME/lib/*" -d "$WORK/classes" "$TOOLS/StateJob.java" "$TOOLS/Refs2.java"
  jar cf "$WORK/statejob.jar" -C "$WORK/classes" .
fi
log "building flink-metadata-rewrite"
(cd "$HERE" && swift build --product flink-metadata-rewrite >/dev/null)
REWRITE="$(cd "$HERE" && swift build --show-bin-path)/flink-metadata-rewrite"
refs() { java -cp "$WORK/classes:$FLINK_HOME/lib/*" Refs2 "$@" 2>/dev/null; }

CLUSTER_STARTED=0
finish() {
  local rc=$?
  if [ "$CLUSTER_STARTED" = 1 ]; then log "stopping the Flink cluster"; "$FLINK_HOME/bin/stop-cluster.sh" >/dev/null 2>&1 || true; fi
  log "runtime $(( $(date +%s) - T0 )) s; failures: $FAILURES; exit $rc"
}
trap finish EXIT
if curl -sf "$REST/overview" >/dev/null 2>&1; then die "something already answers on $REST"; fi
rm -rf "$STORE" "$WORK/archive" "$WORK/moved-away"; mkdir -p "$STORE/savepoints" "$WORK/archive"
log "starting the Flink cluster on $REST"
"$FLINK_HOME/bin/start-cluster.sh" >/dev/null
CLUSTER_STARTED=1
for _ in $(seq 1 120); do
  curl -sf "$REST/overview" 2>/dev/null | json "d['taskmanagers']" 2>/dev/null | grep -q '^[1-9]' && break; sleep 1
done
curl -sf "$REST/overview" >/dev/null || die "the cluster did not come up (logs in $WORK/log)"

run_job() { "$FLINK_HOME/bin/flink" run -d "$@" -c demo.StateJob "$WORK/statejob.jar" 2>&1 | tee -a "$WORK/log/flink-run.log" | grep -o 'JobID [0-9a-f]*' | cut -d' ' -f2 || true; }
job_state() { curl -sf "$REST/jobs/$1" | json "d['state']"; }
completed() { curl -sf "$REST/jobs/$1/checkpoints" | json "d['counts']['completed']"; }
wait_checkpoints() { # job count → 0 when reached
  for _ in $(seq 1 120); do
    [ "$(completed "$1" 2>/dev/null || echo 0)" -ge "$2" ] && { log "job $1: $(job_state "$1"), $(completed "$1") checkpoints completed"; return 0; }
    case "$(job_state "$1" 2>/dev/null)" in FAILED|CANCELED) break ;; esac
    sleep 1
  done
  fail "job $1 did not complete $2 checkpoints (state $(job_state "$1" 2>/dev/null)); exceptions: $(curl -sf "$REST/jobs/$1/exceptions" | json "(d.get('rootException') or '')[:400]" 2>/dev/null)"
  return 1
}
cancel_job() {
  curl -sf -XPATCH "$REST/jobs/$1?mode=cancel" >/dev/null || true
  for _ in $(seq 1 60); do [ "$(job_state "$1")" = CANCELED ] && return; sleep 1; done
  fail "job $1 was not cancelled"
}
checkpoints_of() { ls -d "$STORE/checkpoints/$1"/chk-* 2>/dev/null | awk -F/chk- '{print $NF" "$0}' | sort -n | cut -d' ' -f2; }

A=$(run_job); [ -n "$A" ] || die "job A did not start"
log "job A = $A (RocksDB, incremental checkpoints)"
wait_checkpoints "$A" 5 || die "job A made no checkpoints"
cancel_job "$A"
A_LAST=$(checkpoints_of "$A" | tail -1)
log "A's newest retained checkpoint: $A_LAST"
refs "$A_LAST" | head -1

# Two relative copies (Flink's relocatable layout) and one naming its files by absolute path inside itself.
for copy in for-no-claim for-claim for-claim-absolute; do
  FLAG=""; [ "$copy" = for-claim-absolute ] && FLAG=--absolute
  "$REWRITE" self-contained "$A_LAST" "$WORK/archive/$copy" $FLAG || die "the self-contained copy failed"
  HEAD=$(refs "$WORK/archive/$copy" | head -1)
  log "Refs2 on the copy: $HEAD"
  echo "$HEAD" | grep -q 'restorable=yes' || fail "Flink's deserializer does not find every file of $copy"
  OUTSIDE=$(refs "$WORK/archive/$copy" | grep -v '^#' | grep -v "^file:$WORK/archive/$copy/" || true)
  [ -z "$OUTSIDE" ] || fail "$copy names files outside itself: $(echo "$OUTSIDE" | head -3)"
done
cmp -s "$A_LAST/_metadata" "$WORK/archive/for-claim/_metadata" && fail "the copy's _metadata is the original's"

# The store way: `snapfs convert --to self-contained` of A's newest checkpoint, then every other snapshot of A
# deleted through `snapfs delete`; Refs2 and a real restore (job H, NO_CLAIM) from the converted savepoint.
log "building snapfs"
(cd "$HERE" && swift build --product snapfs >/dev/null)
SNAPFS="$(cd "$HERE" && swift build --show-bin-path)/snapfs"
"$SNAPFS" init "$STORE" --engine flink | tail -1
A_NAME="${A:0:6}-chk-$(basename "$A_LAST" | cut -d- -f2)"
BEFORE=$(ls "$STORE/savepoints")
"$SNAPFS" convert "$STORE" "$A_NAME" --to self-contained --label a-self-contained || fail "snapfs convert failed"
CONVERTED="$STORE/savepoints/$(comm -13 <(echo "$BEFORE") <(ls "$STORE/savepoints") | head -1)"
for s in $("$SNAPFS" list "$STORE" --json | json "' '.join(s['name'] for s in d if s['name'].startswith('${A:0:6}-chk-'))"); do
  "$SNAPFS" delete "$STORE" "$s" >/dev/null || fail "snapfs delete $s failed"
done
[ -d "$A_LAST" ] && fail "A's newest checkpoint is still there after deleting it"
"$SNAPFS" list "$STORE" | grep a-self-contained
HEAD=$(refs "$CONVERTED" | head -1); log "Refs2 on $CONVERTED after deleting the rest of A: ${HEAD##* }"
echo "$HEAD" | grep -q 'restorable=yes' || fail "Refs2 does not find every file of the converted snapshot"
OUTSIDE=$(refs "$CONVERTED" | grep -v '^#' | grep -v "^file:$CONVERTED/" || true)
[ -z "$OUTSIDE" ] || fail "the converted snapshot names files outside itself: $(echo "$OUTSIDE" | head -3)"
"$SNAPFS" verify "$STORE" | grep -E "a-self-contained" || true

log "moving A's checkpoints away: nothing may be read from where Flink wrote them"
mkdir -p "$WORK/moved-away"; [ ! -d "$STORE/checkpoints/$A" ] || mv "$STORE/checkpoints/$A" "$WORK/moved-away/"

restored_from() { curl -sf "$REST/jobs/$1/checkpoints" | json "(d['latest'].get('restored') or {}).get('external_path')"; }
all_restorable() { # job → lists its checkpoints with Refs2's verdict; status 0 when every one is restorable
  local ok=0
  for d in $(checkpoints_of "$1"); do
    HEAD=$(refs "$d" | head -1); echo "  ${HEAD#\# }" | sed -e 's/ operators=.* types=/ types=/'
    echo "$HEAD" | grep -q 'restorable=yes' || ok=1
  done
  return $ok
}
restore_and_checkpoint() { # label copy-dir claim-mode → job id in $JOB
  JOB=$(run_job -s "file://$2" -cm "$3")
  [ -n "$JOB" ] || { fail "job $1 did not start from $2 (see $WORK/log/flink-run.log)"; return 1; }
  log "job $1 = $JOB restored from $2, $3"
  wait_checkpoints "$JOB" 3 || return 1
  local from; from=$(restored_from "$JOB")
  case "$from" in *"$2"*) log "$1: RUNNING, checkpointing, and Flink reports it restored from $from" ;;
    *) fail "$1 reports it restored from '$from', not $2" ;; esac
  cancel_job "$JOB"
}

restore_and_checkpoint H "$CONVERTED" no_claim && log "H restored from the snapshot snapfs converted, after the rest of A was deleted"

restore_and_checkpoint B "$WORK/archive/for-no-claim" no_claim; B=$JOB
all_restorable "$B" || fail "a checkpoint of B (NO_CLAIM from the relative copy) is not restorable"

restore_and_checkpoint E "$WORK/archive/for-claim-absolute" claim; E=$JOB
all_restorable "$E" || fail "a checkpoint of E (CLAIM from the absolute copy) is not restorable"
E_FIRST=$(checkpoints_of "$E" | head -1)
restore_and_checkpoint D "$E_FIRST" no_claim && log "D restored from E's first checkpoint for real"

restore_and_checkpoint C "$WORK/archive/for-claim" claim; C=$JOB
if all_restorable "$C"; then log "C (CLAIM from the relative copy): every checkpoint restorable"
else log "C (CLAIM from the relative copy): Flink 2.3.0 wrote checkpoints that are NOT restorable (FLINK-39964: reused relative handles re-anchored to each chk-N)"
  C_FIRST=$(checkpoints_of "$C" | head -1)
  F=$(run_job -s "file://$C_FIRST" -cm no_claim)
  for _ in $(seq 1 40); do case "$(job_state "$F" 2>/dev/null)" in FAILED|RESTARTING) break ;; esac; sleep 1; done
  WHY=$(curl -sf "$REST/jobs/$F/exceptions" | python3 -c "
import json, re, sys
d = json.load(sys.stdin)
st = ' '.join(e.get('stacktrace', '') for e in d.get('exceptionHistory', {}).get('entries', [])[:1])
m = re.findall(r'FileNotFoundException: [^\\n]*', st)
print(m[-1] if m else 'no FileNotFoundException')" 2>/dev/null || true)
  log "a real restore from C's first checkpoint: $(job_state "$F" 2>/dev/null); $WHY"
  cancel_job "$F"
  log "repair: C's first checkpoint, its misplaced relative handles pointed at the copy C was restored from"
  "$REWRITE" repair "$C_FIRST" "$WORK/archive/for-claim" | tail -1 || fail "the repair failed"
  HEAD=$(refs "$C_FIRST" | head -1); log "Refs2 after the repair: ${HEAD##* }"
  echo "$HEAD" | grep -q 'restorable=yes' || fail "Refs2 does not find every file of the repaired $C_FIRST"
  restore_and_checkpoint G "$C_FIRST" no_claim && log "G restored from the repaired checkpoint for real"
fi
[ "$FAILURES" = 0 ] || exit 1
