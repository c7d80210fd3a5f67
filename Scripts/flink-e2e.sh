#!/bin/bash
# End to end with a real Flink 2.3.0 cluster on 127.0.0.1: RocksDB incremental checkpoints, a CLAIM restore that
# makes one job read another job's files, checked delete of the older job's snapshots through `snapfs`, a
# canonical savepoint triggered through `snapfs`, and finally a real Flink job restored from the newer job's
# newest checkpoint, checked to run and checkpoint.
#
# usage: Scripts/flink-e2e.sh
# env:   SNAPFS_E2E_DIR    work directory (default /var/tmp/snapfs-flink-e2e; the store is $SNAPFS_E2E_DIR/store)
#        SNAPFS_FLINK_CACHE where the PyPI wheels are kept between runs (default /var/tmp/snapfs-flink-cache)
#        SNAPFS_E2E_PORT   REST port (default 18181; RPC uses PORT-2000)
#        SNAPFS_E2E_VIA    cli (default) or mount: how snapshots are deleted and triggered. The mount steps are
#                          the FUSE daemon's (rm -rf through the mount, trigger files) and are added with it.
# Needs: java 17+, javac, jar, pip, curl, python3, unzip. Stops the cluster it started on exit.
set -euo pipefail
T0=$(date +%s)
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${SNAPFS_E2E_DIR:-/var/tmp/snapfs-flink-e2e}
CACHE=${SNAPFS_FLINK_CACHE:-/var/tmp/snapfs-flink-cache}
PORT=${SNAPFS_E2E_PORT:-18181}
VIA=${SNAPFS_E2E_VIA:-cli}
TOOLS=${SNAPFS_FLINK_TOOLS:-/work/shared/tools/flink}
REST=http://127.0.0.1:$PORT
STORE=$WORK/store
FLINK_HOME=$WORK/flink/pyflink
export FLINK_HOME
FAILURES=0

log() { echo "[$(date +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*"; }
fail() { log "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
die() { log "FATAL: $*"; exit 1; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# ---- Flink from PyPI -------------------------------------------------------------------------------------------
get_flink() {
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
}

configure_flink() {
  mkdir -p "$WORK/log" "$WORK/tmp"
  # The tools' config, with this run's ports, directories and store.
  sed -e "s/port: 18081/port: $PORT/" -e "s/port: 16123/port: $((PORT - 2000))/" \
      -e "s#file:///srv/flink-store#file://$STORE#" "$TOOLS/config.yaml" > "$FLINK_HOME/conf/config.yaml"
  cat >> "$FLINK_HOME/conf/config.yaml" <<YAML
io:
  tmp:
    dirs: $WORK/tmp
YAML
  echo "env.log.dir: $WORK/log" >> "$FLINK_HOME/conf/config.yaml"
  python3 - "$FLINK_HOME/conf/config.yaml" <<'PY'
import sys
# env.log.dir belongs under the existing `env:` map: move the flat line there.
p = sys.argv[1]; lines = open(p).read().splitlines()
log = [l for l in lines if l.startswith("env.log.dir:")][0].split(": ", 1)[1]
lines = [l for l in lines if not l.startswith("env.log.dir:")]
i = lines.index("env:"); lines.insert(i + 1, "  log:\n    dir: " + log)
open(p, "w").write("\n".join(lines) + "\n")
PY
  if [ ! -f "$WORK/statejob.jar" ]; then
    log "building the state job"
    rm -rf "$WORK/classes"; mkdir -p "$WORK/classes"
    javac -cp "$FLINK_HOME/lib/*" -d "$WORK/classes" "$TOOLS/StateJob.java"
    jar cf "$WORK/statejob.jar" -C "$WORK/classes" .
  fi
}

CLUSTER_STARTED=0
start_cluster() {
  if curl -sf "$REST/overview" >/dev/null 2>&1; then die "something already answers on $REST"; fi
  log "starting the Flink cluster on $REST"
  "$FLINK_HOME/bin/start-cluster.sh" >/dev/null
  CLUSTER_STARTED=1
  for _ in $(seq 1 120); do
    if curl -sf "$REST/overview" 2>/dev/null | json "d['taskmanagers']" 2>/dev/null | grep -q '^[1-9]'; then log "cluster up"; return; fi
    sleep 1
  done
  die "the cluster did not come up within 120 s (logs in $WORK/log)"
}

stop_cluster() {
  if [ "$CLUSTER_STARTED" = 1 ]; then
    log "stopping the Flink cluster"
    "$FLINK_HOME/bin/stop-cluster.sh" >/dev/null 2>&1 || true
    CLUSTER_STARTED=0
  fi
}

finish() {
  local rc=$?
  stop_cluster
  log "runtime $(( $(date +%s) - T0 )) s; failures: $FAILURES; exit $rc"
}
trap finish EXIT

# ---- Flink jobs ------------------------------------------------------------------------------------------------
run_job() { # extra flink-run arguments… → job id
  "$FLINK_HOME/bin/flink" run -d "$@" -c demo.StateJob "$WORK/statejob.jar" 2>&1 | grep -o 'JobID [0-9a-f]*' | cut -d' ' -f2
}
completed_checkpoints() { curl -sf "$REST/jobs/$1/checkpoints" | json "d['counts']['completed']"; }
wait_checkpoints() { # job count
  for _ in $(seq 1 180); do
    local n; n=$(completed_checkpoints "$1" 2>/dev/null || echo 0)
    [ "${n:-0}" -ge "$2" ] && { log "job $1: $n checkpoints completed"; return; }
    sleep 1
  done
  die "job $1 did not complete $2 checkpoints within 180 s"
}
job_state() { curl -sf "$REST/jobs/$1" | json "d['state']"; }
cancel_job() {
  curl -sf -XPATCH "$REST/jobs/$1?mode=cancel" >/dev/null
  for _ in $(seq 1 60); do [ "$(job_state "$1")" = CANCELED ] && return; sleep 1; done
  die "job $1 was not cancelled within 60 s"
}
newest_checkpoint_dir() { ls -d "$STORE/checkpoints/$1"/chk-* 2>/dev/null | sort -t- -k2 -n | tail -1; }

# ---- SnapFS operations: the CLI now; the mount's equivalents are added with the daemon -----------------------
SNAPFS=""
build_snapfs() {
  log "building snapfs"
  (cd "$HERE" && swift build --product snapfs >/dev/null)
  SNAPFS="$(cd "$HERE" && swift build --show-bin-path)/snapfs"
}
snapfs() { "$SNAPFS" "$@"; }
delete_snapshot() { # name → exit status of the delete
  case "$VIA" in
    cli) snapfs delete "$STORE" "$1" ;;
    mount) die "mount steps (rm -rf MOUNT/$1) come with the FUSE daemon" ;;
  esac
}
trigger_snapshot() { # format label → exit status
  case "$VIA" in
    cli) snapfs trigger "$STORE" --format "$1" ${2:+--label "$2"} ;;
    mount) die "mount steps (echo LABEL > MOUNT/.snapfs/trigger/FORMAT) come with the FUSE daemon" ;;
  esac
}

# ---- the scenario ----------------------------------------------------------------------------------------------
get_flink
configure_flink
build_snapfs
rm -rf "$STORE"; mkdir -p "$STORE/savepoints"
start_cluster

A=$(run_job); [ -n "$A" ] || die "job A did not start"
log "job A = $A (RocksDB, incremental checkpoints every 3 s)"
wait_checkpoints "$A" 4
cancel_job "$A"
A_LAST=$(newest_checkpoint_dir "$A")
log "A cancelled; its checkpoints are retained; newest: $A_LAST"

B=$(run_job -s "file://$A_LAST" -cm claim); [ -n "$B" ] || die "job B did not start"
log "job B = $B restored from $A_LAST in CLAIM mode"
wait_checkpoints "$B" 4

log "snapfs init --engine flink (job B)"
snapfs init "$STORE" --engine flink --rest "$REST" --job "$B"
snapfs list "$STORE"

# The CLAIM scenario: B's checkpoints read files in A's shared/ directory.
B_NEWEST=$(snapfs list "$STORE" --json | json "[s['name'] for s in d if s['name'].startswith('${B:0:6}-chk-')][-1]")
CROSS=$(snapfs show "$STORE" "$B_NEWEST" --files | grep -c "checkpoints/$A/" || true)
log "B's newest checkpoint $B_NEWEST needs $CROSS files in A's directory"
[ "$CROSS" -gt 0 ] || log "note: B no longer references A's files (timing); the delete below is then a plain one"

log "trigger: canonical savepoint of B through snapfs"
trigger_snapshot canonical before-cleanup || fail "canonical trigger failed"
snapfs show "$STORE" before-cleanup | head -4 || fail "the triggered savepoint is not listed"
log "trigger: native-incremental must fail with Flink's reason"
if OUT=$(trigger_snapshot native-incremental 2>&1); then fail "an incremental trigger succeeded"; else
  echo "$OUT" | grep -q FLINK-33723 && log "refused as expected: $(echo "$OUT" | tail -1)" || fail "incremental trigger failed without the FLINK-33723 reason: $OUT"
fi

log "verify before the delete"
snapfs verify "$STORE" > "$WORK/verify-before.txt" || true
grep -E "^(NOT RESTORABLE|[0-9]+ snapshots)" "$WORK/verify-before.txt" || true

log "the recovery point of running job B may not be deleted"
RP=$(snapfs list "$STORE" --json | json "[s['name'] for s in d if s['recoveryPoint']][0]")
if delete_snapshot "$RP" 2>"$WORK/refusal.txt"; then fail "deleting the recovery point $RP succeeded"; else
  log "refused: $(cat "$WORK/refusal.txt")"
fi

log "delete every snapshot of the older job A"
A_SNAPS=$(snapfs list "$STORE" --json | json "' '.join(s['name'] for s in d if s['name'].startswith('${A:0:6}-chk-') or s['name'].startswith('savepoint-${A:0:6}-'))")
for s in $A_SNAPS; do delete_snapshot "$s" || fail "delete $s"; done
[ -z "$(ls -d "$STORE/checkpoints/$A"/chk-* 2>/dev/null)" ] || fail "A's checkpoint directories remain: $(ls -d "$STORE/checkpoints/$A"/chk-*)"
REMAINING_A=$(find "$STORE/checkpoints/$A" -type f 2>/dev/null | wc -l)
log "A's directory keeps $REMAINING_A files (the ones B still needs; B needed $CROSS)"

log "verify after the delete"
snapfs verify "$STORE" > "$WORK/verify-after.txt" || true
cat "$WORK/verify-after.txt" | grep -vE "^    " || true
if grep -q "^NOT RESTORABLE ${B:0:6}-" "$WORK/verify-after.txt"; then fail "a snapshot of B became unrestorable"; fi

log "cancel B and restore a new job from B's newest checkpoint"
cancel_job "$B"
snapfs refresh "$STORE" >/dev/null
B_LAST=$(newest_checkpoint_dir "$B")
snapfs verify "$STORE" | grep -F "$(basename "$B_LAST")" | grep "${B:0:6}" || true
C=$(run_job -s "file://$B_LAST"); [ -n "$C" ] || die "job C did not start"
log "job C = $C restored from $B_LAST"
wait_checkpoints "$C" 2
RESTORED=$(curl -sf "$REST/jobs/$C/checkpoints" | json "d['latest']['restored']['external_path']")
STATE=$(job_state "$C")
log "job C is $STATE, restored from $RESTORED"
[ "$STATE" = RUNNING ] || fail "job C is $STATE, not RUNNING"
case "$RESTORED" in *"$(basename "$B_LAST")"*) ;; *) fail "job C restored from $RESTORED, not $B_LAST" ;; esac
EXC=$(curl -sf "$REST/jobs/$C/exceptions" | json "len(d.get('exceptionHistory',{}).get('entries',[]))")
[ "$EXC" = 0 ] || fail "job C recorded $EXC exceptions"
cancel_job "$C"

snapfs list "$STORE"
[ "$FAILURES" = 0 ] && log "E2E PASSED" || { log "E2E FAILED ($FAILURES)"; exit 1; }
