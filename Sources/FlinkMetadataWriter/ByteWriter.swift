/// Appends `java.io.DataOutputStream` primitives: the mirror of the reader's `ByteReader`.
///
/// Every method that narrows a Swift integer to a wire type checks the range first and throws instead
/// of truncating, so a value that does not fit can never come out as a different number.
struct ByteWriter {
    private(set) var bytes: [UInt8] = []

    mutating func u8(_ value: UInt8) { bytes.append(value) }

    mutating func bool(_ value: Bool) { bytes.append(value ? 1 : 0) }

    mutating func int32(_ value: Int32) {
        let bits = UInt32(bitPattern: value)
        bytes += [UInt8(bits >> 24), UInt8(truncatingIfNeeded: bits >> 16), UInt8(truncatingIfNeeded: bits >> 8),
                  UInt8(truncatingIfNeeded: bits)]
    }

    mutating func int64(_ value: Int64) {
        let bits = UInt64(bitPattern: value)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
    }

    /// An `int` field holding a Swift `Int` (parallelism, indices, key groups).
    mutating func int32(_ value: Int, _ what: String) throws(MetadataWriteError) {
        guard let narrow = Int32(exactly: value) else {
            throw MetadataWriteError(expected: "\(what) within a Java int", found: "\(value)")
        }
        int32(narrow)
    }

    /// An `int` element count or byte length, which Flink reads as non-negative.
    mutating func count(_ value: Int, _ what: String) throws(MetadataWriteError) {
        guard value >= 0, value <= Int(Int32.max) else {
            throw MetadataWriteError(expected: "\(what) between 0 and 2^31-1", found: "\(value)")
        }
        int32(Int32(value))
    }

    mutating func raw<C: Collection<UInt8>>(_ data: C) { bytes += data }

    /// `int` length, then the bytes (`writeInt(data.length); write(data)`).
    mutating func lengthPrefixed(_ data: [UInt8], _ what: String) throws(MetadataWriteError) {
        try count(data.count, "the length of \(what)")
        bytes += data
    }

    /// `DataOutputStream.writeUTF`: an unsigned 16-bit byte length, then Java's modified UTF-8.
    ///
    /// Encodes UTF-16 code units exactly as Java does (U+0000 as two bytes, each surrogate as three), so a
    /// string the reader decoded comes back as the bytes Flink wrote.
    mutating func utf(_ text: String, _ what: String) throws(MetadataWriteError) {
        var encoded: [UInt8] = []
        encoded.reserveCapacity(text.utf8.count)
        for unit in text.utf16 {
            switch unit {
            case 0x0001...0x007F:
                encoded.append(UInt8(unit))
            case 0x0000, 0x0080...0x07FF:
                encoded.append(0xC0 | UInt8(unit >> 6))
                encoded.append(0x80 | UInt8(unit & 0x3F))
            default:
                encoded.append(0xE0 | UInt8(unit >> 12))
                encoded.append(0x80 | UInt8((unit >> 6) & 0x3F))
                encoded.append(0x80 | UInt8(unit & 0x3F))
            }
        }
        guard encoded.count <= Int(UInt16.max) else {
            // Java throws UTFDataFormatException here too.
            throw MetadataWriteError(
                expected: "\(what) of at most 65535 modified UTF-8 bytes", found: "\(encoded.count) bytes")
        }
        bytes.append(UInt8(encoded.count >> 8))
        bytes.append(UInt8(encoded.count & 0xFF))
        bytes += encoded
    }
}
