import Foundation
import Logging
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Every refusal in one place: the errno the SPEC names, and the reason in the event log and the daemon's log.
extension SnapFileSystem {
    /// How long identical refusals are counted rather than each written to the event log.
    static let refusalWindow: TimeInterval = 5

    /// Every refusal goes to the event log and the daemon's log (SPEC §4: never silent), and is counted in
    /// `snapfs_refusals_total{errno}` (each one, repeats included). Refusals that differ in
    /// anything (snapshot, errno, operation, path, reason) are separate events; only an identical one repeated
    /// within a few seconds is counted, and `flushRefusals` then writes how many times it came again.
    func refuse(_ error: FSError, snapshot: String?, _ what: String) -> FSError {
        let detail = "\(what) refused: \(error)"
        StoreMetrics.refused(errno: error.errno)
        let key = "\(snapshot ?? "-")|\(error.errno)|\(detail)"
        let t = now()
        let (record, overdue) = state.withLock { s -> (Bool, RefusalRun?) in
            if var run = s.recentRefusals[key] {
                if t.timeIntervalSince(run.since) < Self.refusalWindow {
                    run.repeats += 1
                    s.recentRefusals[key] = run
                    return (false, nil)
                }
                s.recentRefusals[key] = RefusalRun(since: t, snapshot: snapshot, detail: detail)
                return (true, run.repeats > 0 ? run : nil)
            }
            s.recentRefusals[key] = RefusalRun(since: t, snapshot: snapshot, detail: detail)
            return (true, nil)
        }
        if let overdue { recordRepeats(overdue) }
        if record {
            store.recordEvent("refusal", snapshot: snapshot, detail)
        } else {
            logger.warning("refused again", metadata: ["snapshot": .string(snapshot ?? "-"), "reason": .string(detail)])
        }
        return error
    }

    /// Writes the counts of identical refusals whose window has closed, and forgets them.
    func flushRefusals() {
        let t = now()
        let closed = state.withLock { s -> [RefusalRun] in
            let done = s.recentRefusals.filter { t.timeIntervalSince($0.value.since) >= Self.refusalWindow }
            for k in done.keys { s.recentRefusals[k] = nil }
            return done.values.filter { $0.repeats > 0 }.sorted { $0.since < $1.since }
        }
        for run in closed { recordRepeats(run) }
    }

    private func recordRepeats(_ run: RefusalRun) {
        store.recordEvent("refusal", snapshot: run.snapshot,
                          "\(run.detail) (the same refusal \(run.repeats) more time\(run.repeats == 1 ? "" : "s") within \(Int(Self.refusalWindow)) s)")
    }

    /// One refusal, written once, and how many identical ones followed within the window.
    struct RefusalRun {
        var since: Date
        var snapshot: String?
        var detail: String
        var repeats = 0
    }

    func snapshotName(_ id: SnapshotID) -> String? { state.withLock { $0.listing.byID[id]?.name } }

    func readOnly(_ what: String, _ id: SnapshotID?) -> FSError {
        refuse(.readOnly("snapshots are immutable"), snapshot: id.flatMap(snapshotName), what)
    }

    func controlRefusal(_ what: String) -> FSError {
        refuse(.notPermitted("`latest`, `by-job` and `.snapfs` are part of the mount and cannot be changed"), snapshot: nil, what)
    }

    /// `latest`, `by-job` and `.snapfs` stand at the root beside the snapshots; no removal or move may touch them
    /// (EPERM).
    func refuseIfControl(_ rootName: String, _ what: String) throws(FSError) {
        if rootName == "latest" || rootName == ".snapfs" || rootName == Self.jobsName { throw controlRefusal(what) }
    }

    /// What kind of place a directory is, for the operations that create or remove names in it. A snapshot's
    /// directory reached through `by-job/` is the same place as at the root.
    enum Place { case root, snapshot(SnapshotID, String), control, jobs(Node) }

    func place(_ n: Node) throws(FSError) -> Place {
        switch n {
        case .root: return .root
        case .snapshot(let id): return .snapshot(id, "")
        case .directory(let id, let p): return .snapshot(id, p)
        case .jobView(let flat): return try place(flat)
        case .jobs, .job: return .jobs(n)
        case .controlDir: return .control
        default: throw .notDirectory
        }
    }
}
