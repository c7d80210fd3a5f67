import CFuse3
import Foundation
import Logging
import SnapFileOps
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

// One function per kernel operation, each a thin translation: C arguments in, a `SnapFileSystem` call, a reply
// out. They are free functions in a library module, so they are not main-actor isolated and may run on libfuse's
// worker threads; the file system is found through the request's userdata, never through a global.

private let setMode: Int32 = 1 << 0, setUID: Int32 = 1 << 1, setGID: Int32 = 1 << 2, setSize: Int32 = 1 << 3
private let setATime: Int32 = 1 << 4, setMTime: Int32 = 1 << 5, setATimeNow: Int32 = 1 << 7, setMTimeNow: Int32 = 1 << 8

private func mount(_ req: fuse_req_t?) -> FUSEMount {
    Unmanaged<FUSEMount>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
}

/// The one place an error becomes the kernel's answer, so every failure a caller sees is in the daemon's log:
/// refusals at warning, failures of the store or the disk at error. Answers that are part of normal traffic are
/// not failures: a lookup of a name that is not there, an attribute a file does not have, a size probe.
private func fail(_ req: fuse_req_t?, _ error: FSError, _ op: String) {
    let e = error.errno
    let routine = (e == ENOENT && op == "lookup") || e == ENODATA || e == ERANGE || (e == ENXIO && op == "lseek")
    if !routine {
        let meta: Logger.Metadata = ["op": .string(op), "errno": .string(errnoName(e)), "reason": .string(error.description)]
        if e == EIO || e == ENOSPC || e == EDQUOT {
            mount(req).logger.error("\(op) failed", metadata: meta)
        } else {
            mount(req).logger.warning("\(op) refused", metadata: meta)
        }
    }
    _ = fuse_reply_err(req, e)
}

/// "ENOSPC (No space left on device)": the symbol to grep for and the words to read.
private func errnoName(_ e: Int32) -> String {
    let names: [Int32: String] = [EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", EBUSY: "EBUSY", EEXIST: "EEXIST",
                                  ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL", ENOSPC: "ENOSPC", EROFS: "EROFS",
                                  ENOTEMPTY: "ENOTEMPTY", EXDEV: "EXDEV", EACCES: "EACCES", EDQUOT: "EDQUOT", ENOSYS: "ENOSYS"]
    return "\(names[e] ?? "errno \(e)") (\(String(cString: strerror(e))))"
}

private func fill(_ st: inout stat, _ a: Attr) {
    st = stat()
    st.st_ino = UInt(a.ino)
    st.st_mode = a.mode
    st.st_nlink = UInt(a.nlink)
    st.st_size = Int(a.size)
    st.st_blocks = Int(a.blocks)
    st.st_blksize = 4096
    st.st_uid = a.uid
    st.st_gid = a.gid
    st.st_rdev = UInt(a.rdev)
    let ts = timespec(tv_sec: Int(a.mtimeNanos / 1_000_000_000), tv_nsec: Int(a.mtimeNanos % 1_000_000_000))
    st.st_mtim = ts; st.st_ctim = ts; st.st_atim = ts
}

private func entryParam(_ e: Entry) -> fuse_entry_param {
    var p = fuse_entry_param()
    // The kernel's handle, which differs from `st_ino` for a snapshot directory reached through `by-job/`.
    p.ino = fuse_ino_t(e.nodeID)
    p.generation = 1
    fill(&p.attr, e.attr)
    p.attr_timeout = e.attrTimeout
    p.entry_timeout = e.entryTimeout
    return p
}

private func replyEntry(_ req: fuse_req_t?, _ e: Entry) {
    var p = entryParam(e)
    _ = fuse_reply_entry(req, &p)
}

private func replyAttr(_ req: fuse_req_t?, _ a: Attr, _ timeout: Double) {
    var st = stat()
    fill(&st, a)
    _ = fuse_reply_attr(req, &st, timeout)
}

private func str(_ p: UnsafePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }

/// A name in a request, with its bytes kept (`PathBytes`): a snapshot may hold names that are not UTF-8.
private func fuseName(_ p: UnsafePointer<CChar>?) -> String { p.map(PathBytes.string(cName:)) ?? "" }

private func opLookup(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
    do {
        switch try mount(req).fs.resolve(parent: parent, name: fuseName(name)) {
        case .found(let e):
            replyEntry(req, e)
        case .missing(let timeout) where timeout > 0:
            // A negative entry (ino 0): the kernel keeps the miss for `timeout` and asks again only after it.
            var p = fuse_entry_param()
            p.ino = 0
            p.entry_timeout = timeout
            _ = fuse_reply_entry(req, &p)
        case .missing:
            _ = fuse_reply_err(req, ENOENT)
        }
    } catch { fail(req, error, "lookup") }
}

/// The kernel dropped `n` references to `ino`: the node leaves the table when none are left. Inode numbers are
/// derived from identities, so a node looked up again later gets its number back.
private func opForget(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ n: UInt64) {
    mount(req).fs.forget(ino, count: n)
    fuse_reply_none(req)
}

/// BATCH_FORGET, which the kernel sends when it evicts many inodes at once (memory pressure, `drop_caches`).
private func opForgetMulti(_ req: fuse_req_t?, _ count: Int, _ forgets: UnsafeMutablePointer<fuse_forget_data>?) {
    if let forgets {
        let batch = UnsafeBufferPointer(start: forgets, count: count).map { (ino: UInt64($0.ino), count: $0.nlookup) }
        mount(req).fs.forget(batch)
    }
    fuse_reply_none(req)
}

private func opGetattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    do {
        let (a, timeout) = try mount(req).fs.attributes(ino)
        replyAttr(req, a, timeout)
    } catch { fail(req, error, "getattr") }
}

private func opSetattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ attr: UnsafeMutablePointer<stat>?, _ toSet: Int32,
                       _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    guard let attr else { _ = fuse_reply_err(req, EINVAL); return }
    let r = SetAttrRequest(size: toSet & setSize != 0 ? Int64(attr.pointee.st_size) : nil,
                           mode: toSet & setMode != 0 ? attr.pointee.st_mode : nil,
                           uid: toSet & setUID != 0 ? attr.pointee.st_uid : nil,
                           gid: toSet & setGID != 0 ? attr.pointee.st_gid : nil,
                           times: toSet & (setATime | setMTime | setATimeNow | setMTimeNow) != 0)
    do throws(FSError) {
        let a = try mount(req).fs.setattr(ino, r)
        replyAttr(req, a, 1)
    } catch { fail(req, error, "setattr") }
}

private func opReadlink(_ req: fuse_req_t?, _ ino: fuse_ino_t) {
    do {
        let t = try mount(req).fs.readlink(ino)
        _ = PathBytes.withCPath(t) { fuse_reply_readlink(req, $0) }
    } catch { fail(req, error, "readlink") }
}

private func opMknod(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ mode: mode_t, _ rdev: dev_t) {
    do { replyEntry(req, try mount(req).fs.create(parent: parent, name: fuseName(name))) } catch { fail(req, error, "mknod") }
}

private func opMkdir(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ mode: mode_t) {
    do { replyEntry(req, try mount(req).fs.mkdir(parent: parent, name: fuseName(name))) } catch { fail(req, error, "mkdir") }
}

private func opUnlink(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
    do { try mount(req).fs.unlink(parent: parent, name: fuseName(name)); _ = fuse_reply_err(req, 0) } catch { fail(req, error, "unlink") }
}

private func opRmdir(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
    do { try mount(req).fs.rmdir(parent: parent, name: fuseName(name)); _ = fuse_reply_err(req, 0) } catch { fail(req, error, "rmdir") }
}

private func opSymlink(_ req: fuse_req_t?, _ link: UnsafePointer<CChar>?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
    do { replyEntry(req, try mount(req).fs.symlink(parent: parent, name: fuseName(name), target: str(link))) } catch { fail(req, error, "symlink") }
}

private func opRename(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ newParent: fuse_ino_t,
                      _ newName: UnsafePointer<CChar>?, _ flags: UInt32) {
    do {
        try mount(req).fs.rename(parent: parent, name: fuseName(name), newParent: newParent, newName: fuseName(newName), flags: flags)
        _ = fuse_reply_err(req, 0)
    } catch { fail(req, error, "rename") }
}

private func opLink(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ newParent: fuse_ino_t, _ newName: UnsafePointer<CChar>?) {
    do { replyEntry(req, try mount(req).fs.link(ino, newParent: newParent, newName: fuseName(newName))) } catch { fail(req, error, "link") }
}

// Open-less I/O. Snapshot files never change, so the kernel is told (FUSE_CAP_NO_OPEN_SUPPORT) to skip OPEN,
// FLUSH and RELEASE for every file and OPENDIR and RELEASEDIR for every directory, and to keep their pages and
// listings: a warm `tar` of a snapshot then costs this process nothing per file. Everything is keyed by inode, and
// the answers below (ENOSYS) are what switches the kernel over, once, on the first open.

private func applyOpen(_ fi: UnsafeMutablePointer<fuse_file_info>?, _ o: OpenReply) {
    fi?.pointee.fh = 0
    fi?.pointee.direct_io = o.directIO ? 1 : 0
    fi?.pointee.keep_cache = o.keepCache ? 1 : 0
    fi?.pointee.noflush = 1
}

private func opOpen(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    if mount(req).openless.files { _ = fuse_reply_err(req, ENOSYS); return }
    // A kernel that cannot skip opens: the open only checks, and tells the kernel how to cache.
    do {
        applyOpen(fi, try mount(req).fs.open(ino, flags: fi?.pointee.flags ?? O_RDONLY))
        _ = fuse_reply_open(req, fi)
    } catch { fail(req, error, "open") }
}

private func opCreate(_ req: fuse_req_t?, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ mode: mode_t,
                      _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    do {
        let fs = mount(req).fs
        let e = try fs.create(parent: parent, name: fuseName(name))
        applyOpen(fi, try fs.open(e.nodeID, flags: fi?.pointee.flags ?? O_WRONLY))
        var p = entryParam(e)
        _ = fuse_reply_create(req, &p, fi)
    } catch { fail(req, error, "create") }
}

private func opInit(_ userdata: UnsafeMutableRawPointer?, _ conn: UnsafeMutablePointer<fuse_conn_info>?) {
    guard let conn, let userdata else { return }
    let m = Unmanaged<FUSEMount>.fromOpaque(userdata).takeUnretainedValue()
    // Splicing lets object pages go from the page cache to /dev/fuse without a copy through this process. Not
    // SPLICE_MOVE: it lets the kernel steal the object's cached pages into the mount's page cache as single pages,
    // and warm reads of a file filled that way measured 0.09 s per GiB against 0.07 s for one filled by copying
    // (cold reads the same either way).
    conn.pointee.want |= conn.pointee.capable & UInt32(FUSE_CAP_SPLICE_WRITE)
    // POSIX ACLs (a snapshot's entries have those of their state) are then asked for once per inode, cached by the
    // kernel and enforced by it with `default_permissions`, instead of costing two GETXATTR round trips per file on
    // every `ls -l`.
    conn.pointee.want |= conn.pointee.capable & UInt32(FUSE_CAP_POSIX_ACL)
    // With opens skipped, an O_TRUNC open must reach `setattr` (EROFS inside a snapshot), not vanish into an open
    // that is never sent.
    conn.pointee.want &= ~UInt32(FUSE_CAP_ATOMIC_O_TRUNC)
    m.openless.set(files: m.skipOpens && conn.pointee.capable & UInt32(FUSE_CAP_NO_OPEN_SUPPORT) != 0,
                   directories: m.skipOpens && conn.pointee.capable & UInt32(FUSE_CAP_NO_OPENDIR_SUPPORT) != 0)
    if m.skipOpens && !m.openless.files {
        m.logger.warning("this kernel cannot skip opens: every read of a snapshot file costs OPEN and RELEASE round trips")
    }
    m.readAhead.kernelInitialized()
}

private func opRead(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int, _ off: off_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    let fs = mount(req).fs
    do {
        let spliced: Void? = try fs.withObjectDescriptor(ino, range: Int64(off)..<(Int64(off) + Int64(size))) { fd in
            // A stored object: hand libfuse the descriptor and offset; it splices when the kernel allows, else reads.
            var bv = fuse_bufvec()
            bv.count = 1
            bv.buf.size = size
            bv.buf.flags = fuse_buf_flags(rawValue: FUSE_BUF_IS_FD.rawValue | FUSE_BUF_FD_SEEK.rawValue)
            bv.buf.fd = fd
            bv.buf.pos = off
            _ = fuse_reply_data(req, &bv, fuse_buf_copy_flags(rawValue: 0))
        }
        if spliced != nil { return }
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 16)
        defer { buf.deallocate() }
        let n = try fs.read(ino, offset: Int64(off), into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<size]))
        _ = fuse_reply_buf(req, buf.baseAddress!.assumingMemoryBound(to: CChar.self), n)
    } catch { fail(req, error, "read") }
}

/// SEEK_DATA / SEEK_HOLE: the kernel asks only for those (it answers SEEK_SET/CUR/END itself).
private func opLseek(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ off: off_t, _ whence: Int32, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    do {
        _ = fuse_reply_lseek(req, off_t(try mount(req).fs.seek(ino, offset: Int64(off), whence: whence)))
    } catch { fail(req, error, "lseek") }
}

private func opWrite(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ data: UnsafePointer<CChar>?, _ size: Int, _ off: off_t,
                     _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    do {
        let n = try mount(req).fs.write(ino, offset: Int64(off), data: UnsafeRawBufferPointer(start: data, count: size))
        _ = fuse_reply_write(req, n)
    } catch { fail(req, error, "write") }
}

private func opFlush(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    // Nothing is ever buffered here (a trigger's write is its request). ENOSYS tells the kernel to stop sending
    // FLUSH on every close of every file.
    _ = fuse_reply_err(req, ENOSYS)
}

private func opRelease(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    _ = fuse_reply_err(req, 0)
}

private func opFsync(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ datasync: Int32, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    _ = fuse_reply_err(req, 0)
}

private func opOpendir(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    let fs = mount(req).fs
    if mount(req).openless.directories { _ = fuse_reply_err(req, ENOSYS); return }
    fi?.pointee.fh = 0
    if fs.listingIsCacheable(ino) {
        fi?.pointee.cache_readdir = 1
        fi?.pointee.keep_cache = 1
    }
    _ = fuse_reply_open(req, fi)
}

private func opReaddir(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int, _ off: off_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    do {
        let entries = try mount(req).fs.readdir(ino, offset: Int(off))
        let buf = UnsafeMutablePointer<CChar>.allocate(capacity: max(size, 1))
        defer { buf.deallocate() }
        var used = 0
        var next = Int(off)
        for e in entries {
            next += 1
            var st = stat()
            st.st_ino = UInt(e.ino)
            st.st_mode = e.mode
            let n = PathBytes.withCPath(e.name) { fuse_add_direntry(req, buf + used, size - used, $0, &st, off_t(next)) }
            if n > size - used { break }
            used += n
        }
        _ = fuse_reply_buf(req, buf, used)
    } catch { fail(req, error, "readdir") }
}

private func opReleasedir(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
    _ = fuse_reply_err(req, 0)
}

private func opStatfs(_ req: fuse_req_t?, _ ino: fuse_ino_t) {
    let s = mount(req).fs.statfs()
    var v = statvfs()
    v.f_bsize = UInt(s.blockSize); v.f_frsize = UInt(s.blockSize)
    v.f_blocks = UInt(s.blocks); v.f_bfree = UInt(s.blocksFree); v.f_bavail = UInt(s.blocksAvailable)
    v.f_files = UInt(s.files); v.f_ffree = UInt(s.filesFree); v.f_favail = UInt(s.filesFree)
    v.f_namemax = UInt(s.nameMax)
    _ = fuse_reply_statfs(req, &v)
}

private func opSetxattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ value: UnsafePointer<CChar>?,
                        _ size: Int, _ flags: Int32) {
    let bytes = value.map { v in [UInt8](UnsafeRawBufferPointer(start: v, count: size)) } ?? []
    do {
        try mount(req).fs.setxattr(ino, name: str(name), value: bytes, flags: flags, caller: caller(req))
        _ = fuse_reply_err(req, 0)
    } catch { fail(req, error, "setxattr") }
}

/// Who sent a request, for the checks the kernel leaves to the file system.
private func caller(_ req: fuse_req_t?) -> Caller {
    guard let ctx = fuse_req_ctx(req) else { return Caller(uid: UInt32.max, gid: UInt32.max) }
    return Caller(uid: ctx.pointee.uid, gid: ctx.pointee.gid)
}

private func replyXattr(_ req: fuse_req_t?, _ bytes: [UInt8], _ size: Int) {
    if size == 0 { _ = fuse_reply_xattr(req, bytes.count); return }
    if bytes.count > size { _ = fuse_reply_err(req, ERANGE); return }
    _ = bytes.withUnsafeBufferPointer { b in
        fuse_reply_buf(req, UnsafeRawPointer(b.baseAddress)?.assumingMemoryBound(to: CChar.self), b.count)
    }
}

private func opGetxattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>?, _ size: Int) {
    do { replyXattr(req, try mount(req).fs.getxattr(ino, name: str(name)), size) } catch { fail(req, error, "getxattr") }
}

private func opListxattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ size: Int) {
    do {
        var bytes: [UInt8] = []
        for n in try mount(req).fs.listxattr(ino) { bytes += Array(n.utf8); bytes.append(0) }
        replyXattr(req, bytes, size)
    } catch { fail(req, error, "listxattr") }
}

private func opRemovexattr(_ req: fuse_req_t?, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>?) {
    do { try mount(req).fs.removexattr(ino, name: str(name), caller: caller(req)); _ = fuse_reply_err(req, 0) } catch { fail(req, error, "removexattr") }
}

/// The operations table. Built here, in a library function, because closures written in an executable's top-level
/// code would inherit main-actor isolation and trap when libfuse calls them from its worker threads.
func makeOperations() -> fuse_lowlevel_ops {
    var ops = fuse_lowlevel_ops()
    ops.`init` = opInit
    ops.lookup = opLookup
    ops.forget = opForget
    ops.forget_multi = opForgetMulti
    ops.getattr = opGetattr
    ops.setattr = opSetattr
    ops.readlink = opReadlink
    ops.mknod = opMknod
    ops.mkdir = opMkdir
    ops.unlink = opUnlink
    ops.rmdir = opRmdir
    ops.symlink = opSymlink
    ops.rename = opRename
    ops.link = opLink
    ops.open = opOpen
    ops.read = opRead
    ops.write = opWrite
    ops.flush = opFlush
    ops.release = opRelease
    ops.fsync = opFsync
    ops.opendir = opOpendir
    ops.readdir = opReaddir
    ops.releasedir = opReleasedir
    ops.statfs = opStatfs
    ops.setxattr = opSetxattr
    ops.getxattr = opGetxattr
    ops.listxattr = opListxattr
    ops.removexattr = opRemovexattr
    ops.create = opCreate
    ops.lseek = opLseek
    return ops
}
