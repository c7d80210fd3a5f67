import Foundation
import SnapStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What one importer has done, for tests and benchmarks: a pass that finds nothing new must read no `_metadata`,
/// and one that finds one new checkpoint must read exactly one.
public final class FlinkImportActivity: Sendable {
    private let reads = Atomic<Int>(0)
    private let full = Atomic<Int>(0)
    private let quick = Atomic<Int>(0)

    public init() {}

    /// `_metadata` files read (and decoded or refused).
    public var metadataReads: Int { reads.load(ordering: .relaxed) }
    /// Passes that walked the store's directories.
    public var fullPasses: Int { full.load(ordering: .relaxed) }
    /// Passes that found every directory and the catalog as the last full pass left them, and stopped there.
    public var quickPasses: Int { quick.load(ordering: .relaxed) }

    func readMetadata() { reads.add(1, ordering: .relaxed) }
    func fullPass() { full.add(1, ordering: .relaxed) }
    func quickPass() { quick.add(1, ordering: .relaxed) }
}

/// What the last full pass over a Flink store saw, so that a pass with nothing new costs a few `stat`s and one
/// catalog read instead of a walk of every snapshot directory and a read of every snapshot row.
///
/// New checkpoints and savepoints, and Flink's removal of subsumed ones, change the directory that holds them
/// (`checkpoints/<job>`, `savepoints`), and a `_metadata` written last changes its own `chk-N`: the walk records
/// every directory it listed but did not take for a snapshot (the root, job directories, a `chk-N` still being
/// written) with its inode, mtime and ctime, read before listing it. A later pass that finds all of them unchanged,
/// and the catalog at the same generation, has nothing to import and nothing to forget.
///
/// What this cannot see — a `_metadata` removed by hand from a snapshot directory whose parent did not change — is
/// caught by a full pass at least every `fullPassInterval`. A directory changed within a second of the walk is
/// not trusted (a timestamp can miss a second change in the same tick): the next pass walks again.
public final class FlinkScanCache: Sendable {
    struct Stamp: Equatable, Sendable {
        var inode: UInt64
        var mtime: timespec
        var ctime: timespec

        static func == (a: Stamp, b: Stamp) -> Bool {
            a.inode == b.inode && a.mtime.tv_sec == b.mtime.tv_sec && a.mtime.tv_nsec == b.mtime.tv_nsec
                && a.ctime.tv_sec == b.ctime.tv_sec && a.ctime.tv_nsec == b.ctime.tv_nsec
        }

        static func of(_ path: String) -> Stamp? {
            var st = stat()
            guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return nil }
            return Stamp(inode: UInt64(st.st_ino), mtime: st.st_mtim, ctime: st.st_ctim)
        }
    }

    struct State: Sendable {
        var generation: Int64
        /// Store-relative directories listed by the walk ("" is the root), with their stamps.
        var directories: [String: Stamp]
        var unchanged: Int
        var walkedAt: Double
    }

    /// How long a pass may rely on the last walk before walking again.
    public let fullPassInterval: TimeInterval
    private let state = Mutex<State?>(nil)

    public init(fullPassInterval: TimeInterval = 60) { self.fullPassInterval = fullPassInterval }

    /// The number of snapshots the last full pass found unchanged, if nothing moved since; nil to walk again.
    func unchanged(root: String, generation: Int64) -> Int? {
        guard let s = state.withLock({ $0 }), s.generation == generation,
              Date().timeIntervalSince1970 - s.walkedAt < fullPassInterval else { return nil }
        for (relative, stamp) in s.directories {
            guard Stamp.of(relative.isEmpty ? root : root + "/" + relative) == stamp else { return nil }
        }
        return s.unchanged
    }

    /// Keeps what a full pass saw. `trusted` is false when the pass left something to look at again (a
    /// `_metadata` it could not read), and then the next pass walks again.
    func remember(generation: Int64, directories: [String: Stamp], walkStarted: timespec, unchanged: Int, trusted: Bool) {
        // Changed within a second of the walk: the same timestamp could hide a second change.
        let settled = directories.values.allSatisfy { $0.mtime.tv_sec < walkStarted.tv_sec - 1 && $0.ctime.tv_sec < walkStarted.tv_sec - 1 }
        let now = Date().timeIntervalSince1970
        state.withLock {
            $0 = trusted && settled ? State(generation: generation, directories: directories, unchanged: unchanged, walkedAt: now) : nil
        }
        lastDirectories.withLock { $0 = directories.keys.sorted() }
    }

    private let lastDirectories = Mutex<[String]>([])

    /// Store-relative directories whose change can mean a new or removed snapshot, as of the last full pass: the
    /// ones to watch for events.
    public var watchedDirectories: [String] { lastDirectories.withLock { $0 } }
}
