import Foundation
#if canImport(Glibc)
import Glibc
#endif

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

// MARK: names as the kernel has them

/// The one lossless mapping between a name's bytes (as readdir gives them and open takes them) and the `String`
/// the store, the catalog and the mount work with.
///
/// Linux names are bytes, not text: "\u{FF}\u{FE}" as bytes 0xff 0xfe is a valid file name that no UTF-8 decoder
/// accepts, and `String(decoding:as:)` turns it into U+FFFD, a name that does not exist. And Swift compares and
/// hashes `String`s under canonical equivalence, so "\u{E9}" and "e\u{301}", two different files to the kernel,
/// would be one key of every dictionary and set that holds names. So a name is its own `String` only when it is
/// valid UTF-8, in NFC, and free of U+F780…U+F7FF, which is nearly always; any other name keeps its ASCII and has
/// each other byte b written as the private-use scalar U+F700 + b (U+F780…U+F7FF). Two different names are then
/// never equal `String`s (NFC strings are equivalent only when identical, and escapes neither compose nor
/// decompose), and encoding maps every U+F780…U+F7FF back to its byte. Names are decoded with `string(kernel:)`
/// where they come from the kernel and encoded with `kernel(_:)` / `withCPath` where they go to it; nothing else
/// turns a name into bytes or back.
extension PathBytes {
    static let escapeBase: UInt32 = 0xF700
    static let escaped: ClosedRange<UInt32> = 0xF780...0xF7FF

    /// The `String` for a name, or a path, as the kernel gave it. A path is decoded name by name, so that it is
    /// the join of what its names decode to on their own (as a walk of the tree finds them).
    public static func string<C: Collection>(kernel bytes: C) -> String where C.Element == UInt8 {
        if bytes.allSatisfy({ $0 < 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
        var out = String.UnicodeScalarView()
        for (n, name) in Array(bytes).split(separator: slash, omittingEmptySubsequences: false).enumerated() {
            if n > 0 { out.append("/") }
            if let text = plainText(Array(name)) { out.append(contentsOf: text.unicodeScalars); continue }
            for byte in name { out.append(byte < 0x80 ? Unicode.Scalar(byte) : Unicode.Scalar(escapeBase + UInt32(byte))!) }
        }
        return String(out)
    }

    /// `b` as text when it is well-formed UTF-8 in NFC with no scalar of the escape range, else nil.
    private static func plainText(_ b: [UInt8]) -> String? {
        var i = 0
        while i < b.count {
            if b[i] < 0x80 { i += 1; continue }
            guard let (scalar, length) = decodeOne(b, at: i), !escaped.contains(scalar.value) else { return nil }
            i += length
        }
        let text = String(decoding: b, as: UTF8.self)
        guard text.precomposedStringWithCanonicalMapping.unicodeScalars.elementsEqual(text.unicodeScalars) else { return nil }
        return text
    }

    /// The bytes the kernel must see for `name`: the inverse of `string(kernel:)`.
    public static func kernel(_ name: String) -> [UInt8] {
        // U+F780…U+F7FF encode as EF 9E xx / EF 9F xx in UTF-8: without an 0xEF byte there is nothing to undo.
        if !name.utf8.contains(0xEF) { return Array(name.utf8) }
        var out: [UInt8] = []
        out.reserveCapacity(name.utf8.count)
        for s in name.unicodeScalars {
            if escaped.contains(s.value) { out.append(UInt8(s.value - escapeBase)) } else { out.append(contentsOf: String(s).utf8) }
        }
        return out
    }

    /// Whether `name` stands for bytes that are not its own UTF-8: JSON and text must then also say the bytes.
    public static func isEscaped(_ name: String) -> Bool {
        name.utf8.contains(0xEF) && name.unicodeScalars.contains { escaped.contains($0.value) }
    }

    /// `name` for messages and listings, one line and unambiguous: bytes that are not UTF-8 and control characters
    /// as `\xFF`, a backslash as `\\`, everything else as it is.
    public static func printable(_ name: String) -> String {
        guard name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "\\") }) || isEscaped(name) else { return name }
        var out = ""
        for s in name.unicodeScalars {
            if escaped.contains(s.value) {
                out += "\\x" + String(s.value - escapeBase, radix: 16, uppercase: true)
            } else if s.value < 0x20 || s.value == 0x7F {
                out += "\\x" + (s.value < 0x10 ? "0" : "") + String(s.value, radix: 16, uppercase: true)
            } else if s == "\\" {
                out += "\\\\"
            } else {
                out.unicodeScalars.append(s)
            }
        }
        return out
    }

    /// The base64 of `name`'s bytes when they are not its UTF-8 (for JSON, beside the escaped `String`), else nil.
    public static func base64IfEscaped(_ name: String?) -> String? {
        guard let name, isEscaped(name) else { return nil }
        return Data(kernel(name)).base64EncodedString()
    }

    /// Calls `body` with `name`'s kernel bytes as a NUL-terminated C string.
    public static func withCPath<R>(_ name: String, _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        if !name.utf8.contains(0xEF) { return try name.withCString(body) }
        var bytes = kernel(name)
        bytes.append(0)
        return try bytes.withUnsafeBufferPointer { try $0.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) } }
    }

    /// The `String` for a NUL-terminated name from the kernel (a FUSE request's name).
    public static func string(cName: UnsafePointer<CChar>) -> String {
        string(kernel: UnsafeRawBufferPointer(start: cName, count: strlen(cName)))
    }

    /// One well-formed UTF-8 sequence at `i` (no overlongs, surrogates or values above U+10FFFF), or nil.
    private static func decodeOne(_ b: [UInt8], at i: Int) -> (Unicode.Scalar, Int)? {
        let lead = b[i]
        let n: Int, minimum: UInt32
        var v: UInt32
        switch lead {
        case 0xC2...0xDF: n = 2; v = UInt32(lead & 0x1F); minimum = 0x80
        case 0xE0...0xEF: n = 3; v = UInt32(lead & 0x0F); minimum = 0x800
        case 0xF0...0xF4: n = 4; v = UInt32(lead & 0x07); minimum = 0x10000
        default: return nil
        }
        guard i + n <= b.count else { return nil }
        for k in 1..<n {
            let c = b[i + k]
            guard c & 0xC0 == 0x80 else { return nil }
            v = v << 6 | UInt32(c & 0x3F)
        }
        guard v >= minimum, v <= 0x10FFFF, let s = Unicode.Scalar(v) else { return nil }
        return (s, n)
    }
}
