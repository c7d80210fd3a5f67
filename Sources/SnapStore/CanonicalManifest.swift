import Foundation

/// The self-description of a canonical snapshot: enough to check and restore it with no SnapFS installed
/// (`sha256sum -c SHA256SUMS` beside `files/`), and for `snapfs import` to bring it into any store.
public struct CanonicalManifest: Codable, Sendable {
    public static let fileName = "MANIFEST.json"
    public static let sumsFileName = "SHA256SUMS"
    public static let filesDirectory = "files"
    public static let formatTag = "snapfs-canonical-v1"

    public struct Entry: Codable, Sendable {
        /// The path as a JSON string. A name whose bytes are not UTF-8 in NFC is written with `PathBytes`' escapes
        /// here, and its exact bytes are `pathBase64`, which is what `import` uses.
        public var path: String
        public var type: EntryType
        public var size: Int64
        public var mode: UInt32
        public var mtimeNanos: Int64
        public var sha256: String?
        public var target: String?
        public var pathBase64: String?
        public var targetBase64: String?
        /// A device node's device number (`st_rdev`); its `mode` says character or block.
        public var rdev: UInt64?
        /// The owner as numbers (as `tar --numeric-owner` keeps it); absent when the snapshot did not record one.
        public var uid: UInt32?
        public var gid: UInt32?
        /// Extended attributes by name, values in base64; POSIX ACLs are `system.posix_acl_access` and
        /// `system.posix_acl_default` in the kernel's binary form.
        public var xattrs: ExtendedAttributes?
        /// For a file that is a hard link of an entry listed earlier: that entry's path. `files/` holds the two as
        /// one file with two names, as the state did.
        public var hardLinkTo: String?

        public init(path: String, type: EntryType, size: Int64, mode: UInt32, mtimeNanos: Int64, sha256: String? = nil, target: String? = nil,
                    rdev: UInt64? = nil, uid: UInt32? = nil, gid: UInt32? = nil, xattrs: ExtendedAttributes? = nil) {
            self.path = path; self.type = type; self.size = size; self.mode = mode; self.mtimeNanos = mtimeNanos
            self.sha256 = sha256; self.target = target; self.rdev = rdev
            self.uid = uid; self.gid = gid; self.xattrs = (xattrs?.isEmpty ?? true) ? nil : xattrs
            pathBase64 = PathBytes.base64IfEscaped(path)
            targetBase64 = PathBytes.base64IfEscaped(target)
        }

        /// Takes the exact bytes over the JSON string where both are given.
        mutating func resolveBytes(in file: String) throws(StoreError) {
            if let b = pathBase64 {
                guard let d = Data(base64Encoded: b) else { throw .badInput("\(file): entry '\(path)' has an invalid pathBase64") }
                path = PathBytes.string(kernel: d)
            }
            if let b = targetBase64 {
                guard let d = Data(base64Encoded: b) else { throw .badInput("\(file): entry '\(path)' has an invalid targetBase64") }
                target = PathBytes.string(kernel: d)
            }
        }
    }

    public var format: String
    public var name: String
    public var kind: SnapshotKind
    public var engine: String
    public var job: String?
    public var createdAt: Double
    public var entries: [Entry]
    /// What the snapshot does not hold of the state it was taken from (sockets), and why.
    public var notHeld: [Omission]?
    /// The state's root directory: its mode, owner, time and extended attributes (`files/` itself on export).
    public var root: RootOwnership?

    /// Marks every later name of one stored object as a hard link of its first name.
    mutating func markHardLinks(objects: [ObjectID?]) {
        var first: [ObjectID: String] = [:]
        for (i, o) in objects.enumerated() {
            guard let o, entries[i].type == .file else { continue }
            if let f = first[o] { entries[i].hardLinkTo = f } else { first[o] = entries[i].path }
        }
    }

    /// What the manifest says of each entry's metadata, by path, for a source reading `files/`.
    public var recorded: [String: RecordedMetadata] {
        var m: [String: RecordedMetadata] = [:]
        for e in entries { m[e.path] = RecordedMetadata(mode: e.mode, uid: e.uid, gid: e.gid, mtimeNanos: e.mtimeNanos, xattrs: e.xattrs,
                                                hardLinkTo: e.hardLinkTo) }
        return m
    }

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

    /// `SHA256SUMS` as GNU `sha256sum` writes it, so `sha256sum -c` checks the tree: names are their raw bytes, and
    /// a name holding a backslash, a newline or a carriage return is written escaped (`\\`, `\n`, `\r`) on a line
    /// that starts with a backslash.
    public func sha256sums() -> Data {
        var out = Data()
        for e in entries where e.type == .file {
            guard let sum = e.sha256 else { continue }
            let name = Array((Self.filesDirectory + "/").utf8) + PathBytes.kernel(e.path)
            let special: Set<UInt8> = [UInt8(ascii: "\\"), UInt8(ascii: "\n"), UInt8(ascii: "\r")]
            let escape = name.contains { special.contains($0) }
            if escape { out.append(UInt8(ascii: "\\")) }
            out.append(contentsOf: Array(sum.utf8) + Array("  ".utf8))
            for b in name {
                switch b {
                case UInt8(ascii: "\\") where escape: out.append(contentsOf: Array("\\\\".utf8))
                case UInt8(ascii: "\n"): out.append(contentsOf: Array("\\n".utf8))
                case UInt8(ascii: "\r"): out.append(contentsOf: Array("\\r".utf8))
                default: out.append(b)
                }
            }
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    /// Reads and checks a manifest; the error says which field of which entry is wrong.
    public static func load(from dir: URL) throws(StoreError) -> CanonicalManifest {
        let url = dir.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw .badInput("\(dir.path) is not a canonical snapshot: no \(fileName)")
        }
        var m: CanonicalManifest
        do { m = try JSONDecoder().decode(CanonicalManifest.self, from: data) }
        catch { throw .badInput("\(url.path) is not a valid manifest: \(error)") }
        for i in m.entries.indices { try m.entries[i].resolveBytes(in: url.path) }
        guard m.format == formatTag else { throw .badInput("\(url.path): format '\(m.format)' is not \(formatTag)") }
        var seen = Set<String>()
        for e in m.entries {
            guard Store.isSafeRelativePath(e.path) else { throw .badInput("\(url.path): entry path '\(PathBytes.printable(e.path))' leaves the snapshot") }
            guard seen.insert(e.path).inserted else { throw .badInput("\(url.path): entry '\(PathBytes.printable(e.path))' appears twice") }
            if e.type == .file {
                guard let s = e.sha256, s.count == 64, s.allSatisfy(\.isHexDigit) else {
                    throw .badInput("\(url.path): file '\(PathBytes.printable(e.path))' has no valid sha256")
                }
            }
        }
        return m
    }
}
