import Foundation

/// An entry's extended attributes as its source had them: every namespace the snapshot's reader could read
/// (`user.*`, and as root `trusted.*` and `security.*`), and POSIX ACLs as the kernel hands them out, the bytes of
/// `system.posix_acl_access` and `system.posix_acl_default`. Kept sorted by name, so two reads of the same file
/// compare equal and the catalog holds one form.
public struct ExtendedAttributes: Sendable, Hashable {
    public private(set) var items: [(name: String, value: [UInt8])]

    public init(_ items: [(name: String, value: [UInt8])] = []) {
        self.items = items.sorted { PathBytes.kernel($0.name).lexicographicallyPrecedes(PathBytes.kernel($1.name)) }
    }

    public var isEmpty: Bool { items.isEmpty }
    public var names: [String] { items.map(\.name) }

    public func value(_ name: String) -> [UInt8]? { items.first { $0.name == name }?.value }

    public static func == (a: ExtendedAttributes, b: ExtendedAttributes) -> Bool {
        a.items.count == b.items.count && zip(a.items, b.items).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public func hash(into h: inout Hasher) {
        for i in items { h.combine(i.name); h.combine(i.value) }
    }

    // MARK: the catalog's form

    /// One blob: per attribute, the name's length (4 bytes, little-endian), its bytes, the value's length, its bytes.
    public var blob: Data {
        var d = Data()
        func put(_ bytes: [UInt8]) {
            var n = UInt32(bytes.count).littleEndian
            withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
            d.append(contentsOf: bytes)
        }
        for i in items { put(PathBytes.kernel(i.name)); put(i.value) }
        return d
    }

    /// Reads `blob`'s form back; nil when the bytes are not one.
    public init?(blob: Data) {
        let bytes = [UInt8](blob)
        var at = 0
        func take() -> [UInt8]? {
            guard at + 4 <= bytes.count else { return nil }
            let n = Int(UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24)
            at += 4
            guard at + n <= bytes.count else { return nil }
            defer { at += n }
            return Array(bytes[at..<(at + n)])
        }
        var items: [(name: String, value: [UInt8])] = []
        while at < bytes.count {
            guard let name = take(), let value = take() else { return nil }
            items.append((PathBytes.string(kernel: name), value))
        }
        self.init(items)
    }
}

/// In JSON (a canonical manifest): an object from name to the value in base64. Names that are not UTF-8 are written
/// with `PathBytes`' escapes, as paths are.
extension ExtendedAttributes: Codable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let map = try c.decode([String: String].self)
        var items: [(name: String, value: [UInt8])] = []
        for (k, v) in map {
            guard let d = Data(base64Encoded: v) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "extended attribute '\(k)' has a value that is not base64")
            }
            items.append((k, [UInt8](d)))
        }
        self.init(items)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        var map: [String: String] = [:]
        for i in items { map[i.name] = Data(i.value).base64EncodedString() }
        try c.encode(map)
    }
}

#if canImport(Glibc)
import Glibc

/// The xattr system calls, which Swift's Glibc module does not import (`sys/xattr.h` is not in it): looked up once
/// in the C library by name.
private enum XattrCalls {
    typealias List = @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int) -> Int
    typealias Get = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?, Int) -> Int
    typealias PathSet = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeRawPointer?, Int, Int32) -> Int32
    typealias FDSet = @convention(c) (Int32, UnsafePointer<CChar>?, UnsafeRawPointer?, Int, Int32) -> Int32

    private static func symbol<T>(_ name: String, _: T.Type) -> T {
        guard let p = dlsym(nil, name) else { fatalError("the C library has no \(name)") }
        return unsafeBitCast(p, to: T.self)
    }

    nonisolated(unsafe) static let llistxattr = symbol("llistxattr", List.self)
    nonisolated(unsafe) static let lgetxattr = symbol("lgetxattr", Get.self)
    nonisolated(unsafe) static let lsetxattr = symbol("lsetxattr", PathSet.self)
    nonisolated(unsafe) static let fsetxattr = symbol("fsetxattr", FDSet.self)
}

private let llistxattr = XattrCalls.llistxattr
private let lgetxattr = XattrCalls.lgetxattr
private let lsetxattr = XattrCalls.lsetxattr
private let fsetxattr = XattrCalls.fsetxattr

extension ExtendedAttributes {
    /// The attributes of `name` in the open directory `dirFD`, not following a symlink: every one the caller may
    /// read (`trusted.*` only as root). Reached through `/proc/self/fd`, so the path's depth does not matter. Nil when
    /// it has none or the file system keeps none; one `llistxattr` for a file without any, which is most files.
    public static func read(in dirFD: Int32, _ name: String) -> ExtendedAttributes? {
        read(path: Array("/proc/self/fd/\(dirFD)/".utf8) + PathBytes.kernel(name))
    }

    /// The attributes of a path (not following a final symlink).
    public static func read(path: String) -> ExtendedAttributes? { read(path: Array(path.utf8)) }

    private static func read(path bytes: [UInt8]) -> ExtendedAttributes? {
        let cpath = bytes.map { CChar(bitPattern: $0) } + [0]
        var list = [CChar](repeating: 0, count: 1024)
        var n = llistxattr(cpath, &list, list.count)
        if n < 0 && errno == ERANGE {
            let need = llistxattr(cpath, nil, 0)
            guard need > 0 else { return nil }
            list = [CChar](repeating: 0, count: need)
            n = llistxattr(cpath, &list, list.count)
        }
        guard n > 0 else { return nil }
        var items: [(name: String, value: [UInt8])] = []
        var start = 0
        for i in 0..<n where list[i] == 0 {
            let cname = Array(list[start...i])
            let nameBytes = list[start..<i].map { UInt8(bitPattern: $0) }
            start = i + 1
            guard !nameBytes.isEmpty else { continue }
            var value = [UInt8](repeating: 0, count: 256)
            var got = lgetxattr(cpath, cname, &value, value.count)
            if got < 0 && errno == ERANGE {
                let need = lgetxattr(cpath, cname, nil, 0)
                guard need >= 0 else { continue }
                value = [UInt8](repeating: 0, count: need)
                got = lgetxattr(cpath, cname, &value, value.count)
            }
            // Gone meanwhile, or not readable by this user: what the user could not read is not theirs to keep.
            guard got >= 0 else { continue }
            items.append((PathBytes.string(kernel: nameBytes), Array(value[0..<got])))
        }
        return items.isEmpty ? nil : ExtendedAttributes(items)
    }

    /// Gives the attributes to an open file. Returns 0 or the first errno; a name the file system or the caller may not
    /// set (`trusted.*` as non-root) fails with it.
    public func apply(fd: Int32) -> Int32 {
        for i in items {
            let name = PathBytes.kernel(i.name).map { CChar(bitPattern: $0) } + [0]
            if i.value.withUnsafeBytes({ fsetxattr(fd, name, $0.baseAddress, $0.count, 0) }) != 0 { return errno }
        }
        return 0
    }

    /// Gives the attributes to `name` in the open directory `dirFD`, not following a symlink.
    public func apply(in dirFD: Int32, _ name: UnsafePointer<CChar>) -> Int32 {
        let tail: [CChar] = Array(UnsafeBufferPointer<CChar>(start: name, count: Int(strlen(name))))
        let path: [CChar] = Array("/proc/self/fd/\(dirFD)/".utf8).map { CChar(bitPattern: $0) } + tail + [0]
        for i in items {
            let n = PathBytes.kernel(i.name).map { CChar(bitPattern: $0) } + [0]
            if i.value.withUnsafeBytes({ lsetxattr(path, n, $0.baseAddress, $0.count, 0) }) != 0 { return errno }
        }
        return 0
    }
}
#endif
