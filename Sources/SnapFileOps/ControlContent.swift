import Foundation
import SnapStore

/// The generated files of `.snapfs/`. Generated whole when opened and served from the handle, so a reader sees one
/// consistent document even while the catalog changes.
enum ControlContent {
    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return e
    }

    static func json<T: Encodable>(_ v: T) -> [UInt8] {
        guard let d = try? encoder().encode(v) else { return Array("{}\n".utf8) }
        return Array(d) + [0x0a]
    }

    struct Status: Encodable {
        var engine: String
        var defaultFormat: String
        var job: JobStatus
        var recoveryPoint: String?
        var snapshots: Int
        var checkpoints: Int
        var userSnapshots: Int
        var retain: String?
        var checkpointInterval: String?
        var requestsInFlight: [SnapshotRequest]
        var stagedEntries: [String: Int]
        var stageWindowSeconds: Double
        var generation: Int64
    }

    static func generate(_ file: ControlFile, fs: SnapFileSystem) throws(FSError) -> [UInt8] {
        let store = fs.store
        do {
            switch file {
            case .formats:
                return json(FormatMatrix.rows)
            case .status:
                let snaps = try store.snapshots()
                let job = store.jobStatus()
                let names = Dictionary(uniqueKeysWithValues: snaps.map { ($0.id, $0.name) })
                var staged: [String: Int] = [:]
                for (id, n) in fs.stagedCounts() { staged[names[id] ?? "#\(id)"] = n }
                let status = Status(
                    engine: fs.engine.name, defaultFormat: fs.engine.defaultFormat.rawValue, job: job,
                    recoveryPoint: job.running ? job.recoveryPoint : nil,
                    snapshots: snaps.count, checkpoints: snaps.filter { $0.kind == .checkpoint }.count,
                    userSnapshots: snaps.filter { $0.kind == .user }.count,
                    retain: try store.meta("retain"), checkpointInterval: try store.meta("checkpoint_interval"),
                    requestsInFlight: try store.requests().filter { $0.state == .pending || $0.state == .running },
                    stagedEntries: staged, stageWindowSeconds: fs.options.stageWindow, generation: store.generation())
                return json(status)
            case .events:
                let enc = JSONEncoder()
                enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                var out: [UInt8] = []
                for e in try store.events() {
                    if let d = try? enc.encode(e) { out += Array(d); out.append(0x0a) }
                }
                return out
            case .request(let seq):
                guard let r = store.request(seq) else { throw FSError.notFound }
                return json(r)
            case .report(let name):
                return json(try store.report(name))
            }
        } catch let e as FSError {
            throw e
        } catch let e as StoreError {
            if case .noSuchSnapshot = e { throw .notFound }
            throw .store(e)
        } catch {
            throw .io("\(error)")
        }
    }
}
