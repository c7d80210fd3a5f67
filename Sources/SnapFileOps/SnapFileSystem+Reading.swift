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

    /// Runs `body` with a descriptor of the stored object behind `ino` on which the bytes in `range` are present,
    /// so the adapter can let the kernel splice its pages straight into the reply instead of copying them through
    /// this process. Nil for every other node.
    public func withObjectDescriptor<R>(_ ino: UInt64, range: Range<Int64>, _ body: (Int32) throws(FSError) -> R) throws(FSError) -> R? {
        // A generated file (no stored object) is read from memory, by `read`.
        // So is a part of an object (`objectOffset`), whose offsets `read` translates.
        guard case .file(_, let e) = try node(ino), let rel = e.objectPath, e.objectOffset == nil else { return nil }
        return try objects.withDescriptor(rel, covering: range, body)
    }

    /// `lseek` with SEEK_DATA (`whence` 3) or SEEK_HOLE (4) in a snapshot's file: where its next data or hole starts
    /// at or after `offset`. A snapshot keeps its state's holes in the stored object, so this is the object's answer;
    /// `cp --sparse=auto` and `tar -S` through the mount find them. Other files are all data.
    public func seek(_ ino: UInt64, offset: Int64, whence: Int32) throws(FSError) -> Int64 {
        guard whence == SparseSeek.data || whence == SparseSeek.hole else { throw .invalid("only SEEK_DATA and SEEK_HOLE are asked of a file system") }
        guard offset >= 0 else { throw .invalid("negative offset") }
        guard case .file(_, let e) = try node(ino).flat, e.type == .file, let rel = e.objectPath else {
            throw .invalid("SEEK_DATA and SEEK_HOLE are answered for snapshot files")
        }
        if e.objectOffset != nil {
            // A part of an object is shown all data: its holes would be the object's, at other offsets.
            guard offset < e.size else { throw .noMoreData }
            return whence == SparseSeek.data ? offset : e.size
        }
        return try objects.withDescriptor(rel, covering: wholeObject) { fd throws(FSError) -> Int64 in
            let r = lseek(fd, off_t(offset), whence)
            if r < 0 {
                if errno == ENXIO { throw .noMoreData }
                throw .io("lseek in \(rel): \(String(cString: strerror(errno)))")
            }
            return Int64(r)
        }
    }

    /// Reads into `buffer` from `offset`; returns how many bytes were read (0 at the end).
    public func read(_ ino: UInt64, offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(FSError) -> Int {
        let n = try node(ino)
        switch n {
        case .file(let id, let e):
            guard let rel = e.objectPath else {
                // Made for the snapshot's view (a relocatable `_metadata`): the bytes its `stat` length counted.
                guard let bytes = views.generated(id, e.path) else { throw .io("\(e.path) has no stored object") }
                return Self.copy(bytes, from: offset, into: buffer)
            }
            // A part of an object (`objectOffset`): the `size` bytes from there, read at the object's offsets.
            let start = e.objectOffset ?? 0
            var wanted = buffer.count
            if e.objectOffset != nil { wanted = offset >= e.size ? 0 : Int(min(Int64(wanted), e.size - offset)) }
            let covering = (start + offset)..<(start + offset + Int64(wanted))
            return try objects.withDescriptor(rel, covering: covering) { fd throws(FSError) -> Int in
                var done = 0
                while done < wanted {
                    let r = pread(fd, buffer.baseAddress! + done, wanted - done, off_t(start + offset) + off_t(done))
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
            return Self.copy(bytes, from: offset, into: buffer)
        case .trigger:
            // Reading a trigger never triggers anything (SPEC §6), and shows nothing.
            return 0
        case .root, .snapshot, .directory, .controlDir, .jobs, .job, .jobView:
            throw .isDirectory
        case .latest, .symlink, .jobLatest:
            throw .invalid("cannot read a symbolic link")
        }
    }

    /// Copies what `bytes` hold from `offset` into `buffer`; returns how many (0 at or past the end).
    static func copy(_ bytes: [UInt8], from offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard offset >= 0, offset < bytes.count else { return 0 }
        let count = min(buffer.count, bytes.count - Int(offset))
        bytes.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + Int(offset), byteCount: count)
        }
        return count
    }

    /// Generates a control file now and records it as what reads of `ino` serve.
    func generated(_ f: ControlFile, _ ino: UInt64) throws(FSError) -> GeneratedContent.Version {
        let bytes = try ControlContent.generate(f, fs: self)
        let t = Int64(now().timeIntervalSince1970 * 1e9)
        return state.withLock { $0.generated.record(ino, bytes, now: t) }
    }
}
