import FlinkMetadata
import Foundation
import Logging
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// A `_metadata` that could not be decoded: Flink could not restore from it either, and its files cannot be
/// protected because nobody can tell which they are.
public struct UnreadableSnapshot: Codable, Sendable, Hashable {
    /// The directory holding `_metadata`, relative to the store root.
    public var directory: String
    public var error: String
}

/// What one pass over the Flink store changed in the catalog.
public struct FlinkImportReport: Codable, Sendable {
    /// Snapshots recorded by this pass.
    public var added: [String] = []
    /// Snapshots whose directory Flink removed (subsumed checkpoints), dropped from the catalog.
    public var forgotten: [String] = []
    /// Snapshot directories whose `_metadata` does not decode; retried on every pass.
    public var unreadable: [UnreadableSnapshot] = []
    /// Snapshots already in the catalog and still present.
    public var unchanged: Int = 0
    /// For a store on an object store: what the pass cost (listing requests and bytes, HEADs, GETs) and whether it
    /// looked at everything (`full`) or only at what can have changed.
    public var remote: RemoteRefreshCost?
}

/// What one pass over a store on an object store cost.
public struct RemoteRefreshCost: Codable, Sendable {
    /// A full pass lists the whole store and can forget snapshots; an incremental one lists only what can be new.
    public var full: Bool
    public var cost: StoreFilesCost
}

/// Keeps the catalog equal to what the Flink store holds.
///
/// Flink writes and subsumes checkpoints on its own schedule, so the catalog can only ever be caught up, never be
/// the writer. Each pass records new snapshot directories with their exact file sets (from `_metadata`, resolved
/// as Flink resolves it) and forgets the ones whose directory is gone. Files are adopted where Flink wrote them:
/// a file referenced by several snapshots, of one job or of several (after NO_CLAIM or CLAIM restores), is one
/// object, so the store's checked delete removes it only with the last snapshot that needs it. Files already gone
/// are still recorded, with the size Flink recorded, so `verify` can say which snapshot they break.
///
/// Every delete and move runs a pass first (`FlinkHooks.refresh`), and so does every `snapfs` command; a daemon
/// serving the store runs one on a short timer so that new checkpoints appear and subsumed ones vanish.
public struct FlinkImporter: Sendable {
    public let store: Store
    public let settings: FlinkStoreSettings
    let logger: Logger
    /// What this importer read and how its passes went (shared by its copies).
    public let activity: FlinkImportActivity
    /// What the last full pass saw (shared by its copies): a daemon keeps one importer, so its passes with nothing
    /// new stop after a few `stat`s; a command's importer is fresh and walks.
    public let scanCache: FlinkScanCache

    /// Directory names that hold state files, never snapshot directories; not descended into.
    static let fileDirectories: Set<String> = ["shared", "taskowned"]
    /// How deep below the root snapshot directories are looked for (`checkpoints/<job>/chk-N` is 3).
    static let maximumDepth = 6
    /// A `_metadata` larger than this is refused rather than read into memory.
    static let maximumMetadataSize = 512 << 20

    public init(store: Store, settings: FlinkStoreSettings, logger: Logger = Logger(label: "snapfs.flink"),
                activity: FlinkImportActivity = FlinkImportActivity(), scanCache: FlinkScanCache = FlinkScanCache()) {
        self.store = store
        self.settings = settings
        self.logger = logger
        self.activity = activity
        self.scanCache = scanCache
    }

    // MARK: - Pass

    /// One pass: record new snapshots (oldest first, so catalog order is Flink's order), then forget vanished ones.
    /// New ones go first so that a file moving from a subsumed checkpoint to its successor is never unreferenced
    /// in between.
    ///
    /// On an object store (`store.files` not local) the pass lists only what can have changed unless `full` (or the
    /// last full pass is older than `FlinkScanCache.fullPassInterval`): see `remoteScan`.
    @discardableResult
    public func refresh(full: Bool = false) throws(StoreError) -> FlinkImportReport {
        var report = FlinkImportReport()
        // A snapshot directory being renamed is neither new under its new name nor gone under its old one.
        if store.hasPendingMove() { return report }
        if !store.files.isLocal { return try refreshRemote(full: full) }
        let generation = store.generation()
        if let unchanged = scanCache.unchanged(root: store.root.path, generation: generation) {
            activity.quickPass()
            report.unchanged = unchanged
            return report
        }
        activity.fullPass()
        var walkStarted = timespec()
        clock_gettime(CLOCK_REALTIME, &walkStarted)
        let (onDisk, listed) = walk()
        return try finishPass(onDisk: onDisk, complete: true, listedFiles: [:], report: &report) {
            scanCache.remember(generation: generation, directories: listed, walkStarted: walkStarted,
                               unchanged: $0.unchanged + $0.added.count, trusted: $0.unreadable.isEmpty)
        }
    }

    /// The part of a pass after the store was looked at: `onDisk` holds the snapshot directories found (all of
    /// them when `complete`, else only new ones, and then nothing is forgotten); `listedFiles` what a listing
    /// already said of files, so they need not be asked again.
    func finishPass(onDisk: [String], complete: Bool, listedFiles: [String: StoreFileStat], report: inout FlinkImportReport,
                    remember: (FlinkImportReport) -> Void) throws(StoreError) -> FlinkImportReport {
        let known = try store.snapshots(includingWriting: true).filter { $0.engine == FlinkStoreSettings.engineName }
        if try store.meta(Self.sizeRulesKey) == nil {
            try applySizeRules(to: known.filter { $0.state == .complete })
            try store.setMeta(Self.sizeRulesKey, "1")
        }
        let knownDirectories = Set(known.compactMap(\.directory))
        var candidates: [(directory: String, metadata: CheckpointMetadata, bytes: Int, mtime: Double)] = []
        for directory in onDisk where !knownDirectories.contains(directory) {
            do {
                let (metadata, size, mtime) = try readMetadata(directory)
                candidates.append((directory, metadata, size, mtime))
            } catch {
                report.unreadable.append(UnreadableSnapshot(directory: directory, error: error.description))
                logger.warning("cannot read snapshot", metadata: ["directory": .string(directory), "error": .string(error.description)])
            }
        }
        candidates.sort { ($0.mtime, $0.metadata.checkpointId, $0.directory) < ($1.mtime, $1.metadata.checkpointId, $1.directory) }
        let jobs = jobDirectories(complete ? onDisk : onDisk + Array(knownDirectories))
        // Across jobs the catalog follows time; within one it follows Flink's checkpoint ids, whatever the files'
        // times say (a copy made without keeping them can give every `_metadata` the same mtime, or reverse them).
        var slots: [String: [Int]] = [:]
        for (i, c) in candidates.enumerated() { slots[Self.job(of: c.directory, jobs: jobs) ?? "", default: []].append(i) }
        let byTime = candidates
        for (_, positions) in slots {
            let inOrder = positions.map { byTime[$0] }.sorted { ($0.metadata.checkpointId, $0.directory) < ($1.metadata.checkpointId, $1.directory) }
            for (p, c) in zip(positions, inOrder) { candidates[p] = c }
        }
        // A directory another process recorded meanwhile (a move of a snapshot's directory that finished since
        // `known` was read) is not a new snapshot.
        let recordedNow = candidates.isEmpty ? knownDirectories
            : Set(try store.snapshots(includingWriting: true).compactMap(\.directory))
        for c in candidates where !recordedNow.contains(c.directory) {
            do {
                let s = try record(directory: c.directory, metadata: c.metadata, metadataSize: c.bytes, mtime: c.mtime, name: nil, jobs: jobs,
                                   listed: listedFiles)
                report.added.append(s.name)
            } catch StoreError.alreadyExists {
                continue  // another process recorded it meanwhile
            }
        }
        let present = Set(onDisk)
        for s in known where s.state == .complete {
            guard let dir = s.directory else { continue }
            if present.contains(dir) || !complete { report.unchanged += 1; continue }
            // On an object store a listing that lacks the directory is not enough: its `_metadata` is asked for.
            if !store.files.isLocal, try store.files.stat(dir + "/_metadata") != nil { report.unchanged += 1; continue }
            // Moved with its directory since `known` was read, or being moved: not gone.
            if store.hasPendingMove() || (try? store.snapshot(named: s.name))?.directory != dir { continue }
            do {
                try store.forget(s.name, reason: "its directory \(dir) no longer holds _metadata (removed by Flink or by hand)")
                report.forgotten.append(s.name)
            } catch StoreError.noSuchSnapshot {
                continue  // another process (a daemon's pass, another command) forgot it meanwhile
            }
        }
        try updateManagedRoots(onDisk)
        remember(report)
        if !report.added.isEmpty || !report.forgotten.isEmpty {
            logger.info("flink store refreshed", metadata: ["added": .stringConvertible(report.added.count),
                                                            "forgotten": .stringConvertible(report.forgotten.count)])
        }
        return report
    }

    /// Records one snapshot directory now, under `name` if given (a triggered snapshot with a user's label).
    /// If another process (a daemon's periodic pass) recorded the directory first under its default name, the
    /// snapshot is renamed to the label the user asked for.
    @discardableResult
    public func recordDirectory(_ directory: String, name: String?) throws(StoreError) -> Snapshot {
        if let existing = try recorded(directory, name: name) { return existing }
        let (metadata, size, mtime) = try readMetadata(directory)
        do {
            return try record(directory: directory, metadata: metadata, metadataSize: size, mtime: mtime, name: name, jobs: jobDirectories(scan()))
        } catch .alreadyExists {
            // Another importer (the daemon's watcher, woken by the new directory) is recording it: the same
            // snapshot, so this is not a failure once that one has committed it.
            let deadline = Date().addingTimeInterval(Self.concurrentRecordWait)
            repeat {
                if let existing = try recorded(directory, name: name) { return existing }
                Thread.sleep(forTimeInterval: 0.05)
            } while Date() < deadline
            throw .alreadyExists(name ?? directory)
        }
    }

    /// How long `recordDirectory` waits for another importer that is recording the same directory.
    static let concurrentRecordWait: TimeInterval = 30

    /// The snapshot already recorded for `directory`, renamed to `name` if one is asked for.
    private func recorded(_ directory: String, name: String?) throws(StoreError) -> Snapshot? {
        guard let existing = try store.snapshots(includingWriting: false).first(where: { $0.directory == directory }) else { return nil }
        guard let name, existing.name != name else { return existing }
        try store.rename(existing.name, to: name)
        return try store.snapshot(named: name)
    }

    // MARK: - Scanning

    /// Store-relative directories that hold a `_metadata` file, sorted.
    public func scan() -> [String] {
        store.files.isLocal ? walk().snapshots : ((try? Self.snapshotDirectories(in: store.files.list("", recursive: true))) ?? [])
    }

    /// The snapshot directories, and every other directory listed on the way with its stamp taken before listing
    /// it: the ones whose change can mean a snapshot came or went (see `FlinkScanCache`).
    func walk() -> (snapshots: [String], listed: [String: FlinkScanCache.Stamp]) {
        var out: [String] = []
        var listed: [String: FlinkScanCache.Stamp] = [:]
        func visit(_ relative: String, depth: Int) {
            let absolute = relative.isEmpty ? store.root.path : store.root.path + "/" + relative
            let stamp = FlinkScanCache.Stamp.of(absolute)
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: absolute) else { return }
            if !relative.isEmpty, names.contains("_metadata"), isRegularFile(absolute + "/_metadata") {
                out.append(relative)
                return
            }
            if let stamp { listed[relative] = stamp }
            guard depth < Self.maximumDepth else { return }
            for name in names.sorted() where !name.hasPrefix(".") && !Self.fileDirectories.contains(name) {
                if relative.isEmpty && name == Store.runDirectory { continue }
                let child = relative.isEmpty ? name : relative + "/" + name
                var st = stat()
                guard lstat(store.root.path + "/" + child, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { continue }
                visit(child, depth: depth + 1)
            }
        }
        visit("", depth: 0)
        return (out.sorted(), listed)
    }

    private func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// Job ids that own checkpoint directories (`…/<job>/chk-N`), for naming and for attributing savepoints.
    private func jobDirectories(_ directories: [String]) -> Set<String> {
        Set(directories.compactMap { dir -> String? in
            let parts = PathBytes.components(dir)
            guard parts.count >= 2, Self.checkpointNumber(parts[parts.count - 1]) != nil else { return nil }
            return parts[parts.count - 2]
        })
    }

    static func checkpointNumber(_ name: String) -> Int64? {
        guard name.hasPrefix("chk-") else { return nil }
        return Int64(name.dropFirst(4))
    }

    func readMetadata(_ directory: String) throws(StoreError) -> (CheckpointMetadata, Int, Double) {
        activity.readMetadata()
        let relative = directory + "/_metadata"
        let path = store.files.absolute(relative)
        guard let st = try store.files.stat(relative) else { throw .io(path: path, errno: ENOENT, what: "cannot read") }
        guard st.size <= Int64(Self.maximumMetadataSize) else {
            throw .corrupt("\(path) is \(st.size) bytes, more than the \(Self.maximumMetadataSize) a _metadata may have")
        }
        let data = try store.files.read(relative, limit: Self.maximumMetadataSize)
        do {
            let metadata = try MetadataReader.read(data)
            return (metadata, data.count, st.mtime)
        } catch {
            throw .corrupt("\(directory)/_metadata: \(error)")
        }
    }

    // MARK: - Recording

    /// What a snapshot is, from its own `_metadata`: the properties trailer says savepoint or checkpoint, which
    /// savepoint format, and whether the checkpoint shares files (incremental). Version 3 files have no trailer;
    /// then the directory name and the handle types decide.
    ///
    /// A checkpoint is incremental when it names files that Flink shares between checkpoints, whatever the backend:
    /// RocksDB's shared SST files, the changelog backend's materialized state and changelog files (both written
    /// before this checkpoint and named again by each one after it, HashMap or RocksDB underneath), and
    /// file-merging segments in shared scope. Such a checkpoint depends on files earlier ones wrote.
    static func classify(_ metadata: CheckpointMetadata, directoryName: String) -> (SnapshotKind, SnapshotFormat) {
        var sharesFiles = false
        var savepointEncoded = false
        func hasFile(_ handle: StateHandle) -> Bool {
            handle.isFileBacked || handle.children.contains(where: hasFile)
        }
        metadata.visitHandles { handle in
            switch handle {
            case .incrementalRemote(let h) where !h.sharedState.isEmpty: sharesFiles = true
            case .changelog(let h) where (h.materialized + h.nonMaterialized).contains(where: hasFile): sharesFiles = true
            case .fileSegment(let h) where h.scope == .shared: sharesFiles = true
            case .keyGroups(let h) where h.encoding == .savepoint: savepointEncoded = true
            default: break
            }
        }
        // Flink owns, subsumes and names only its `chk-N` directories: a checkpoint's `_metadata` anywhere else (a
        // self-contained copy made by `convert --to self-contained`) is the user's, and a full one: Flink will
        // reuse none of its files for its own checkpoints' sake, and it depends on no other snapshot's.
        let owner: SnapshotKind = checkpointNumber(directoryName) != nil ? .checkpoint : .user
        if owner == .user, case .checkpoint? = metadata.properties?.decoded?.snapshotType { return (.user, .nativeFull) }
        switch metadata.properties?.decoded?.snapshotType {
        case .savepoint(_, .canonical, _)?: return (.user, .canonical)
        case .savepoint?: return (.user, .nativeFull)
        case .checkpoint(_, .forward)?: return (owner, .nativeFull)
        case .checkpoint?: return (owner, sharesFiles ? .nativeIncremental : .nativeFull)
        case .unknown?, nil:
            if checkpointNumber(directoryName) != nil { return (.checkpoint, sharesFiles ? .nativeIncremental : .nativeFull) }
            return (.user, savepointEncoded ? .canonical : .nativeFull)
        }
    }

    /// The name a Flink user recognises: `<job-prefix>-chk-N` (the six-character prefix Flink itself uses in
    /// savepoint names, the full id if two jobs share it) or the savepoint directory's own name.
    static func defaultName(directory: String, jobs: Set<String>) -> String {
        let parts = PathBytes.components(directory)
        let last = parts.last ?? directory
        if checkpointNumber(last) != nil, parts.count >= 2 {
            let job = parts[parts.count - 2]
            let prefix = String(job.prefix(6))
            let clash = jobs.contains { $0 != job && $0.hasPrefix(prefix) }
            return sanitize("\(clash ? job : prefix)-\(last)")
        }
        return sanitize(last)
    }

    /// Makes a directory name a valid label (SnapshotName): Flink's own names always are, hand-made ones may not be.
    static func sanitize(_ name: String) -> String {
        var out = String(name.unicodeScalars.map { s -> Character in
            switch s {
            case "A"..."Z", "a"..."z", "0"..."9", ".", "_", "-": return Character(s)
            default: return "_"
            }
        })
        while out.hasPrefix(".") { out.removeFirst() }
        if out.isEmpty || SnapshotName.isAutomatic(out) || SnapshotName.reserved.contains(out) { out = "flink-" + out }
        return String(out.prefix(SnapshotName.maxLength))
    }

    /// The job a snapshot belongs to: a checkpoint's parent directory, or for a savepoint the one job whose id
    /// starts with the six characters Flink put in its name.
    static func job(of directory: String, jobs: Set<String>) -> String? {
        let parts = PathBytes.components(directory)
        guard let last = parts.last else { return nil }
        if checkpointNumber(last) != nil, parts.count >= 2 { return parts[parts.count - 2] }
        let pieces = last.split(separator: "-")
        guard pieces.count >= 3, pieces[0] == "savepoint" else { return nil }
        let matches = jobs.filter { $0.hasPrefix(pieces[1]) }
        return matches.count == 1 ? matches.first : nil
    }

    /// A file a snapshot needs, with the length Flink recorded and the rule Flink applies to it.
    struct NeededFile {
        var path: String
        var size: Int64
        var rule: SizeRule
    }

    /// The files a snapshot needs, as store-relative paths with the size Flink recorded and its rule, plus the ones
    /// that lie outside the store (kept as absolute paths so verify can still check them).
    func neededFiles(_ metadata: CheckpointMetadata, directory: String) -> (inside: [NeededFile], outside: [NeededFile]) {
        let absoluteDirectory = store.files.absolute(directory)
        var inside: [String: NeededFile] = [:]
        var outside: [String: NeededFile] = [:]
        for ref in metadata.referencedFiles(metadataDirectory: absoluteDirectory, pathMap: settings.metadataPathMap) {
            let file = NeededFile(path: ref.path, size: ref.size, rule: ref.kind.isExact ? .exact : .atLeast)
            if let rel = store.files.relative(ofAbsolute: ref.path), Self.isAdoptable(rel) {
                inside[rel] = Self.merged(inside[rel], NeededFile(path: rel, size: file.size, rule: file.rule))
            } else {
                outside[ref.path] = Self.merged(outside[ref.path], file)
            }
        }
        return (inside.sorted { $0.key < $1.key }.map(\.value), outside.sorted { $0.key < $1.key }.map(\.value))
    }

    /// One path named twice. A whole-file handle fixes the length, so it wins over a segment or changelog reach;
    /// two of one rule at two sizes cannot both be right, and the larger is what a reader would need to find.
    static func merged(_ old: NeededFile?, _ new: NeededFile) -> NeededFile {
        guard let old else { return new }
        if old.rule != new.rule { return old.rule == .exact ? old : new }
        return old.size >= new.size ? old : new
    }

    /// Whether a store-relative path may become an object, i.e. be removed by a checked delete one day. The
    /// catalog and the store's run directory never may: a damaged or hostile `_metadata` naming them must not be
    /// able to make a delete remove the store's own files. Such references are kept as outside files instead.
    static func isAdoptable(_ relative: String) -> Bool {
        guard Store.isSafeRelativePath(relative) else { return false }
        let first = PathBytes.first(relative)
        return first != Store.runDirectory && !first.hasPrefix("catalog.sqlite")
    }

    /// `mtime` is when Flink finished writing `_metadata`, i.e. when the snapshot completed.
    private func record(directory: String, metadata: CheckpointMetadata, metadataSize: Int, mtime: Double, name: String?,
                        jobs: Set<String>, listed: [String: StoreFileStat] = [:]) throws(StoreError) -> Snapshot {
        let last = PathBytes.components(directory).last ?? directory
        let (kind, format) = Self.classify(metadata, directoryName: last)
        let (inside, found, outside) = try fileSet(directory: directory, metadata: metadata, metadataSize: metadataSize, listed: listed)

        var chosen = name ?? Self.defaultName(directory: directory, jobs: jobs)
        if name == nil, (try? store.snapshot(named: chosen)) != nil {
            chosen = Self.sanitize(chosen + "-" + String(UInt32.random(in: 0...UInt32.max), radix: 16))
        }
        let pending = try store.beginSnapshot(label: chosen, kind: kind, format: format,
                                              job: Self.job(of: directory, jobs: jobs), engine: FlinkStoreSettings.engineName,
                                              externalID: String(metadata.checkpointId))
        do {
            let ids = try pending.adoptObjects(zip(inside, found).map { ($0.path, $1.map { Int64($0.st_size) } ?? $0.size) })
            let entries = Self.entries(inside: inside, found: found, objects: ids, outside: outside)
            if store.files.isLocal { try store.flushAdopted(inside.map(\.path)) }
            return try pending.commit(entries: entries, checksums: [:], takenAt: mtime, adoptedDirectory: directory)
        } catch {
            pending.abort("import of \(directory) failed: \(error)")
            throw error
        }
    }

    /// Where a repair keeps the `_metadata` it replaced. Not `_metadata`, so the scan never takes it for a snapshot;
    /// recorded as a file of the snapshot whose directory holds it, so `gc` never takes it for an orphan.
    public static let metadataBeforeRepair = "_metadata.before-repair"

    /// The files a snapshot directory's `_metadata` needs inside the store (with what each holds now, `nil` when
    /// it is not there) and outside it; `_metadata` itself and a kept `_metadata.before-repair` included.
    func fileSet(directory: String, metadata: CheckpointMetadata, metadataSize: Int, listed: [String: StoreFileStat] = [:]) throws(StoreError)
        -> (inside: [NeededFile], found: [stat?], outside: [NeededFile]) {
        var (inside, outside) = neededFiles(metadata, directory: directory)
        let metadataPath = directory + "/_metadata"
        let keptPath = directory + "/" + Self.metadataBeforeRepair
        inside.removeAll { $0.path == metadataPath || $0.path == keptPath }
        inside.append(NeededFile(path: metadataPath, size: Int64(metadataSize), rule: .exact))
        if !store.files.isLocal {
            // One listing for the lot, HEAD for what it lacks; a listing the pass already took is used first.
            // The optional `_metadata.before-repair` is asked for only when no listing of the whole store was taken.
            // Files the catalog already holds (an incremental checkpoint's shared files) are not asked again.
            let known = listed.isEmpty ? try store.knownFiles(inside.map(\.path)) : [:]
            let unlisted = (inside.map(\.path) + (listed.isEmpty ? [keptPath] : [])).filter { listed[$0] == nil && known[$0] == nil }
            var asked: [String: StoreFileStat] = known
            for (p, st) in zip(unlisted, try store.files.stat(unlisted)) { if let st { asked[p] = st } }
            if let kept = listed[keptPath] ?? asked[keptPath], kept.isRegularFile {
                inside.append(NeededFile(path: keptPath, size: kept.size, rule: .exact))
            }
            return (inside, inside.map { (listed[$0.path] ?? asked[$0.path])?.asStat }, outside)
        }
        var kept = stat()
        if lstat(store.root.path + "/" + keptPath, &kept) == 0, (kept.st_mode & S_IFMT) == S_IFREG {
            inside.append(NeededFile(path: keptPath, size: Int64(kept.st_size), rule: .exact))
        }
        // What each file holds now: the mount serves a file's own length and bytes, never the length Flink
        // recorded, which for changelog and file-merging files is shorter than the file.
        let found = inside.map { file -> stat? in
            var st = stat()
            return stat(store.root.path + "/" + file.path, &st) == 0 ? st : nil
        }
        return (inside, found, outside)
    }

    /// The catalog entries for a file set: files (with `objects`, or adopted by path when `nil`), the directories
    /// leading to them, and hidden entries naming the files outside the store.
    static func entries(inside: [NeededFile], found: [stat?], objects: [ObjectID]?, outside: [NeededFile]) -> [NewEntry] {
        var entries: [NewEntry] = []
        var directories = Set<String>()
        for (index, (file, st)) in zip(inside, found).enumerated() {
            let mode = st.map { UInt32($0.st_mode) } ?? UInt32(S_IFREG) | 0o644
            let mtime = st.map { Int64($0.st_mtim.tv_sec) * 1_000_000_000 + Int64($0.st_mtim.tv_nsec) } ?? 0
            entries.append(NewEntry(path: file.path, type: .file, size: st.map { Int64($0.st_size) } ?? file.size, mode: mode,
                                    mtimeNanos: mtime, object: objects?[index], sizeRule: file.rule, requiredSize: file.size))
            var p = file.path
            while let parent = PathBytes.parent(p) {
                directories.insert(parent)
                p = parent
            }
        }
        for d in directories.sorted() {
            entries.append(NewEntry(path: d, type: .directory, size: 0, mode: UInt32(S_IFDIR) | 0o755, mtimeNanos: 0))
        }
        // Files outside the store are not the store's to manage; they are kept as hidden entries naming
        // where they are, so verify still checks them and nothing pretends they are copied in.
        for (index, file) in outside.enumerated() {
            entries.append(NewEntry(path: ".external/\(index)", type: .symlink, size: file.size, mode: UInt32(S_IFLNK) | 0o777,
                                    mtimeNanos: 0, symlinkTarget: file.path, hidden: true, sizeRule: file.rule))
        }
        return entries
    }

    /// Records a snapshot's file set anew from its directory's `_metadata`, as it is now (after a repair rewrote
    /// it): its entries, size rules and objects are replaced in one transaction, with an event `event`.
    public func rerecord(_ snapshot: Snapshot, event: String, _ detail: String) throws(StoreError) {
        guard let directory = snapshot.directory else { throw .badInput("\(snapshot.name) has no directory to read") }
        let (metadata, size, _) = try readMetadata(directory)
        let (inside, found, outside) = try fileSet(directory: directory, metadata: metadata, metadataSize: size)
        try store.flushAdopted(inside.map(\.path))
        try store.replaceEntries(of: snapshot.name, with: Self.entries(inside: inside, found: found, objects: nil, outside: outside),
                                 event: event, detail)
    }

    /// Set once the snapshots in the catalog carry Flink's size rules and their files' own lengths.
    static let sizeRulesKey = "flink_size_rules"

    /// Gives snapshots recorded before entries had size rules their rules and their files' own lengths. They were
    /// recorded with the lengths Flink's handles give, which for changelog files is a byte short of the file: the
    /// mount served them cut short. A snapshot whose `_metadata` no longer reads keeps what it had.
    private func applySizeRules(to snapshots: [Snapshot]) throws(StoreError) {
        for s in snapshots {
            guard let directory = s.directory, let (metadata, _, _) = try? readMetadata(directory) else { continue }
            let (inside, outside) = neededFiles(metadata, directory: directory)
            var lengths: [EntryLength] = inside.map { file in
                var st = stat()
                let size = stat(store.root.path + "/" + file.path, &st) == 0 ? Int64(st.st_size) : file.size
                return EntryLength(path: file.path, size: size, sizeRule: file.rule, requiredSize: file.size)
            }
            let external = Dictionary(try store.entries(of: s.id, includeHidden: true).compactMap { e in
                e.type == .symlink && e.hidden ? e.symlinkTarget.map { ($0, e.path) } : nil
            }, uniquingKeysWith: { a, _ in a })
            for file in outside {
                guard let path = external[file.path] else { continue }
                lengths.append(EntryLength(path: path, size: file.size, sizeRule: file.rule, requiredSize: file.size))
            }
            try store.updateEntryLengths(of: s.id, lengths)
        }
        if !snapshots.isEmpty { logger.info("size rules applied", metadata: ["snapshots": .stringConvertible(snapshots.count)]) }
    }

    /// The top-level directories holding snapshots are the ones whose every file must belong to a snapshot, so
    /// `verify` and `gc` can find files no snapshot needs (orphans Flink left in `shared/`).
    private func updateManagedRoots(_ directories: [String]) throws(StoreError) {
        var roots = Set(directories.compactMap { PathBytes.components($0).first })
        if let old = try store.meta("managed_roots"), let data = old.data(using: .utf8),
           let previous = try? JSONDecoder().decode([String].self, from: data) {
            roots.formUnion(previous)
        }
        roots.remove(Store.runDirectory)
        let sorted = roots.sorted()
        guard let data = try? JSONEncoder().encode(sorted), let text = String(data: data, encoding: .utf8) else { return }
        if try store.meta("managed_roots") != text { try store.setMeta("managed_roots", text) }
    }
}
