import Foundation
import Logging
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Reading snapshot files straight from their stored objects, and control files from a buffer made at open.
extension SnapFileSystem {
    func addHandle(_ h: Handle) -> UInt64 {
        state.withLock { s in
            let id = s.nextHandle
            s.nextHandle += 1
            s.handles[id] = h
            return id
        }
    }

    public func open(_ ino: UInt64, flags: Int32) throws(FSError) -> OpenReply {
        let n = try node(ino)
        let writing = flags & O_ACCMODE != O_RDONLY
        switch n {
        case .file(let id, let e):
            if writing || flags & O_TRUNC != 0 { throw readOnly("write to \(e.path)", id) }
            guard let rel = e.objectPath else { throw .io("\(e.path) has no stored object") }
            let shared = state.withLock { s -> Int32? in
                guard var f = s.fds[rel] else { return nil }
                f.refs += 1; s.fds[rel] = f
                return f.fd
            }
            let fd: Int32
            if let shared { fd = shared } else {
                // Opened outside the lock so that other workers' lookups and reads never wait for this open(2).
                let opened = Glibc.open(rootPath + "/" + rel, O_RDONLY | O_CLOEXEC)
                guard opened >= 0 else { throw .io("cannot open stored object \(rel): \(String(cString: strerror(errno)))") }
                fd = state.withLock { s -> Int32 in
                    if var f = s.fds[rel] { f.refs += 1; s.fds[rel] = f; close(opened); return f.fd }
                    s.fds[rel] = (opened, 1)
                    return opened
                }
            }
            return OpenReply(handle: addHandle(.object(path: rel, fd: fd)), directIO: false, keepCache: true)
        case .controlFile(let f):
            if writing { throw .notPermitted("control files are read-only") }
            return OpenReply(handle: addHandle(.buffer(try ControlContent.generate(f, fs: self))), directIO: true, keepCache: false)
        case .trigger(let f):
            // Reading a trigger never triggers anything (SPEC §6).
            guard writing else { return OpenReply(handle: addHandle(.buffer([])), directIO: true, keepCache: false) }
            return OpenReply(handle: addHandle(.trigger(TriggerWrite(format: f))), directIO: true, keepCache: false)
        case .root, .snapshot, .directory, .controlDir:
            throw .isDirectory
        case .latest, .symlink:
            throw .invalid("cannot open a symbolic link")
        }
    }

    /// The descriptor of a stored object opened as `handle`, so the adapter can let the kernel splice its pages
    /// straight into the reply instead of copying them through this process; nil for every other handle.
    public func objectDescriptor(handle: UInt64) -> Int32? {
        state.withLock { s in
            if case .object(_, let fd)? = s.handles[handle] { return fd }
            return nil
        }
    }

    /// Reads into `buffer`; returns how many bytes were read (0 at the end).
    public func read(handle: UInt64, offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(FSError) -> Int {
        guard let h = state.withLock({ $0.handles[handle] }) else { throw .badHandle }
        switch h {
        case .object(let path, let fd):
            var done = 0
            while done < buffer.count {
                let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw .io("cannot read stored object \(path): \(String(cString: strerror(errno)))")
                }
                if n == 0 { break }
                done += n
            }
            return done
        case .buffer(let bytes):
            guard offset < bytes.count else { return 0 }
            let n = min(buffer.count, bytes.count - Int(offset))
            bytes.withUnsafeBytes { src in
                buffer.baseAddress!.copyMemory(from: src.baseAddress! + Int(offset), byteCount: n)
            }
            return n
        case .trigger:
            return 0
        case .directory:
            throw .isDirectory
        }
    }

    public func release(handle: UInt64) {
        state.withLock { s in
            guard let h = s.handles.removeValue(forKey: handle) else { return }
            if case .object(let path, _) = h, var f = s.fds[path] {
                f.refs -= 1
                if f.refs <= 0 { close(f.fd); s.fds[path] = nil } else { s.fds[path] = f }
            }
        }
    }
}
