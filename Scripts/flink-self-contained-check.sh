#!/bin/bash
# A real Flink 2.3.0 restore from self-contained copies made by the `_metadata` writer.
#
# Job A (RocksDB, incremental checkpoints) runs and is cancelled; its newest retained checkpoint is copied by
# `flink-metadata-rewrite self-contained` into directories outside the store, with every handle relative to the
# copy. Then A's whole checkpoint directory is moved away, so nothing can be read from where Flink wrote it.
# Flink's own deserializer (Refs2.java) checks each copy; job B restores from one copy in NO_CLAIM mode, job C
# from another in CLAIM mode; each must reach RUNNING and complete checkpoints. Refs2 then says whether the
# checkpoints B and C wrote are restorable, and job D restores for real from C's first checkpoint.
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

for copy in for-no-claim for-claim; do
  "$REWRITE" self-contained "$A_LAST" "$WORK/archive/$copy" || die "the self-contained copy failed"
  grep -c . <(refs "$WORK/archive/$copy" | grep -v '^#') >/dev/null
  HEAD=$(refs "$WORK/archive/$copy" | head -1)
  log "Refs2 on the copy: $HEAD"
  echo "$HEAD" | grep -q 'restorable=yes' || fail "Flink's deserializer does not find every file of $copy"
  if refs "$WORK/archive/$copy" | grep -v '^#' | grep -v "^file:$WORK/archive/$copy/" | grep -q .; then
    fail "$copy names files outside itself: $(refs "$WORK/archive/$copy" | grep -v '^#' | grep -v "^file:$WORK/archive/$copy/" | head -3)"
  fi
done
cmp -s "$A_LAST/_metadata" "$WORK/archive/for-claim/_metadata" && fail "the copy's _metadata is the original's"

log "moving A's checkpoints away: nothing may be read from where Flink wrote them"
mkdir -p "$WORK/moved-away"; mv "$STORE/checkpoints/$A" "$WORK/moved-away/"

B=$(run_job -s "file://$WORK/archive/for-no-claim" -cm no_claim)
[ -n "$B" ] || die "job B did not start from the copy (see $WORK/log/flink-run.log)"
log "job B = $B restored from the self-contained copy, NO_CLAIM"
wait_checkpoints "$B" 3 && log "B: RUNNING and checkpointing from the copy"
cancel_job "$B"

C=$(run_job -s "file://$WORK/archive/for-claim" -cm claim)
[ -n "$C" ] || die "job C did not start from the copy"
log "job C = $C restored from the self-contained copy, CLAIM"
wait_checkpoints "$C" 3 && log "C: RUNNING and checkpointing from the copy"
cancel_job "$C"

log "Refs2 on the checkpoints B and C wrote (is every one restorable?)"
for j in "$B" "$C"; do
  for d in $(checkpoints_of "$j"); do
    HEAD=$(refs "$d" | head -1); echo "  $HEAD"
    echo "$HEAD" | grep -q 'restorable=yes' || log "  NOT restorable: $d (see the note on FLINK-39964 in the report)"
  done
done
C_FIRST=$(checkpoints_of "$C" | head -1)
if [ -n "$C_FIRST" ]; then
  D=$(run_job -s "file://$C_FIRST" -cm no_claim)
  if [ -n "$D" ] && wait_checkpoints "$D" 2; then log "D restored from C's first checkpoint $C_FIRST and checkpoints"
  else log "D could not restore from C's first checkpoint $C_FIRST"; fi
  [ -n "$D" ] && cancel_job "$D"
fi
[ "$FAILURES" = 0 ] || exit 1
