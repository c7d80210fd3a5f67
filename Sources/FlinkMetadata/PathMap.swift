/// Rewrites the locations recorded in `_metadata` to where the files are now.
///
/// Flink records absolute handles with the path they had when written (e.g.
/// `file:/srv/flink-store/…`). Stores get copied, mounted elsewhere or restored from backup, so a
/// reader must translate those prefixes; doing it here, after Flink-style normalization, means
/// `file:/x`, `file:///x` and `/x` all match the same rule.
public struct PathMap: Sendable {
    private struct Rule: Sendable {
        let from: String
        let to: String
    }

    /// Longest `from` first, so the most specific rule wins.
    private let rules: [Rule]

    /// - Parameter rules: prefix rewrites such as `("file:/srv/flink-store", "/tmp/x/store-1")`.
    ///   Prefixes match whole path components only: `/srv/a` does not rewrite `/srv/ab/…`.
    public init(_ rules: [(from: String, to: String)]) {
        self.rules =
            rules
            .map { Rule(from: FlinkPath.localForm($0.from), to: FlinkPath.localForm($0.to)) }
            .sorted { $0.from.count > $1.from.count }
    }

    /// No rewriting: paths are used where Flink wrote them.
    public static let identity = PathMap([])

    /// The local form of `uri` (scheme stripped for `file:` URIs), with the longest matching rule
    /// applied. Non-local URIs (`s3://…`) that no rule rewrites come back unchanged, so callers
    /// can tell them apart: they do not start with `/`.
    public func map(_ uri: String) -> String {
        let path = FlinkPath.localForm(uri)
        for rule in rules {
            guard let rest = FlinkPath.remainder(of: path, under: rule.from) else { continue }
            return FlinkPath.localForm(rest.isEmpty ? rule.to : FlinkPath.join(rule.to, rest))
        }
        return path
    }
}

/// Flink's `org.apache.flink.core.fs.Path` rules, reduced to what local resolution needs.
enum FlinkPath {
    /// Turns a local `file:` URI into a plain absolute path, normalized the way `new Path(String)`
    /// normalizes (backslashes to slashes, repeated slashes collapsed, trailing slash dropped,
    /// `.`/`..` segments resolved). Other URIs and relative strings are returned unchanged.
    static func localForm(_ uri: String) -> String {
        var text = Substring(uri)
        if text.prefix(5).lowercased() == "file:" {
            text = text.dropFirst(5)
            if text.hasPrefix("//") {
                // file://authority/path: only an empty authority or localhost is this machine.
                let afterSlashes = text.dropFirst(2)
                let authority = afterSlashes.prefix { $0 != "/" }
                guard authority.isEmpty || authority.lowercased() == "localhost" else { return uri }
                text = afterSlashes.dropFirst(authority.count)
            }
            guard text.hasPrefix("/") || text.hasPrefix("\\") else { return uri }
        } else if !(text.hasPrefix("/")) {
            return uri
        }
        return normalize(String(text))
    }

    /// Normalizes an absolute local path. Leading `..` segments stay at the root, which is where
    /// the operating system would resolve them anyway.
    /// Cut at the byte, not by Character: "/" or "\\" followed by a combining mark is one Character, and a `..`
    /// before it would otherwise go unseen.
    static func normalize(_ path: String) -> String {
        var segments: [String] = []
        for bytes in path.utf8.split(whereSeparator: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "\\") }) {
            let segment = String(decoding: bytes, as: UTF8.self)
            switch segment {
            case ".": continue
            case "..": _ = segments.popLast()
            default: segments.append(segment)
            }
        }
        return "/" + segments.joined(separator: "/")
    }

    /// `new Path(directory, relativePath)`: a leading slash on the child does not make it absolute,
    /// and the result is normalized, so `../x` can leave the directory exactly as it would in Flink.
    static func resolve(_ relativePath: String, against directory: String) -> String {
        let base = localForm(directory)
        guard base.hasPrefix("/") else {
            // A non-local directory: keep Flink's textual join so the caller still sees the URI.
            return base.hasSuffix("/") ? base + relativePath : base + "/" + relativePath
        }
        return normalize(base + "/" + relativePath)
    }

    /// The part of `path` below `prefix` ("" when equal), or `nil` if `prefix` is not a whole-component prefix.
    static func remainder(of path: String, under prefix: String) -> String? {
        guard !prefix.isEmpty, path.hasPrefix(prefix) else { return nil }
        let rest = path.dropFirst(prefix.count)
        if rest.isEmpty { return "" }
        if prefix.hasSuffix("/") { return String(rest) }
        guard rest.hasPrefix("/") else { return nil }
        return String(rest.dropFirst())
    }

    static func join(_ base: String, _ rest: String) -> String {
        base.hasSuffix("/") ? base + rest : base + "/" + rest
    }
}

