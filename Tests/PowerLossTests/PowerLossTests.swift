import BuiltTools
import Foundation
import SnapStore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Power cuts under a store on LazyFS: whatever returned success before the cut is there, in full, after it.
///
/// Each round starts LazyFS, runs the workload (Workload.swift) in a child process group against the store on it,
/// and cuts the power: either at a random instant (the child is frozen, LazyFS is told to drop its unsynced data,
/// then both are killed) or at an exact point, right after the Nth fsync of the catalog's WAL, right after an
/// object's unlink, or right after a canonical snapshot's MANIFEST.json is fsynced (LazyFS kills itself there).
/// Then LazyFS is mounted again, the store reopened, and everything the child had been told is checked.
///
/// The cut must reach every process of the workload before LazyFS drops its cache, and none may outlive the round.
/// Once the workload ran under `setsid`, which forks when its caller already leads a process group (Foundation
/// starts every child as one): the signals of the cut went to an empty group, and the workload ran on through the
/// cut, the drop and the remount. That alone made about one round in twenty fail (a `rm -rf` through the mount,
/// lazily unmounted by then, "succeeded" on a name that was no longer there and was recorded as a delete; objects
/// were created and fsynced after the drop of their bytes, then committed by the still-running snapshot; exports
/// finished after the cut). Started as bash itself, the workload is frozen, then killed, and checked gone.
final class PowerLossTests: XCTestCase {
    /// `SNAPFS_POWER_CUTS` cuts, 25 by default (about a minute and a half); 0 skips the test. LazyFS is
    /// required: without it the test fails, naming what is missing. `SNAPFS_POWER_SEED` repeats a run,
    /// `SNAPFS_POWER_MAX_FAILED_ROUNDS` (default 3) lets a failing run go on to measure a rate, `SNAPFS_POWER_KEEP=1`
    /// keeps the work directory under /tmp (LazyFS's tmpfs still mounted on its `backing`, the last failed round's store
    /// as the check found it) and `SNAPFS_POWER_LAZYFS_LOG=1` has LazyFS log every operation there.
    static let defaultCuts = 25

    func testPowerCutsLoseNothingThatReturnedSuccess() throws {
        if ProcessInfo.processInfo.environment["SNAPFS_SKIP_MOUNT_TESTS"] == "1" { throw XCTSkip("SNAPFS_SKIP_MOUNT_TESTS=1") }
        let setting = ProcessInfo.processInfo.environment["SNAPFS_POWER_CUTS"]
        guard let cuts = setting.map({ Int($0) }) ?? Self.defaultCuts, cuts >= 0 else {
            XCTFail("SNAPFS_POWER_CUTS=\(setting ?? "") is not a number of cuts (0 skips the test)")
            return
        }
        if cuts == 0 { throw XCTSkip("SNAPFS_POWER_CUTS=0") }
        let seed = UInt64(ProcessInfo.processInfo.environment["SNAPFS_POWER_SEED"] ?? "") ?? UInt64.random(in: 1...1_000_000)
        print("power-cut test: \(cuts) cuts, seed \(seed) (SNAPFS_POWER_SEED to repeat)")
        var rng = SplitMix(seed: seed)
        let bench = try PowerBench(executable: try LazyFS.locate())
        defer { if ProcessInfo.processInfo.environment["SNAPFS_POWER_KEEP"] == nil { bench.cleanup() } else { bench.unmountAll() } }
        try bench.initialise()

        // A failing run stops after 3 failed rounds; SNAPFS_POWER_MAX_FAILED_ROUNDS raises that to measure a rate.
        let maxFailedRounds = Int(ProcessInfo.processInfo.environment["SNAPFS_POWER_MAX_FAILED_ROUNDS"] ?? "") ?? 3
        var stats = CutStats()
        var walMax = 60
        var randomMax = 6.0
        for round in 1...cuts {
            // Exact cuts half the time; which point, at random among the kinds LazyFS can arm.
            var faults: [LazyFS.Fault] = []
            var kind = "random"
            if rng.next() % 2 == 0 {
                switch rng.next() % 4 {
                case 0, 1:
                    kind = "wal-fsync"
                    faults = [.init(op: "fsync", path: bench.lazy.faultPath("store/catalog.sqlite-wal"), occurrence: 1 + Int(rng.next() % UInt64(walMax)))]
                case 2:
                    kind = "object-unlink"
                    // LazyFS counts an unlink twice under timing "before" (its after-hook reuses the before label),
                    // so occurrence 1 fires after the first unlink of that path has been done.
                    faults = bench.objectPaths.shuffled(using: &rng).prefix(3).map {
                        .init(op: "unlink", path: bench.lazy.faultPath("store/" + $0), occurrence: 1, timing: "before")
                    }
                default:
                    kind = "manifest-fsync"
                    let next = bench.nextSnapshotID
                    faults = (next..<next + 8).map {
                        .init(op: "fsync", path: bench.lazy.faultPath("store/canonical/\($0)/MANIFEST.json"), occurrence: 1)
                    }
                }
                if faults.isEmpty { kind = "random" }
            }
            let outcome = try bench.runRound(round, seed: rng.next(), faults: faults, cutAfter: Double(rng.next() % 1000) / 1000 * randomMax + 0.2)
            if outcome.exact {
                stats.exact[kind, default: 0] += 1
                if kind == "wal-fsync" { walMax += 4 }
            } else {
                stats.random += 1
                if kind == "wal-fsync" { walMax = max(8, walMax * 3 / 4) }
                if outcome.childFinished { randomMax = max(1, randomMax * 0.8) } else { randomMax = min(20, randomMax * 1.1) }
            }
            stats.promised += outcome.promised
            if !outcome.childFinished { stats.midWork += 1 }
            let problems = try bench.check(round: round)
            XCTAssertTrue(problems.isEmpty, "round \(round) (cut \(outcome.exact ? "exact: \(faults.first!)" : "random")), seed \(seed): \(problems.count) problems:\n" + problems.prefix(12).joined(separator: "\n"))
            if !problems.isEmpty {
                stats.failedRounds += 1
                // The last failure's store is kept as it was (SNAPFS_POWER_KEEP=1 leaves it for a look).
                if stats.failedRounds >= maxFailedRounds { break }
                try bench.rebaseline()
            }
        }
        print("power-cut test: \(stats.random + stats.exact.values.reduce(0, +)) cuts, \(stats.midWork) while the child was working; \(stats.random) at random instants, exact: \(stats.exact.sorted { $0.key < $1.key }.map { "\($0.value) after \($0.key)" }.joined(separator: ", ")); \(stats.promised) operations had returned success before a cut (\(bench.promisedByKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))), \(bench.checkedSnapshots) snapshot checks, \(bench.checkedExports) export checks; \(stats.failedRounds) rounds failed")
        XCTAssertGreaterThan(bench.checkedSnapshots, 0, "snapshots were checked against the state they captured")
        XCTAssertGreaterThanOrEqual(stats.midWork * 2, cuts, "most cuts came while the child was working, not after it finished")
    }
}

struct CutStats {
    var random = 0
    var exact: [String: Int] = [:]
    var promised = 0
    var midWork = 0
    var failedRounds = 0
}

struct RoundOutcome {
    var exact: Bool
    var childFinished: Bool
    var promised: Int
}

/// The store on LazyFS, the child that works on it, and what the child was promised.
final class PowerBench {
    let root: String
    let lazy: LazyFS
    let state: String, expect: String, mnt: String, logs: String
    var store: String { lazy.mountpoint + "/store" }
    var exportsDir: String { lazy.mountpoint + "/exports" }

    /// Snapshot names the child was told exist, with the label whose `.sums` holds their content (nil: unknown,
    /// e.g. a copy of a snapshot the child did not take itself); names it was told are gone; exports not yet checked.
    private var content: [String: String?] = [:]
    private var gone = Set<String>()
    private var exports: [String: String?] = [:]
    private var undecided: [[String]] = []
    private(set) var checkedSnapshots = 0
    private(set) var promisedByKind: [String: Int] = [:]
    private(set) var checkedExports = 0
    private(set) var objectPaths: [String] = []
    private(set) var nextSnapshotID: Int64 = 1

    init(executable: String) throws {
        root = "/tmp/snapfs-power-\(UUID().uuidString.prefix(8))"
        lazy = try LazyFS(executable: executable, work: root)
        state = root + "/state"; expect = root + "/expect"; mnt = root + "/mnt"; logs = root + "/logs"
        for d in [state, expect, mnt, logs] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try Workload.script.write(toFile: root + "/child.sh", atomically: true, encoding: .utf8)
    }

    private func startLazyFS(faults: [LazyFS.Fault] = []) throws {
        try lazy.start(faults: faults)
        // Everything of the catalog goes through LazyFS, its WAL and its wal-index (`-shm`, which SQLite maps and
        // rebuilds from the WAL after a crash) included. The WAL is left as the cut left it: the next start appends
        // to it, as SnapFS does after a real power cut. (The wal-index was once bound from an ordinary disk, after a
        // SIGBUS and "disk I/O error"s seen while the workload still ran on past the cut; 40 cuts with seed 5150
        // without it lost nothing, and SQLite's I/O errors came only when LazyFS had killed itself at a fault.)
        // (The WAL was once checkpointed and truncated here, against a supposed fault in LazyFS's writing of
        // partly written blocks, seen while the workload still ran on past the cut. LazyFS keeps such a block whole:
        // 3,000 bytes fsynced under one start and 2,000 appended and fsynced under the next, or six 4,120-byte
        // WAL-like frames written in 24- and 4,096-byte pieces across two starts, all came back after a cut; and
        // 60 cuts with seed 99 appending to the WAL across starts lost nothing.)
    }

    private func stopLazyFS(cut: Bool) {
        if cut { lazy.kill() } else { lazy.stop() }
    }

    func unmountAll() {
        if isMountpoint(mnt) { _ = runTool("/bin/fusermount3", ["-u", "-z", mnt]) }
        stopLazyFS(cut: false)
    }

    func cleanup() {
        unmountAll()
        if !isMountpoint(mnt) && !isMountpoint(lazy.mountpoint) {
            lazy.removeBacking()
            if !isMountpoint(lazy.backing) { try? FileManager.default.removeItem(atPath: root) }
        }
    }

    func initialise() throws {
        try lazy.start()
        let r = runTool(BuiltTools.snapfs, ["init", store, "--state", state])
        guard r.status == 0 else { throw NSError(domain: "power", code: 1, userInfo: [NSLocalizedDescriptionKey: "snapfs init: \(r.output)"]) }
        try FileManager.default.createDirectory(atPath: exportsDir, withIntermediateDirectories: true)
        lazy.stop()
    }

    /// One round: LazyFS up (with `faults` armed), the child working, the power cut, the child's promises read.
    func runRound(_ round: Int, seed: UInt64, faults: [LazyFS.Fault], cutAfter: TimeInterval) throws -> RoundOutcome {
        stopLazyFS(cut: false)
        try startLazyFS(faults: faults)
        let log = logs + "/round-\(round).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        // bash itself, not under `setsid`: Foundation already starts it as the leader of a process group of its own,
        // and `setsid` run by a group leader forks, so the workload ran in another group that the cut never reached.
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [root + "/child.sh"]
        p.environment = ProcessInfo.processInfo.environment.merging([
            "SEED": String(seed % 32768), "ROUND": String(round), "OPS": "30", "SNAPFS": BuiltTools.snapfs,
            "STORE": store, "MNT": mnt, "STATE": state, "EXPECT": expect, "EXPORTS": exportsDir, "LOG": log, "WORK": root,
            "SNAPFS_LOG": "error",
        ]) { $1 }
        let childLog = FileHandle(forWritingAtPath: root + "/child.log") ?? {
            _ = FileManager.default.createFile(atPath: root + "/child.log", contents: nil)
            return FileHandle(forWritingAtPath: root + "/child.log")!
        }()
        childLog.seekToEndOfFile()
        p.standardOutput = childLog
        p.standardError = childLog
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let group = p.processIdentifier
        guard getpgid(group) == group else {
            kill(group, SIGKILL)
            p.waitUntilExit()
            throw NSError(domain: "power", code: 2, userInfo: [NSLocalizedDescriptionKey:
                "the workload is not the leader of its own process group (pgid \(getpgid(group)), pid \(group)): the cut could not freeze it"])
        }

        // Wait for the armed fault (LazyFS then dies by its own hand), or the random instant, or the child's end.
        let start = Date()
        var exact = false
        // The child's end is its marker file: the mount daemon it started outlives it in its process group.
        let finished = root + "/finished-\(round)"
        while true {
            if !faults.isEmpty && !lazy.isRunning { exact = lazy.faultFired; break }
            if !p.isRunning || FileManager.default.fileExists(atPath: finished) { break }
            if faults.isEmpty && Date().timeIntervalSince(start) >= cutAfter { break }
            if Date().timeIntervalSince(start) > 120 { break }
            usleep(5_000)
        }
        let childFinished = !p.isRunning || FileManager.default.fileExists(atPath: finished)
        // The cut: nothing of the child may run after LazyFS dropped its cache, so it is frozen first.
        kill(-group, SIGSTOP)
        // The FUSE connections of both mounts, read before anything is unmounted (from the mount table: a stat of a
        // mount whose daemon is frozen could wait for it).
        let connections = fuseConnections(of: [mnt, lazy.mountpoint])
        if lazy.isRunning { lazy.clearCache() }
        kill(-group, SIGKILL)
        stopLazyFS(cut: true)
        if isMountpoint(mnt) { _ = runTool("/bin/fusermount3", ["-u", "-z", mnt]) }
        kill(-group, SIGCONT)
        // Nothing of the workload may outlive the cut: a process left running would act on the store after LazyFS is
        // mounted again, and anything it reported then would be taken for a promise made before the cut. A killed
        // daemon can leave its mount alive: a thread caught telling the kernel to forget a name waits, unkillably, for
        // the directory lock that an `rm` holds while it waits for the daemon's answer. Aborting the connection (as
        // an operator would, through fusectl) ends both, as a power cut would.
        let deadline = Date().addingTimeInterval(30)
        var aborted = false
        while !livingMembers(ofGroup: group).isEmpty {
            if Date() > deadline { throw NSError(domain: "power", code: 3, userInfo: [NSLocalizedDescriptionKey: "processes of the workload (group \(group)) outlived the cut"]) }
            if !aborted && Date() > deadline.addingTimeInterval(-25) {
                abortFUSEConnections(connections)
                aborted = true
            }
            kill(-group, SIGKILL)
            usleep(10_000)
        }
        // Bounded, so a test that cannot go on says so instead of hanging CI.
        let reaped = Date().addingTimeInterval(30)
        while p.isRunning {
            if Date() > reaped { throw NSError(domain: "power", code: 3, userInfo: [NSLocalizedDescriptionKey: "the workload's shell (pid \(group)) was not reaped 30 s after the cut"]) }
            usleep(10_000)
        }
        try? childLog.close()

        // Operations that returned are applied to the model; those that began and did not return (failed, or cut
        // short) may or may not have happened, and are settled against what the reopened store lists.
        let lines = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        var begun: [String]?
        var returned = 0
        for l in lines {
            if l.first == "begin" {
                if let b = begun { undecided.append(b) }
                begun = Array(l.dropFirst())
            } else {
                if let b = begun, b != l { undecided.append(b) }
                begun = nil
                record(l)
                returned += 1
            }
        }
        if let b = begun { undecided.append(b) }
        try startLazyFS()
        return RoundOutcome(exact: exact, childFinished: childFinished, promised: returned)
    }

    /// Starts over with a new, empty store after a round that failed, so later rounds report only what they lose.
    func rebaseline() throws {
        stopLazyFS(cut: false)
        try FileManager.default.removeItem(atPath: lazy.backing + "/store")
        content = [:]; gone = []; exports = [:]; undecided = []; objectPaths = []; nextSnapshotID = 1
        try initialise()
    }

    /// An operation that began but never returned: either outcome is allowed, half of one is not.
    private func settle(_ l: [String], listed: Set<String>) -> String? {
        switch (l.first, l.count) {
        case ("delete", 2):
            if !listed.contains(l[1]) { content.removeValue(forKey: l[1]); gone.insert(l[1]) }
        case ("move", 3):
            switch (listed.contains(l[1]), listed.contains(l[2])) {
            case (true, false): break
            case (false, true): content[l[2]] = content.removeValue(forKey: l[1]) ?? .some(nil); gone.insert(l[1])
            case (true, true): return "interrupted move of \(l[1]) to \(l[2]) left both names listed"
            case (false, false):
                if content[l[1]] != nil { return "interrupted move of \(l[1]) to \(l[2]) left neither name listed" }
            }
        case ("snapshot", 2): if listed.contains(l[1]) { content[l[1]] = .some(l[1]) }
        case ("copy", 3): if listed.contains(l[2]) { content[l[2]] = content[l[1]] ?? .some(nil) }
        case ("copy-of-export", 3): if listed.contains(l[2]) { content[l[2]] = exports[l[1]] ?? .some(nil) }
        default: break
        }
        return nil
    }

    private func record(_ l: [String]) {
        if let k = l.first { promisedByKind[k, default: 0] += 1 }
        switch (l.first, l.count) {
        case ("snapshot", 2): content[l[1]] = .some(l[1])
        case ("delete", 2): content.removeValue(forKey: l[1]); gone.insert(l[1])
        case ("move", 3): content[l[2]] = content.removeValue(forKey: l[1]) ?? .some(nil); gone.insert(l[1])
        case ("copy", 3): content[l[2]] = content[l[1]] ?? .some(nil)
        case ("export", 3): exports[l[2]] = content[l[1]] ?? .some(nil)
        case ("copy-of-export", 3): content[l[2]] = exports[l[1]] ?? .some(nil)
        default: break
        }
    }

    /// Objects of listed snapshots (for unlink faults) and the id the next snapshot will get (for MANIFEST faults),
    /// read while no fault is armed.
    private func refreshFaultTargets(_ opened: Store) throws {
        objectPaths = try opened.objects().map(\.path).filter { $0.hasPrefix("objects/") || $0.hasPrefix("canonical/") }
        let seq = runTool("/usr/bin/sqlite3", ["-readonly", store + "/catalog.sqlite", "SELECT seq FROM sqlite_sequence WHERE name = 'snapshots'"])
        nextSnapshotID = (Int64(seq.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) + 1
    }

    /// After a cut, with LazyFS mounted again: what the child was promised is there, and the store is sound.
    func check(round: Int) throws -> [String] {
        var problems: [String] = []
        // `snapfs verify` opens the store (finishing what the cut interrupted) and checks every referenced byte.
        let v = runTool(BuiltTools.snapfs, ["verify", store, "--json"], timeout: 300)
        if let report = try? JSONDecoder().decode(VerifyReport.self, from: Data(v.output.utf8)) {
            if !report.problems.isEmpty {
                problems.append("verify: \(report.problems.count) problems, e.g. " + report.problems.prefix(4).map { "\($0.path) of \($0.snapshots): \($0.problem)" }.joined(separator: "; "))
            }
            if !report.unreferenced.isEmpty { problems.append("verify: unreferenced files \(report.unreferenced.prefix(10))") }
            if report.pendingRemovals != 0 { problems.append("verify: \(report.pendingRemovals) removals pending after open") }
        } else { problems.append("snapfs verify exited \(v.status) without a report: \(v.output.suffix(2000))") }

        let opened = try Store.open(at: URL(fileURLWithPath: store))
        let listed = try opened.snapshots(includingWriting: true)
        let byName = Dictionary(listed.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        for u in undecided { if let p = settle(u, listed: Set(byName.keys)) { problems.append(p) } }
        undecided = []
        for s in listed where s.state != .complete { problems.append("\(s.name) is still 'writing' after the store was reopened") }
        // No listed snapshot references a missing or short object.
        for s in listed where s.state == .complete {
            for e in try opened.entries(of: s.id, includeHidden: true) where e.type == .file {
                var st = stat()
                guard let op = e.objectPath else { problems.append("\(s.name)/\(e.path) has no object"); continue }
                if lstat(opened.url(ofObjectPath: op).path, &st) != 0 { problems.append("\(s.name)/\(e.path): object \(op) missing") }
                else if Int64(st.st_size) != e.size { problems.append("\(s.name)/\(e.path): object \(op) is \(st.st_size) bytes, not \(e.size)") }
            }
        }
        // Every snapshot whose operation returned is listed and holds, byte for byte, the state it captured.
        for (name, label) in content.sorted(by: { $0.key < $1.key }) {
            guard let s = byName[name], s.state == .complete else { problems.append("\(name) returned success but is not listed after the cut"); continue }
            guard let label else { continue }
            let want = try sums(expect + "/\(label).sums")
            var got: [String: String] = [:]
            for e in try opened.entries(of: s.id) where e.type == .file {
                got[e.path] = e.objectPath.flatMap { Store.sha256(ofFile: opened.url(ofObjectPath: $0).path) } ?? "missing"
            }
            if got != want {
                let wrong = Set(want.keys).union(got.keys).filter { want[$0] != got[$0] }.sorted()
                problems.append("\(name) (\(s.format.rawValue)) differs from the state it captured in \(wrong.prefix(5))")
            }
            checkedSnapshots += 1
        }
        // A delete (or the old name of a move) that returned stays done.
        for name in gone.sorted() where byName[name] != nil { problems.append("\(name) was deleted or moved before the cut but is listed again") }
        // Every export that returned is complete: its files match its SHA256SUMS, and the state it came from.
        for (e, label) in exports.sorted(by: { $0.key < $1.key }) {
            let dir = exportsDir + "/" + e
            let c = runTool("/bin/sh", ["-c", "cd '\(dir)' && test -s MANIFEST.json && sha256sum --quiet --strict -c SHA256SUMS"])
            if c.status != 0 { problems.append("export \(e) is not intact after the cut: \(c.output.prefix(500))") }
            if let label {
                let want = try sums(expect + "/\(label).sums")
                var got: [String: String] = [:]
                for (k, v) in try sums(dir + "/SHA256SUMS") { got[String(k.dropFirst("files/".count))] = v }
                if got != want { problems.append("export \(e) differs from the state it captured") }
            }
            checkedExports += 1
        }
        // Exports are checked once, right after the cut that followed them; later rounds do not use them, nor
        // the half-written ones of exports the cut interrupted.
        _ = runTool("/bin/sh", ["-c", "rm -rf '\(exportsDir)'/*"])
        exports = [:]
        try refreshFaultTargets(opened)
        return problems
    }

    /// `sha256sum` output as path → checksum.
    private func sums(_ path: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { continue }
            out[String(parts[1].drop(while: { $0 == " " || $0 == "*" }))] = String(parts[0])
        }
        return out
    }
}

/// The FUSE connection numbers (the minor device number, as /sys/fs/fuse/connections names them) of the mounts at
/// these paths, from /proc/self/mountinfo.
func fuseConnections(of mountpoints: [String]) -> [UInt32] {
    let table = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
    return table.split(separator: "\n").compactMap { line in
        let f = line.split(separator: " ")
        guard f.count > 4, mountpoints.contains(String(f[4])), line.contains(" - fuse") else { return nil }
        return f[2].split(separator: ":").last.flatMap { UInt32($0) }
    }
}

/// Aborts FUSE connections, mounting fusectl first if it is not (and unmounting it after): every request waiting on
/// them fails at once.
func abortFUSEConnections(_ connections: [UInt32]) {
    let dir = "/sys/fs/fuse/connections"
    var mounted = false
    if (try? FileManager.default.contentsOfDirectory(atPath: dir))?.isEmpty ?? true {
        mounted = runTool("/bin/mount", ["-t", "fusectl", "none", dir]).status == 0
    }
    defer { if mounted { _ = runTool("/bin/umount", [dir]) } }
    for c in connections {
        let path = "\(dir)/\(c)/abort"
        guard FileManager.default.fileExists(atPath: path) else { continue }
        print("power-cut test: aborting FUSE connection \(c): a process of the workload was still waiting on it")
        try? "1".write(toFile: path, atomically: false, encoding: .utf8)
    }
}

/// The processes of a process group that have not exited (zombies, already dead, are left out: whoever reaps them may
/// take its time).
func livingMembers(ofGroup group: pid_t) -> [pid_t] {
    let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
    return pids.filter { pid in
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        // After "pid (comm)": state, ppid, pgrp.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 2 && fields[0] != "Z" && pid_t(fields[2]) == group
    }
}

/// A small seeded generator, so a failing run can be repeated with its seed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
