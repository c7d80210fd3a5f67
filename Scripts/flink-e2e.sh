#!/bin/bash
# End to end with a real Flink 2.3.0 cluster on 127.0.0.1: RocksDB incremental checkpoints, a CLAIM restore that
# makes one job read another job's files, the store mounted with `snapfs mount`, CANONICAL and NATIVE savepoints
# triggered by writing trigger files, the recovery point refused (EBUSY), checked delete of the older job's
# snapshots by `rm -rf` through the mount, and finally real Flink jobs restored from the newer job's newest
# checkpoint and from the canonical savepoint, checked to run and checkpoint.
#
# usage: Scripts/flink-e2e.sh
# env:   SNAPFS_E2E_DIR    work directory (default /var/tmp/snapfs-flink-e2e; the store is $SNAPFS_E2E_DIR/store)
#        SNAPFS_FLINK_CACHE where the PyPI wheels are kept between runs (default /var/tmp/snapfs-flink-cache)
#        SNAPFS_E2E_PORT   REST port (default 18181; RPC uses PORT-2000)
#        SNAPFS_E2E_VIA    mount (default: rm -rf through the mount, trigger files) or cli (snapfs delete/trigger)
#        SNAPFS_E2E_PHASES all (default), or a comma-separated list of phases: cluster (the whole-cluster phase below),
#                          repair, convert, relocate, merging (the snapshot-transformation phases), intents (the job
#                          intents)
#        SNAPFS_E2E_RELOCATE 1 (default) or 0: whether `all` includes the relocate phase
# Then the backups: a HashMap + changelog checkpoint and a RocksDB file-merged checkpoint (of a second store) are
# copied out of the mount with `tar` and with `rsync`, each copy is put where Flink wrote the store, and real Flink
# restores from it, reaching RUNNING and completing a checkpoint.
#
# Then a whole cluster's store: two jobs running at once and a third cancelled, one store with no --job; each running
# job's recovery point refused (EBUSY) through the mount, the cancelled job's checkpoints deletable once the cluster
# says CANCELED, by-job/ listing every job with `latest` naming each running job's recovery point, every job's newest
# checkpoint refused once the JobManager is stopped, `prune --keep-last 2 --dry-run` equal to the real prune that
# follows, a hold set with setfattr refusing rm -rf (EBUSY) until released, and a real restore from every remaining
# job's by-job/J/latest.
#
# Needs: java 17+, javac, jar, pip, curl, python3, unzip, rsync. Stops the cluster it started on exit.
set -euo pipefail
T0=$(date +%s)
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${SNAPFS_E2E_DIR:-/var/tmp/snapfs-flink-e2e}
CACHE=${SNAPFS_FLINK_CACHE:-/var/tmp/snapfs-flink-cache}
PORT=${SNAPFS_E2E_PORT:-18181}
VIA=${SNAPFS_E2E_VIA:-mount}
PHASES=${SNAPFS_E2E_PHASES:-all}
TOOLS=${SNAPFS_FLINK_TOOLS:-$(cd "$HERE/.." && pwd)/shared/tools/flink}
REST=http://127.0.0.1:$PORT
STORE=$WORK/store
MNT=$WORK/mnt
MOUNT_PID=""
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
  # RocksDB compacts the few small SST files of the demo job as soon as a restored job opens them, so a restored
  # job would at once stop reading the files it claimed. Without compaction (SNAPFS_E2E_COMPACTION=NONE, the
  # default here) the restored job's checkpoints keep referencing the older job's shared/ files, as large jobs do
  # for a long time; LEVEL gives Flink's default behaviour.
  cat >> "$FLINK_HOME/conf/config.yaml" <<YAML
state.backend.rocksdb.compaction.style: ${SNAPFS_E2E_COMPACTION:-NONE}
YAML
  # Changelog storage for the backup phase's changelog job (jobs without state.changelog.enabled ignore it).
  cat >> "$FLINK_HOME/conf/config.yaml" <<YAML
state.changelog.storage: filesystem
state.changelog.periodic-materialize.interval: 8s
dstl.dfs.base-path: file://$WORK/store-backups/changelog
YAML
  echo "env.log.dir: $WORK/log" >> "$FLINK_HOME/conf/config.yaml"
  python3 - "$FLINK_HOME/conf/config.yaml" <<'PY'
import sys
# env.log.dir belongs under the existing `env:` map: move the flat line there. Pid files go beside the logs:
# Flink's default pid directory is /tmp, shared by every cluster on the machine, so stop-cluster.sh would stop
# other clusters too.
p = sys.argv[1]; lines = open(p).read().splitlines()
log = [l for l in lines if l.startswith("env.log.dir:")][0].split(": ", 1)[1]
lines = [l for l in lines if not l.startswith("env.log.dir:")]
i = lines.index("env:"); lines.insert(i + 1, "  log:\n    dir: " + log + "\n  pid:\n    dir: " + log)
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
  unmount_store
  for m in "$WORK"/mnt-*; do
    if mountpoint -q "$m" 2>/dev/null; then fusermount3 -u -z "$m" || true; fi
  done
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
newest_checkpoint_dir() { # job → its highest-numbered chk-N directory
  ls -d "$STORE/checkpoints/$1"/chk-* 2>/dev/null | awk -F/chk- '{print $NF" "$0}' | sort -n | tail -1 | cut -d' ' -f2
}

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
    mount) rm -rf "$MNT/$1" && [ ! -e "$MNT/$1" ] ;;
  esac
}
trigger_snapshot() { # format label → exit status; in the mount, close returns once the snapshot is listed
  case "$VIA" in
    cli) snapfs trigger "$STORE" --format "$1" ${2:+--label "$2"} ;;
    mount) echo "${2:-}" > "$MNT/.snapfs/trigger/$1" && { [ -z "${2:-}" ] || [ -d "$MNT/$2" ]; } ;;
  esac
}
mount_store() {
  [ "$VIA" = mount ] || return 0
  mkdir -p "$MNT"
  log "snapfs mount $STORE $MNT"
  "$SNAPFS" mount "$STORE" "$MNT" --clear-stale --quiet > "$WORK/log/snapfs-mount.log" 2>&1 &
  MOUNT_PID=$!
  for _ in $(seq 1 100); do [ -e "$MNT/.snapfs/status" ] && { log "mounted"; return; }; sleep 0.1; done
  die "the mount did not come up (log: $WORK/log/snapfs-mount.log)"
}
unmount_store() {
  if [ -n "$MOUNT_PID" ]; then
    fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -u -z "$MNT" 2>/dev/null || true
    wait "$MOUNT_PID" 2>/dev/null || true
    MOUNT_PID=""
  fi
}

# ---- the scenario ----------------------------------------------------------------------------------------------
get_flink
configure_flink
build_snapfs
rm -rf "$STORE"; mkdir -p "$STORE/savepoints"
start_cluster

if [ "$PHASES" = all ]; then

A=$(run_job); [ -n "$A" ] || die "job A did not start"
log "job A = $A (RocksDB, incremental checkpoints every 3 s)"
wait_checkpoints "$A" 4
cancel_job "$A"
A_LAST=$(newest_checkpoint_dir "$A")
log "A cancelled; its checkpoints are retained; newest: $A_LAST"

B=$(run_job -s "file://$A_LAST" -cm claim); [ -n "$B" ] || die "job B did not start"
log "job B = $B restored from $A_LAST in CLAIM mode"
# B's first checkpoints reuse the SST files it restored, which live in A's shared/ directory.
wait_checkpoints "$B" 1

log "snapfs init --engine flink (job B)"
snapfs init "$STORE" --engine flink --rest "$REST" --job "$B"
snapfs list "$STORE"
mount_store
if [ "$VIA" = mount ]; then
  ls -l "$MNT"
  # A snapshot directory in the mount is complete: Flink's relocatable layout (_metadata rewritten with
  # relative handles, every file it needs beside it), or the store-relative layout for file merging. Either
  # way the files it holds, _metadata aside, are byte for byte the ones the store's snapshot needs.
  for s in $(snapfs list "$STORE" --json | json "' '.join(s['name'] for s in d)"); do
    WANT=$(snapfs show "$STORE" "$s" --files | awk '$1 == "-" && $4 !~ /\/_metadata[^\/]*$/ {print $4}' |
      while read -r f; do if [ -f "$STORE/$f" ]; then sha256sum < "$STORE/$f"; fi; done | sort)
    HAVE=$(find "$MNT/$s" -type f ! -name '_metadata*' -exec sha256sum {} + | awk '{print $1 "  -"}' | sort)
    [ "$WANT" = "$HAVE" ] || fail "$MNT/$s does not hold exactly the files $s needs in the store"
  done
  log "every snapshot in the mount holds its files byte-identical to the store"
fi
b_checkpoints() { snapfs list "$STORE" --json | json "' '.join(s['name'] for s in d if s['name'].startswith('${B:0:6}-chk-'))"; }
a_snapshots() { snapfs list "$STORE" --json | json "' '.join(s['name'] for s in d if s['name'].startswith('${A:0:6}-chk-') or s['name'].startswith('savepoint-${A:0:6}-'))"; }
B_NEWEST=$(b_checkpoints | tr ' ' '\n' | tail -1)
CROSS=$(snapfs show "$STORE" "$B_NEWEST" --files | grep -c "^- .* checkpoints/$A/" || true)
log "the CLAIM scenario: B's newest checkpoint $B_NEWEST needs $CROSS files in A's directory"

log "trigger: canonical and native-full snapshots of B through snapfs"
trigger_snapshot canonical before-cleanup || fail "canonical trigger failed"
trigger_snapshot native-full native-before-cleanup || fail "native-full trigger failed"
snapfs list "$STORE" | grep -E "before-cleanup" || fail "the triggered savepoints are not listed"
if [ "$VIA" = mount ]; then
  [ -f "$MNT/before-cleanup/_metadata" ] || [ -n "$(find "$MNT/before-cleanup" -name _metadata | head -1)" ] || fail "the canonical savepoint is not readable in the mount"
  ls "$MNT" | grep -E "before-cleanup" || fail "the triggered savepoints do not appear in the mount"
fi
snapfs list "$STORE" --json | json "[ (s['name'], s['kind'], s['format']) for s in d if 'before-cleanup' in s['name'] ]"
log "trigger: native-incremental must fail with Flink's reason"
if OUT=$(trigger_snapshot native-incremental 2>&1); then fail "an incremental trigger succeeded"; else
  if [ "$VIA" = mount ]; then
    # The write and close fail with EIO; the reason is in the request's file and the event log.
    echo "$OUT" | grep -q "Input/output error" || fail "the failed trigger did not fail the write with EIO: $OUT"
    OUT=$(json "d.get('error') or d" < "$(ls -v "$MNT"/.snapfs/requests/*.json | tail -1)")
  fi
  echo "$OUT" | grep -q FLINK-33723 && log "refused as expected: $(echo "$OUT" | tail -1)" || fail "incremental trigger failed without the FLINK-33723 reason: $OUT"
fi

log "the recovery point of running job B may not be deleted"
# B keeps checkpointing every 3 s, so the recovery point can move on between reading it and removing it: a
# delete that succeeds is only wrong if nothing newer had completed by then. Try until one attempt is refused.
REFUSED=0
for attempt in 1 2 3 4 5; do
  RP=$(snapfs list "$STORE" --json | json "[s['name'] for s in d if s['recoveryPoint']][0]")
  if delete_snapshot "$RP" 2>"$WORK/refusal.txt"; then
    NEWER=$(snapfs list "$STORE" --json | json "len([s for s in d if s['name'].startswith('${B:0:6}-chk-') and int(s['name'].rsplit('-',1)[1]) > int('$RP'.rsplit('-',1)[1])])")
    [ "$NEWER" -gt 0 ] || { fail "deleting the recovery point $RP succeeded"; break; }
    log "attempt $attempt: $RP was subsumed by a newer checkpoint before the delete; trying again"
    continue
  fi
  log "refused: $(head -3 "$WORK/refusal.txt")"
  REFUSED=1
  if [ "$VIA" = mount ]; then
    grep -q "Device or resource busy" "$WORK/refusal.txt" || fail "the refusal through the mount is not EBUSY"
    [ -d "$MNT/$RP" ] || fail "the recovery point vanished from the mount"
  fi
  break
done
[ "$REFUSED" = 1 ] || fail "the recovery point was never refused"

log "cancel B (its checkpoints are retained) so that only snapfs changes the store from here on"
cancel_job "$B"
snapfs refresh "$STORE"
sleep 3 # the daemon's watcher catches up too
log "verify before the delete"
snapfs verify "$STORE" > "$WORK/verify-before.txt" || true
grep -vE "^    " "$WORK/verify-before.txt" || true
# Every file in A's directory that a snapshot of B needs, by snapfs' own account.
: > "$WORK/b-needs-in-a.txt"
for s in $(b_checkpoints) before-cleanup native-before-cleanup; do
  snapfs show "$STORE" "$s" --files | awk -v a="checkpoints/$A/" '$1 == "-" && index($4, a) == 1 {print $4}' >> "$WORK/b-needs-in-a.txt"
done
sort -u -o "$WORK/b-needs-in-a.txt" "$WORK/b-needs-in-a.txt"
NEED=$(wc -l < "$WORK/b-needs-in-a.txt")
PRESENT_BEFORE=$(while read -r f; do [ -f "$STORE/$f" ] && echo "$f"; done < "$WORK/b-needs-in-a.txt" | wc -l)
log "B's snapshots need $NEED files in A's directory ($PRESENT_BEFORE present)"

log "delete every snapshot of the older job A: $(a_snapshots)"
for s in $(a_snapshots); do delete_snapshot "$s" || fail "delete $s"; done
[ -z "$(ls -d "$STORE/checkpoints/$A"/chk-* 2>/dev/null)" ] || fail "A's checkpoint directories remain: $(ls -d "$STORE/checkpoints/$A"/chk-*)"
PRESENT_AFTER=$(while read -r f; do [ -f "$STORE/$f" ] && echo "$f"; done < "$WORK/b-needs-in-a.txt" | wc -l)
log "after the delete: $PRESENT_AFTER of the $PRESENT_BEFORE files B needs in A's directory are present; A's directory holds $(find "$STORE/checkpoints/$A" -type f | wc -l) files"
[ "$PRESENT_AFTER" = "$PRESENT_BEFORE" ] || fail "the delete removed files B needs"

log "verify after the delete"
snapfs verify "$STORE" > "$WORK/verify-after.txt" || true
grep -vE "^    " "$WORK/verify-after.txt" || true
BEFORE_OK=$(grep "^RESTORABLE" "$WORK/verify-before.txt" | awk '{print $2}' | grep -v "^${A:0:6}-" | sort)
AFTER_OK=$(grep "^RESTORABLE" "$WORK/verify-after.txt" | awk '{print $2}' | sort)
[ "$BEFORE_OK" = "$AFTER_OK" ] || fail "restorable snapshots changed: before [$BEFORE_OK] after [$AFTER_OK]"

B_LAST=$(newest_checkpoint_dir "$B")
B_LAST_NAME=$(snapfs list "$STORE" --json | json "[s['name'] for s in d if s['name'] == '${B:0:6}-$(basename "$B_LAST")'][0]")
READS_A=$(snapfs show "$STORE" "$B_LAST_NAME" --files | grep -c "^- .* checkpoints/$A/" || true)
log "restore a new job from B's newest checkpoint $B_LAST ($B_LAST_NAME, which reads $READS_A files in A's directory)"
C=$(run_job -s "file://$B_LAST"); [ -n "$C" ] || die "job C did not start"
log "job C = $C"
wait_checkpoints "$C" 2
RESTORED=$(curl -sf "$REST/jobs/$C/checkpoints" | json "d['latest']['restored']['external_path']")
STATE=$(job_state "$C")
log "job C is $STATE, restored from $RESTORED"
[ "$STATE" = RUNNING ] || fail "job C is $STATE, not RUNNING"
[ "${RESTORED#file:}" = "$B_LAST" ] || fail "job C restored from $RESTORED, not $B_LAST"
EXC=$(curl -sf "$REST/jobs/$C/exceptions" | json "len(d.get('exceptionHistory',{}).get('entries',[]))")
[ "$EXC" = 0 ] || fail "job C recorded $EXC exceptions"
cancel_job "$C"

B_OLDEST=$(b_checkpoints | tr ' ' '\n' | head -1)
log "rm -rf of B's oldest retained checkpoint $B_OLDEST; every newer one must still restore in real Flink"
delete_snapshot "$B_OLDEST" || fail "delete $B_OLDEST"
for s in $(b_checkpoints); do
  DIR=$(snapfs show "$STORE" "$s" --json | json "d.get('directory') or ''")
  J=$(run_job -s "file://$STORE/$DIR"); [ -n "$J" ] || { fail "no job started from $s"; continue; }
  wait_checkpoints "$J" 1
  STATE=$(job_state "$J"); log "restored from $s: job $J is $STATE"
  [ "$STATE" = RUNNING ] || fail "the job restored from $s is $STATE, not RUNNING"
  cancel_job "$J"
done

SP_DIR=$(snapfs show "$STORE" before-cleanup --json | json "d.get('directory') or ''")
if [ -n "$SP_DIR" ]; then
  log "restore a job from the canonical savepoint triggered through the mount ($SP_DIR)"
  D=$(run_job -s "file://$STORE/$SP_DIR"); [ -n "$D" ] || die "job D did not start"
  wait_checkpoints "$D" 1
  STATE=$(job_state "$D"); log "job D is $STATE"
  [ "$STATE" = RUNNING ] || fail "job D (from the canonical savepoint) is $STATE, not RUNNING"
  cancel_job "$D"
else
  fail "snapfs show does not name the canonical savepoint's directory"
fi

unmount_store
snapfs list "$STORE"

# ---- restores from backups made through the mount -------------------------------------------------------------
# Flink writes each changelog file one byte longer than its handle says, and file-merging physical files longer than
# any one snapshot's segments: a copy through the mount must still hold every byte Flink will read.
STORE2=$WORK/store-backups
BACKUPS=$WORK/backups
MNT2=$WORK/mnt-backups
rm -rf "$STORE2" "$BACKUPS" "$WORK/restored"; mkdir -p "$STORE2" "$BACKUPS" "$MNT2"
E=$(run_job -D "state.checkpoints.dir=file://$STORE2/checkpoints" -D state.backend.type=hashmap -D state.changelog.enabled=true)
[ -n "$E" ] || die "job E did not start"
log "job E = $E (HashMap + changelog)"
wait_checkpoints "$E" 4
cancel_job "$E"
G=$(run_job -D "state.checkpoints.dir=file://$STORE2/checkpoints" -D execution.checkpointing.file-merging.enabled=true \
            -D execution.checkpointing.file-merging.across-checkpoint-boundary=true)
[ -n "$G" ] || die "job G did not start"
log "job G = $G (RocksDB incremental, file merging across checkpoint boundaries)"
wait_checkpoints "$G" 4
cancel_job "$G"
snapfs init "$STORE2" --engine flink
NOT_RESTORABLE=$(snapfs verify "$STORE2" --json | json "' '.join(d['notRestorable'])" || true)
[ -z "$NOT_RESTORABLE" ] || fail "verify calls restorable snapshots not restorable: $NOT_RESTORABLE"
newest_of() { snapfs list "$STORE2" --json | json "[s['name'] for s in d if s['name'].startswith('${1:0:6}-chk-')][-1]"; }
E_NAME=$(newest_of "$E"); G_NAME=$(newest_of "$G")
"$SNAPFS" mount "$STORE2" "$MNT2" --clear-stale --quiet > "$WORK/log/snapfs-mount-backups.log" 2>&1 &
MOUNT2_PID=$!
for _ in $(seq 1 100); do [ -e "$MNT2/.snapfs/status" ] && break; sleep 0.1; done
[ -e "$MNT2/.snapfs/status" ] || die "the backup store did not mount (log: $WORK/log/snapfs-mount-backups.log)"
for name in "$E_NAME" "$G_NAME"; do
  mkdir -p "$BACKUPS/tar-$name" "$BACKUPS/rsync-$name"
  tar -C "$MNT2/$name" -cf - . | tar -C "$BACKUPS/tar-$name" -xf - || fail "tar of $name through the mount"
  rsync -a "$MNT2/$name/" "$BACKUPS/rsync-$name/" || fail "rsync of $name through the mount"
  log "copied $name out of the mount: $(find "$BACKUPS/tar-$name" -type f | wc -l) files by tar, $(find "$BACKUPS/rsync-$name" -type f | wc -l) by rsync"
done
fusermount3 -u "$MNT2" || fusermount3 -u -z "$MNT2" || true
wait "$MOUNT2_PID" 2>/dev/null || true
# Each copy goes where Flink wrote the store (its _metadata names absolute paths), with the store itself set aside.
mv "$STORE2" "$STORE2.orig"
restore_copy() { # copy-directory snapshot-name job-settings…
  local copy=$1 name=$2; shift 2
  rm -rf "$STORE2"; cp -a "$copy" "$STORE2"
  # The copy is Flink's relocatable layout (_metadata at its top; file-merging segments as files of their own).
  local dir; dir=$(cd "$STORE2" && dirname "$(find . -name _metadata | head -1)"); dir=${dir#.}; dir=${dir#/}
  local from=$STORE2${dir:+/$dir}
  local J; J=$(run_job -s "file://$from" -cm claim -D "state.checkpoints.dir=file://$WORK/restored/checkpoints" "$@")
  [ -n "$J" ] || { fail "no job started from the copy $copy"; return; }
  wait_checkpoints "$J" 1
  local st restored
  st=$(job_state "$J"); restored=$(curl -sf "$REST/jobs/$J/checkpoints" | json "d['latest']['restored']['external_path']")
  log "restored from $(basename "$copy") ($name): job $J is $st, restored from $restored"
  [ "$st" = RUNNING ] || fail "the job restored from $copy is $st, not RUNNING"
  [ "${restored#file:}" = "$from" ] || fail "the job restored from $restored, not the copy's $from"
  cancel_job "$J"
}
for tool in tar rsync; do
  restore_copy "$BACKUPS/$tool-$E_NAME" "$E_NAME" -D state.backend.type=hashmap -D state.changelog.enabled=true
  restore_copy "$BACKUPS/$tool-$G_NAME" "$G_NAME" -D execution.checkpointing.file-merging.enabled=true
done
rm -rf "$STORE2"; mv "$STORE2.orig" "$STORE2"

fi # PHASES = all

# ---- a whole cluster's store: every job's recovery point -------------------------------------------------------
if [ "$PHASES" = all ] || [[ ",$PHASES," == *,cluster,* ]]; then
# One checkpoint directory for three jobs, as a cluster without HA leaves it: R cancelled, P and Q running at once
# (parallelism 1 each, so both fit the task manager's two slots). The store knows no --job: every job counts.
STORE3=$WORK/store-cluster
MNT3=$WORK/mnt-cluster
MOUNT3_PID=""
rm -rf "$STORE3"; mkdir -p "$STORE3" "$MNT3"
cluster_job() { run_job -p 1 -D "state.checkpoints.dir=file://$STORE3/checkpoints" -D execution.checkpointing.interval=10s "$@"; }
R=$(cluster_job); [ -n "$R" ] || die "job R did not start"
wait_checkpoints "$R" 3
cancel_job "$R"
log "job R = $R, cancelled after 3 checkpoints"
P=$(cluster_job); [ -n "$P" ] || die "job P did not start"
Q=$(cluster_job); [ -n "$Q" ] || die "job Q did not start"
wait_checkpoints "$P" 4
wait_checkpoints "$Q" 4
log "jobs P = $P and Q = $Q running at once"
snapfs init "$STORE3" --engine flink --rest "$REST"
"$SNAPFS" mount "$STORE3" "$MNT3" --clear-stale --quiet > "$WORK/log/snapfs-mount-cluster.log" 2>&1 &
MOUNT3_PID=$!
for _ in $(seq 1 100); do [ -e "$MNT3/.snapfs/status" ] && break; sleep 0.1; done
[ -e "$MNT3/.snapfs/status" ] || die "the cluster store did not mount (log: $WORK/log/snapfs-mount-cluster.log)"
snapfs status "$STORE3"
job_row() { # job field → from `snapfs status --json`
  snapfs status "$STORE3" --json | json "[j.get('$2') for j in d['job']['jobs'] if j['job'] == '$1'][0]"
}
[ "$(job_row "$R" state)" = CANCELED ] || fail "status does not say R is CANCELED: $(job_row "$R" state)"
[ "$(job_row "$R" protected)" = False ] || fail "the cancelled job R is still protected"
for J in "$P" "$Q"; do
  [ "$(job_row "$J" state)" = RUNNING ] || fail "status does not say $J is RUNNING"
  # The job checkpoints every 10 s: a delete that succeeds is only wrong if nothing newer had completed by then.
  REFUSED=0
  for attempt in 1 2 3 4 5; do
    RP=$(job_row "$J" recoveryPoint)
    if rm -rf "$MNT3/$RP" 2>"$WORK/refusal.txt" && [ ! -e "$MNT3/$RP" ]; then
      NEWER=$(snapfs list "$STORE3" --json | json "len([s for s in d if s['name'].startswith('${J:0:6}-chk-') and int(s['name'].rsplit('-',1)[1]) > int('$RP'.rsplit('-',1)[1])])")
      [ "$NEWER" -gt 0 ] || { fail "rm -rf of $J's recovery point $RP succeeded"; break; }
      log "attempt $attempt: $RP was subsumed before the delete; trying again"
      continue
    fi
    grep -q "Device or resource busy" "$WORK/refusal.txt" || fail "the refusal of $RP is not EBUSY: $(cat "$WORK/refusal.txt")"
    [ -d "$MNT3/$RP" ] || fail "$RP vanished from the mount"
    log "rm -rf $RP (recovery point of running job $J): $(head -1 "$WORK/refusal.txt")"
    REFUSED=1; break
  done
  [ "$REFUSED" = 1 ] || fail "the recovery point of $J was never refused"
done
R_SNAPS=$(snapfs list "$STORE3" --json | json "' '.join(s['name'] for s in d if s['name'].startswith('${R:0:6}-'))")
[ -n "$R_SNAPS" ] || fail "no snapshot of R is listed"
for s in $R_SNAPS; do
  rm -rf "$MNT3/$s" && [ ! -e "$MNT3/$s" ] || fail "rm -rf of the cancelled job's $s was refused"
done
[ -z "$(ls -d "$STORE3/checkpoints/$R"/chk-* 2>/dev/null)" ] || fail "R's checkpoint directories remain"
log "every checkpoint of the cancelled job R deleted through the mount: $R_SNAPS"

# by-job/: one directory per job that has snapshots, each with a `latest` link to that job's recovery point.
BYJOB=$(ls "$MNT3/by-job/")
log "ls by-job/: $(echo $BYJOB)"
for J in $(snapfs status "$STORE3" --json | json "' '.join(j['job'] for j in d['job']['jobs'] if j.get('newest'))"); do
  echo "$BYJOB" | grep -qx "$J" || fail "by-job/ does not show job $J"
done
for J in "$P" "$Q"; do
  # The job checkpoints every 10 s and the mount follows within a poll: compare until both agree on one answer.
  SAME=0
  for attempt in $(seq 1 10); do
    LINK=$(readlink "$MNT3/by-job/$J/latest" || true); RP=$(job_row "$J" recoveryPoint)
    [ -n "$LINK" ] && [ "${J:0:6}-$LINK" = "$RP" ] && [ -d "$MNT3/by-job/$J/$LINK" ] && { SAME=1; break; }
    sleep 1
  done
  [ "$SAME" = 1 ] || fail "by-job/$J/latest -> $LINK, but $J's recovery point is $RP"
  log "by-job/$J/latest -> $LINK (recovery point of running job $J: $RP)"
done

log "stop the JobManager: every job's newest checkpoint must be refused"
stop_cluster
# The mount notices at its next poll of the JobManager (every 2 s); wait for it, then look.
for _ in $(seq 1 30); do
  snapfs show "$STORE3" "$(snapfs list "$STORE3" --json | json "d[-1]['name']")" >/dev/null 2>&1 || true
  grep -q "did not answer" <(cat "$MNT3/.snapfs/status" 2>/dev/null) && break
  sleep 1
done
grep -q "did not answer" "$MNT3/.snapfs/status" || fail "the mount does not say the JobManager stopped answering: $(cat "$MNT3/.snapfs/status")"
snapfs refresh "$STORE3" >/dev/null
for J in "$P" "$Q"; do
  NEWEST=$(basename "$(ls -d "$STORE3/checkpoints/$J"/chk-* | awk -F/chk- '{print $NF" "$0}' | sort -n | tail -1 | cut -d' ' -f2)")
  NAME="${J:0:6}-$NEWEST"
  if rm -rf "$MNT3/$NAME" 2>"$WORK/refusal.txt" || [ ! -e "$MNT3/$NAME" ]; then
    fail "rm -rf of $NAME (newest of $J) succeeded with the JobManager stopped"
  else
    grep -q "Device or resource busy" "$WORK/refusal.txt" || fail "the refusal of $NAME is not EBUSY"
    log "JobManager stopped: rm -rf $NAME refused: $(head -1 "$WORK/refusal.txt")"
  fi
done

# Retention by policy, with nothing checkpointing meanwhile: the dry run must be what the real run then does.
snapfs prune "$STORE3" --keep-last 2 --dry-run --json > "$WORK/prune-dry.json"
snapfs prune "$STORE3" --keep-last 2 --json > "$WORK/prune-real.json"
if python3 - "$WORK/prune-dry.json" "$WORK/prune-real.json" "$STORE3" <<'PY'
import json, os, sys
dry, real = (json.load(open(p)) for p in sys.argv[1:3])
store = sys.argv[3]
problems = []
if not dry['dryRun'] or real['dryRun']: problems.append('dryRun flags: %s %s' % (dry['dryRun'], real['dryRun']))
gone = lambda r: sorted(d['name'] for d in r['decisions'] if not d['keep'])
for key, f in [('deleted decisions', gone), ('plan.snapshots', lambda r: sorted(r['plan']['snapshots'])),
               ('plan.removedFiles', lambda r: sorted((x['path'], x.get('bytesOnDisk')) for x in r['plan']['removedFiles'])),
               ('plan.keptShared', lambda r: sorted(x['path'] for x in r['plan']['keptShared'])),
               ('plan.refused', lambda r: sorted(x['snapshot'] for x in r['plan']['refused'])),
               ('plan.bytesFreed', lambda r: r['plan']['bytesFreed'])]:
    if f(dry) != f(real): problems.append('%s differ: dry %s, real %s' % (key, f(dry), f(real)))
if not real['plan']['snapshots']: problems.append('prune removed nothing: the comparison would prove nothing')
for x in real['plan']['removedFiles']:
    path = x['path'] if x['path'].startswith('/') else os.path.join(store, x['path'])
    if os.path.lexists(path): problems.append('removed file still on disk: ' + path)
print('prune --keep-last 2: %d snapshots gone (%s), %d files removed, %d bytes freed; the dry run said the same'
      % (len(real['plan']['snapshots']), ' '.join(real['plan']['snapshots']), len(real['plan']['removedFiles']), real['plan']['bytesFreed']))
for p in problems: print('PROBLEM: ' + p)
sys.exit(1 if problems else 0)
PY
then log "prune dry run equals the real prune"; else fail "prune --dry-run differs from the real prune (see above)"; fi
for s in $(json "' '.join(d['plan']['snapshots'])" < "$WORK/prune-real.json"); do
  [ ! -e "$MNT3/$s" ] || fail "$s is still in the mount after prune"
done

# A hold set through the mount refuses rm -rf with EBUSY until it is released.
H=$(snapfs list "$STORE3" --json | json "sorted([s['name'] for s in d if s['name'].startswith('${P:0:6}-chk-')], key=lambda n: int(n.rsplit('-', 1)[1]))[-2]")
setfattr -n user.snapfs.hold -v "e2e drill" "$MNT3/$H"
if rm -rf "$MNT3/$H" 2>"$WORK/refusal.txt"; then
  fail "rm -rf of the held $H succeeded"
else
  grep -q "Device or resource busy" "$WORK/refusal.txt" || fail "the refusal of the held $H is not EBUSY: $(cat "$WORK/refusal.txt")"
  [ -d "$MNT3/$H" ] || fail "the held $H vanished from the mount"
  snapfs show "$STORE3" "$H" | grep -q "e2e drill" || fail "show does not give the hold's reason"
  log "hold on $H: rm -rf refused: $(head -1 "$WORK/refusal.txt")"
fi
setfattr -x user.snapfs.hold "$MNT3/$H"
if rm -rf "$MNT3/$H" && [ ! -e "$MNT3/$H" ]; then log "hold released: rm -rf $H succeeded"; else fail "rm -rf of $H failed after its hold was released"; fi

log "start the cluster again; restore a job from every remaining job's by-job/J/latest"
start_cluster
for J in $(ls "$MNT3/by-job/"); do
  LINK=$(readlink "$MNT3/by-job/$J/latest") || { fail "by-job/$J has no latest"; continue; }
  # The flat name of the snapshot the link names: the one with the same inode number (both views share them).
  INO=$(stat -c %i "$MNT3/by-job/$J/latest/"); LATEST=""
  for s in $(snapfs list "$STORE3" --json | json "' '.join(s['name'] for s in d)"); do
    [ "$(stat -c %i "$MNT3/$s")" = "$INO" ] && { LATEST=$s; break; }
  done
  [ -n "$LATEST" ] || { fail "by-job/$J/latest -> $LINK matches no snapshot at the flat root"; continue; }
  DIR=$(snapfs show "$STORE3" "$LATEST" --json | json "d.get('directory') or ''")
  [ "$(basename "$DIR")" = "$LINK" ] || fail "by-job/$J/latest -> $LINK, but the snapshot with its inode is $LATEST in $DIR"
  N=$(run_job -p 1 -s "file://$STORE3/$DIR" -D "state.checkpoints.dir=file://$WORK/restored-cluster/checkpoints")
  [ -n "$N" ] || { fail "no job started from $LATEST"; continue; }
  wait_checkpoints "$N" 1
  STATE=$(job_state "$N"); RESTORED=$(curl -sf "$REST/jobs/$N/checkpoints" | json "d['latest']['restored']['external_path']")
  log "restored from by-job/$J/latest -> $LINK ($LATEST): job $N is $STATE, restored from $RESTORED"
  [ "$STATE" = RUNNING ] || fail "the job restored from $LATEST is $STATE, not RUNNING"
  [ "${RESTORED#file:}" = "$STORE3/$DIR" ] || fail "the job restored from $RESTORED, not $STORE3/$DIR"
  cancel_job "$N"
done
fusermount3 -u "$MNT3" || fusermount3 -u -z "$MNT3" || true
wait "$MOUNT3_PID" 2>/dev/null || true
snapfs list "$STORE3"
fi # PHASES = all or cluster

# ==== snapshot transformations: repair, convert, relocate ======================================================
# Three phases, each with a store of its own under $WORK (store-repair, store-convert, store-relocate), each run
# alone by naming it in SNAPFS_E2E_PHASES (comma-separated) and all three by `all`. Each prints PASS/FAIL lines and
# its wall time; every file set involved is compared with Flink's own deserializer (Refs2.java) against
# `snapfs show NAME --files --json`.
XF=$WORK/xform # the phases' working files
xform_wanted() { [ "$PHASES" = all ] || [[ ",$PHASES," == *",$1,"* ]]; }
PHASE_TIMES=""
pass() { log "PASS: $*"; }
check() { # description command… → a PASS or FAIL line; a failure is counted and the phase goes on
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
phase_begin() { PHASE_NAME=$1; PHASE_T0=$(date +%s); PHASE_F0=$FAILURES; log "==== phase $1"; }
phase_end() {
  local secs=$(( $(date +%s) - PHASE_T0 )) verdict=PASS
  [ "$FAILURES" = "$PHASE_F0" ] || verdict="FAIL ($((FAILURES - PHASE_F0)) failures)"
  log "==== phase $PHASE_NAME: $verdict in $secs s"
  PHASE_TIMES="$PHASE_TIMES $PHASE_NAME=${secs}s:${verdict%% *}"
}
ensure_cluster() { [ "$CLUSTER_STARTED" = 1 ] || start_cluster; }
refs() { # snapshot directories… → Refs2's lines (Flink's own deserializer)
  if [ ! -f "$WORK/refs-classes/Refs2.class" ]; then
    mkdir -p "$WORK/refs-classes"
    javac -cp "$FLINK_HOME/lib/*" -d "$WORK/refs-classes" "$TOOLS/Refs2.java"
  fi
  java -cp "$WORK/refs-classes:$FLINK_HOME/lib/*" Refs2 "$@" 2>/dev/null
}
all_inside() { # refs-output dir → 0 when Flink read the snapshot, names files, and every one lies inside dir
  head -1 "$1" | grep -q ' id=' || return 1
  local files; files=$(grep -v '^#' "$1" | grep -v '^!' || true)
  [ -n "$files" ] && [ -z "$(echo "$files" | grep -v "^file:$2/")" ]
}
refs_verdict() { refs "$1" | head -1 | grep -o 'restorable=[a-zA-Z]*' | cut -d= -f2; }
# The comparison: Refs2's files (path relative to the store when inside it, size rule, size Flink requires) against
# the snapshot's file entries in the catalog, without its own _metadata (and the copy kept by a repair).
rm -rf "$XF"; mkdir -p "$XF"
cat > "$XF/same-files.py" <<'PY'
import json, os, sys
refs_out, show_json, store = sys.argv[1:4]
lines = open(refs_out).read().splitlines()
if not lines or ' ERROR ' in lines[0] or 'NO_METADATA' in lines[0]:
    print('Refs2 could not read the snapshot: ' + (lines[0] if lines else 'no output')); sys.exit(1)
def rel(p):
    if p.startswith('file:'): p = p[5:]
    while p.startswith('//'): p = p[1:]
    return os.path.relpath(p, store) if p.startswith(store.rstrip('/') + '/') else p
flink = set()
for l in lines[1:]:
    if l.startswith('!') or l.startswith('#') or l.startswith('DIR\t'): continue
    f = l.split('\t')
    if f[1].startswith('>='): flink.add((rel(f[0]), 'at-least', int(f[1][2:])))
    elif len(f) > 2 and f[2] == 'changelog': flink.add((rel(f[0]), 'at-least', int(f[1])))
    else: flink.add((rel(f[0]), 'exact', int(f[1])))
show = json.load(open(show_json))
d = show.get('directory') or ''
own = {d + '/_metadata', d + '/_metadata.before-repair'}
ours = set((e['path'], e['sizeRule'], e['requiredSize']) for e in show.get('entries') or [] if e['type'] == 'file' and e['path'] not in own)
if not flink: print('Refs2 names no file: the comparison would prove nothing'); sys.exit(1)
if flink != ours:
    for x in sorted(flink - ours)[:5]: print('  only Flink names: %s %s %d' % x)
    for x in sorted(ours - flink)[:5]: print('  only snapfs lists: %s %s %d' % x)
    print('%d files by Flink, %d by snapfs, %d in common' % (len(flink), len(ours), len(flink & ours))); sys.exit(1)
print('%d files, each with the same size rule and size' % len(flink))
PY
same_files() { # store snapshot-name → 0 when Refs2 and `snapfs show --files --json` name the same files
  local store=$1 name=$2 dir out
  "$SNAPFS" show "$store" "$name" --files --json > "$XF/show-$name.json" || { log "snapfs show $name failed"; return 1; }
  dir=$(json "d.get('directory') or ''" < "$XF/show-$name.json")
  refs "$store/$dir" > "$XF/refs-$name.txt"
  out=$(python3 "$XF/same-files.py" "$XF/refs-$name.txt" "$XF/show-$name.json" "$store" 2>&1); local rc=$?
  log "Flink's deserializer vs snapfs show $name: $out"
  return $rc
}
checkpoints_of_job() { # store job → the catalog names of that job's checkpoints, oldest first
  "$SNAPFS" list "$1" --json | json "' '.join(sorted([s['name'] for s in d if s['name'].startswith('${2:0:6}-chk-')], key=lambda n: int(n.rsplit('-', 1)[1])))"
}
quiet() { # command… → its status; its output in $XF/quiet.txt, and only its last line shown
  local rc=0; "$@" > "$XF/quiet.txt" 2>&1 || rc=$?; tail -1 "$XF/quiet.txt"; return $rc
}
contents() { # show-json store → "size sha256" of every file the snapshot names but its own _metadata, sorted
  python3 - "$1" "$2" <<'PY' | sort
import hashlib, json, sys
d = json.load(open(sys.argv[1]))
for e in d['entries']:
    if e['type'] == 'file' and e['path'] != d['directory'] + '/_metadata':
        print(e['size'], hashlib.sha256(open(sys.argv[2] + '/' + e['path'], 'rb').read()).hexdigest())
PY
}
snapshot_dir() { "$SNAPFS" show "$1" "$2" --json | json "d.get('directory') or ''"; }
verdict_of() { # store name → RESTORABLE or NOT RESTORABLE, from `snapfs verify --json`
  { "$SNAPFS" verify "$1" --json || true; } | json "['RESTORABLE' if s['restorable'] else 'NOT RESTORABLE' for s in d['snapshots'] if s['name'] == '$2'][0]" 2>/dev/null || echo "NOT LISTED"
}
native_savepoint() { # job target-dir → the savepoint's path; Flink takes it as a NATIVE savepoint and cancels the job
  local trig loc=""
  trig=$(curl -sf -XPOST -H 'Content-Type: application/json' "$REST/jobs/$1/savepoints" \
    -d "{\"target-directory\": \"file://$2\", \"cancel-job\": true, \"formatType\": \"NATIVE\"}" | json "d['request-id']")
  for _ in $(seq 1 120); do
    loc=$(curl -sf "$REST/jobs/$1/savepoints/$trig" | json "d['operation'].get('location') or '' if d['status']['id'] == 'COMPLETED' else ''" 2>/dev/null || true)
    [ -n "$loc" ] && { echo "${loc#file:}"; return 0; }
    sleep 1
  done
  return 1
}
restores_and_checkpoints() { # label snapshot-dir job-args… → 0 when a job restored from it is RUNNING and completes a checkpoint
  local label=$1 dir=$2; shift 2
  local J st n from
  J=$(run_job -s "file://$dir" "$@" || true)
  [ -n "$J" ] || { log "$label: no job started from $dir"; return 1; }
  for _ in $(seq 1 120); do
    n=$(completed_checkpoints "$J" 2>/dev/null || echo 0); st=$(job_state "$J" 2>/dev/null || echo '?')
    [ "${n:-0}" -ge 1 ] && break
    case "$st" in FAILED|CANCELED|FINISHED) break ;; esac
    sleep 1
  done
  st=$(job_state "$J" 2>/dev/null || echo '?')
  from=$(curl -sf "$REST/jobs/$J/checkpoints" | json "((d.get('latest') or {}).get('restored') or {}).get('external_path')" 2>/dev/null || true)
  log "$label: job $J is $st with ${n:-0} checkpoints completed, restored from $from"
  [ "$st" != RUNNING ] || [ "${n:-0}" -lt 1 ] && log "$label: exceptions: $(curl -sf "$REST/jobs/$J/exceptions" | json "(d.get('rootException') or '')[:300]" 2>/dev/null)"
  curl -sf -XPATCH "$REST/jobs/$J?mode=cancel" >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do case "$(job_state "$J" 2>/dev/null)" in CANCELED|FAILED|FINISHED) break ;; esac; sleep 1; done
  [ "$st" = RUNNING ] && [ "${n:-0}" -ge 1 ] && [ "${from#file:}" = "${dir%/}" ]
}
xform_store() { # name → a new empty store directory for a phase, with the job settings that write into it
  local s=$WORK/store-$1
  rm -rf "$s"; mkdir -p "$s/savepoints"; echo "$s"
}
store_job() { local s=$1; shift; run_job -D "state.checkpoints.dir=file://$s/checkpoints" -D "state.savepoints.dir=file://$s/savepoints" "$@"; }

# ---- phase repair: FLINK-39964 made by a real Flink, found by verify, fixed by repair, restored from --------------
# Job A (RocksDB incremental) is stopped with a NATIVE savepoint (relative handles); job B is restored from it in
# CLAIM mode and checkpoints: its checkpoints keep the reused SST files' relative handles, which Flink resolves
# against each chk-N, where the files never were.
if xform_wanted repair; then
phase_begin repair
ensure_cluster
SR=$(xform_store repair)
RA=$(store_job "$SR"); [ -n "$RA" ] || die "repair: job A did not start"
log "repair: job A = $RA (RocksDB, incremental checkpoints)"
wait_checkpoints "$RA" 3
RSP=$(native_savepoint "$RA" "$SR/savepoints") || die "repair: the NATIVE savepoint of $RA did not complete"
log "repair: NATIVE savepoint $RSP (A cancelled with it)"
RB=$(store_job "$SR" -s "file://$RSP" -cm claim); [ -n "$RB" ] || die "repair: job B did not start"
log "repair: job B = $RB restored from the NATIVE savepoint in CLAIM mode"
wait_checkpoints "$RB" 2
cancel_job "$RB"
"$SNAPFS" init "$SR" --engine flink --rest "$REST" >/dev/null
"$SNAPFS" list "$SR"
R_NAME=$(checkpoints_of_job "$SR" "$RB" | tr ' ' '\n' | tail -1)
R_DIR=$(snapshot_dir "$SR" "$R_NAME")
log "repair: B's newest checkpoint $R_NAME ($R_DIR)"
check "Refs2 (Flink's deserializer) finds files missing in $R_NAME: FLINK-39964" [ "$(refs_verdict "$SR/$R_DIR")" = NO ]
check "snapfs verify says NOT RESTORABLE for $R_NAME" [ "$(verdict_of "$SR" "$R_NAME")" = "NOT RESTORABLE" ]
"$SNAPFS" verify "$SR" | grep -A3 "^NOT RESTORABLE $R_NAME" || true
check "the file set of $R_NAME (before the repair) is Flink's" same_files "$SR" "$R_NAME"
SP_NAME=$(basename "$RSP")
if "$SNAPFS" show "$SR" "$SP_NAME" >/dev/null 2>&1; then
  check "the file set of the NATIVE savepoint $SP_NAME is Flink's" same_files "$SR" "$SP_NAME"
fi
MD_BEFORE=$(sha256sum < "$SR/$R_DIR/_metadata")
"$SNAPFS" repair "$SR" "$R_NAME" --dry-run --json > "$XF/repair-dry.json" || fail "repair: snapfs repair --dry-run failed"
"$SNAPFS" repair "$SR" "$R_NAME" --dry-run | tail -1
FIXES=$(json "len(d['fixes'])" < "$XF/repair-dry.json" 2>/dev/null || echo 0)
check "repair --dry-run names $FIXES handles to rewrite" [ "$FIXES" -gt 0 ]
check "repair --dry-run left _metadata as it was" [ "$(sha256sum < "$SR/$R_DIR/_metadata")" = "$MD_BEFORE" ]
check "repair --dry-run wrote no _metadata.before-repair" [ ! -e "$SR/$R_DIR/_metadata.before-repair" ]
"$SNAPFS" repair "$SR" "$R_NAME" --json > "$XF/repair.json" || fail "repair: snapfs repair failed"
log "repair: $(json "'%d handles rewritten, e.g. %s -> %s; original kept as %s' % (len(d['fixes']), d['fixes'][0]['looksAt'], d['fixes'][0]['foundAt'], d.get('kept'))" < "$XF/repair.json" 2>/dev/null)"
check "repair rewrote the handles --dry-run named" [ "$(json "sorted((f['looksAt'], f['foundAt']) for f in d['fixes'])" < "$XF/repair.json")" = "$(json "sorted((f['looksAt'], f['foundAt']) for f in d['fixes'])" < "$XF/repair-dry.json")" ]
check "the original _metadata is kept beside the repaired one" [ "$(sha256sum < "$SR/$R_DIR/_metadata.before-repair")" = "$MD_BEFORE" ]
check "snapfs verify says RESTORABLE for the repaired $R_NAME" [ "$(verdict_of "$SR" "$R_NAME")" = RESTORABLE ]
check "Refs2 finds every file of the repaired $R_NAME" [ "$(refs_verdict "$SR/$R_DIR")" = yes ]
check "the file set of the repaired $R_NAME is Flink's" same_files "$SR" "$R_NAME"
check "a real restore from the repaired $R_NAME reaches RUNNING and completes a checkpoint" \
  restores_and_checkpoints "repair" "$SR/$R_DIR" -D "state.checkpoints.dir=file://$XF/restored-repair/checkpoints"
phase_end
fi # phase repair

# ---- phase convert: a retained incremental checkpoint made self-contained outlives every other snapshot of its job
if xform_wanted convert; then
phase_begin convert
ensure_cluster
SC=$(xform_store convert)
CA=$(store_job "$SC"); [ -n "$CA" ] || die "convert: job A did not start"
log "convert: job A = $CA (RocksDB, incremental checkpoints)"
wait_checkpoints "$CA" 4
cancel_job "$CA"
"$SNAPFS" init "$SC" --engine flink --rest "$REST" >/dev/null
# The oldest retained checkpoint: newer ones share its SST files, and a delete of them must leave the copy whole.
C_NAME=$(checkpoints_of_job "$SC" "$CA" | cut -d' ' -f1)
C_DIR=$(snapshot_dir "$SC" "$C_NAME")
log "convert: $C_NAME ($C_DIR), $(json "d['files']" < <("$SNAPFS" show "$SC" "$C_NAME" --json)) files; retained: $(checkpoints_of_job "$SC" "$CA")"
check "the file set of $C_NAME is Flink's" same_files "$SC" "$C_NAME"
SHARED=$(json "len([e for e in d['entries'] if e['type'] == 'file' and not e['path'].startswith('$C_DIR/')])" < "$XF/show-$C_NAME.json")
log "convert: $C_NAME names $SHARED files outside its own directory (shared/)"
"$SNAPFS" convert "$SC" "$C_NAME" --to self-contained --label converted || fail "convert: snapfs convert failed"
CV_DIR=$(snapshot_dir "$SC" converted)
log "convert: converted -> $CV_DIR"
check "the converted snapshot is a directory under the savepoint directory" [ -f "$SC/$CV_DIR/_metadata" -a "${CV_DIR#savepoints/}" != "$CV_DIR" ]
check "the file set of the converted snapshot is Flink's" same_files "$SC" converted
check "Flink reads every file of the converted snapshot inside its directory" all_inside "$XF/refs-converted.txt" "$SC/$CV_DIR"
check "the converted snapshot holds the same files as $C_NAME (sizes and checksums)" \
  [ "$(contents "$XF/show-$C_NAME.json" "$SC")" = "$(contents "$XF/show-converted.json" "$SC")" ]
OTHERS=$("$SNAPFS" list "$SC" --json | json "' '.join(s['name'] for s in d if s['name'] != 'converted')")
log "convert: delete every other snapshot of the job through snapfs: $OTHERS"
check "snapfs delete of every other snapshot of $CA" quiet "$SNAPFS" delete "$SC" $OTHERS
check "no checkpoint directory of $CA remains" [ -z "$(ls -d "$SC/checkpoints/$CA"/chk-* 2>/dev/null)" ]
check "no file of $CA's shared directory remains" [ -z "$(find "$SC/checkpoints/$CA" -type f 2>/dev/null)" ]
check "the store lists only the converted snapshot" [ "$("$SNAPFS" list "$SC" --json | json "' '.join(s['name'] for s in d)")" = converted ]
check "snapfs verify says RESTORABLE for the converted snapshot" [ "$(verdict_of "$SC" converted)" = RESTORABLE ]
check "Refs2 finds every file of the converted snapshot after the deletes" [ "$(refs_verdict "$SC/$CV_DIR")" = yes ]
check "the file set of the converted snapshot is still Flink's" same_files "$SC" converted
check "a real NO_CLAIM restore from the converted snapshot reaches RUNNING and completes a checkpoint" \
  restores_and_checkpoints "convert (NO_CLAIM)" "$SC/$CV_DIR" -cm no_claim -D "state.checkpoints.dir=file://$XF/restored-convert/checkpoints"
check "a real CLAIM restore from the converted snapshot reaches RUNNING and completes a checkpoint" \
  restores_and_checkpoints "convert (CLAIM)" "$SC/$CV_DIR" -cm claim -D "state.checkpoints.dir=file://$XF/restored-convert-claim/checkpoints"
phase_end
fi # phase convert

# ---- phase relocate: `mv MNT/S /elsewhere/` of a checkpoint, restored from where it went -------------------------
# The mount shows each Flink snapshot as a self-contained savepoint layout (MNT/S/_metadata with relative handles,
# its files beside it), so the copy `mv` makes across filesystems is one Flink restores from; the checked delete
# then removes S from the store. SNAPFS_E2E_RELOCATE=0 leaves it out of `all` (for a build without that view).
if { [ "$PHASES" = all ] && [ "${SNAPFS_E2E_RELOCATE:-1}" = 1 ]; } || [[ ",$PHASES," == *,relocate,* ]]; then
phase_begin relocate
ensure_cluster
SL=$(xform_store relocate)
MNTL=$WORK/mnt-relocate
ARCHIVE=$WORK/archive
rm -rf "$ARCHIVE"; mkdir -p "$MNTL" "$ARCHIVE"
LA=$(store_job "$SL"); [ -n "$LA" ] || die "relocate: job A did not start"
log "relocate: job A = $LA (RocksDB, incremental checkpoints)"
wait_checkpoints "$LA" 4
cancel_job "$LA"
"$SNAPFS" init "$SL" --engine flink --rest "$REST" >/dev/null
L_NAME=$(checkpoints_of_job "$SL" "$LA" | tr ' ' '\n' | tail -1)
L_DIR=$(snapshot_dir "$SL" "$L_NAME")
check "the file set of $L_NAME is Flink's" same_files "$SL" "$L_NAME"
# Each file's size and checksum, to find them again in the copy.
contents "$XF/show-$L_NAME.json" "$SL" > "$XF/relocate-before.txt"
"$SNAPFS" mount "$SL" "$MNTL" --clear-stale --quiet > "$WORK/log/snapfs-mount-relocate.log" 2>&1 &
MOUNTL_PID=$!
for _ in $(seq 1 100); do [ -e "$MNTL/.snapfs/status" ] && break; sleep 0.1; done
[ -e "$MNTL/.snapfs/status" ] || die "relocate: the store did not mount (log: $WORK/log/snapfs-mount-relocate.log)"
check "the mount shows $L_NAME as a savepoint layout ($L_NAME/_metadata)" [ -f "$MNTL/$L_NAME/_metadata" ]
log "relocate: mv $MNTL/$L_NAME $ARCHIVE/"
check "mv of the cancelled job's $L_NAME out of the mount" mv "$MNTL/$L_NAME" "$ARCHIVE/"
check "$L_NAME left the mount" [ ! -e "$MNTL/$L_NAME" ]
check "$L_NAME left the store's catalog" [ -z "$("$SNAPFS" list "$SL" --json | json "' '.join(s['name'] for s in d if s['name'] == '$L_NAME')")" ]
check "$L_NAME's directory left the store" [ ! -e "$SL/$L_DIR" ]
fusermount3 -u "$MNTL" || fusermount3 -u -z "$MNTL" || true
wait "$MOUNTL_PID" 2>/dev/null || true
COPY=$ARCHIVE/$L_NAME
check "the copy has _metadata at its top ($COPY/_metadata)" [ -f "$COPY/_metadata" ]
refs "$COPY" > "$XF/refs-relocated.txt"
log "relocate: Refs2 on the copy: $(head -1 "$XF/refs-relocated.txt" | sed -e 's/ operators=.* restorable=/ restorable=/')"
check "Refs2 finds every file of the copy" [ "$(head -1 "$XF/refs-relocated.txt" | grep -o 'restorable=[a-zA-Z]*')" = restorable=yes ]
check "Flink reads every file of the copy inside the copy" all_inside "$XF/refs-relocated.txt" "$COPY"
python3 - "$XF/refs-relocated.txt" > "$XF/relocate-after.txt" <<'PY'
import hashlib, sys
for l in open(sys.argv[1]).read().splitlines()[1:]:
    if l.startswith('#') or l.startswith('!') or l.startswith('DIR\t'): continue
    p, size = l.split('\t')[:2]
    print(size, hashlib.sha256(open(p[5:] if p.startswith('file:') else p, 'rb').read()).hexdigest())
PY
check "the files Flink names in the copy are the files snapfs listed for $L_NAME (sizes and checksums)" \
  [ "$(sort "$XF/relocate-before.txt")" = "$(sort "$XF/relocate-after.txt")" ]
check "a real restore from $COPY reaches RUNNING and completes a checkpoint" \
  restores_and_checkpoints "relocate" "$COPY" -D "state.checkpoints.dir=file://$XF/restored-relocate/checkpoints"
phase_end
fi # phase relocate

# ---- phase merging: file-merging checkpoints made self-contained and moved out of the mount ---------------------
# A RocksDB incremental job with file merging across checkpoint boundaries: its checkpoints name segments (offset,
# length) of physical files shared by many checkpoints, by absolute path only. `convert --to self-contained` and the
# mount's relocatable view make each segment a file of its own, named by a relative handle. Every handle of each
# copy is read with Flink's own classes (Pieces.java: the bytes `openInputStream` gives, in the order the
# deserializer yields the handles) and compared with what the original's handle reads.
if xform_wanted merging; then
phase_begin merging
ensure_cluster
SM=$(xform_store merging)
MNTM=$WORK/mnt-merging
ARCHIVEM=$WORK/archive-merging
rm -rf "$ARCHIVEM"; mkdir -p "$MNTM" "$ARCHIVEM"
MERGING=(-D execution.checkpointing.file-merging.enabled=true -D execution.checkpointing.file-merging.across-checkpoint-boundary=true)
mkdir -p "$WORK/pieces-classes"
cat > "$WORK/Pieces.java" <<'JAVA'
import org.apache.flink.runtime.checkpoint.Checkpoints;
import org.apache.flink.runtime.checkpoint.OperatorState;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.checkpoint.metadata.CheckpointMetadata;
import org.apache.flink.runtime.state.*;
import org.apache.flink.runtime.state.filemerging.*;
import org.apache.flink.runtime.state.filesystem.FileStateHandle;
import java.io.*;
import java.security.MessageDigest;
import java.util.HexFormat;
/** Per snapshot directory: one line per file-backed stream handle, in the deserializer's order: its class, length and
 *  the SHA-256 of the bytes Flink's own openInputStream gives for it (a segment: its range of the physical file).
 *  Flink's empty file-merging operator handles name no bytes and are skipped (a self-contained copy drops them). */
public class Pieces {
  static void stream(StreamStateHandle h) throws Exception {
    if (h == null || h instanceof EmptySegmentFileStateHandle || h instanceof DirectoryStreamStateHandle) return;
    if (!(h instanceof FileStateHandle) && !(h instanceof SegmentFileStateHandle)) return;
    // readFully, not readNBytes: a segment's stream may return 0 bytes from a read before its end.
    byte[] b = new byte[(int) h.getStateSize()];
    try (DataInputStream in = new DataInputStream(h.openInputStream())) { in.readFully(b); }
    System.out.println(h.getClass().getSimpleName() + "\t" + b.length + "\t" + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b)));
  }
  static void keyed(KeyedStateHandle k) throws Exception {
    if (k instanceof IncrementalRemoteKeyedStateHandle i) {
      stream(i.getMetaDataStateHandle());
      for (var e : i.getSharedState()) stream(e.getHandle());
      for (var e : i.getPrivateState()) stream(e.getHandle());
    } else if (k instanceof KeyGroupsStateHandle g) stream(g.getDelegateStateHandle());
  }
  public static void main(String[] args) throws Exception {
    try (DataInputStream in = new DataInputStream(new BufferedInputStream(new FileInputStream(args[0] + "/_metadata")))) {
      CheckpointMetadata md = Checkpoints.loadCheckpointMetadata(in, Pieces.class.getClassLoader(), args[0]);
      for (OperatorState os : md.getOperatorStates())
        for (OperatorSubtaskState ss : os.getStates()) {
          for (KeyedStateHandle k : ss.getManagedKeyedState()) keyed(k);
          for (KeyedStateHandle k : ss.getRawKeyedState()) keyed(k);
          for (OperatorStateHandle o : ss.getManagedOperatorState()) stream(o.getDelegateStateHandle());
          for (OperatorStateHandle o : ss.getRawOperatorState()) stream(o.getDelegateStateHandle());
        }
    }
  }
}
JAVA
javac -cp "$FLINK_HOME/lib/*" -d "$WORK/pieces-classes" "$WORK/Pieces.java"
pieces() { java -cp "$WORK/pieces-classes:$FLINK_HOME/lib/*" Pieces "$1" 2>"$XF/pieces.err"; }
# pieces-of-original copy-dir → 0 when the copy's handles are all relative and read, in order, exactly the bytes the
# original's handles read (at least one of which was a segment)
pieces_match() {
  local b; b=$(pieces "$2") || { log "Pieces failed on $2: $(tail -1 "$XF/pieces.err")"; return 1; }
  local segs; segs=$(grep -c '^SegmentFileStateHandle' "$1" || true)
  log "Flink reads $(wc -l < "$1") handles of the original ($segs of them segments), $(echo "$b" | grep -c . || true) of $2 ($(echo "$b" | grep -c '^RelativeFileStateHandle' || true) relative)"
  [ "$segs" -gt 0 ] && [ "$(cut -f2- "$1")" = "$(echo "$b" | cut -f2-)" ] && [ -z "$(echo "$b" | grep -v '^RelativeFileStateHandle')" ]
}
MA=$(store_job "$SM" "${MERGING[@]}"); [ -n "$MA" ] || die "merging: job A did not start"
log "merging: job A = $MA (RocksDB, incremental checkpoints, file merging across checkpoint boundaries)"
wait_checkpoints "$MA" 5
cancel_job "$MA"
"$SNAPFS" init "$SM" --engine flink --rest "$REST" >/dev/null
M_ALL=$(checkpoints_of_job "$SM" "$MA")
M_CONV=$(echo "$M_ALL" | cut -d' ' -f1)
M_MV=$(echo "$M_ALL" | tr ' ' '\n' | tail -1)
M_CONV_DIR=$(snapshot_dir "$SM" "$M_CONV"); M_MV_DIR=$(snapshot_dir "$SM" "$M_MV")
log "merging: retained $M_ALL; converting $M_CONV, moving $M_MV out of the mount"
check "the file set of $M_CONV is Flink's" same_files "$SM" "$M_CONV"
check "$M_CONV names file-merging segments (Refs2)" grep -q 'segments=' "$XF/refs-$M_CONV.txt"
check "the file set of $M_MV is Flink's" same_files "$SM" "$M_MV"
check "$M_MV names file-merging segments (Refs2)" grep -q 'segments=' "$XF/refs-$M_MV.txt"
# Kept to compare with the copies: what each original handle reads, while the store still has every byte.
pieces "$SM/$M_CONV_DIR" > "$XF/pieces-$M_CONV.txt"; pieces "$SM/$M_MV_DIR" > "$XF/pieces-$M_MV.txt"
mkdir -p "$XF/orig-$M_MV"; cp "$SM/$M_MV_DIR/_metadata" "$XF/orig-$M_MV/_metadata"

# (b) mv MNT/<file-merging checkpoint> out of the mount.
"$SNAPFS" mount "$SM" "$MNTM" --clear-stale --quiet > "$WORK/log/snapfs-mount-merging.log" 2>&1 &
MOUNTM_PID=$!
for _ in $(seq 1 100); do [ -e "$MNTM/.snapfs/status" ] && break; sleep 0.1; done
[ -e "$MNTM/.snapfs/status" ] || die "merging: the store did not mount (log: $WORK/log/snapfs-mount-merging.log)"
check "the mount shows $M_MV in the relocatable layout" \
  [ "$(json "d.get('mountView', {}).get('layout', '')" < "$MNTM/.snapfs/snapshots/$M_MV.json")" = relocatable ]
log "merging: mountView of $M_MV: $(json "d.get('mountView', {}).get('detail', '')" < "$MNTM/.snapfs/snapshots/$M_MV.json")"
log "merging: mv $MNTM/$M_MV $ARCHIVEM/"
check "mv of $M_MV out of the mount" mv "$MNTM/$M_MV" "$ARCHIVEM/"
check "$M_MV left the store's catalog" [ -z "$("$SNAPFS" list "$SM" --json | json "' '.join(s['name'] for s in d if s['name'] == '$M_MV')")" ]
fusermount3 -u "$MNTM" || fusermount3 -u -z "$MNTM" || true
wait "$MOUNTM_PID" 2>/dev/null || true
MCOPY=$ARCHIVEM/$M_MV
refs "$MCOPY" > "$XF/refs-merging-moved.txt"
log "merging: Refs2 on the moved copy: $(head -1 "$XF/refs-merging-moved.txt" | sed -e 's/ operators=.* restorable=/ restorable=/')"
check "Refs2 finds every file of the moved copy" [ "$(head -1 "$XF/refs-merging-moved.txt" | grep -o 'restorable=[a-zA-Z]*')" = restorable=yes ]
check "Flink reads every file of the moved copy inside it, and no segment" \
  bash -c "$(declare -f all_inside); all_inside '$XF/refs-merging-moved.txt' '$MCOPY' && ! grep -q 'segments=' '$XF/refs-merging-moved.txt'"
check "each handle of the moved copy is relative and reads exactly the bytes the original's read (Flink's own classes)" \
  pieces_match "$XF/pieces-$M_MV.txt" "$MCOPY"
check "the moved copy holds fewer bytes than the physical files it was cut from" \
  python3 - "$XF/refs-$M_MV.txt" "$MCOPY" <<'PY'
import os, sys
phys = sum(os.path.getsize(l.split('\t')[0][5:]) for l in open(sys.argv[1]).read().splitlines()[1:] if '\tsegments=' in l)
copy = sum(os.path.getsize(os.path.join(sys.argv[2], f)) for f in os.listdir(sys.argv[2]) if f != '_metadata')
print('physical files %d bytes, copy %d bytes' % (phys, copy)); sys.exit(0 if 0 < copy < phys else 1)
PY

# (a) convert the oldest retained checkpoint, then delete every other snapshot of the job through snapfs.
"$SNAPFS" convert "$SM" "$M_CONV" --to self-contained --label merged-converted || fail "merging: snapfs convert of $M_CONV failed"
MCV_DIR=$(snapshot_dir "$SM" merged-converted)
log "merging: merged-converted -> $MCV_DIR"
check "the converted snapshot is a directory under the savepoint directory" [ -f "$SM/$MCV_DIR/_metadata" -a "${MCV_DIR#savepoints/}" != "$MCV_DIR" ]
check "the file set of the converted snapshot is Flink's" same_files "$SM" merged-converted
check "Flink reads every file of the converted snapshot inside its directory, and no segment" \
  bash -c "$(declare -f all_inside); all_inside '$XF/refs-merged-converted.txt' '$SM/$MCV_DIR' && ! grep -q 'segments=' '$XF/refs-merged-converted.txt'"
check "each handle of the converted snapshot is relative and reads exactly the bytes the original's read (Flink's own classes)" \
  pieces_match "$XF/pieces-$M_CONV.txt" "$SM/$MCV_DIR"
check "the converted snapshot shares no file with any other (each entry held once)" \
  [ "$("$SNAPFS" show "$SM" merged-converted --files --json | json "max(e.get('links', 1) for e in d['entries'] if e['type'] == 'file')")" = 1 ]
OTHERS=$("$SNAPFS" list "$SM" --json | json "' '.join(s['name'] for s in d if s['name'] != 'merged-converted')")
log "merging: delete every other snapshot of the job through snapfs: $OTHERS"
check "snapfs delete of every other snapshot of $MA" quiet "$SNAPFS" delete "$SM" $OTHERS
check "no file of $MA's checkpoint directory (segments' physical files included) remains" [ -z "$(find "$SM/checkpoints/$MA" -type f 2>/dev/null)" ]
check "the store lists only the converted snapshot" [ "$("$SNAPFS" list "$SM" --json | json "' '.join(s['name'] for s in d)")" = merged-converted ]
check "snapfs verify says RESTORABLE for the converted snapshot" [ "$(verdict_of "$SM" merged-converted)" = RESTORABLE ]
check "Refs2 finds every file of the converted snapshot after the deletes" [ "$(refs_verdict "$SM/$MCV_DIR")" = yes ]
check "the original $M_MV's handles no longer read from the store: its physical files are gone" \
  bash -c "! java -cp '$WORK/pieces-classes:$FLINK_HOME/lib/*' Pieces '$XF/orig-$M_MV' >/dev/null 2>&1"
check "a real NO_CLAIM restore from the converted snapshot reaches RUNNING and completes a checkpoint" \
  restores_and_checkpoints "merging convert (NO_CLAIM)" "$SM/$MCV_DIR" -cm no_claim "${MERGING[@]}" -D "state.checkpoints.dir=file://$XF/restored-merging-convert/checkpoints"
check "a real CLAIM restore from the converted snapshot reaches RUNNING and completes a checkpoint" \
  restores_and_checkpoints "merging convert (CLAIM)" "$SM/$MCV_DIR" -cm claim "${MERGING[@]}" -D "state.checkpoints.dir=file://$XF/restored-merging-convert-claim/checkpoints"
check "a real restore from the moved copy $MCOPY (the store's segment files gone) reaches RUNNING and completes a checkpoint" \
  restores_and_checkpoints "merging relocate" "$MCOPY" "${MERGING[@]}" -D "state.checkpoints.dir=file://$XF/restored-merging-relocate/checkpoints"
phase_end
fi # phase merging
[ -z "$PHASE_TIMES" ] || log "phase wall times:$PHASE_TIMES"

# ---- intents: FLIP-47's declarative rescale, restart, stop through the mount, the command line and REST -------
# A stateful job at parallelism 1 whose keyed counts are printed (TaskManager .out); `echo 2 > .../parallelism` returns
# once it runs at 2 with its counts continuing; a restart from an older checkpoint at parallelism 1; a NATIVE stop and
# a CANONICAL stop of the same job, both timed and each followed by a restart from its savepoint; the rescale through
# REST with curl; /metrics before and after; the cluster killed mid-rescale, and `restart --from` the savepoint the
# failed intent took recovers the job on a new cluster. (SNAPFS_E2E_PHASES=intents runs this phase alone.)
if [ "$PHASES" = all ] || [[ ",$PHASES," == *,intents,* ]]; then
STORE4=$WORK/store-intents
MNT4=$WORK/mnt-intents
API4=127.0.0.1:$((PORT + 7))
MOUNT4_PID=""
unmount_intents() {
  if [ -n "$MOUNT4_PID" ]; then
    fusermount3 -u "$MNT4" 2>/dev/null || fusermount3 -u -z "$MNT4" 2>/dev/null || true
    wait "$MOUNT4_PID" 2>/dev/null || true
    MOUNT4_PID=""
  fi
}
trap 'rc=$?; set +e; unmount_intents; (exit $rc); finish' EXIT
rm -rf "$STORE4"; mkdir -p "$STORE4/savepoints" "$MNT4"
# Jobs started through /jars/:id/run take the cluster's configuration: this phase's cluster checkpoints into its store.
stop_cluster
sed -i -e "s#file://$STORE/#file://$STORE4/#g" -e "s/num-retained: 3/num-retained: 10/" "$FLINK_HOME/conf/config.yaml"
mkdir -p "$WORK/intents-classes"
cat > "$WORK/IntentsJob.java" <<'JAVA'
package demo;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.Collector;
/** 200 keyed counters, printed every 500 counts, and up to 1,000,000 keys of ballast (about 200 MB of state once filled). */
public class IntentsJob {
  public static void main(String[] a) throws Exception {
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
    DataStream<Long> seq = env.fromSequence(0, Long.MAX_VALUE).uid("seq")
      .map(x -> { if (x % 200 == 0) Thread.sleep(10); return x; }).uid("throttle");
    seq.keyBy(x -> x % 200).process(new Counter()).uid("counter").print().uid("print");
    seq.keyBy(x -> x % 1000000).process(new Ballast()).uid("ballast").sinkTo(new DiscardingSink<>()).uid("sink");
    env.execute("snapfs-intents-job");
  }
  public static class Counter extends KeyedProcessFunction<Long, Long, String> {
    transient ValueState<Long> count;
    @Override public void open(OpenContext c) { count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Long.class)); }
    @Override public void processElement(Long v, Context ctx, Collector<String> out) throws Exception {
      Long c = count.value(); c = c == null ? 1 : c + 1; count.update(c);
      if (c % 500 == 0) out.collect("key=" + ctx.getCurrentKey() + " count=" + c);
    }
  }
  public static class Ballast extends KeyedProcessFunction<Long, Long, Long> {
    transient ValueState<String> payload;
    @Override public void open(OpenContext c) { payload = getRuntimeContext().getState(new ValueStateDescriptor<>("payload", String.class)); }
    @Override public void processElement(Long v, Context ctx, Collector<Long> out) throws Exception { payload.update(String.format("%0200d", v)); }
  }
}
JAVA
javac -cp "$FLINK_HOME/lib/*" -d "$WORK/intents-classes" "$WORK/IntentsJob.java"
jar cf "$WORK/intentsjob.jar" -C "$WORK/intents-classes" .
start_cluster
tm_out() { ls -t "$WORK"/log/flink-*taskexecutor*.out | head -1; }
counts_since() { # byte offset → the counts printed since, one a line
  tail -c +$(( $1 + 1 )) "$(tm_out)" 2>/dev/null | grep -o 'count=[0-9]*' | cut -d= -f2
}
wait_counts() { # offset minimum → waits until a count ≥ minimum is printed after offset
  for _ in $(seq 1 120); do
    local m; m=$(counts_since "$1" | sort -n | tail -1)
    [ "${m:-0}" -ge "$2" ] && return 0
    sleep 1
  done
  return 1
}
jobs_parallelism() { curl -sf "$REST/jobs/$1" | json "max(v['parallelism'] for v in d['vertices'])"; }
# A job's directory in the mount lasts while the store holds a snapshot of it, and Flink discards the checkpoints
# of a job stopped with a savepoint: its last intent is read through the command line, which also asks the cluster.
last_intent() { snapfs job status "$STORE4" "$1" --json | json "d['lastIntent']['$2']"; }
step_seconds() { json "[s['seconds'] for s in d['steps'] if s['name'].startswith('$1')][0]"; }
metric4() { curl -sf "http://$API4/metrics" | awk -v k="$1" '$1 == k {print $2}'; }

I1=$("$FLINK_HOME/bin/flink" run -d -p 1 -c demo.IntentsJob "$WORK/intentsjob.jar" 2>&1 | grep -o 'JobID [0-9a-f]*' | cut -d' ' -f2)
[ -n "$I1" ] || die "the intents job did not start"
log "intents: job $I1 at parallelism 1"
wait_checkpoints "$I1" 3
snapfs init "$STORE4" --engine flink --rest "$REST"
snapfs job jar "$STORE4" "$I1" --jar "$WORK/intentsjob.jar" --entry-class demo.IntentsJob
"$SNAPFS" mount "$STORE4" "$MNT4" --listen "$API4" --quiet > "$WORK/log/snapfs-mount-intents.log" 2>&1 &
MOUNT4_PID=$!
for _ in $(seq 1 100); do [ -e "$MNT4/.snapfs/jobs/$I1/parallelism" ] && break; sleep 0.1; done
[ "$(cat "$MNT4/.snapfs/jobs/$I1/parallelism")" = 1 ] || fail "parallelism of $I1 does not read 1: $(cat "$MNT4/.snapfs/jobs/$I1/parallelism")"
M_RESCALES=$(metric4 'snapfs_intents_total{intent="rescale",outcome="succeeded"}'); M_TAKEN=$(metric4 'snapfs_snapshots_taken_total{source="intent"}')
log "metrics before: rescales succeeded ${M_RESCALES:-0}, snapshots taken by intents ${M_TAKEN:-0}"
wait_counts 0 1500 || fail "job $I1 printed no count of 1500 within 120 s"
OFF=$(stat -c %s "$(tm_out)")

# echo 2 > parallelism: returns once the job runs at 2; the counts continue from the state it had.
T=$(date +%s.%N)
if echo 2 > "$MNT4/.snapfs/jobs/$I1/parallelism"; then
  I2=$(last_intent "$I1" newJob)
  log "rescale through the mount: $I1 -> $I2 in $(python3 -c "print(round($(date +%s.%N) - $T, 2))") s, from $(last_intent "$I1" snapshot)"
  [ "$(jobs_parallelism "$I2")" = 2 ] || fail "job $I2 runs at $(jobs_parallelism "$I2"), not 2"
  [ "$(job_state "$I2")" = RUNNING ] || fail "job $I2 is $(job_state "$I2")"
  wait_counts "$OFF" 1 || fail "job $I2 printed nothing"
  sleep 6
  MIN=$(counts_since "$OFF" | sort -n | head -1)
  if [ "${MIN:-0}" -gt 500 ]; then log "counts continued after the rescale: the lowest printed since is $MIN (a fresh state prints 500 first)";
  else fail "counts restarted after the rescale: $MIN"; fi
else
  fail "echo 2 > parallelism failed: $(cat "$(ls -v "$MNT4"/.snapfs/requests/*.json | tail -1)")"
  I2=$I1
fi

# restart from an older checkpoint of the rescaled job (its third newest: Flink subsumes the oldest of the 10 it retains
# while the job runs), at parallelism 1; the job is cancelled after a savepoint, so Flink keeps its checkpoints.
wait_checkpoints "$I2" 4
OLDER=$(snapfs list "$STORE4" --json | json "sorted([s['name'] for s in d if s['name'].startswith('${I2:0:6}-chk-')], key=lambda n: int(n.rsplit('-', 1)[1]))[-3]")
OLDER_DIR=$(snapfs show "$STORE4" "$OLDER" --json | json "d.get('directory') or ''")
if snapfs job restart "$STORE4" "$I2" --from "$OLDER" --parallelism 1 --json > "$WORK/intents-restart.json"; then
  I3=$(json "d['newJob']" < "$WORK/intents-restart.json")
  RESTORED=""
  for _ in $(seq 1 30); do
    RESTORED=$(curl -sf "$REST/jobs/$I3/checkpoints" | json "(d['latest'].get('restored') or {}).get('external_path') or ''" 2>/dev/null || true)
    [ -n "$RESTORED" ] && break; sleep 1
  done
  log "restart --from $OLDER --parallelism 1: job $I3 at $(jobs_parallelism "$I3"), restored from $RESTORED"
  [ "${RESTORED#file:}" = "$STORE4/$OLDER_DIR" ] || fail "job $I3 restored from '$RESTORED', not $STORE4/$OLDER_DIR"
  [ "$(jobs_parallelism "$I3")" = 1 ] || fail "job $I3 does not run at 1"
else fail "snapfs job restart --from $OLDER failed"; I3=$I2; fi
wait_checkpoints "$I3" 2

# A NATIVE stop and a CANONICAL stop of the same job, each followed by a restart from its savepoint.
if snapfs job stop "$STORE4" "$I3" --format native --json > "$WORK/intents-stop-native.json"; then
  NATIVE_S=$(step_seconds "stop with a NATIVE" < "$WORK/intents-stop-native.json"); SP_N=$(json "d['snapshot']" < "$WORK/intents-stop-native.json")
  snapfs job restart "$STORE4" "$I3" --from "$SP_N" --json > "$WORK/intents-restart-native.json" || fail "restart from the native savepoint $SP_N failed"
  I4=$(json "d['newJob']" < "$WORK/intents-restart-native.json")
  wait_checkpoints "$I4" 2
  if snapfs job stop "$STORE4" "$I4" --format canonical --json > "$WORK/intents-stop-canonical.json"; then
    CANON_S=$(step_seconds "stop with a CANONICAL" < "$WORK/intents-stop-canonical.json"); SP_C=$(json "d['snapshot']" < "$WORK/intents-stop-canonical.json")
    snapfs job restart "$STORE4" "$I4" --from "$SP_C" --json > "$WORK/intents-restart-canonical.json" || fail "restart from the canonical savepoint $SP_C failed"
    I5=$(json "d['newJob']" < "$WORK/intents-restart-canonical.json")
    NATIVE_B=$(du -sb "$STORE4/$(snapfs show "$STORE4" "$SP_N" --json | json "d['directory']")" | cut -f1)
    CANON_B=$(du -sb "$STORE4/$(snapfs show "$STORE4" "$SP_C" --json | json "d['directory']")" | cut -f1)
    log "BENCH stop-with-savepoint: NATIVE ${NATIVE_S} s ($NATIVE_B bytes in its directory), CANONICAL ${CANON_S} s ($CANON_B bytes)"
    python3 -c "import sys; sys.exit(0 if $NATIVE_S < $CANON_S else 1)" || fail "the native stop ($NATIVE_S s) was not faster than the canonical one ($CANON_S s)"
  else fail "the canonical stop of $I4 failed"; I5=$I4; fi
else fail "the native stop of $I3 failed"; I5=$I3; fi
wait_checkpoints "$I5" 1

# The same rescale through REST, with curl.
if curl -sf -XPOST "http://$API4/v1/jobs/$I5/rescale" -H 'Content-Type: application/json' -d '{"parallelism":2}' > "$WORK/intents-rest.json"; then
  I6=$(json "d['newJob']" < "$WORK/intents-rest.json")
  log "rescale through REST: $I5 -> $I6 at $(jobs_parallelism "$I6") ($(json "d['message']" < "$WORK/intents-rest.json"))"
  [ "$(jobs_parallelism "$I6")" = 2 ] || fail "job $I6 does not run at 2"
else fail "POST /v1/jobs/$I5/rescale failed: $(cat "$WORK/intents-rest.json")"; I6=$I5; fi
M_RESCALES2=$(metric4 'snapfs_intents_total{intent="rescale",outcome="succeeded"}'); M_TAKEN2=$(metric4 'snapfs_snapshots_taken_total{source="intent"}')
log "metrics after: rescales succeeded ${M_RESCALES2:-0} (before ${M_RESCALES:-0}), snapshots taken by intents ${M_TAKEN2:-0} (before ${M_TAKEN:-0})"
python3 -c "import sys; sys.exit(0 if float('${M_RESCALES2:-0}') >= float('${M_RESCALES:-0}') + 2 and float('${M_TAKEN2:-0}') > float('${M_TAKEN:-0}') else 1)" \
  || fail "the metrics did not move"
curl -sf "http://$API4/metrics" | grep -E '^snapfs_(intents_total|snapshots_taken_total|flink_rest_seconds_count)' | head -20

# The cluster killed mid-rescale: the intent fails with the step and the reason; restart --from its savepoint recovers.
wait_checkpoints "$I6" 1
BEFORE_SP=$(ls "$STORE4/savepoints" | wc -l)
"$SNAPFS" job rescale "$STORE4" "$I6" 1 --json > "$WORK/intents-kill.json" 2> "$WORK/intents-kill.err" &
RESCALE_PID=$!
for _ in $(seq 1 600); do
  NEW=$(ls "$STORE4/savepoints" | wc -l)
  if [ "$NEW" -gt "$BEFORE_SP" ] && ls "$STORE4"/savepoints/*/_metadata >/dev/null 2>&1 && [ "$(job_state "$I6" 2>/dev/null)" != RUNNING ]; then break; fi
  sleep 0.05
done
log "killing the cluster mid-rescale (kill -9)"
for f in "$WORK"/log/*.pid; do for pid in $(cat "$f"); do kill -9 "$pid" 2>/dev/null || true; done; rm -f "$f"; done
CLUSTER_STARTED=0
if wait "$RESCALE_PID"; then fail "the rescale succeeded although the cluster was killed"; else
  log "the rescale failed: $(cat "$WORK/intents-kill.err")"
  grep -q "failed at step" "$WORK/intents-kill.err" || fail "the failure names no step"
fi
SP_K=$(snapfs job status "$STORE4" "$I6" --json | json "d['lastIntent'].get('snapshot') or ''")
[ -n "$SP_K" ] || fail "the failed rescale recorded no snapshot"
grep -q "restart $I6 --from $SP_K" "$WORK/intents-kill.err" || fail "the failure does not name the restart from $SP_K"
start_cluster
if snapfs job restart "$STORE4" "$I6" --from "$SP_K" --json > "$WORK/intents-recover.json"; then
  I7=$(json "d['newJob']" < "$WORK/intents-recover.json")
  OFF=$(stat -c %s "$(tm_out)")
  wait_checkpoints "$I7" 1
  wait_counts "$OFF" 1 || fail "job $I7 printed nothing"
  MIN=$(counts_since "$OFF" | sort -n | head -1)
  log "recovered on a new cluster from $SP_K: job $I7 is $(job_state "$I7"), lowest count printed $MIN"
  [ "${MIN:-0}" -gt 500 ] || fail "the recovered job's counts restarted: $MIN"
  cancel_job "$I7"
else fail "restart --from $SP_K after the killed rescale failed"; fi
unmount_intents
stop_cluster
fi # PHASES = all or intents

[ "$FAILURES" = 0 ] && log "E2E PASSED" || { log "E2E FAILED ($FAILURES)"; exit 1; }
