import FlinkMetadata
import FlinkMetadataWriter
import Foundation
import SnapStore

/// What `repair` did, or would do with `--dry-run`.
public struct FlinkRepairReport: Codable, Sendable, Equatable {
    public struct Fix: Codable, Sendable, Equatable {
        /// Where Flink looks for the file now (the relative handle resolved against the snapshot's directory).
        public let looksAt: String
        /// Where the file is, which the repaired `_metadata` names by absolute path.
        public let foundAt: String
        public let size: Int64
    }

    public let name: String
    public let directory: String
    public let dryRun: Bool
    /// True when `_metadata` was rewritten (never on a dry run).
    public let repaired: Bool
    public let fixes: [Fix]
    /// Where the replaced `_metadata` is kept (store-relative), when there is one.
    public let kept: String?
}

extension FlinkEngine {
    /// `repair NAME`: a snapshot whose relative handles Flink resolves against the wrong directory (FLINK-39964:
    /// a job restored in CLAIM mode from a snapshot with relative handles writes checkpoints that name the reused
    /// files relative to their own `chk-N`, while the bytes stay in the restored snapshot's directory) gets a
    /// `_metadata` naming each such file by the absolute path where it is, as Flink will open it.
    ///
    /// Where a file may be: the directories of the store's other snapshots, savepoints first, newest first; the
    /// first holding a file of the length the handle needs wins. Refused with the files named when any needed
    /// file is in none of them (those bytes are gone, and no rewrite brings them back).
    ///
    /// The replaced `_metadata` is kept beside it as `_metadata.before-repair` (the first one, if repaired twice),
    /// the new one is written durably (temporary name, fsync, rename, fsync of the directory), and the catalog's
    /// file set for the snapshot is re-read from it in one transaction with an event `repair`. A crash after the
    /// rename and before the catalog update is finished by running `repair` again.
    public func repair(_ name: String, dryRun: Bool) throws(StoreError) -> FlinkRepairReport {
        if !dryRun { try store.requireWritable("repair \(name)") }
        do {
            return try store.withPin(name, what: "repair") { snapshot throws -> FlinkRepairReport in
                guard snapshot.engine == FlinkStoreSettings.engineName, let directory = snapshot.directory else {
                    throw StoreError.badInput("\(name) is not a Flink snapshot with a directory; only those can be repaired")
                }
                let absolute = store.root.path + "/" + directory
                let (metadata, _, _) = try importer.readMetadata(directory)
                let plan: RepairPlan
                do {
                    plan = try RepairPlan.make(
                        metadata, metadataDirectory: absolute, pathMap: settings.metadataPathMap,
                        searchDirectories: try searchDirectories(excluding: snapshot),
                        fileSize: { path in
                            var st = stat()
                            return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG ? Int64(st.st_size) : nil
                        },
                        flinkLocation: flinkLocation)
                } catch {
                    throw StoreError.badInput("\(name) cannot be repaired: \(error)")
                }
                guard plan.missing.isEmpty else {
                    let files = plan.missing.map { "\($0.path) (\($0.kind.isExact ? "" : "at least ")\($0.size) bytes)" }
                    let refusal = "\(name) cannot be repaired: \(plan.missing.count) files it needs are gone (in no snapshot directory with the length it needs): "
                        + files.joined(separator: ", ")
                    if !dryRun { store.recordEvent("refusal", snapshot: name, "repair refused: \(refusal)") }
                    throw StoreError.notPermitted(refusal)
                }
                let keptRelative = directory + "/" + FlinkImporter.metadataBeforeRepair
                let keptExists = FileManager.default.fileExists(atPath: store.root.path + "/" + keptRelative)
                let fixes = plan.fixes.map { FlinkRepairReport.Fix(looksAt: $0.resolvedPath, foundAt: $0.foundAt, size: $0.size) }
                guard let bytes = plan.metadata else {
                    // Nothing to rewrite; a repair interrupted between the rename and the catalog update is finished here.
                    if !dryRun, keptExists,
                       try !store.entries(of: snapshot.id).contains(where: { $0.path == keptRelative }) {
                        try importer.rerecord(snapshot, event: "repair", "finished an interrupted repair: file set re-read from \(directory)/_metadata")
                    }
                    return FlinkRepairReport(name: name, directory: directory, dryRun: dryRun, repaired: false, fixes: [],
                                             kept: keptExists ? keptRelative : nil)
                }
                if dryRun {
                    return FlinkRepairReport(name: name, directory: directory, dryRun: true, repaired: false, fixes: fixes,
                                             kept: keptExists ? keptRelative : nil)
                }
                guard let original = FileManager.default.contents(atPath: absolute + "/_metadata") else {
                    throw StoreError.io(path: absolute + "/_metadata", errno: errno, what: "cannot read")
                }
                if !keptExists {
                    try Store.replaceFileDurably(directory: absolute, name: FlinkImporter.metadataBeforeRepair, original)
                }
                try Store.replaceFileDurably(directory: absolute, name: "_metadata", Data(bytes))
                let sources = Set(plan.fixes.map { PathBytes.parent($0.foundAt) ?? $0.foundAt }).sorted()
                try importer.rerecord(
                    snapshot, event: "repair",
                    "\(plan.fixes.count) relative handles Flink resolved in \(directory) now name their files by absolute path (in \(sources.joined(separator: ", "))); the original is kept as \(keptRelative)")
                return FlinkRepairReport(name: name, directory: directory, dryRun: false, repaired: true, fixes: fixes, kept: keptRelative)
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw .snapshotFailed("cannot repair \(name): \(error)")
        }
    }

    /// The directories of the store's other snapshots, absolute: savepoints (user snapshots) first (a CLAIM restore starts from
    /// one), newest first within each kind.
    private func searchDirectories(excluding snapshot: Snapshot) throws(StoreError) -> [String] {
        let others: [Snapshot] = try store.snapshots().filter { other in
            other.id != snapshot.id && other.engine == FlinkStoreSettings.engineName && other.directory != nil
        }
        func rank(_ s: Snapshot) -> (Int, Double) { (s.kind == .user ? 0 : 1, -s.createdAt) }
        let sorted = others.sorted { (a: Snapshot, b: Snapshot) -> Bool in rank(a) < rank(b) }
        return sorted.map { (s: Snapshot) -> String in store.root.path + "/" + (s.directory ?? "") }
    }

    /// How Flink names a local path of this store: the path map read backwards (the store as Flink sees it), or
    /// the path itself.
    func flinkLocation(_ localPath: String) -> HandleLocation {
        for rule in settings.pathMap.sorted(by: { $0.to.count > $1.to.count }) {
            let to = rule.to.hasPrefix("file:") ? String(rule.to.dropFirst(5)) : rule.to
            let base = to.hasSuffix("/") ? String(to.dropLast()) : to
            guard localPath == base || localPath.hasPrefix(base + "/") else { continue }
            let rest = localPath.dropFirst(base.count)
            let from = rule.from.hasSuffix("/") ? String(rule.from.dropLast()) : rule.from
            return .absolute((from.hasPrefix("/") ? "file:" + from : from) + rest)
        }
        return HandleLocation.localFile(localPath)
    }
}
