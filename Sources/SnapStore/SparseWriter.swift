import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes a file's bytes in order, leaving a hole wherever a whole 4 KiB block is zero, so a sparse state file stays
/// sparse in the store and in an export: an 8 GiB file holding 10 KiB of data takes about 10 KiB of disk, not 8 GiB.
/// A block of zeros that the source had allocated becomes a hole too; the bytes read back are the same.
struct SparseWriter {
    static let block = 4096
    /// A MiB of zeros, to compare blocks with and to hand on for a hole; allocated once, never written or freed.
    nonisolated(unsafe) static let zeros: UnsafeRawBufferPointer = {
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        p.initializeMemory(as: UInt8.self, repeating: 0)
        return UnsafeRawBufferPointer(p)
    }()

    let fd: Int32
    /// The path, for errors.
    let shown: String
    private(set) var offset: Int64 = 0

    init(fd: Int32, shown: String) { self.fd = fd; self.shown = shown }

    /// Appends `chunk`: runs of non-zero blocks are written, zero blocks skipped.
    mutating func write(_ chunk: UnsafeRawBufferPointer) throws {
        guard let base = chunk.baseAddress else { return }
        let zeros = Self.zeros.baseAddress!
        var at = 0
        var runStart = -1
        while at < chunk.count {
            let n = min(Self.block, chunk.count - at)
            if memcmp(base + at, zeros, n) == 0 {
                if runStart >= 0 { try put(base + runStart, at - runStart, at: offset + Int64(runStart)); runStart = -1 }
            } else if runStart < 0 {
                runStart = at
            }
            at += n
        }
        if runStart >= 0 { try put(base + runStart, chunk.count - runStart, at: offset + Int64(runStart)) }
        offset += Int64(chunk.count)
    }

    /// Appends a hole of `count` bytes: nothing is written or compared.
    mutating func skip(_ count: Int64) { offset += count }

    private func put(_ p: UnsafeRawPointer, _ count: Int, at: Int64) throws {
        var done = 0
        while done < count {
            let n = pwrite(fd, p + done, count - done, off_t(at + Int64(done)))
            if n < 0 { if errno == EINTR { continue }; throw StoreError.io(path: shown, errno: errno, what: "cannot write") }
            done += n
        }
    }

    /// Sets the length (a trailing hole is written by no block) and returns the 512-byte blocks the file occupies.
    func finish() throws -> Int64 {
        guard ftruncate(fd, off_t(offset)) == 0 else { throw StoreError.io(path: shown, errno: errno, what: "cannot set the length of") }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw StoreError.io(path: shown, errno: errno, what: "cannot stat") }
        return Int64(st.st_blocks)
    }
}

/// lseek's SEEK_DATA and SEEK_HOLE, which Swift's Glibc module leaves out (they need _GNU_SOURCE); their Linux values.
public enum SparseSeek {
    public static let data: Int32 = 3
    public static let hole: Int32 = 4
}
