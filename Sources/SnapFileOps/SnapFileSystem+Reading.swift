import Foundation
import Logging
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Reading, keyed by inode: snapshot files straight from their stored objects, control files from the bytes
/// recorded when they were last `stat`ed. Nothing here depends on an open: the kernel is told to skip OPEN,
/// FLUSH and RELEASE, so a warm read of a snapshot file never reaches this process.
extension SnapFileSystem {
    /// What opening `ino` with `flags` means. On kernels that skip OPEN (every kernel since 4.19) this is never
    /// asked and a write into a snapshot fails at `write`; where OPEN is sent it fails here already.
    public func open(_ ino: UInt64, flags: Int32) throws(FSError) -> OpenReply {
        let writing = flags & O_ACCMODE != O_RDONLY
        switch try node(ino) {
        case .file(let id, let e):
            if writing || flags & O_TRUNC != 0 { throw readOnly("write to \(e.path)", id) }
            return OpenReply(directIO: false, keepCache: true)
        case .controlFile(.jobControl):
            return OpenReply(directIO: true, keepCache: false)
        case .controlFile:
            if writing { throw .notPermitted("control files are read-only") }
            return OpenReply(directIO: true, keepCache: false)
        case .trigger:
            return OpenReply(directIO: true, keepCache: false)
        case .root, .snapshot, .directory, .controlDir, .jobs, .job, .jobView:
            throw .isDirectory
        case .latest, .symlink, .jobLatest:
            throw .invalid("cannot open a symbolic link")
        }
    }

    /// Runs `body` with a descriptor of the stored object behind `ino`, so the adapter can let the kernel splice
    /// its pages straight into the reply instead of copying them through this process. Nil for every other node.
    public func withObjectDescriptor<R>(_ ino: UInt64, _ body: (Int32) throws(FSError) -> R) throws(FSError) -> R? {
        guard case .file(_, let e) = try node(ino) else { return nil }
        guard let rel = e.objectPath else { throw .io("\(e.path) has no stored object") }
        return try objects.withDescriptor(rel, body)
    }

    /// Reads into `buffer` from `offset`; returns how many bytes were read (0 at the end).
    public func read(_ ino: UInt64, offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(FSError) -> Int {
        let n = try node(ino)
        switch n {
        case .file(_, let e):
            guard let rel = e.objectPath else { throw .io("\(e.path) has no stored object") }
            return try objects.withDescriptor(rel) { fd throws(FSError) -> Int in
                var done = 0
                while done < buffer.count {
                    let r = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
                    if r < 0 {
                        if errno == EINTR { continue }
                        throw .io("cannot read a stored object: \(String(cString: strerror(errno)))")
                    }
                    if r == 0 { break }
                    done += r
                }
                return done
            }
        case .controlFile(let f):
            var bytes = state.withLock { $0.generated.current(ino) }?.bytes ?? []
            if bytes.isEmpty { bytes = try generated(f, ino).bytes }
            guard offset >= 0, offset < bytes.count else { return 0 }
            let count = min(buffer.count, bytes.count - Int(offset))
            bytes.withUnsafeBytes { src in
                buffer.baseAddress!.copyMemory(from: src.baseAddress! + Int(offset), byteCount: count)
            }
            return count
        case .trigger:
            // Reading a trigger never triggers anything (SPEC §6), and shows nothing.
            return 0
        case .root, .snapshot, .directory, .controlDir, .jobs, .job, .jobView:
            throw .isDirectory
        case .latest, .symlink, .jobLatest:
            throw .invalid("cannot read a symbolic link")
        }
    }

    /// Generates a control file now and records it as what reads of `ino` serve.
    func generated(_ f: ControlFile, _ ino: UInt64) throws(FSError) -> GeneratedContent.Version {
        let bytes = try ControlContent.generate(f, fs: self)
        let t = Int64(now().timeIntervalSince1970 * 1e9)
        return state.withLock { $0.generated.record(ino, bytes, now: t) }
    }
}
