/// A cursor over untrusted bytes that decodes `java.io.DataOutputStream` primitives.
///
/// It is the only place that touches the byte array, and every read checks the remaining length
/// first. Everything above it can therefore treat input as hostile without its own bounds checks:
/// the worst a corrupt file can do is make one of these methods throw.
struct ByteReader {
    private let storage: [UInt8]
    /// Offset of the next unread byte; also the offset reported in errors.
    private(set) var offset: Int

    init(_ bytes: [UInt8], offset: Int = 0) {
        self.storage = bytes
        self.offset = min(max(offset, 0), storage.count)
    }

    var remaining: Int { storage.count - offset }
    var isAtEnd: Bool { offset >= storage.count }

    // MARK: - Failures

    func error(_ expected: String, found: String) -> MetadataError {
        MetadataError(offset: offset, expected: expected, found: found)
    }

    func error(at offset: Int, _ expected: String, found: String) -> MetadataError {
        MetadataError(offset: offset, expected: expected, found: found)
    }

    private func require(_ count: Int, _ what: String) throws(MetadataError) {
        guard count <= remaining else {
            throw error(what, found: remaining == 0 ? "end of data" : "end of data (\(remaining) bytes left)")
        }
    }

    // MARK: - Fixed-width big-endian primitives

    /// The next byte without consuming it, `nil` at the end.
    func peek() -> UInt8? {
        offset < storage.count ? storage[offset] : nil
    }

    mutating func u8(_ what: String) throws(MetadataError) -> UInt8 {
        try require(1, what)
        defer { offset += 1 }
        return storage[offset]
    }

    mutating func bool(_ what: String) throws(MetadataError) -> Bool {
        // DataInputStream.readBoolean accepts any non-zero byte as true.
        try u8(what) != 0
    }

    mutating func u16(_ what: String) throws(MetadataError) -> UInt16 {
        try require(2, what)
        defer { offset += 2 }
        return UInt16(storage[offset]) << 8 | UInt16(storage[offset + 1])
    }

    mutating func int32(_ what: String) throws(MetadataError) -> Int32 {
        try require(4, what)
        var value: UInt32 = 0
        for index in offset..<(offset + 4) { value = value << 8 | UInt32(storage[index]) }
        offset += 4
        return Int32(bitPattern: value)
    }

    mutating func int64(_ what: String) throws(MetadataError) -> Int64 {
        try require(8, what)
        var value: UInt64 = 0
        for index in offset..<(offset + 8) { value = value << 8 | UInt64(storage[index]) }
        offset += 8
        return Int64(bitPattern: value)
    }

    /// Raw bytes, for identifiers such as the 16-byte operator ID.
    mutating func bytes(_ count: Int, _ what: String) throws(MetadataError) -> ArraySlice<UInt8> {
        guard count >= 0 else { throw error(what, found: "negative length \(count)") }
        try require(count, what)
        defer { offset += count }
        return storage[offset..<(offset + count)]
    }

    /// Skips bytes the caller does not keep (block data and arrays inside the Java-serialized trailer).
    mutating func skip(_ count: Int, _ what: String) throws(MetadataError) {
        guard count >= 0 else { throw error(what, found: "negative length \(count)") }
        try require(count, what)
        offset += count
    }

    // MARK: - Counts and lengths

    /// Reads an `int` length or element count and proves it can be satisfied by the bytes left.
    ///
    /// `minimumElementSize` is the fewest bytes one element can occupy. Checking `count × size`
    /// against what is left before any loop or allocation is what keeps a forged count
    /// (0x7fffffff) from turning into a huge allocation or a long loop.
    mutating func count(_ what: String, minimumElementSize: Int) throws(MetadataError) -> Int {
        let start = offset
        let raw = Int(try int32(what))
        guard raw >= 0 else {
            throw error(at: start, "\(what) (a non-negative int)", found: "\(raw)")
        }
        try ensureFits(raw, elementSize: minimumElementSize, what, countOffset: start)
        return raw
    }

    /// The bound check of `count(_:minimumElementSize:)`, for counts that arrive by other routes.
    func ensureFits(_ count: Int, elementSize: Int, _ what: String, countOffset: Int) throws(MetadataError) {
        let (needed, overflow) = count.multipliedReportingOverflow(by: max(elementSize, 1))
        guard !overflow, needed <= remaining else {
            throw error(
                at: countOffset,
                "\(what) that fits in the \(remaining) bytes left",
                found: "\(count) (needs at least \(overflow ? "more than Int.max" : String(needed)) bytes)")
        }
    }

    // MARK: - Strings

    /// `DataInputStream.readUTF`: an unsigned 16-bit byte length, then Java's modified UTF-8.
    mutating func utf(_ what: String) throws(MetadataError) -> String {
        let start = offset
        let length = Int(try u16("\(what) length"))
        return try modifiedUTF8(length: length, what, lengthOffset: start)
    }

    /// Decodes `length` bytes of modified UTF-8 (as written by `writeUTF`).
    ///
    /// Java encodes U+0000 as two bytes and supplementary characters as two 3-byte surrogates
    /// (CESU-8), so a plain UTF-8 decoder would reject valid files; Java also rejects malformed
    /// sequences, so this does too rather than guessing.
    mutating func modifiedUTF8(length: Int, _ what: String, lengthOffset: Int) throws(MetadataError) -> String {
        guard length <= remaining else {
            throw error(at: lengthOffset, "\(what) of \(length) bytes", found: "only \(remaining) bytes left")
        }
        var units: [UInt16] = []
        units.reserveCapacity(length)
        let end = offset + length
        var index = offset
        while index < end {
            let first = storage[index]
            switch first >> 4 {
            case 0...7:
                units.append(UInt16(first))
                index += 1
            case 12, 13:
                guard index + 1 < end, storage[index + 1] & 0xC0 == 0x80 else {
                    throw error(at: index, "\(what): a valid 2-byte modified UTF-8 sequence", found: hex(first))
                }
                units.append(UInt16(first & 0x1F) << 6 | UInt16(storage[index + 1] & 0x3F))
                index += 2
            case 14:
                guard index + 2 < end, storage[index + 1] & 0xC0 == 0x80, storage[index + 2] & 0xC0 == 0x80 else {
                    throw error(at: index, "\(what): a valid 3-byte modified UTF-8 sequence", found: hex(first))
                }
                units.append(
                    UInt16(first & 0x0F) << 12 | UInt16(storage[index + 1] & 0x3F) << 6
                        | UInt16(storage[index + 2] & 0x3F))
                index += 3
            default:
                throw error(at: index, "\(what): a modified UTF-8 lead byte", found: hex(first))
            }
        }
        offset = end
        // Lone surrogates (legal in Java strings) become U+FFFD: paths never contain them.
        return String(decoding: units, as: UTF16.self)
    }
}

/// `0x7f`-style rendering for error messages.
func hex(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16)
    return "0x" + (digits.count == 1 ? "0" + digits : digits)
}
