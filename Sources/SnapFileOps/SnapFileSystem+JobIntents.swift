import Foundation
import Logging
import SnapStore

/// What the daemon gives the mount for the writable files of `.snapfs/jobs/<job>/`, for an engine whose jobs take
/// intents (Flink). The mount only parses nothing and decides nothing: it hands the line written to the engine.
public struct JobIntentHandlers: Sendable {
    /// The job's parallelism as the JobManager gives it now.
    public var parallelism: @Sendable (_ job: String) throws(StoreError) -> Int
    /// Carries out `intent` (`rescale`, `restart`, `stop`, `upgrade`) with the arguments in `line`; returns the
    /// snapshot it took or started from, if any, and what it did.
    public var perform: @Sendable (_ job: String, _ intent: String, _ line: String) throws(StoreError) -> (snapshot: String?, message: String)

    public init(parallelism: @escaping @Sendable (_ job: String) throws(StoreError) -> Int,
                perform: @escaping @Sendable (_ job: String, _ intent: String, _ line: String) throws(StoreError) -> (snapshot: String?, message: String)) {
        self.parallelism = parallelism
        self.perform = perform
    }
}

/// `.snapfs/jobs/<job>/parallelism`, `restart`, `stop` and `upgrade` (SPEC §7, Flink).
///
/// A write is one line at the start of the file (`echo 4 > parallelism`, `echo --from NAME > restart`), carried
/// out before the write returns, as a trigger file's is: the write returns once the job runs as asked, or fails
/// (EIO when Flink failed it, EINVAL for arguments it cannot take, EBUSY while another intent runs on the job).
/// Each write is a request in `.snapfs/requests/`, whose `error` says why one failed. Reading `parallelism` asks the
/// JobManager (only the reader waits); reading the others shows the arguments they take.
extension SnapFileSystem {
    static func usage(_ f: JobControlFile) -> String {
        switch f {
        case .parallelism: return "N"
        case .restart: return "--from SNAPSHOT [--parallelism N] [--claim-mode no-claim|claim] [--jar JAR]"
        case .stop: return "[--format canonical|native]"
        case .upgrade: return "--jar JAR [--parallelism N]"
        }
    }

    /// What reading a job's control file shows.
    func jobControlContent(_ job: String, _ f: JobControlFile) throws(StoreError) -> [UInt8] {
        guard let handlers = jobIntents else { throw .notPermitted("this store's jobs take no intents") }
        if f == .parallelism { return Array("\(try handlers.parallelism(job))\n".utf8) }
        return Array("# write one line: \(Self.usage(f))\n".utf8)
    }

    /// A write to a job's control file: the intent it asks for, carried out now.
    func writeJobControl(_ job: String, _ f: JobControlFile, offset: Int64, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        let what = "write to .snapfs/jobs/\(job)/\(f.rawValue)"
        guard let handlers = jobIntents else { throw controlRefusal(what) }
        guard offset == 0 else {
            throw refuse(.invalid("an intent is one write at the start of the file, as `echo \(Self.usage(f)) > \(f.rawValue)` does; this write was at offset \(offset)"),
                         snapshot: nil, what)
        }
        guard data.count <= 4096 else { throw refuse(.invalid("an intent is one line of at most 4 KiB"), snapshot: nil, what) }
        var line = String(decoding: data.split(separator: 0x0a, maxSplits: 1, omittingEmptySubsequences: false).first ?? [], as: UTF8.self)
        if line.hasSuffix("\r") { line.removeLast() }
        let intent = f.intent
        let request: SnapshotRequest
        do { request = try store.openRequest(format: "intent \(intent)", label: nil, source: "mount: .snapfs/jobs/\(job)/\(f.rawValue) \(line)") }
        catch { throw .store(error) }
        store.updateRequest(request.seq, state: .running)
        logger.info("intent requested", metadata: ["job": .string(job), "intent": .string(intent), "arguments": .string(line)])
        defer { announceListingChanges() }
        do {
            let done = try handlers.perform(job, intent, line)
            store.updateRequest(request.seq, state: .complete, snapshot: done.snapshot)
            logger.info("intent done", metadata: ["job": .string(job), "message": .string(done.message)])
            return data.count
        } catch {
            store.updateRequest(request.seq, state: .failed, error: error.description)
            logger.error("intent failed", metadata: ["job": .string(job), "intent": .string(intent), "error": .string(error.description)])
            switch error {
            case .snapshotFailed, .operationFailed: throw .io(error.description)
            default: throw .store(error)
            }
        }
    }
}
