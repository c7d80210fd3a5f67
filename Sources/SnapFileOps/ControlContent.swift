import Foundation
import SnapStore

/// The generated files of `.snapfs/`. Generated whole at each `stat` (which every read starts with) and served from
/// that copy (`GeneratedContent`), so a read sees one consistent document even while the catalog changes.
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

    /// `snapfs show --json` plus how the mount shows the snapshot's directory (`mountView`), as one flat object.
    struct MountedReport: Encodable {
        struct View: Encodable {
            /// `relocatable` (an engine's layout, e.g. Flink's relocatable savepoint layout) or `store-relative`.
            var layout: String
            var detail: String?
            init(_ v: SnapshotView) { layout = v.layout; detail = v.detail }
        }
        var report: SnapshotReport
        var view: View

        enum Key: String, CodingKey { case mountView }

        func encode(to encoder: any Encoder) throws {
            try report.encode(to: encoder)
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(view, forKey: .mountView)
        }
    }

    /// The store's status plus what only the mount knows, as one flat JSON object.
    struct Status: Encodable {
        var store: StoreStatus
        var defaultFormat: String
        var stagedEntries: [String: Int]
        var stageWindowSeconds: Double
        /// Nodes the mount holds for the kernel (see `InodeTable`): falls back when the kernel forgets.
        var nodes: Int
        /// What the object source counted (requests, bytes fetched, cache use), when it counts anything.
        var objectSource: [String: Int64]

        private enum Keys: String, CodingKey { case defaultFormat, stagedEntries, stageWindowSeconds, nodes, objectSource }

        func encode(to encoder: any Encoder) throws {
            try store.encode(to: encoder)
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(defaultFormat, forKey: .defaultFormat)
            try c.encode(stagedEntries, forKey: .stagedEntries)
            try c.encode(stageWindowSeconds, forKey: .stageWindowSeconds)
            try c.encode(nodes, forKey: .nodes)
            if !objectSource.isEmpty { try c.encode(objectSource, forKey: .objectSource) }
        }
    }

    static func generate(_ file: ControlFile, fs: SnapFileSystem) throws(FSError) -> [UInt8] {
        let store = fs.store
        do {
            switch file {
            case .formats:
                return json(FormatMatrix.rows)
            case .status:
                var staged: [String: Int] = [:]
                for (id, n) in fs.stagedCounts() { staged[fs.snapshotName(id) ?? "#\(id)"] = n }
                return json(Status(store: try store.status(), defaultFormat: fs.engine.defaultFormat.rawValue,
                                   stagedEntries: staged, stageWindowSeconds: fs.options.stageWindow,
                                   nodes: fs.nodeCount, objectSource: fs.objects.counters))
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
                let report = try store.report(name)
                return json(MountedReport(report: report, view: MountedReport.View(fs.viewSummary(report.id))))
            case .jobStatus(let job):
                guard let status = fs.jobStatus else { throw FSError.notFound }
                return try status(job)
            case .jobControl(let job, let f):
                return try fs.jobControlContent(job, f)
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
