import Foundation

/// The self-description of a canonical snapshot: enough to check and restore it with no SnapFS installed
/// (`sha256sum -c SHA256SUMS` beside `files/`), and for `snapfs import` to bring it into any store.
public struct CanonicalManifest: Codable, Sendable {
    public static let fileName = "MANIFEST.json"
    public static let sumsFileName = "SHA256SUMS"
    public static let filesDirectory = "files"
    public static let formatTag = "snapfs-canonical-v1"

    public struct Entry: Codable, Sendable {
        public var path: String
        public var type: EntryType
        public var size: Int64
        public var mode: UInt32
        public var mtimeNanos: Int64
        public var sha256: String?
        public var target: String?
    }

    public var format: String
    public var name: String
    public var kind: SnapshotKind
    public var engine: String
    public var job: String?
    public var createdAt: Double
    public var entries: [Entry]

    public init(snapshot: Snapshot, entries: [Entry]) {
        format = Self.formatTag
        name = snapshot.name; kind = snapshot.kind; engine = snapshot.engine; job = snapshot.job
        createdAt = snapshot.createdAt
        self.entries = entries
    }

    public func encoded() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try enc.encode(self)
    }

    public func sha256sums() -> String {
        entries.filter { $0.type == .file && $0.sha256 != nil }.map { "\($0.sha256!)  \(Self.filesDirectory)/\($0.path)\n" }.joined()
    }

    /// Reads and checks a manifest; the error says which field of which entry is wrong.
    public static func load(from dir: URL) throws(StoreError) -> CanonicalManifest {
        let url = dir.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw .badInput("\(dir.path) is not a canonical snapshot: no \(fileName)")
        }
        let m: CanonicalManifest
        do { m = try JSONDecoder().decode(CanonicalManifest.self, from: data) }
        catch { throw .badInput("\(url.path) is not a valid manifest: \(error)") }
        guard m.format == formatTag else { throw .badInput("\(url.path): format '\(m.format)' is not \(formatTag)") }
        var seen = Set<String>()
        for e in m.entries {
            guard Store.isSafeRelativePath(e.path) else { throw .badInput("\(url.path): entry path '\(e.path)' leaves the snapshot") }
            guard seen.insert(e.path).inserted else { throw .badInput("\(url.path): entry '\(e.path)' appears twice") }
            if e.type == .file {
                guard let s = e.sha256, s.count == 64, s.allSatisfy(\.isHexDigit) else {
                    throw .badInput("\(url.path): file '\(e.path)' has no valid sha256")
                }
            }
        }
        return m
    }
}
