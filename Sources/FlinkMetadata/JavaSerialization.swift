/// A structural reader for Java's Object Serialization Stream Protocol (`ObjectOutputStream`).
///
/// Version 4+ metadata ends with `ObjectOutputStream.writeObject(CheckpointProperties)`. Decoding it
/// needs no JVM: the protocol is self-describing (class descriptors carry field names and types),
/// so this reader walks the grammar generically and yields a small value tree. It keeps only what
/// identifies a snapshot (class names, primitive fields, strings, enum constants) and skips the
/// rest. It never instantiates anything; it only reads.
///
/// Protocol constants are from the Java Object Serialization Specification, chapter 6.
struct JavaObjectStream {
    indirect enum Value: Equatable {
        case null
        case bool(Bool)
        case integer(Int64)
        case floatingPoint
        case string(String)
        case enumConstant(className: String, name: String)
        case object(className: String, fields: [String: Value])
        case array(className: String, count: Int)
        case classReference(String)
        /// A back-reference to an object still being read (a cycle); its contents are not needed.
        case unresolved
    }

    struct Field {
        let typeCode: UInt8
        let name: String
    }

    struct ClassDescriptor {
        let name: String
        let flags: UInt8
        let fields: [Field]
        /// Handle of the superclass descriptor, `nil` at the top of the hierarchy.
        let superHandle: Int?
    }

    private enum Entry {
        case descriptor(ClassDescriptor)
        case value(Value)
        case pending
    }

    static let streamMagic: UInt16 = 0xACED
    static let streamVersion: UInt16 = 5
    /// Nesting cap for objects inside objects; Flink's properties nest 3 deep.
    static let maximumDepth = 32

    private enum TC {
        static let null: UInt8 = 0x70
        static let reference: UInt8 = 0x71
        static let classDesc: UInt8 = 0x72
        static let object: UInt8 = 0x73
        static let string: UInt8 = 0x74
        static let array: UInt8 = 0x75
        static let `class`: UInt8 = 0x76
        static let blockData: UInt8 = 0x77
        static let endBlockData: UInt8 = 0x78
        static let reset: UInt8 = 0x79
        static let blockDataLong: UInt8 = 0x7A
        static let exception: UInt8 = 0x7B
        static let longString: UInt8 = 0x7C
        static let proxyClassDesc: UInt8 = 0x7D
        static let `enum`: UInt8 = 0x7E
    }

    private enum Flag {
        static let writeMethod: UInt8 = 0x01
        static let serializable: UInt8 = 0x02
        static let externalizable: UInt8 = 0x04
        static let blockData: UInt8 = 0x08
    }

    private static let baseWireHandle = 0x7E_0000

    private var handles: [Entry] = []

    /// Reads the stream header and one top-level object, as `new ObjectInputStream(in).readObject()` does.
    static func readObject(_ reader: inout ByteReader) throws(MetadataError) -> Value {
        let start = reader.offset
        let magic = try reader.u16("the Java serialization stream magic 0xaced")
        let version = try reader.u16("the Java serialization stream version 5")
        guard magic == streamMagic, version == streamVersion else {
            throw reader.error(
                at: start, "a Java serialization stream header (0xaced0005)",
                found: "0x" + String(UInt32(magic) << 16 | UInt32(version), radix: 16))
        }
        var stream = JavaObjectStream()
        return try stream.content(&reader, depth: 0)
    }

    // MARK: - Grammar

    private mutating func assign(_ entry: Entry) -> Int {
        handles.append(entry)
        return handles.count - 1
    }

    /// `content` / `object` in the grammar: anything `readObject` can return.
    private mutating func content(_ reader: inout ByteReader, depth: Int) throws(MetadataError) -> Value {
        guard depth <= Self.maximumDepth else {
            throw reader.error("Java objects nested at most \(Self.maximumDepth) deep", found: "deeper nesting")
        }
        let start = reader.offset
        if let next = reader.peek(), next == TC.classDesc || next == TC.proxyClassDesc {
            // A bare class descriptor read as an object (an ObjectStreamClass).
            guard let handle = try classDescriptor(&reader, depth: depth),
                case .descriptor(let descriptor) = handles[handle]
            else { return .null }
            return .classReference(descriptor.name)
        }
        let code = try reader.u8("a Java serialization type code (0x70–0x7e)")
        switch code {
        case TC.null:
            return .null
        case TC.reference:
            return try reference(&reader, at: start)
        case TC.string:
            let lengthOffset = reader.offset
            let length = Int(try reader.u16("a Java string length"))
            let text = try reader.modifiedUTF8(length: length, "a Java string", lengthOffset: lengthOffset)
            _ = assign(.value(.string(text)))
            return .string(text)
        case TC.longString:
            let lengthOffset = reader.offset
            let length = try reader.int64("a Java long string length")
            guard length >= 0, length <= Int64(reader.remaining) else {
                throw reader.error(
                    at: lengthOffset, "a Java long string length within the \(reader.remaining) bytes left",
                    found: "\(length)")
            }
            let text = try reader.modifiedUTF8(length: Int(length), "a Java string", lengthOffset: lengthOffset)
            _ = assign(.value(.string(text)))
            return .string(text)
        case TC.object:
            return try object(&reader, depth: depth)
        case TC.enum:
            let descriptor = try requiredDescriptor(&reader, depth: depth)
            let handle = assign(.pending)
            let nameOffset = reader.offset
            guard case .string(let name) = try content(&reader, depth: depth + 1) else {
                throw reader.error(at: nameOffset, "the enum constant's name (a string)", found: "another value")
            }
            let value = Value.enumConstant(className: descriptor.name, name: name)
            handles[handle] = .value(value)
            return value
        case TC.array:
            return try array(&reader, depth: depth)
        case TC.class:
            let descriptor = try requiredDescriptor(&reader, depth: depth)
            let value = Value.classReference(descriptor.name)
            _ = assign(.value(value))
            return value
        case TC.reset:
            // ObjectOutputStream only resets between top-level objects. Inside an object, a reset would
            // invalidate the handles of everything still being read, so it is a corrupt stream.
            guard depth == 0, handles.isEmpty || !handles.contains(where: { if case .pending = $0 { true } else { false } }) else {
                throw reader.error(at: start, "a Java object (a stream reset is only valid between top-level objects)", found: "0x79 (reset)")
            }
            handles.removeAll()
            return try content(&reader, depth: depth + 1)
        default:
            throw reader.error(
                at: start, "a Java serialization object type code (0x70–0x7e, not 0x77, 0x78, 0x7b)",
                found: hex(code))
        }
    }

    private func reference(_ reader: inout ByteReader, at start: Int) throws(MetadataError) -> Value {
        let raw = Int(try reader.int32("a Java back-reference handle"))
        let index = raw - Self.baseWireHandle
        guard index >= 0, index < handles.count else {
            throw reader.error(
                at: start + 1, "a Java back-reference to one of \(handles.count) earlier handles",
                found: "0x" + String(UInt32(truncatingIfNeeded: raw), radix: 16))
        }
        switch handles[index] {
        case .value(let value): return value
        case .descriptor(let descriptor): return .classReference(descriptor.name)
        case .pending: return .unresolved
        }
    }

    private mutating func object(_ reader: inout ByteReader, depth: Int) throws(MetadataError) -> Value {
        let descriptorOffset = reader.offset
        let leaf = try requiredDescriptor(&reader, depth: depth)
        let handle = assign(.pending)
        var fields: [String: Value] = [:]
        for descriptor in try hierarchy(of: leaf, reader: reader, at: descriptorOffset) {
            if descriptor.flags & Flag.externalizable != 0 {
                guard descriptor.flags & Flag.blockData != 0 else {
                    throw reader.error(
                        "externalizable data in block-data mode (protocol version 2)",
                        found: "protocol version 1 data of \(descriptor.name)")
                }
                try annotations(&reader, depth: depth)
            } else if descriptor.flags & Flag.serializable != 0 {
                for field in descriptor.fields {
                    fields[field.name] = try fieldValue(&reader, field, depth: depth)
                }
                if descriptor.flags & Flag.writeMethod != 0 { try annotations(&reader, depth: depth) }
            }
        }
        let value = Value.object(className: leaf.name, fields: fields)
        handles[handle] = .value(value)
        return value
    }

    private mutating func array(_ reader: inout ByteReader, depth: Int) throws(MetadataError) -> Value {
        let descriptor = try requiredDescriptor(&reader, depth: depth)
        _ = assign(.pending)
        let handle = handles.count - 1
        let countOffset = reader.offset
        let count = Int(try reader.int32("a Java array length"))
        guard count >= 0 else {
            throw reader.error(at: countOffset, "a non-negative Java array length", found: "\(count)")
        }
        let elementCode = descriptor.name.utf8.dropFirst().first ?? 0
        if let width = Self.primitiveWidth(elementCode) {
            try reader.ensureFits(count, elementSize: width, "a Java array length", countOffset: countOffset)
            try reader.skip(count * width, "Java array elements")
        } else {
            try reader.ensureFits(count, elementSize: 1, "a Java array length", countOffset: countOffset)
            for _ in 0..<count { _ = try content(&reader, depth: depth + 1) }
        }
        let value = Value.array(className: descriptor.name, count: count)
        handles[handle] = .value(value)
        return value
    }

    private static func primitiveWidth(_ code: UInt8) -> Int? {
        switch code {
        case UInt8(ascii: "B"), UInt8(ascii: "Z"): 1
        case UInt8(ascii: "C"), UInt8(ascii: "S"): 2
        case UInt8(ascii: "I"), UInt8(ascii: "F"): 4
        case UInt8(ascii: "J"), UInt8(ascii: "D"): 8
        default: nil
        }
    }

    private mutating func fieldValue(
        _ reader: inout ByteReader, _ field: Field, depth: Int
    ) throws(MetadataError) -> Value {
        let what = "the value of Java field \(field.name)"
        switch field.typeCode {
        case UInt8(ascii: "Z"): return .bool(try reader.bool(what))
        case UInt8(ascii: "B"): return .integer(Int64(Int8(bitPattern: try reader.u8(what))))
        case UInt8(ascii: "C"): return .integer(Int64(try reader.u16(what)))
        case UInt8(ascii: "S"): return .integer(Int64(Int16(bitPattern: try reader.u16(what))))
        case UInt8(ascii: "I"): return .integer(Int64(try reader.int32(what)))
        case UInt8(ascii: "J"): return .integer(try reader.int64(what))
        case UInt8(ascii: "F"): try reader.skip(4, what); return .floatingPoint
        case UInt8(ascii: "D"): try reader.skip(8, what); return .floatingPoint
        default: return try content(&reader, depth: depth + 1)  // 'L' and '[' (checked when read)
        }
    }

    /// `classAnnotation` / `objectAnnotation`: block data and objects up to TC_ENDBLOCKDATA.
    private mutating func annotations(_ reader: inout ByteReader, depth: Int) throws(MetadataError) {
        while true {
            switch reader.peek() {
            case TC.endBlockData?:
                _ = try reader.u8("the end-of-block marker 0x78")
                return
            case TC.blockData?:
                _ = try reader.u8("a Java block data marker")
                let length = Int(try reader.u8("a Java block data length"))
                try reader.skip(length, "Java block data")
            case TC.blockDataLong?:
                _ = try reader.u8("a Java block data marker")
                let length = try reader.count("a Java long block data length", minimumElementSize: 1)
                try reader.skip(length, "Java block data")
            case nil:
                _ = try reader.u8("Java annotation contents or the end-of-block marker 0x78")  // throws at end
                return
            default:
                // Every object read here consumes at least one byte, so the loop always ends.
                _ = try content(&reader, depth: depth + 1)
            }
        }
    }

    // MARK: - Class descriptors

    /// A descriptor that must be present (objects, enums, arrays and classes always have one).
    private mutating func requiredDescriptor(
        _ reader: inout ByteReader, depth: Int
    ) throws(MetadataError) -> ClassDescriptor {
        let start = reader.offset
        guard let handle = try classDescriptor(&reader, depth: depth),
            case .descriptor(let descriptor) = handles[handle]
        else {
            throw reader.error(at: start, "a Java class descriptor", found: "null")
        }
        return descriptor
    }

    /// `classDesc`: a new descriptor, a proxy descriptor, a reference to one, or null.
    /// Returns the descriptor's handle.
    private mutating func classDescriptor(_ reader: inout ByteReader, depth: Int) throws(MetadataError) -> Int? {
        guard depth <= Self.maximumDepth else {
            throw reader.error("Java class descriptors nested at most \(Self.maximumDepth) deep", found: "deeper nesting")
        }
        let start = reader.offset
        let code = try reader.u8("a Java class descriptor (0x72, 0x7d, 0x71 or 0x70)")
        switch code {
        case TC.null:
            return nil
        case TC.reference:
            let raw = Int(try reader.int32("a Java back-reference handle"))
            let index = raw - Self.baseWireHandle
            guard index >= 0, index < handles.count, case .descriptor = handles[index] else {
                throw reader.error(
                    at: start + 1, "a back-reference to an earlier Java class descriptor",
                    found: "0x" + String(UInt32(truncatingIfNeeded: raw), radix: 16))
            }
            return index
        case TC.classDesc:
            let name = try reader.utf("a Java class name")
            _ = try reader.int64("a serialVersionUID")
            // The handle is assigned before the field type strings are read, as ObjectInputStream does.
            let handle = assign(.pending)
            let flags = try reader.u8("Java class descriptor flags")
            let countOffset = reader.offset
            let fieldCount = Int(Int16(bitPattern: try reader.u16("a Java field count")))
            guard fieldCount >= 0 else {
                throw reader.error(at: countOffset, "a non-negative Java field count", found: "\(fieldCount)")
            }
            // A field is at least a type code and a 2-byte name length.
            try reader.ensureFits(fieldCount, elementSize: 3, "a Java field count", countOffset: countOffset)
            var fields: [Field] = []
            for _ in 0..<fieldCount {
                let typeOffset = reader.offset
                let typeCode = try reader.u8("a Java field type code")
                let fieldName = try reader.utf("a Java field name")
                switch typeCode {
                case UInt8(ascii: "L"), UInt8(ascii: "["):
                    let typeNameOffset = reader.offset
                    switch try content(&reader, depth: depth + 1) {
                    case .string, .null: break
                    default:
                        throw reader.error(at: typeNameOffset, "a Java field type name (a string)", found: "another value")
                    }
                default:
                    guard Self.primitiveWidth(typeCode) != nil else {
                        throw reader.error(at: typeOffset, "a Java field type code (B C D F I J S Z L [)", found: hex(typeCode))
                    }
                }
                fields.append(Field(typeCode: typeCode, name: fieldName))
            }
            try annotations(&reader, depth: depth)
            let superHandle = try classDescriptor(&reader, depth: depth + 1)
            handles[handle] = .descriptor(ClassDescriptor(name: name, flags: flags, fields: fields, superHandle: superHandle))
            return handle
        case TC.proxyClassDesc:
            let handle = assign(.pending)
            let count = try reader.count("a Java proxy interface count", minimumElementSize: 2)
            for _ in 0..<count { _ = try reader.utf("a Java proxy interface name") }
            try annotations(&reader, depth: depth)
            let superHandle = try classDescriptor(&reader, depth: depth + 1)
            handles[handle] = .descriptor(
                ClassDescriptor(name: "(proxy)", flags: Flag.serializable, fields: [], superHandle: superHandle))
            return handle
        default:
            throw reader.error(at: start, "a Java class descriptor (0x72, 0x7d, 0x71 or 0x70)", found: hex(code))
        }
    }

    /// Superclass first, as class data is written. A forged descriptor can name itself as its own
    /// superclass through a back-reference, so the walk is bounded.
    private func hierarchy(
        of leaf: ClassDescriptor, reader: ByteReader, at offset: Int
    ) throws(MetadataError) -> [ClassDescriptor] {
        var chain = [leaf]
        var next = leaf.superHandle
        while let handle = next {
            guard chain.count <= Self.maximumDepth, handle < handles.count,
                case .descriptor(let descriptor) = handles[handle]
            else {
                throw reader.error(at: offset, "a finite Java class hierarchy", found: "a cyclic or unresolved one")
            }
            chain.append(descriptor)
            next = descriptor.superHandle
        }
        return chain.reversed()
    }
}
