#!/bin/bash
# Writes a real Flink store of one state layout. usage: make-layout.sh file-merging|changelog|unaligned|forst   (STORE at /srv/flink-layouts/LAYOUT)
# Starts and stops its own cluster (REST on 127.0.0.1:18181) with base.yaml plus the layout settings below.
set -u
export FLINK_HOME=${FLINK_HOME:?set FLINK_HOME to a Flink 2.3.0 distribution (pyflink/ of the apache-flink wheels)}
L=$1; FX=/srv/flink-layouts/$L; F=$FLINK_HOME/bin/flink; R=127.0.0.1:18181; JAR=${JOBS_JAR:?build ../../shared/tools/flink/*Job.java into one jar}
rm -rf $FX; mkdir -p $FX/savepoints
cp $(dirname $0)/base.yaml $FLINK_HOME/conf/config.yaml
echo "state.checkpoints.dir: file://$FX/checkpoints" >> $FLINK_HOME/conf/config.yaml
echo "state.savepoints.dir: file://$FX/savepoints" >> $FLINK_HOME/conf/config.yaml
case $L in
  file-merging) cat >> $FLINK_HOME/conf/config.yaml <<YAML
env.java.opts.taskmanager: -Devery=10 -Dsleep=25 -Dkeys=1000
state.backend.type: rocksdb
execution.checkpointing.file-merging.enabled: true
execution.checkpointing.file-merging.across-checkpoint-boundary: true
YAML
  ;;
  changelog) cat >> $FLINK_HOME/conf/config.yaml <<YAML
env.java.opts.taskmanager: -Devery=5 -Dsleep=25 -Dkeys=1000
state.backend.type: rocksdb
state.changelog.enabled: true
state.changelog.storage: filesystem
state.changelog.periodic-materialize.interval: 8s
dstl.dfs.base-path: file://$FX/changelog
YAML
  ;;
  unaligned) cat >> $FLINK_HOME/conf/config.yaml <<YAML
state.backend.type: hashmap
execution.checkpointing.unaligned.enabled: true
execution.checkpointing.aligned-checkpoint-timeout: 0s
execution.checkpointing.timeout: 4s
execution.checkpointing.tolerable-failed-checkpoints: 1000
YAML
  ;;
  forst) cat >> $FLINK_HOME/conf/config.yaml <<YAML
state.backend.type: forst
YAML
  ;;
esac
run() { local cls=$1; shift; $F run -d "$@" -c demo.$cls $JAR 2>&1 | tee -a $FX.runlog | grep -o 'JobID [0-9a-f]*' | cut -d' ' -f2; }
sp() { t=$(curl -s -XPOST -H 'Content-Type: application/json' -d "{\"formatType\":\"$2\",\"target-directory\":\"file://$FX/savepoints\"}" $R/jobs/$1/savepoints | python3 -c "import json,sys;print(json.load(sys.stdin)['request-id'])"); sleep 5; curl -s $R/jobs/$1/savepoints/$t | python3 -c "import json,sys;d=json.load(sys.stdin);print(d.get('operation',{}).get('location') or d)"; }
cancel() { curl -s -XPATCH "$R/jobs/$1?mode=cancel" >/dev/null; sleep 4; }
last() { ls -d $FX/checkpoints/$1/chk-* 2>/dev/null | while read d; do [ -f $d/_metadata ] && echo $d; done | sort -t- -k2 -n | tail -1; }
$FLINK_HOME/bin/start-cluster.sh >/dev/null
for i in $(seq 60); do curl -s $R/overview | grep -q '"taskmanagers":1' && break; sleep 1; done
curl -s $R/overview; echo
case $L in
  file-merging)
    A=$(run ThrottledJob); echo "A=$A rocksdb incremental, file merging across checkpoint boundaries, canceled (retained)"; sleep 15
    SPN=$(sp $A NATIVE); echo "A native savepoint: $SPN"; sleep 3
    cancel $A; LA=$(last $A)
    B=$(run ThrottledJob -s file://$LA); echo "B=$B restored from $LA in no_claim mode"; sleep 12; cancel $B
    C=$(run ThrottledJob -s file://$LA -cm claim); echo "C=$C restored from $LA in claim mode"; sleep 12; cancel $C
    D=$(run ThrottledJob -D state.backend.type=hashmap); echo "D=$D hashmap backend, file merging"; sleep 12; cancel $D
    ;;
  changelog)
    A=$(run ThrottledJob); echo "A=$A rocksdb + changelog, canceled (retained)"; sleep 18; cancel $A; LA=$(last $A)
    C=$(run ThrottledJob -s file://$LA -cm claim); echo "C=$C restored from $LA in claim mode"; sleep 12; cancel $C
    D=$(run ThrottledJob -D state.backend.type=hashmap); echo "D=$D hashmap + changelog, canceled (retained)"; sleep 18; cancel $D
    ;;
  unaligned)
    A=$(run UnalignedJob); echo "A=$A hashmap, unaligned checkpoints under backpressure, every 4th expires; canceled (retained)"; sleep 30; cancel $A
    ;;
  forst)
    A=$(run AsyncJob); echo "A=$A forst, async state API, canceled (retained)"; sleep 15
    SPN=$(sp $A NATIVE); echo "A native savepoint: $SPN"; sleep 3
    cancel $A; LA=$(last $A)
    B=$(run AsyncJob -s file://$LA); echo "B=$B restored from $LA in no_claim mode"; sleep 12; cancel $B
    ;;
esac
$FLINK_HOME/bin/stop-cluster.sh >/dev/null
echo done
