import Foundation
import Logging
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Trigger files (SPEC §6): a label checked as it is written, the snapshot taken when the writer closes, or as soon
/// as the first line is complete. The early start is for shells: bash's `echo label > trigger` closes the file with
/// dup2, which drops close's error, so only an error from `write` reaches the script's `&&`. The close still
/// returns only after the snapshot is listed, and reports the same failure again.
extension SnapFileSystem {
    struct TriggerWrite {
        var format: TriggerFormat
        var content: [UInt8] = []
        /// Set by a write or a `touch`: the next flush takes the snapshot.
        var armed = false
        var fired = false
        var rejected = false
        /// Why the snapshot failed, reported again by every later write and close of this descriptor.
        var failure: FSError?
    }

    func armTriggers(_ f: TriggerFormat, handle: UInt64?) {
        state.withLock { s in
            for (id, h) in s.handles where handle == nil || handle == id {
                if case .trigger(var t) = h, t.format == f, !t.fired { t.armed = true; s.handles[id] = .trigger(t) }
            }
        }
    }

    /// The label a trigger's content asks for: its first line, or nil for none.
    static func label(of content: [UInt8]) -> (label: String?, complete: Bool) {
        let line = content.split(separator: 0x0a, maxSplits: 1, omittingEmptySubsequences: false).first ?? []
        var s = String(decoding: line, as: UTF8.self)
        if s.hasSuffix("\r") { s.removeLast() }
        return (s.isEmpty ? nil : s, content.contains(0x0a))
    }

    func validate(label: String) throws(FSError) {
        do { try SnapshotName.validateLabel(label) } catch { throw .invalid(error.description) }
        if (try? store.snapshot(named: label)) != nil { throw .invalid("a snapshot named '\(label)' already exists: labels are unique") }
    }

    public func write(handle: UInt64, offset: Int64, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        guard let h = state.withLock({ $0.handles[handle] }) else { throw .badHandle }
        guard case .trigger(var t) = h else {
            if case .object = h { throw readOnly("write", nil) }
            throw .badHandle
        }
        let end = Int(offset) + data.count
        guard offset >= 0, end <= 64 * 1024 else {
            throw refuse(.invalid("trigger content is at most 64 KiB: one line with an optional label"), snapshot: nil, "trigger \(t.format.rawValue)")
        }
        if t.content.count < end { t.content += [UInt8](repeating: 0, count: end - t.content.count) }
        t.content.replaceSubrange(Int(offset)..<end, with: data)
        t.armed = true
        let (label, complete) = Self.label(of: t.content)
        if complete, let label {
            do { try validate(label: label) } catch {
                t.rejected = true
                state.withLock { $0.handles[handle] = .trigger(t) }
                throw refuse(error, snapshot: nil, "trigger \(t.format.rawValue) with label '\(label)'")
            }
        }
        if complete, !t.fired {
            t.fired = true
            state.withLock { $0.handles[handle] = .trigger(t) }
            try take(t, handle: handle)
            return data.count
        }
        state.withLock { $0.handles[handle] = .trigger(t) }
        if let failure = t.failure { throw failure }
        return data.count
    }

    /// Called on every `close` of a descriptor (dup'd descriptors flush more than once). The first flush after a
    /// write or `touch` takes the snapshot unless a write already did, because the kernel returns this call's
    /// error from `close(2)`: a trigger reports 0 only once its snapshot is complete and listed, EIO if it failed.
    public func flush(handle: UInt64) throws(FSError) {
        let (job, failure) = state.withLock { s -> (TriggerWrite?, FSError?) in
            guard case .trigger(var t)? = s.handles[handle] else { return (nil, nil) }
            if t.fired || t.rejected { return (nil, t.failure) }
            guard t.armed else { return (nil, nil) }
            t.fired = true
            s.handles[handle] = .trigger(t)
            return (t, nil)
        }
        if let failure { throw failure }
        guard let job else { return }
        try take(job, handle: handle)
    }

    /// Takes the snapshot a trigger asks for; a failure is remembered on the descriptor and thrown.
    private func take(_ job: TriggerWrite, handle: UInt64) throws(FSError) {
        do {
            try takeSnapshot(job)
        } catch {
            state.withLock { s in
                if case .trigger(var t)? = s.handles[handle] { t.failure = error; s.handles[handle] = .trigger(t) }
            }
            throw error
        }
    }

    private func takeSnapshot(_ job: TriggerWrite) throws(FSError) {
        let (label, _) = Self.label(of: job.content)
        if let label { try validate(label: label) }
        logger.info("trigger", metadata: ["format": .string(job.format.rawValue), "label": .string(label ?? "-")])
        let result: Result<Snapshot, StoreError>
        do {
            result = try store.requestSnapshot(engine: engine, format: job.format, label: label, source: "trigger file \(job.format.rawValue)").1
        } catch {
            throw .invalid(error.description)
        }
        switch result {
        case .success(let s):
            logger.info("trigger complete", metadata: ["snapshot": .string(s.name)])
            refresh()
        case .failure(let e):
            logger.error("trigger failed", metadata: ["format": .string(job.format.rawValue), "error": .string(e.description)])
            throw .io(e.description)
        }
    }
}
