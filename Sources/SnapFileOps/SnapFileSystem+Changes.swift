import Foundation
import Logging
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// The operations that change something: checked delete (rmdir, staged unlinks), move, mkdir as a snapshot
/// request, and EROFS/EPERM for everything a snapshot or the control directory does not allow.
extension SnapFileSystem {
    public func setattr(_ ino: UInt64, _ req: SetAttrRequest) throws(FSError) -> Attr {
        let n = try node(ino)
        switch n {
        case .trigger(let f):
            if req.mode != nil || req.uid != nil || req.gid != nil { throw controlRefusal("chmod/chown of trigger \(f.rawValue)") }
            // `touch` (times only) asks for a snapshot, taken before its time update returns; the truncation of
            // `echo x >` does not.
            if req.times && req.size == nil { try takeSnapshot(f, label: nil) }
            return try attr(n)
        case .controlFile(.jobControl(let job, let f)):
            // The truncation of `echo … >` asks nothing; every other change is refused.
            guard req.mode == nil, req.uid == nil, req.gid == nil, req.size == nil || req.size == 0 else {
                throw controlRefusal("setattr of .snapfs/jobs/\(job)/\(f.rawValue)")
            }
            return try attr(n)
        case .root, .latest, .controlDir, .controlFile:
            throw controlRefusal("setattr")
        case .jobs, .job, .jobLatest:
            throw viewRefusal("setattr")
        case .snapshot, .directory, .file, .symlink, .jobView:
            let (id, p) = n.snapshotLocation!
            throw readOnly("setattr of \(p.isEmpty ? "snapshot" : p)", id)
        }
    }

    public func mkdir(parent: UInt64, name: String) throws(FSError) -> Entry {
        switch try place(try node(parent)) {
        case .control: throw controlRefusal("mkdir \(name)")
        case .jobs: throw viewRefusal("mkdir \(Self.jobsName)/…/\(name)")
        case .snapshot(let id, let p): throw readOnly("mkdir \(SnapshotIndex.join(p, name))", id)
        case .root:
            if try child(of: .root, name) != nil { throw refuse(.exists("'\(name)' exists"), snapshot: name, "mkdir \(name)") }
            logger.info("snapshot requested by mkdir", metadata: ["name": .string(name)])
            let result: Result<Snapshot, StoreError>
            do {
                result = try store.requestSnapshot(engine: engine, format: .default, label: name, source: "mkdir").1
            } catch {
                throw .store(error)
            }
            switch result {
            case .success(let s):
                refresh()
                return try entry(.snapshot(s.id))
            case .failure(let e):
                logger.error("snapshot by mkdir failed", metadata: ["name": .string(name), "error": .string(e.description)])
                throw Self.snapshotFailure(e)
            }
        }
    }

    /// `open(O_CREAT)` of a name the kernel does not know yet. Only the four trigger files exist in `trigger/`;
    /// an unknown one is not created (SPEC §6), and nothing is created anywhere else.
    public func create(parent: UInt64, name: String) throws(FSError) -> Entry {
        let p = try node(parent)
        if case .controlDir(.trigger) = p {
            guard let f = TriggerFormat(rawValue: name) else {
                throw refuse(.notFound, snapshot: nil, "create of unknown trigger '\(name)'")
            }
            return try entry(.trigger(f))
        }
        switch try place(p) {
        case .control: throw controlRefusal("create \(name)")
        case .jobs: throw viewRefusal("create \(Self.jobsName)/…/\(name)")
        case .snapshot(let id, let dir): throw readOnly("create \(SnapshotIndex.join(dir, name))", id)
        case .root: throw refuse(.readOnly("only snapshots live here: mkdir NAME requests one"), snapshot: nil, "create \(name)")
        }
    }

    public func symlink(parent: UInt64, name: String, target: String) throws(FSError) -> Entry {
        switch try place(try node(parent)) {
        case .control: throw controlRefusal("symlink \(name)")
        case .jobs: throw viewRefusal("symlink \(Self.jobsName)/…/\(name)")
        case .snapshot(let id, let dir): throw readOnly("symlink \(SnapshotIndex.join(dir, name))", id)
        case .root: throw refuse(.readOnly("only snapshots live here"), snapshot: nil, "symlink \(name)")
        }
    }

    public func link(_ ino: UInt64, newParent: UInt64, newName: String) throws(FSError) -> Entry {
        switch try place(try node(newParent)) {
        case .control: throw controlRefusal("link \(newName)")
        case .jobs: throw viewRefusal("link \(Self.jobsName)/…/\(newName)")
        case .snapshot(let id, let dir): throw readOnly("link \(SnapshotIndex.join(dir, newName))", id)
        case .root: throw refuse(.readOnly("only snapshots live here"), snapshot: nil, "link \(newName)")
        }
    }

    public func unlink(parent: UInt64, name: String) throws(FSError) {
        let p = try node(parent)
        switch try place(p) {
        case .control: throw controlRefusal("unlink .snapfs/…/\(name)")
        case .jobs(let v): try jobUnlink(in: v, name)
        case .root:
            try refuseIfControl(name, "unlink \(name)")
            guard try child(of: p, name) != nil else { throw .notFound }
            throw .isDirectory
        case .snapshot(let id, _):
            guard let c = try child(of: p, name) else { throw .notFound }
            if case .directory = c.flat { throw .isDirectory }
            try stage(id, c.snapshotLocation!.1)
        }
    }

    public func rmdir(parent: UInt64, name: String) throws(FSError) {
        let p = try node(parent)
        switch try place(p) {
        case .control: throw controlRefusal("rmdir .snapfs/…/\(name)")
        case .jobs(let v): try jobRmdir(in: v, name)
        case .root:
            try refuseIfControl(name, "rmdir \(name)")
            guard case .snapshot(let id)? = try child(of: p, name) else { throw .notFound }
            try deleteSnapshot(name, id, via: name)
        case .snapshot(let id, _):
            guard let c = try child(of: p, name) else { throw .notFound }
            guard case .directory(_, let path) = c.flat else { throw .notDirectory }
            let idx = try index(id)
            let visible = state.withLock { s in (idx.children[path] ?? []).contains { !s.staging.hides(id, SnapshotIndex.join(path, $0)) } }
            if visible {
                // Fail as a protected snapshot would, so `rm -rf` of the recovery point reports EBUSY throughout.
                switch store.deletability(of: snapshotName(id) ?? "") {
                case .refused(let why): throw refuse(.busy(why), snapshot: snapshotName(id), "rmdir \(path)")
                case .gone: throw vanished(id)
                case .deletable: throw .notEmpty
                }
            }
            try stage(id, path)
        }
    }

    /// `rmdir S`: the checked delete of snapshot `name` (SPEC §5), whichever path named it (`via`: the root name
    /// or `by-job/J/chk-N`).
    func deleteSnapshot(_ name: String, _ id: SnapshotID, via path: String) throws(FSError) {
        let before = state.withLock { $0.listing.generation }
        do {
            let sum = try store.delete(name, reason: path == name ? "rmdir in the mount" : "rmdir of \(path) in the mount")
            logger.info("deleted by rmdir", metadata: ["snapshot": .string(name), "path": .string(path),
                                                       "objects removed": .stringConvertible(sum.removedObjects)])
        } catch {
            // The store has already recorded a refusal; staged entries stay staged until their window ends.
            logger.warning("rmdir refused", metadata: ["snapshot": .string(name), "path": .string(path), "reason": .string(error.description)])
            throw .store(error)
        }
        state.withLock { s in s.staging.clear(id); s.indexes[id] = nil }
        // The delete has unlinked what only S held; let go of it so its space is free when `rm` returns.
        objects.closeRemoved()
        refresh(afterOwn: .deleted(name), since: before)
    }

    /// Hides an entry inside a snapshot (SPEC §4). The first one of a round checks that the snapshot may be deleted
    /// at all, so `rm -r` of a protected snapshot fails at once with nothing staged.
    func stage(_ id: SnapshotID, _ path: String) throws(FSError) {
        expireStaging()
        let name = snapshotName(id) ?? "#\(id)"
        do { try store.requireWritable("delete \(name)") } catch { throw refuse(.store(error), snapshot: name, "unlink of \(path)") }
        if state.withLock({ $0.staging.isEmpty(id) }) {
            switch store.deletability(of: name) {
            case .refused(let why):
                throw refuse(.busy("snapshot '\(name)' may not be deleted: \(why)"), snapshot: name, "unlink of \(path)")
            case .gone:
                throw vanished(id)
            case .deletable: break
            }
            logger.info("staging unlinks; rmdir of the snapshot deletes it", metadata: ["snapshot": .string(name)])
        }
        let t = now()
        state.withLock { $0.staging.stage(id, path, now: t) }
    }

    /// A snapshot that another process deleted (or moved) since this mount last looked: ENOENT, as for any entry
    /// removed under a walk, and the listing is reread so the kernel forgets the name at the next poll.
    func vanished(_ id: SnapshotID) -> FSError {
        refresh()
        return .notFound
    }

    public func rename(parent: UInt64, name: String, newParent: UInt64, newName: String, flags: UInt32) throws(FSError) {
        let p = try node(parent), np = try node(newParent)
        // A move changes a snapshot's catalog name, never the directory its `by-job/` name comes from.
        if case .jobs = try place(p) { throw viewRefusal("rename of \(Self.jobsName)/…/\(name)") }
        if case .jobs = try place(np) { throw viewRefusal("rename of \(name) into \(Self.jobsName)/") }
        switch try place(p) {
        case .control: throw controlRefusal("rename of .snapfs/…/\(name)")
        case .jobs: throw viewRefusal("rename of \(Self.jobsName)/…/\(name)")
        case .snapshot(let id, let dir): throw readOnly("rename of \(SnapshotIndex.join(dir, name))", id)
        case .root:
            try refuseIfControl(name, "rename of \(name)")
            guard case .snapshot? = try child(of: p, name) else { throw .notFound }
            switch try place(np) {
            case .control: throw controlRefusal("rename of \(name) into .snapfs")
            case .jobs: throw viewRefusal("rename of \(name) into \(Self.jobsName)/")
            case .snapshot(let tid, let dir):
                if dir.isEmpty {
                    // `mv S T` with T an existing snapshot asks to put S inside T: a snapshot is never replaced or nested.
                    throw refuse(.exists("snapshot '\(snapshotName(tid) ?? "?")' exists"), snapshot: name, "move of \(name)")
                }
                throw readOnly("move of \(name) into a snapshot", tid)
            case .root:
                if newName == name { return }
                // RENAME_EXCHANGE (2) would swap two snapshots' names; RENAME_WHITEOUT (4) makes no sense here.
                if flags & ~UInt32(1) != 0 { throw refuse(.invalid("unsupported rename flags"), snapshot: name, "move of \(name)") }
                if try child(of: .root, newName) != nil {
                    throw refuse(.exists("'\(newName)' exists: a snapshot is never replaced"), snapshot: name, "move to \(newName)")
                }
                let before = state.withLock { $0.listing.generation }
                do { try store.rename(name, to: newName) } catch { throw .store(error) }
                refresh(afterOwn: .moved(from: name, to: newName), since: before)
            }
        }
    }
}
