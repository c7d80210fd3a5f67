import Foundation
import GRDB
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What an engine lets the store ask it: whether the job runs and which snapshot it would restart from, and whether
/// a move is possible. The store applies the rules; the engine supplies the facts.
public protocol EngineHooks: Sendable {
    func jobStatus(of store: Store) -> JobStatus
    /// Throws to refuse a move the engine cannot perform (e.g. a snapshot that is not relocatable).
    func checkMove(_ snapshot: Snapshot, to newName: String, in store: Store) throws(StoreError)
    /// Brings the catalog up to date with snapshots someone else writes (an external engine), before a delete or move
    /// relies on it: a file is only as safe as the catalog's knowledge of who references it.
    func refresh(_ store: Store) throws(StoreError)
    /// When the engine itself says a snapshot was taken and completed, where it knows better than the store's record
    /// (a cluster's checkpoint history); nil keeps the recorded times. Answered without waiting on anything remote.
    func reportedTimes(job: String?, externalID: String?) -> SnapshotTimes?
    /// A number that moves whenever `jobStatus` may answer differently for an unchanged catalog (a cluster's new
    /// answer: a job cancelled, a JobManager that stopped answering). The mount rereads its listing when either this
    /// or the catalog's generation moves, so its `latest` links follow the engine and not only the catalog.
    /// Answered without waiting on anything remote.
    func statusGeneration() -> Int64
    /// Where a move (already allowed by `checkMove`) takes the snapshot's directory on disk, store-relative; nil
    /// when a move renames the snapshot in the catalog only.
    func relocation(_ snapshot: Snapshot, to newName: String, in store: Store) throws(StoreError) -> String?
}

extension EngineHooks {
    /// Engines whose snapshots only the store writes have nothing to catch up on.
    public func refresh(_ store: Store) throws(StoreError) {}
    public func reportedTimes(job: String?, externalID: String?) -> SnapshotTimes? { nil }
    /// Engines whose job status follows from the catalog alone never move it.
    public func statusGeneration() -> Int64 { 0 }
    public func relocation(_ snapshot: Snapshot, to newName: String, in store: Store) throws(StoreError) -> String? { nil }
}

/// A snapshot's times as its engine reports them, in seconds since 1970.
public struct SnapshotTimes: Sendable, Hashable {
    public var created: Double
    public var completed: Double?
    public init(created: Double, completed: Double?) { self.created = created; self.completed = completed }
}

/// How an engine's stores are governed: given when a store is opened or created, and bound to that handle for its
/// life. A store records its engine in the catalog; `Store.open` refuses a store whose engine's rules it was not
/// given, so no caller can open, say, a Flink store and have it silently follow the default rules (no catch-up with
/// Flink, the recovery point taken from catalog order).
public protocol EngineRules: Sendable {
    /// The engine name the catalog records (`meta.engine`).
    var engine: String { get }
    /// The hooks for one opened store; may read the store's settings from its catalog.
    func hooks(for store: Store) throws(StoreError) -> any EngineHooks
}

/// The rules of the embedded engine, which need nothing beyond the store: `DefaultHooks`.
public struct LocalRules: EngineRules {
    public init() {}
    public var engine: String { "local" }
    public func hooks(for store: Store) throws(StoreError) -> any EngineHooks { DefaultHooks() }
}

/// The rule when no engine says otherwise: a job whose store has `job_state = running` restarts from its newest
/// complete snapshot of either kind.
public struct DefaultHooks: EngineHooks {
    public init() {}
    public func jobStatus(of store: Store) -> JobStatus {
        let running = (try? store.meta("job_state")) == "running"
        return JobStatus(running: running, recoveryPoint: (try? store.newestComplete())?.name)
    }
    public func checkMove(_ snapshot: Snapshot, to newName: String, in store: Store) throws(StoreError) {}
}

/// A snapshot store: a directory holding the catalog, the stored objects and the journal of decided work.
/// Safe to open from several processes at once (a daemon and the command line); every multi-step change is
/// recorded in the catalog before it touches a file, and `open` finishes or rolls back what a crash interrupted.
public final class Store: Sendable {
    public static let runDirectory = "run"
    public static let objectsDirectory = "objects"
    public static let canonicalDirectory = "canonical"

    public let root: URL
    let db: DatabasePool
    let owner: OwnerLock
    public let logger: Logger
    private let hooksBox: Mutex<any EngineHooks>
    private let filesBox: Mutex<any StoreFiles>
    /// Opened without write access (a read-only mount, a directory this user may not write): listing, showing,
    /// verifying, exporting and mounting work; nothing that records anything does (see `requireWritable`).
    public let isReadOnly: Bool

    /// The engine's rules, bound when the store was opened (see `EngineRules`).
    public var hooks: any EngineHooks {
        get { hooksBox.withLock { $0 } }
    }
    /// Only `open` binds the hooks; tests of the store's own rules replace them through `@testable`.
    func setHooks(_ h: any EngineHooks) { hooksBox.withLock { $0 = h } }

    /// Where the store's files are (see `StoreFiles`): its root on this file system, unless its catalog records an
    /// object store (`files_scheme`), bound when the store is opened.
    public var files: any StoreFiles { filesBox.withLock { $0 } }
    func setFiles(_ f: any StoreFiles) { filesBox.withLock { $0 = f } }

    /// The catalog key naming the backend of a store whose files are not under its root (`s3`).
    public static let filesSchemeKey = "files_scheme"

    var runDir: URL { root.appendingPathComponent(Store.runDirectory) }

    private init(root: URL, db: DatabasePool, logger: Logger, readOnly: Bool) throws {
        self.root = root
        self.db = db
        self.logger = logger
        self.isReadOnly = readOnly
        // A reader records nothing that a token would have to vouch for, so a read-only store needs no lock file.
        self.owner = readOnly ? OwnerLock.unheld() : try OwnerLock(directory: root.appendingPathComponent(Store.runDirectory))
        self.hooksBox = Mutex(DefaultHooks())
        self.filesBox = Mutex(LocalStoreFiles(root: root.path))
    }

    /// Throws unless the store can be written: what needs writing on a read-only store is refused up front, with
    /// what was asked for, rather than failing half way.
    public func requireWritable(_ what: String) throws(StoreError) {
        if isReadOnly {
            throw .readOnly("cannot \(what): the store at \(root.path) is read-only (it can be listed, shown, verified, exported and mounted, not changed)")
        }
    }

    /// Creates an empty store. Refuses a directory that holds anything but an empty store; `adopting` lets an engine
    /// whose files are already there (Flink) put its catalog beside them.
    public static func create(at root: URL, engine: String, settings: [String: String] = [:], adopting: Bool = false,
                              rules: [any EngineRules] = [], backends: [any StoreFilesBackend] = []) throws(StoreError) -> Store {
        let binding = try rulesFor(engine: engine, in: rules, at: root)
        let fm = FileManager.default
        var isDir: ObjCBool = false
        let existed = fm.fileExists(atPath: root.path, isDirectory: &isDir)
        if existed {
            guard isDir.boolValue else { throw .badInput("\(root.path) exists and is not a directory") }
            if fm.fileExists(atPath: root.appendingPathComponent(Catalog.fileName).path) {
                throw .alreadyExists("store at \(root.path)")
            }
            if !adopting, let names = try? fm.contentsOfDirectory(atPath: root.path), !names.isEmpty {
                let shown = names.sorted().prefix(5).joined(separator: ", ") + (names.count > 5 ? ", …" : "")
                throw .badInput("\(root.path) is not empty (\(shown)) and is not a SnapFS store: a store needs a new or empty directory, since it owns everything under it")
            }
        }
        do {
            // Owner-only, whatever the umask: the store holds copies of state that may be private.
            try fm.createDirectory(at: root, withIntermediateDirectories: true, attributes: adopting ? nil : [.posixPermissions: 0o700])
        } catch {
            throw .io(path: root.path, errno: (error as NSError).code == 0 ? EIO : Int32((error as NSError).code), what: "cannot create store")
        }
        if !adopting && chmod(root.path, 0o700) != 0 { throw .io(path: root.path, errno: errno, what: "cannot restrict store") }
        let store = try open(at: root, creating: true, rules: [])
        do {
            try store.db.write { db in
                try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES ('engine', ?)", arguments: [engine])
                for (k, v) in settings {
                    try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", arguments: [k, v])
                }
            }
        } catch { throw StoreError.wrap(error, "cannot write store settings") }
        // SQLite flushes the catalog's bytes but not the names of the files it created, nor the store's own name.
        try Durability.syncDirectories([root.path, Durability.parent(root.standardizedFileURL.path)])
        try store.bindFiles(backends)
        store.setHooks(try binding.hooks(for: store))
        return store
    }

    /// The rules for `engine` among those given; the local engine's are built in.
    static func rulesFor(engine: String, in rules: [any EngineRules], at root: URL) throws(StoreError) -> any EngineRules {
        if let r = rules.first(where: { $0.engine == engine }) { return r }
        if engine == LocalRules().engine { return LocalRules() }
        throw .badInput("the store at \(root.path) uses engine '\(engine)', whose rules were not given to open it: open it through its engine (the snapfs command, or the engine's `rules` passed to Store.open), so its recovery points and moves follow that engine")
    }

    /// Opens an existing store and finishes or rolls back whatever an interrupted process left undone. A store this
    /// process cannot write is opened read-only, and nothing is finished or rolled back.
    ///
    /// The store's engine (from its catalog) and that engine's rules are bound to the handle for its life: `rules`
    /// must hold the rules of the store's engine unless it is the built-in local one, or the open is refused.
    public static func open(at root: URL, rules: [any EngineRules] = [], backends: [any StoreFilesBackend] = [],
                            logger: Logger = Logger(label: "snapfs.store")) throws(StoreError) -> Store {
        try open(at: root, creating: false, rules: rules, backends: backends, logger: logger)
    }

    /// Binds the files of a store whose catalog names a backend; a store without one keeps its root.
    func bindFiles(_ backends: [any StoreFilesBackend]) throws(StoreError) {
        guard let scheme = try meta(Self.filesSchemeKey) else { return }
        guard let backend = backends.first(where: { $0.scheme == scheme }) else {
            throw .badInput("the store at \(root.path) keeps its files on \(scheme), which this program was not given a way to reach: open it with the snapfs command")
        }
        setFiles(try backend.files(for: self))
    }

    /// The names a store keeps its own files under; a directory holding any of them without a catalog is a
    /// damaged store, not a new one.
    static let storeLayout = [objectsDirectory, canonicalDirectory, runDirectory]

    /// Throws unless `root` holds a catalog: `.corrupt` when it is missing beside a store's files (every object
    /// would look unreferenced), `.badInput` when the directory is simply not a store.
    public static func checkCatalogPresent(at root: URL) throws(StoreError) {
        let catalogURL = root.appendingPathComponent(Catalog.fileName)
        var st = stat()
        if stat(catalogURL.path, &st) == 0 { return }
        // A store this user may not enter is not "not a store".
        if errno == EACCES { throw .io(path: catalogURL.path, errno: EACCES, what: "cannot open catalog") }
        let fm = FileManager.default
        let leftovers = storeLayout.filter { fm.fileExists(atPath: root.appendingPathComponent($0).path) }
            + (fm.fileExists(atPath: catalogURL.path + "-wal") ? [Catalog.fileName + "-wal"] : [])
        if !leftovers.isEmpty {
            throw .corrupt("\(catalogURL.path) is missing, but \(root.path) holds a store's files (\(leftovers.joined(separator: ", "))): without the catalog no one knows which files snapshots need; nothing was changed")
        }
        throw .badInput("\(root.path) is not a SnapFS store (no \(Catalog.fileName)); create one with `snapfs init`")
    }

    /// `busyTimeout`: how long a write waits for another process's lock on the catalog before it is refused as busy.
    static func open(at root: URL, creating: Bool, rules: [any EngineRules] = [], backends: [any StoreFilesBackend] = [],
                     logger: Logger = Logger(label: "snapfs.store"), busyTimeout: TimeInterval = 30) throws(StoreError) -> Store {
        let catalogURL = root.appendingPathComponent(Catalog.fileName)
        if !creating { try checkCatalogPresent(at: root) }
        // access(2) answers for this user and for read-only mounts alike (root passes mode bits, not EROFS).
        let readOnly = !creating && (access(root.path, W_OK) != 0 || access(catalogURL.path, W_OK) != 0)
        var st = stat()
        if !creating, stat(catalogURL.path, &st) == 0, st.st_size == 0 {
            throw .corrupt("the catalog \(catalogURL.path) is empty (0 bytes): it is not the store's catalog, so its snapshots and references are unknown; nothing was changed")
        }
        let store: Store
        do {
            let pool = try Catalog.open(at: catalogURL, creating: creating, readOnly: readOnly, busyTimeout: busyTimeout)
            store = try Store(root: root.standardizedFileURL, db: pool, logger: logger, readOnly: readOnly)
        } catch {
            throw .wrap(error, "cannot open catalog \(catalogURL.path)", storeRoot: root.path)
        }
        // Refused before anything is finished or rolled back: the store stays as it was. A new store has no engine
        // recorded yet; `create` binds its rules once it has written its settings.
        let binding = creating ? nil : try rulesFor(engine: store.engineName, in: rules, at: root)
        if !creating { try store.bindFiles(backends) }
        if readOnly {
            logger.info("store opened read-only", metadata: ["store": .string(root.path)])
        } else {
            if !creating { store.restrictOwnFiles() }
            try store.recover()
        }
        if let binding { store.setHooks(try binding.hooks(for: store)) }
        return store
    }

    /// Makes the store's own files owner-only (SPEC §5), for stores made before this was done at creation. A
    /// local store's root covers everything under it; in a Flink store only SnapFS's files are touched, never
    /// Flink's.
    func restrictOwnFiles() {
        let local = (try? meta("engine")) != "flink"
        var own = [Catalog.fileName, Catalog.fileName + "-wal", Catalog.fileName + "-shm"].map { (root.appendingPathComponent($0).path, mode_t(0o600)) }
        own.append((runDir.path, 0o700))
        if local { own.append((root.path, 0o700)) }
        for (path, mode) in own {
            var st = stat()
            guard stat(path, &st) == 0, st.st_mode & 0o777 & ~mode != 0 else { continue }
            if chmod(path, mode) == 0 { logger.notice("made \(path) owner-only") }
        }
    }

    // MARK: settings

    public func meta(_ key: String) throws(StoreError) -> String? {
        do { return try db.read { try String.fetchOne($0, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) } }
        catch { throw .wrap(error, "cannot read catalog") }
    }

    public func setMeta(_ key: String, _ value: String?) throws(StoreError) {
        try requireWritable("change the store's settings")
        do {
            try db.write { db in
                if let value {
                    try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", arguments: [key, value])
                } else {
                    try db.execute(sql: "DELETE FROM meta WHERE key = ?", arguments: [key])
                }
                try db.bumpGeneration()
            }
        } catch { throw .wrap(error, "cannot write catalog") }
    }

    public var engineName: String { (try? meta("engine")) ?? "local" }

    /// Grows by one with every committed change; a daemon polls it to see changes another process made.
    public func generation() -> Int64 {
        (try? db.read { try Int64.fetchOne($0, sql: "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'") } ?? 0) ?? 0
    }

    // MARK: queries

    /// Complete snapshots, oldest first.
    public func snapshots(includingWriting: Bool = false) throws(StoreError) -> [Snapshot] {
        do {
            return try db.read { db in
                try Snapshot.fetchAll(db, sql: "SELECT \(Snapshot.columns) FROM snapshots \(includingWriting ? "" : "WHERE state = 'complete'") ORDER BY id")
            }
        } catch { throw .wrap(error, "cannot read catalog") }
    }

    public func snapshot(named name: String) throws(StoreError) -> Snapshot {
        let s: Snapshot?
        do {
            s = try db.read { db in
                try Snapshot.fetchOne(db, sql: "SELECT \(Snapshot.columns) FROM snapshots WHERE name = ?", arguments: [name])
            }
        } catch { throw .wrap(error, "cannot read catalog") }
        guard let s else { throw .noSuchSnapshot(name) }
        return s
    }

    public func newestComplete() throws(StoreError) -> Snapshot? {
        do {
            return try db.read { db in
                try Snapshot.fetchOne(db, sql: "SELECT \(Snapshot.columns) FROM snapshots WHERE state = 'complete' ORDER BY completed_at DESC, id DESC LIMIT 1")
            }
        } catch { throw .wrap(error, "cannot read catalog") }
    }

    /// Every entry of a snapshot, with each file's stored object and its link count: the names, in every snapshot,
    /// that are the same inode in the mount (`InodeNumber.file`): the entries holding the same object with the same
    /// owner, mode and attributes. A store never gives one object to two distinct files (no content is shared
    /// between files, and a native-incremental snapshot reuses an object for one file only), so within one snapshot
    /// these are the names of one file, its hard links; across snapshots, each snapshot holding the file unchanged
    /// adds its names.
    public func entries(of id: SnapshotID, includeHidden: Bool = false) throws(StoreError) -> [SnapshotEntry] {
        do {
            return try db.read { db in
                let rows = try Row.fetchCursor(db, sql: """
                    SELECT e.path, e.type, e.size, e.mode, e.mtime_ns, e.object_id, e.symlink_target, e.hidden,
                           o.path AS opath, o.sha256,
                           CASE WHEN e.object_id IS NULL THEN 1
                                ELSE (SELECT COUNT(*) FROM entries e2 WHERE e2.object_id = e.object_id AND e2.hidden = 0
                                      AND e2.uid IS e.uid AND e2.gid IS e.gid AND e2.xattrs IS e.xattrs
                                      AND (e.uid IS NULL AND e.gid IS NULL AND e.xattrs IS NULL OR (e2.mode & 4095) = (e.mode & 4095)))
                                END AS links,
                           e.rdev, e.size_rule, e.required_size, e.uid, e.gid, e.xattrs, o.blocks, o.sparse_digest
                    FROM entries e LEFT JOIN objects o ON o.id = e.object_id
                    WHERE e.snapshot_id = ? \(includeHidden ? "" : "AND e.hidden = 0")
                    ORDER BY e.path
                    """, arguments: [id])
                var out: [SnapshotEntry] = []
                // Columns by position, in the SELECT's order: looking each up by name was a fifth of the time a
                // mount takes to open a snapshot of 100,000 files.
                while let r = try rows.next() {
                    let t: String = r[1]
                    guard let type = EntryType(rawValue: t) else {
                        throw StoreError.corrupt("catalog entry '\(r[0] as String? ?? "?")' of snapshot \(id) has type '\(t)'")
                    }
                    out.append(SnapshotEntry(path: r[0], type: type, size: r[2], mode: UInt32(truncatingIfNeeded: r[3] as Int64),
                                             mtimeNanos: r[4], object: r[5], objectPath: r[8],
                                             sha256: r[9], symlinkTarget: r[6],
                                             links: max(1, r[10] as Int), hidden: (r[7] as Int) != 0,
                                             rdev: (r[11] as Int64?).map { UInt64(bitPattern: $0) },
                                             sizeRule: SizeRule(rawValue: r[12] as String) ?? .exact, requiredSize: r[13],
                                             uid: (r[14] as Int64?).map { UInt32(truncatingIfNeeded: $0) },
                                             gid: (r[15] as Int64?).map { UInt32(truncatingIfNeeded: $0) },
                                             xattrs: (r[16] as Data?).flatMap(ExtendedAttributes.init(blob:)), blocks: r[17],
                                             sparseDigest: r[18]))
                }
                return out
            }
        } catch { throw .wrap(error, "cannot read catalog") }
    }

    /// The absolute path of an object's bytes.
    public func url(ofObjectPath p: String) -> URL { root.appendingPathComponent(p) }

    public func objects() throws(StoreError) -> [StoredObject] {
        do {
            return try db.read { db in
                try Row.fetchAll(db, sql: "SELECT id, path, size, sha256 FROM objects WHERE pending_snapshot IS NULL ORDER BY id").map {
                    StoredObject(id: $0["id"], path: $0["path"], size: $0["size"], sha256: $0["sha256"])
                }
            }
        } catch { throw .wrap(error, "cannot read catalog") }
    }

    public func jobStatus() -> JobStatus { hooks.jobStatus(of: self) }
    /// Moves when `jobStatus()` may have changed without a catalog change (see `EngineHooks.statusGeneration`).
    public func statusGeneration() -> Int64 { hooks.statusGeneration() }
}
