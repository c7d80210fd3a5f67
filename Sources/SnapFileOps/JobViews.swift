import Foundation
import SnapStore

/// One job's directory in `by-job/`: its snapshots under the names Flink gave their directories (`chk-N`, the
/// savepoint directory's name), which are unique within a job but not across jobs, hence one directory per job.
struct JobView: Sendable, Equatable {
    /// Names in catalog order (oldest first).
    var names: [String] = []
    var byName: [String: SnapshotID] = [:]
    /// The name `latest` points at: the job's recovery point (see `JobViews.latest`).
    var latest: String?
}

/// Builds the `by-job/` tree from the catalog. Pure: the mount rebuilds it whenever the catalog changes, and the
/// difference between two builds is what the kernel is told to forget.
enum JobViews {
    /// The name `latest` has in every directory it stands in; a snapshot directory of that name (Flink never
    /// makes one) keeps its catalog name instead.
    static let latestName = "latest"

    /// Every job with at least one snapshot, by job id. Snapshots that belong to no known job (a savepoint whose
    /// job the store cannot tell) are only at the flat root.
    static func build(_ snapshots: [Snapshot], status: JobStatus) -> [String: JobView] {
        var views: [String: JobView] = [:]
        var members: [String: [Snapshot]] = [:]
        for s in snapshots where s.state == .complete {
            guard let job = s.job else { continue }
            var v = views[job, default: JobView()]
            var name = viewName(s)
            // Two directories of one name in one job (a copy under another parent): the later keeps its catalog
            // name, which is unique.
            if v.byName[name] != nil || name == latestName { name = s.name }
            guard v.byName[name] == nil else { continue }
            v.names.append(name)
            v.byName[name] = s.id
            views[job] = v
            members[job, default: []].append(s)
        }
        for (job, snaps) in members {
            guard let point = latest(of: job, among: snaps, status: status), var v = views[job] else { continue }
            v.latest = v.byName.first { $0.value == point.id }?.key
            views[job] = v
        }
        return views
    }

    /// The name a snapshot has in its job's directory: the last component of the directory Flink wrote it to.
    static func viewName(_ s: Snapshot) -> String {
        guard let dir = s.directory, let last = dir.split(separator: "/").last, !last.isEmpty else { return s.name }
        return String(last)
    }

    /// Which of job `job`'s snapshots its `latest` link points at: the one place that decides it. The engine's
    /// recovery point for this job when it names one of the job's snapshots (the JobManager's `latest.completed`,
    /// or a newer complete checkpoint); otherwise the job's newest snapshot by Flink's checkpoint
    /// id, which one counter numbers checkpoints and savepoints by (catalog order only says when each was found).
    static func latest(of job: String, among snapshots: [Snapshot], status: JobStatus) -> Snapshot? {
        let point = status.jobs.first { $0.job == job }?.recoveryPoint ?? status.recoveryPoint
        if let point, let s = snapshots.first(where: { $0.name == point && $0.job == job }) { return s }
        return snapshots.filter { $0.job == job && $0.state == .complete }
            .max { (Int64($0.externalID ?? "") ?? -1, $0.id) < (Int64($1.externalID ?? "") ?? -1, $1.id) }
    }

    /// What the kernel must forget when the tree goes from `old` to `new`: names in `by-job/` and in job
    /// directories whose meaning changed, and the directories whose listings did.
    static func changes(from old: [String: JobView]?, to new: [String: JobView]?) -> (entries: Set<ChangedEntry>, directories: Set<UInt64>) {
        var entries: Set<ChangedEntry> = [], directories: Set<UInt64> = []
        let o = old ?? [:], n = new ?? [:]
        if Set(o.keys) != Set(n.keys) {
            directories.insert(InodeNumber.jobs)
            for j in Set(o.keys).symmetricDifference(n.keys) { entries.insert(ChangedEntry(parent: InodeNumber.jobs, name: j)) }
        }
        for j in Set(o.keys).union(n.keys) where o[j] != n[j] {
            let parent = InodeNumber.job(j)
            directories.insert(parent)
            let a = o[j] ?? JobView(), b = n[j] ?? JobView()
            for name in Set(a.byName.keys).union(b.byName.keys) where a.byName[name] != b.byName[name] {
                entries.insert(ChangedEntry(parent: parent, name: name))
            }
            if a.latest != b.latest {
                entries.insert(ChangedEntry(parent: parent, name: latestName))
                directories.insert(InodeNumber.jobLatest(j))
            }
        }
        return (entries, directories)
    }
}
