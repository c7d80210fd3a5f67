import Foundation

/// What the child process does until the power is cut: a random mix, from `SEED`, of snapshots in all three formats
/// (by the command line and by the mount's trigger files), deletes (`snapfs delete` and `rm -rf` through the mount),
/// moves (`mv` through the mount), converts, exports and imports, with a SnapFS mount of the store running beside.
///
/// After an operation returns success, and only then, one line saying so is appended to `LOG` (on a disk that
/// loses no power) and fsynced (`sync FILE`): what the store promised, for the checker. Before it starts, a
/// `begin` line: an operation that began but did not return may or may not have happened (a delete whose commit
/// reached the disk just before the cut is done, though `snapfs delete` never said so). Before a snapshot, the
/// state's checksums are written to `EXPECT/LABEL.sums`: the state the snapshot must hold.
enum Workload {
    static let script = #"""
    #!/bin/bash
    set -u
    RANDOM=$SEED
    formats=(native-incremental native-full canonical)
    conversions=(native-full canonical)
    exports=()
    ok() { printf '%s\n' "$*" >> "$LOG" && sync "$LOG"; }
    begin() { printf 'begin %s\n' "$*" >> "$LOG" && sync "$LOG"; }
    victim() {
      local names=( $(ls "$MNT" 2>/dev/null) )
      [ ${#names[@]} -gt 0 ] || return 1
      echo "${names[RANDOM % ${#names[@]}]}"
    }
    mutate() {
      local k=$((RANDOM % 4 + 1)) f size
      for _ in $(seq $k); do
        f="$STATE/d$((RANDOM % 3))/f$((RANDOM % 8)).dat"
        mkdir -p "${f%/*}"
        size=$(( (RANDOM % 16) * 4096 + RANDOM % 4096 ))
        [ $((RANDOM % 10)) -eq 0 ] && size=$(( 262144 + RANDOM * 4 ))
        head -c $size /dev/urandom > "$f"
      done
      [ $((RANDOM % 5)) -eq 0 ] && rm -f "$STATE/d$((RANDOM % 3))/f$((RANDOM % 8)).dat"
      return 0
    }
    expect() {
      (cd "$STATE" && find . -type f -printf '%P\0' | sort -z | xargs -0 -r sha256sum) > "$EXPECT/$1.sums" && sync "$EXPECT/$1.sums"
    }
    "$SNAPFS" mount "$STORE" "$MNT" --stage-window 600 >> "$WORK/daemon.log" 2>&1 &
    for _ in $(seq 200); do mountpoint -q "$MNT" && stat -f "$MNT" > /dev/null 2>&1 && break; sleep 0.05; done
    echo "mounted" >> "$WORK/child.log"
    for n in $(seq $OPS); do
      L="r${ROUND}n$n"
      op=$((RANDOM % 14))
      # Fewer than a dozen snapshots kept, so a long run's store stays small enough to check after every cut.
      [ "$(ls "$MNT" 2> /dev/null | wc -l)" -gt 12 ] && op=$((5 + RANDOM % 2))
      case $op in
        0|1|2) mutate; f=${formats[RANDOM % 3]}; expect "$L"; begin snapshot "$L"
           "$SNAPFS" trigger "$STORE" --format "$f" --label "$L" > /dev/null 2>&1 && ok snapshot "$L" ;;
        3|4) mutate; f=${formats[RANDOM % 3]}; expect "$L"; begin snapshot "$L"
           echo "$L" 2> /dev/null > "$MNT/.snapfs/trigger/$f" && ok snapshot "$L" ;;
        5|6) V=$(victim) && begin delete "$V" && "$SNAPFS" delete "$STORE" "$V" > /dev/null 2>&1 && ok delete "$V" ;;
        7|8) V=$(victim) && begin delete "$V" && rm -rf "$MNT/$V" 2> /dev/null && ok delete "$V" ;;
        9) V=$(victim) && begin move "$V" "$L" && mv "$MNT/$V" "$MNT/$L" 2> /dev/null && ok move "$V" "$L" ;;
        10|11) V=$(victim) && begin copy "$V" "$L" && "$SNAPFS" convert "$STORE" "$V" --to "${conversions[RANDOM % 2]}" --label "$L" > /dev/null 2>&1 && ok copy "$V" "$L" ;;
        12) V=$(victim) && begin export "$V" "$L" && "$SNAPFS" export "$STORE" "$V" "$EXPORTS/$L" > /dev/null 2>&1 && { exports+=("$L"); ok export "$V" "$L"; } ;;
        13) if [ ${#exports[@]} -gt 0 ]; then
              E=${exports[RANDOM % ${#exports[@]}]}
              begin copy-of-export "$E" "$L"
              "$SNAPFS" import "$STORE" "$EXPORTS/$E" --label "$L" > /dev/null 2>&1 && ok copy-of-export "$E" "$L"
            fi ;;
      esac
    done
    echo "finished" >> "$WORK/child.log"
    touch "$WORK/finished-$ROUND"
    """#
}
