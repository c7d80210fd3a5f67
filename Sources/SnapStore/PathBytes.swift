/// Store paths cut at the byte "/", as the kernel cuts them.
///
/// Swift splits and searches a `String` by Character, and "/" followed by a combining mark (U+0301, say) is one
/// Character that is not "/". Cut that way, "../\u{301}x" is a single harmless component instead of ".." and
/// "\u{301}x", and a file named "\u{301}x" in directory "d" lands at the top as "d/\u{301}x".
public enum PathBytes {
    private static let slash = UInt8(ascii: "/")

    /// The components of `path`; with `omittingEmpty: false`, "a//b" and "a/" keep their empty ones.
    public static func components(_ path: String, omittingEmpty: Bool = true) -> [String] {
        path.utf8.split(separator: slash, omittingEmptySubsequences: omittingEmpty).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The part before the last "/" and the part after it; ("", path) when there is no "/".
    public static func split(_ path: String) -> (parent: String, name: String) {
        let bytes = path.utf8
        guard let i = bytes.lastIndex(of: slash) else { return ("", path) }
        return (String(decoding: bytes[..<i], as: UTF8.self), String(decoding: bytes[bytes.index(after: i)...], as: UTF8.self))
    }

    /// What precedes the last "/", or nil when there is none: the next step of a walk up to the top.
    public static func parent(_ path: String) -> String? {
        let bytes = path.utf8
        guard let i = bytes.lastIndex(of: slash) else { return nil }
        return String(decoding: bytes[..<i], as: UTF8.self)
    }

    /// `path` relative to `directory` when it lies below it, compared byte for byte. `hasPrefix` compares Characters
    /// under canonical equivalence, so a path under "/stor\u{E9}" would pass for one under "/store\u{301}": a
    /// different directory to the kernel.
    public static func relative(_ path: String, under directory: String) -> String? {
        var dir = Array(directory.utf8)
        while dir.last == slash { dir.removeLast() }
        let p = Array(path.utf8)
        guard p.count > dir.count + 1, p.starts(with: dir), p[dir.count] == slash else { return nil }
        return String(decoding: p[(dir.count + 1)...], as: UTF8.self)
    }

    /// The first component ("" for a path that starts with "/").
    public static func first(_ path: String) -> String {
        let bytes = path.utf8
        guard let i = bytes.firstIndex(of: slash) else { return path }
        return String(decoding: bytes[..<i], as: UTF8.self)
    }
}
