import Synchronization
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Open descriptors of stored objects, shared by every read of the same object and kept for the next one.
///
/// The kernel never tells the mount when a file is opened or closed (it is told not to, so that a warm read costs
/// no round trip at all), so descriptors are not tied to opens: a read leases one, and idle ones beyond `idleLimit`
/// are closed, least recently used first. A leased descriptor is never closed, so a descriptor number cannot be
/// reused for another file while a read is splicing from it.
final class ObjectDescriptors: ObjectSource {
    private struct Slot {
        var fd: Int32
        var leases: Int
        var lastUse: UInt64
    }

    private struct State {
        var slots: [String: Slot] = [:]
        var clock: UInt64 = 0
    }

    private let state = Mutex(State())
    private let root: String
    private let idleLimit: Int

    init(root: String, idleLimit: Int = 256) {
        self.root = root
        self.idleLimit = idleLimit
    }

    deinit {
        state.withLock { s in for slot in s.slots.values { close(slot.fd) } }
    }

    /// Runs `body` with a descriptor of the object at `relativePath` (relative to the store's root). Every byte of a
    /// file on disk is there, so `range` asks nothing more.
    func withDescriptor<R>(_ relativePath: String, covering range: Range<Int64>,
                           _ body: (Int32) throws(FSError) -> R) throws(FSError) -> R {
        let fd = try lease(relativePath)
        defer { release(relativePath) }
        return try body(fd)
    }

    private func lease(_ path: String) throws(FSError) -> Int32 {
        let shared = state.withLock { s -> Int32? in
            guard var slot = s.slots[path] else { return nil }
            s.clock += 1
            slot.leases += 1
            slot.lastUse = s.clock
            s.slots[path] = slot
            return slot.fd
        }
        if let shared { return shared }
        // Opened outside the lock so that other reads never wait for this open(2).
        let opened = PathAt.open(root, path, O_RDONLY | O_CLOEXEC)
        guard opened >= 0 else { throw .io("cannot open stored object \(PathBytes.printable(path)): \(String(cString: strerror(errno)))") }
        return state.withLock { s -> Int32 in
            s.clock += 1
            if var slot = s.slots[path] {
                // Another read opened it meanwhile: share theirs.
                close(opened)
                slot.leases += 1
                slot.lastUse = s.clock
                s.slots[path] = slot
                return slot.fd
            }
            s.slots[path] = Slot(fd: opened, leases: 1, lastUse: s.clock)
            return opened
        }
    }

    private func release(_ path: String) {
        state.withLock { s in
            s.slots[path]?.leases -= 1
            guard s.slots.count > idleLimit else { return }
            // Close the idle half that was used longest ago; amortised, so one read rarely pays for this.
            let idle = s.slots.filter { $0.value.leases == 0 }.sorted { $0.value.lastUse < $1.value.lastUse }
            for (p, slot) in idle.prefix(max(1, idle.count / 2)) {
                close(slot.fd)
                s.slots[p] = nil
            }
        }
    }

    /// Closes the idle descriptors of objects a delete has removed (no name left): an open descriptor keeps a file's
    /// blocks allocated, so until it fell out of the cache `df` would not show the space back. One `fstat` per idle
    /// descriptor, at most `idleLimit` of them, so the poller can afford it on every tick; a descriptor leased by a
    /// read in progress is left to the next sweep. Returns how many were closed.
    @discardableResult
    func closeRemoved() -> Int {
        state.withLock { s in
            var closed = 0
            for (path, slot) in s.slots where slot.leases == 0 {
                var st = stat()
                if fstat(slot.fd, &st) == 0 && st.st_nlink > 0 { continue }
                close(slot.fd)
                s.slots[path] = nil
                closed += 1
            }
            return closed
        }
    }

    /// How many descriptors are open now; tests use it to see that idle ones are closed.
    var openCount: Int { state.withLock { $0.slots.count } }
}
