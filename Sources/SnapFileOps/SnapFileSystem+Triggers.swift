import Foundation
import Logging
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Trigger files (SPEC §6). A request is one write at the start of the file, or a `touch`; the snapshot is taken
/// before that write (or `touch`'s time update) returns, which reports EIO if it failed.
///
/// The kernel is told to skip OPEN, FLUSH and RELEASE on this mount, because each would cost every read of a
/// snapshot file a round trip; so the mount never sees a trigger file closed, and the write itself is the
/// request. For every shell and tool that writes its label in one `write` (`echo`, `printf`, `cat`, buffered
/// writers) this is what the SPEC promises at close: when the command returns, the snapshot is complete and
/// listed, or the command failed. Bash's `echo label > trigger` even needs it, since bash closes the file through
/// dup2, which drops close's error.
extension SnapFileSystem {
    /// Largest trigger content accepted: one line with an optional label, and room for a note after it.
    static let triggerLimit = 64 * 1024

    /// The label a trigger's content asks for: its first line, or nil for none.
    static func label(of content: UnsafeRawBufferPointer) -> String? {
        let line = content.split(separator: 0x0a, maxSplits: 1, omittingEmptySubsequences: false).first ?? []
        var s = String(decoding: line, as: UTF8.self)
        if s.hasSuffix("\r") { s.removeLast() }
        return s.isEmpty ? nil : s
    }

    func validate(label: String) throws(FSError) {
        do { try SnapshotName.validateLabel(label) } catch { throw .invalid(error.description) }
        if (try? store.snapshot(named: label)) != nil { throw .invalid("a snapshot named '\(label)' already exists: labels are unique") }
    }

    public func write(_ ino: UInt64, offset: Int64, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        switch try node(ino) {
        case .trigger(let f):
            let what = "trigger \(f.rawValue)"
            guard offset == 0 else {
                // A label split over several writes cannot be told from two requests: refuse rather than guess.
                throw refuse(.invalid("a trigger request is one write at the start of the file, as `echo LABEL > trigger` does; this write was at offset \(offset)"),
                             snapshot: nil, what)
            }
            guard data.count <= Self.triggerLimit else {
                throw refuse(.invalid("trigger content is at most 64 KiB: one line with an optional label"), snapshot: nil, what)
            }
            let label = Self.label(of: data)
            if let label {
                do { try validate(label: label) } catch { throw refuse(error, snapshot: nil, "\(what) with label '\(label)'") }
            }
            try takeSnapshot(f, label: label)
            return data.count
        case .file(let id, let e):
            throw readOnly("write to \(e.path)", id)
        case .controlFile(.jobControl(let job, let f)):
            return try writeJobControl(job, f, offset: offset, data: data)
        case .controlFile:
            throw controlRefusal("write to a control file")
        case .root, .snapshot, .directory, .controlDir, .jobs, .job, .jobView:
            throw .isDirectory
        case .latest, .symlink, .jobLatest:
            throw .invalid("cannot write a symbolic link")
        }
    }

    /// Takes the snapshot a trigger asks for and tells the kernel the root changed, before the caller's write or
    /// `touch` returns: `echo x > trigger && ls MOUNT` lists it.
    func takeSnapshot(_ format: TriggerFormat, label: String?) throws(FSError) {
        logger.info("trigger", metadata: ["format": .string(format.rawValue), "label": .string(label ?? "-")])
        defer { announceListingChanges() }
        let result: Result<Snapshot, StoreError>
        do {
            result = try store.requestSnapshot(engine: engine, format: format, label: label, source: "trigger file \(format.rawValue)").1
        } catch {
            // The request could not even be recorded: a bad label (EINVAL), a full disk (ENOSPC), a read-only store.
            logger.error("trigger refused", metadata: ["format": .string(format.rawValue), "error": .string(error.description)])
            throw .store(error)
        }
        switch result {
        case .success(let s):
            logger.info("trigger complete", metadata: ["snapshot": .string(s.name)])
        case .failure(let e):
            logger.error("trigger failed", metadata: ["format": .string(format.rawValue), "error": .string(e.description)])
            // Another request took the label between this write's check and its snapshot: the same bad label
            // (SPEC §6: labels are unique) as if it had been taken before.
            if case .alreadyExists = e { throw refuse(.invalid("\(e.description): labels are unique"), snapshot: nil, "trigger \(format.rawValue)") }
            throw Self.snapshotFailure(e)
        }
    }

    /// The errno a failed snapshot reports: EIO (SPEC §6) unless the cause has a more useful one of its own, as a
    /// full disk (ENOSPC), a read-only store (EROFS), a bad label (EINVAL) or a locked catalog (EBUSY) do.
    static func snapshotFailure(_ e: StoreError) -> FSError {
        switch e {
        case .io(_, let code, _) where code == ENOSPC || code == EDQUOT: return .store(e)
        case .readOnly, .alreadyExists, .badInput, .locked: return .store(e)
        default: return .io(e.description)
        }
    }
}
