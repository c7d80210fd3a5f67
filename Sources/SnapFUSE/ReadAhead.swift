import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Raises the mount's read-ahead from the kernel's 128 KiB to `ReadAhead.targetKiB`, so a cold sequential read of a
/// snapshot file costs a quarter of the round trips.
///
/// The kernel asks for a FUSE file's pages one read-ahead window at a time, one `READ` round trip per window, and a
/// round trip on this kind of machine costs 25-100 µs however fast the daemon answers. Reading a 1 GiB file whose
/// object was already in the page cache (so only the mount's part is timed) took 0.41-0.79 s in 128 KiB `READ`s and
/// 0.29-0.44 s in 512 KiB ones. Not larger: libfuse splices a reply through a pipe of at most 1 MiB
/// (`fs.pipe-max-size`), and a 1 MiB `READ` plus its header no longer fits, so libfuse falls back to copying through
/// this process, which measured 0.75-1.2 s.
///
/// The window lives in the mount's backing-device info (`/sys/class/bdi/MAJOR:MINOR/read_ahead_kb`), which only root
/// may write, and the kernel lowers it to what the `INIT` reply allows when that reply arrives. So it is raised from
/// the catalog poller after `INIT`, checked on the next tick, and written again if `INIT` lowered it afterwards.
/// Without root it stays at 128 KiB: reads work the same, cold ones cost more round trips.
final class ReadAhead: Sendable {
    static let targetKiB = 512
    private static let attempts = 3

    private struct State {
        var kernelInitialized = false
        var writes = 0
        var done = false
    }
    private let state = Mutex(State())

    /// Called from the `INIT` callback, before libfuse sends its reply.
    func kernelInitialized() {
        state.withLock { $0.kernelInitialized = true }
    }

    /// One poller tick: nothing before `INIT`, nothing once the window was seen at the target or could not be set.
    func adjust(mountpoint: String, logger: Logger) {
        guard let writes = state.withLock({ s -> Int? in s.kernelInitialized && !s.done ? s.writes : nil }) else { return }
        var st = stat()
        guard stat(mountpoint, &st) == 0 else { return finish() }
        let path = "/sys/class/bdi/\(major(st.st_dev)):\(minor(st.st_dev))/read_ahead_kb"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let current = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            logger.debug("read-ahead left as it is: cannot read it", metadata: ["path": .string(path)])
            return finish()
        }
        if current >= Self.targetKiB {
            if writes > 0 {
                logger.debug("read-ahead raised", metadata: ["kib": .stringConvertible(current), "path": .string(path)])
            }
            return finish()
        }
        guard writes < Self.attempts else {
            logger.info("read-ahead stays below its target: the kernel lowered it again",
                        metadata: ["kib": .stringConvertible(current), "path": .string(path)])
            return finish()
        }
        do {
            try "\(Self.targetKiB)\n".write(toFile: path, atomically: false, encoding: .utf8)
            state.withLock { $0.writes += 1 }
        } catch {
            logger.debug("read-ahead left at \(current) KiB: cannot write it (not root?)", metadata: ["path": .string(path)])
            finish()
        }
    }

    private func finish() {
        state.withLock { $0.done = true }
    }

    /// glibc's `major(3)` and `minor(3)`, which are macros Swift does not import.
    private func major(_ dev: dev_t) -> UInt64 {
        let d = UInt64(dev)
        return ((d & 0x0000_0000_000f_ff00) >> 8) | ((d & 0xffff_f000_0000_0000) >> 32)
    }
    private func minor(_ dev: dev_t) -> UInt64 {
        let d = UInt64(dev)
        return (d & 0xff) | ((d & 0x0000_0fff_fff0_0000) >> 12)
    }
}
