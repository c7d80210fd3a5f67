import FlinkMetadata
import FlinkMetadataWriter
import Foundation
import SnapStore

extension FlinkEngine {
    /// `convert NAME --to self-contained`: copies every file a Flink snapshot needs into one new savepoint
    /// directory under the store's savepoint directory, and writes its `_metadata` with every handle relative
    /// to that directory (Flink's relocatable savepoint layout). A file-merging snapshot's segments are copied as
    /// files of their own, each holding just its segment's bytes, not the physical files they are part of. The result is a user-induced snapshot that
    /// shares no file with any other, so deleting every other snapshot of the job leaves it restorable.
    ///
    /// The copy is written under a hidden name (which the importer does not scan) and renamed into place only
    /// once complete; a crash leaves at most a hidden directory, never a half snapshot.
    ///
    /// Flink 2.3.0 and older: a job restored from such a copy in CLAIM mode writes checkpoints whose reused files
    /// keep relative handles that Flink then resolves against each new `chk-N` (FLINK-39964), so those
    /// checkpoints are not restorable until repaired. NO_CLAIM restores are not affected.
    public func convertToSelfContained(_ name: String, label: String?) throws(StoreError) -> Snapshot {
        do {
            return try store.withPin(name, what: "convert to self-contained") { source throws -> Snapshot in
                guard source.engine == FlinkStoreSettings.engineName, let directory = source.directory else {
                    throw StoreError.badInput("\(name) is not a Flink snapshot with a directory; only those can be made self-contained")
                }
                if let label, (try? store.snapshot(named: label)) != nil { throw StoreError.alreadyExists(label) }
                let (metadata, _, _) = try importer.readMetadata(directory)
                let plan: SelfContainedPlan
                do {
                    plan = try SelfContainedPlan.make(
                        metadata, metadataDirectory: store.root.path + "/" + directory, pathMap: settings.metadataPathMap)
                } catch {
                    throw StoreError.badInput("\(name) cannot be made self-contained: \(error)")
                }
                let fm = FileManager.default
                for copy in plan.copies {
                    guard copy.source.hasPrefix("/"), let size = (try? fm.attributesOfItem(atPath: copy.source))?[.size] as? Int64 else {
                        throw StoreError.badInput("\(name) is not restorable: \(copy.source) is missing")
                    }
                    guard copy.accepts(sourceLength: size) else {
                        throw StoreError.badInput("\(name) is not restorable: \(copy.source) is \(size) bytes, the snapshot needs \(copy.offset == nil && copy.kind.isExact ? "" : "at least ")\(copy.requiredSourceLength)")
                    }
                }
                let job = String((source.job ?? "000000").prefix(6))
                let random = (0..<6).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
                let finalName = "savepoint-\(job)-\(random)"
                let parent = store.root.path + "/" + settings.savepointDirectory
                let hidden = parent + "/." + finalName + ".partial"
                var written = Set<String>()
                do {
                    try fm.createDirectory(atPath: hidden, withIntermediateDirectories: true)
                    for copy in plan.copies where written.insert(copy.relativePath).inserted {
                        try copy.write(to: hidden + "/" + copy.relativePath)
                    }
                    guard fm.createFile(atPath: hidden + "/_metadata", contents: Data(plan.metadata)) else {
                        throw StoreError.io(path: hidden + "/_metadata", errno: EIO, what: "cannot write")
                    }
                    // The importer fsyncs every file and directory it records before the catalog commit.
                    guard rename(hidden, parent + "/" + finalName) == 0 else {
                        throw StoreError.io(path: hidden, errno: errno, what: "cannot rename into place")
                    }
                } catch {
                    try? fm.removeItem(atPath: hidden)
                    if let error = error as? StoreError { throw error }
                    throw StoreError.snapshotFailed("copying \(name) into \(hidden): \(error)")
                }
                let relative = settings.savepointDirectory + "/" + finalName
                let snapshot = try importer.recordDirectory(relative, name: label)
                store.recordEvent(
                    "convert", snapshot: snapshot.name,
                    "self-contained copy of \(name): \(written.count) files in \(relative), every handle relative to it")
                return snapshot
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw .snapshotFailed("cannot convert \(name): \(error)")
        }
    }
}
