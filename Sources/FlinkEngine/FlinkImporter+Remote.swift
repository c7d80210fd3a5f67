import Foundation
import SnapStore

/// Passes over a Flink store kept on an object store, where every listing is a request to pay for.
///
/// A full pass lists the whole store once (paged), takes every directory holding a `_metadata` for a snapshot
/// directory, and forgets a recorded snapshot only when its `_metadata` is missing from the listing and a HEAD
/// confirms it gone. An incremental pass lists only what can be new:
/// - per job directory with recorded checkpoints, the keys after its newest one: `prefix = <job>/chk-`,
///   within its decade (`prefix = <job>/chk-100`, `StartAfter = <job>/chk-1003/~`: keys that sort after it
///   there are exactly the newer ids of the decade); when that reaches the decade's end (`chk-1009`, or
///   `chk-999`, after which `chk-1000` sorts before the newest), one `Delimiter=/` listing of `<job>/chk-` (one
///   entry per checkpoint directory) finds the rest. Flink's ids are consecutive; a gap at a decade's end (its
///   last directory aborted and removed) leaves the next ones to the next full pass.
/// - the directories holding job directories and savepoints, one level deep (`Delimiter=/`), for new jobs and new
///   savepoints; a new one is asked for its `_metadata` (HEAD) or, for a job, listed.
/// An incremental pass forgets nothing: Flink's subsumed checkpoints are forgotten by the next full pass, at least
/// every `FlinkScanCache.fullPassInterval` (its time kept in the catalog, so commands share it).
extension FlinkImporter {
    static let remoteFullPassKey = "flink.remote_full_pass_at"

    func refreshRemote(full: Bool) throws(StoreError) -> FlinkImportReport {
        activity.fullPass()
        let before = store.files.cost
        let last = (try store.meta(Self.remoteFullPassKey)).flatMap(Double.init) ?? 0
        let now = Date().timeIntervalSince1970
        let doFull = full || now - last >= scanCache.fullPassInterval || now < last
        var report = FlinkImportReport()
        let found: [String]
        var listed: [String: StoreFileStat] = [:]
        if doFull {
            let listing = try store.files.list("", recursive: true)
            found = Self.snapshotDirectories(in: listing)
            listed = listing.files
        } else {
            found = try newRemoteDirectories()
        }
        _ = try finishPass(onDisk: found, complete: doFull, listedFiles: listed, report: &report) { _ in }
        // When it ended: the interval counts from the listing's end, however long recording took.
        if doFull { try store.setMeta(Self.remoteFullPassKey, String(Date().timeIntervalSince1970)) }
        report.remote = RemoteRefreshCost(full: doFull, cost: store.files.cost - before)
        logger.info("flink store on \(store.files.location) refreshed", metadata: [
            "full": .stringConvertible(doFull), "added": .stringConvertible(report.added.count),
            "forgotten": .stringConvertible(report.forgotten.count),
            "list_requests": .stringConvertible(report.remote!.cost.listRequests),
            "list_bytes": .stringConvertible(report.remote!.cost.listBytes),
            "head_requests": .stringConvertible(report.remote!.cost.headRequests)])
        return report
    }

    /// Directories (sorted) holding a `_metadata`, from a listing of the whole store: at most `maximumDepth` deep,
    /// none inside `shared/` or `taskowned/`, none under a dot-name or the store's run directory.
    static func snapshotDirectories(in listing: StoreFileListing) -> [String] {
        var out: [String] = []
        for path in listing.files.keys where path.hasSuffix("/_metadata") {
            let directory = String(path.dropLast("/_metadata".count))
            let parts = PathBytes.components(directory)
            guard !parts.isEmpty, parts.count <= maximumDepth, parts.first != Store.runDirectory,
                  !parts.contains(where: { fileDirectories.contains($0) || $0.hasPrefix(".") }) else { continue }
            out.append(directory)
        }
        // A snapshot directory inside another one is a file of it, as the walk never descends into a snapshot.
        let set = Set(out)
        return out.filter { d in !set.contains { d.hasPrefix($0 + "/") } }.sorted()
    }

    /// The snapshot directories an incremental pass finds that the catalog does not hold yet.
    func newRemoteDirectories() throws(StoreError) -> [String] {
        let known = Set(try store.snapshots(includingWriting: true).compactMap(\.directory))
        var newestByJob: [String: Int64] = [:]
        var containers = Set<String>()
        var savepointParents = Set<String>([settings.savepointDirectory])
        for dir in known {
            let parts = PathBytes.components(dir)
            guard let last = parts.last else { continue }
            let parent = PathBytes.parent(dir) ?? ""
            if let n = Self.checkpointNumber(last), !parent.isEmpty {
                newestByJob[parent] = max(newestByJob[parent] ?? -1, n)
                containers.insert(PathBytes.parent(parent) ?? "")
            } else {
                savepointParents.insert(parent)
            }
        }
        var found = Set<String>()
        func hasMetadata(_ dir: String) throws(StoreError) -> Bool { try store.files.stat(dir + "/_metadata") != nil }
        // New job directories, and new savepoints.
        for container in containers.sorted() {
            for job in try store.files.list(container, recursive: false).directories where newestByJob[job] == nil {
                guard !job.split(separator: "/").contains(where: { $0.hasPrefix(".") }) else { continue }
                found.formUnion(Self.snapshotDirectories(in: try store.files.list(job, recursive: true)).filter { !known.contains($0) })
            }
        }
        for parent in savepointParents.sorted() {
            for dir in try store.files.list(parent, recursive: false).directories
            where !known.contains(dir) && !Self.fileDirectories.contains(PathBytes.components(dir).last ?? "") {
                if try hasMetadata(dir) { found.insert(dir) }
            }
        }
        // New checkpoints of known jobs: only the keys after the newest known one, within its decade.
        for (job, newest) in newestByJob.sorted(by: { $0.key < $1.key }) {
            let digits = String(newest)
            let decade = "chk-" + digits.dropLast()
            let after = try store.files.list(job, namePrefix: decade, recursive: true, startAfter: "\(job)/chk-\(newest)/~")
            var highest = newest
            for path in after.files.keys where path.hasSuffix("/_metadata") {
                let dir = String(path.dropLast("/_metadata".count))
                guard PathBytes.parent(dir) == job, let n = Self.checkpointNumber(PathBytes.components(dir).last ?? ""), n > newest else { continue }
                highest = max(highest, n)
                if !known.contains(dir) { found.insert(dir) }
            }
            // Past the decade (`chk-1010` after `chk-1009`, `chk-1000` after `chk-999`) keys no longer sort after
            // the newest: then one listing of the job's checkpoint directories (one entry each) finds the rest.
            guard highest % 10 == 9 || (digits.count == 1 && highest >= 9) else { continue }
            for dir in try store.files.list(job, namePrefix: "chk-", recursive: false, startAfter: nil).directories where !known.contains(dir) {
                guard let n = Self.checkpointNumber(PathBytes.components(dir).last ?? ""), n > newest else { continue }
                if try hasMetadata(dir) { found.insert(dir) }
            }
        }
        return found.sorted()
    }
}
