/// An object's state as the state codec stores it: a self-describing tree of
/// values, with properties keyed by name (so schemas can evolve) and
/// references to other persistent objects as OID plus type name.
///
/// Optionals: nil is ``null``, and a value is stored as itself unless it
/// reads as nil (it is ``null`` or ``optional(_:)``: a nil inside an optional,
/// as in an `Int??` holding `.some(nil)`), which is wrapped in
/// ``optional(_:)``. A property that is nil is stored as ``null``; a
/// property the state lacks was written before the property existed, and
/// loads with its default (see ``PersistentState``).
public enum StateValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case float(Float)
    case string(String)
    case bytes([UInt8])
    case array([StateValue])
    /// Keyed values in the order they were written.
    case keyed([(String, StateValue)])
    case reference(OID, typeName: String)
    /// An optional's value that reads as nil itself (state format 3).
    indirect case optional(StateValue)

    public static func == (lhs: StateValue, rhs: StateValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case let (.bool(a), .bool(b)): a == b
        case let (.int(a), .int(b)): a == b
        case let (.uint(a), .uint(b)): a == b
        case let (.double(a), .double(b)): a.bitPattern == b.bitPattern
        case let (.float(a), .float(b)): a.bitPattern == b.bitPattern
        case let (.string(a), .string(b)): a == b
        case let (.bytes(a), .bytes(b)): a == b
        case let (.array(a), .array(b)): a == b
        case let (.keyed(a), .keyed(b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.reference(a, t), .reference(b, u)): a == b && t == u
        case let (.optional(a), .optional(b)): a == b
        default: false
        }
    }
}

// MARK: Binary form

enum Tag: UInt8 {
    case null = 0, falseValue, trueValue, int, uint, double, float, string, bytes, array, keyed, reference
    /// An array of signed integers (state format 2): the count, then each
    /// element as the zigzag varint of its difference from the one before
    /// (the first's from 0, wrapping). The form every non-empty array of
    /// `.int` values is written in: no tag per element, and a sorted array
    /// (a B-tree node's keys) takes a byte or two an element.
    case intDeltas
    /// An optional's value that reads as nil (state format 3): the value
    /// follows. See ``StateValue``.
    case optional
}

extension StateValue {
    /// Appends the binary form of this value to `out`.
    func write(to out: inout [UInt8]) {
        switch self {
        case .null: out.append(Tag.null.rawValue)
        case .bool(let b): out.append(b ? Tag.trueValue.rawValue : Tag.falseValue.rawValue)
        case .int(let v):
            out.append(Tag.int.rawValue)
            Varint.write(Varint.zigzag(v), to: &out)
        case .uint(let v):
            out.append(Tag.uint.rawValue)
            Varint.write(v, to: &out)
        case .double(let v):
            out.append(Tag.double.rawValue)
            BigEndian.append(v.bitPattern, to: &out)
        case .float(let v):
            out.append(Tag.float.rawValue)
            BigEndian.append(v.bitPattern, to: &out)
        case .string(let s):
            out.append(Tag.string.rawValue)
            Varint.writeString(s, to: &out)
        case .bytes(let b):
            out.append(Tag.bytes.rawValue)
            Varint.write(UInt64(b.count), to: &out)
            out.append(contentsOf: b)
        case .array(let items):
            if let integers = Self.integers(items, { if case .int(let value) = $0 { value } else { nil } }) {
                Varint.writeDeltas(integers, to: &out)
                return
            }
            out.append(Tag.array.rawValue)
            Varint.write(UInt64(items.count), to: &out)
            for item in items { item.write(to: &out) }
        case .keyed(let pairs):
            out.append(Tag.keyed.rawValue)
            Varint.write(UInt64(pairs.count), to: &out)
            for (key, value) in pairs {
                Varint.writeString(key, to: &out)
                value.write(to: &out)
            }
        case .reference(let oid, let typeName):
            out.append(Tag.reference.rawValue)
            oid.append(to: &out)
            Varint.writeString(typeName, to: &out)
        case .optional(let value):
            out.append(Tag.optional.rawValue)
            value.write(to: &out)
        }
    }

    /// The elements of a non-empty array of signed integers (each one's
    /// `integer`), which is written as ``Tag/intDeltas``; nil when `items`
    /// is empty or holds anything else.
    static func integers<C: Collection>(_ items: C, _ integer: (C.Element) -> Int64?) -> [Int64]? {
        // The first element decides most arrays before anything is allocated.
        guard let first = items.first, integer(first) != nil else { return nil }
        var integers: [Int64] = []
        integers.reserveCapacity(items.count)
        for item in items {
            guard let value = integer(item) else { return nil }
            integers.append(value)
        }
        return integers
    }

    /// Writes the tag and count that open an array or keyed value.
    static func writeHeader(_ tag: Tag, count: Int, to out: inout [UInt8]) {
        out.append(tag.rawValue)
        Varint.write(UInt64(count), to: &out)
    }

    /// Reads one value from `bytes` at `offset`, advancing it.
    /// - Throws: ``StateError`` for anything but a well-formed value.
    static func read(_ bytes: [UInt8], at offset: inout Int, depth: Int = 0) throws(StateError) -> StateValue {
        guard depth < 512 else { throw .malformed("nesting deeper than 512 levels") }
        guard offset < bytes.count else { throw .malformed("state ends at byte \(offset) where a value was expected") }
        guard let tag = Tag(rawValue: bytes[offset]) else {
            throw .malformed("unknown value tag \(bytes[offset]) at byte \(offset)")
        }
        offset += 1
        switch tag {
        case .null: return .null
        case .falseValue: return .bool(false)
        case .trueValue: return .bool(true)
        case .int:
            let raw = try Varint.read(bytes, at: &offset)
            return .int(Varint.signed(raw))
        case .uint: return .uint(try Varint.read(bytes, at: &offset))
        case .double: return .double(Double(bitPattern: try fixed(bytes, &offset, as: UInt64.self)))
        case .float: return .float(Float(bitPattern: try fixed(bytes, &offset, as: UInt32.self)))
        case .string: return .string(try Varint.readString(bytes, at: &offset))
        case .bytes:
            let count = try Varint.readCount(bytes, at: &offset)
            defer { offset += count }
            return .bytes(Array(bytes[offset ..< offset + count]))
        case .array:
            let count = try Varint.readCount(bytes, at: &offset, each: 1)
            var items: [StateValue] = []
            items.reserveCapacity(Swift.min(count, 1024))   // a count is only bounded by the bytes left
            for _ in 0 ..< count { items.append(try read(bytes, at: &offset, depth: depth + 1)) }
            return .array(items)
        case .intDeltas:
            let count = try Varint.readCount(bytes, at: &offset, each: 1)
            var items: [StateValue] = []
            items.reserveCapacity(Swift.min(count, 1024))
            try Varint.readDeltas(bytes, at: &offset, count: count) { items.append(.int($0)) }
            return .array(items)
        case .keyed:
            let count = try Varint.readCount(bytes, at: &offset, each: 2)
            var pairs: [(String, StateValue)] = []
            pairs.reserveCapacity(Swift.min(count, 1024))
            for _ in 0 ..< count {
                let key = try Varint.readString(bytes, at: &offset)
                pairs.append((key, try read(bytes, at: &offset, depth: depth + 1)))
            }
            return .keyed(pairs)
        case .reference:
            let raw = try fixed(bytes, &offset, as: UInt64.self)
            return .reference(OID(raw), typeName: try Varint.readString(bytes, at: &offset))
        case .optional: return .optional(try read(bytes, at: &offset, depth: depth + 1))
        }
    }

    /// Steps over one value at `offset`, checking it as ``read(_:at:depth:)``
    /// would, without building it: the check every state passes before
    /// ``StateReader`` decodes it in place.
    static func skip(_ bytes: [UInt8], at offset: inout Int, depth: Int = 0) throws(StateError) {
        guard depth < 512 else { throw .malformed("nesting deeper than 512 levels") }
        guard offset < bytes.count else { throw .malformed("state ends at byte \(offset) where a value was expected") }
        guard let tag = Tag(rawValue: bytes[offset]) else {
            throw .malformed("unknown value tag \(bytes[offset]) at byte \(offset)")
        }
        offset += 1
        func advance(_ size: Int) throws(StateError) {
            guard bytes.count - offset >= size else { throw .malformed("state ends inside a \(size)-byte number at byte \(offset)") }
            offset += size
        }
        switch tag {
        case .null, .falseValue, .trueValue: return
        case .int, .uint: _ = try Varint.read(bytes, at: &offset)
        case .double: try advance(8)
        case .float: try advance(4)
        case .string, .bytes:
            let count = try Varint.readCount(bytes, at: &offset)
            offset += count
        case .array:
            let count = try Varint.readCount(bytes, at: &offset, each: 1)
            for _ in 0 ..< count { try skip(bytes, at: &offset, depth: depth + 1) }
        case .intDeltas:
            let count = try Varint.readCount(bytes, at: &offset, each: 1)
            try Varint.readDeltas(bytes, at: &offset, count: count) { _ in }
        case .keyed:
            let count = try Varint.readCount(bytes, at: &offset, each: 2)
            for _ in 0 ..< count {
                let length = try Varint.readCount(bytes, at: &offset)
                offset += length
                try skip(bytes, at: &offset, depth: depth + 1)
            }
        case .reference:
            try advance(8)
            let length = try Varint.readCount(bytes, at: &offset)
            offset += length
        case .optional: try skip(bytes, at: &offset, depth: depth + 1)
        }
    }

    /// A big-endian number of `T`'s width at `offset`, advancing it.
    static func fixed<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: inout Int, as: T.Type) throws(StateError) -> T {
        let size = MemoryLayout<T>.size
        guard bytes.count - offset >= size else { throw .malformed("state ends inside a \(size)-byte number at byte \(offset)") }
        var value: T = 0
        for i in 0 ..< size { value = value << 8 | T(bytes[offset + i]) }
        offset += size
        return value
    }
}

/// LEB128 unsigned varints, with bounds checks on every read.
enum Varint {
    /// A signed integer from its zigzag form (0, -1, 1, -2, … as 0, 1, 2, 3, …).
    static func signed(_ raw: UInt64) -> Int64 { Int64(bitPattern: raw >> 1) ^ -Int64(bitPattern: raw & 1) }

    static func write(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// The zigzag form of a signed integer.
    static func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }

    /// Writes a non-empty array of signed integers as ``Tag/intDeltas``.
    /// (No `reserveCapacity` here: `out` may be a whole state, and reserving
    /// exactly a little more for each of its arrays would reallocate it every time.)
    static func writeDeltas<C: Collection>(_ values: C, to out: inout [UInt8]) where C.Element == Int64 {
        out.append(Tag.intDeltas.rawValue)
        write(UInt64(values.count), to: &out)
        var previous: Int64 = 0
        for value in values {
            write(zigzag(value &- previous), to: &out)
            previous = value
        }
    }

    /// Reads the `count` elements of a ``Tag/intDeltas`` array (its count
    /// already read), handing each to `body`.
    static func readDeltas(_ bytes: [UInt8], at offset: inout Int, count: Int, _ body: (Int64) -> Void) throws(StateError) {
        var value: Int64 = 0
        for _ in 0 ..< count {
            value &+= signed(try read(bytes, at: &offset))
            body(value)
        }
    }

    static func writeString(_ s: String, to out: inout [UInt8]) {
        var s = s
        s.withUTF8 { utf8 in
            write(UInt64(utf8.count), to: &out)
            out.append(contentsOf: utf8)
        }
    }

    static func read(_ bytes: [UInt8], at offset: inout Int) throws(StateError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count else { throw .malformed("state ends inside a number at byte \(offset)") }
            let byte = bytes[offset]
            offset += 1
            guard shift < 64 else { throw .malformed("a number longer than 64 bits at byte \(offset)") }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
        }
    }

    /// A length that must fit in what is left of `bytes` (`each` bytes an element at least).
    static func readCount(_ bytes: [UInt8], at offset: inout Int, each: Int = 1) throws(StateError) -> Int {
        let start = offset
        let raw = try read(bytes, at: &offset)
        guard raw <= UInt64(bytes.count - offset) / UInt64(each) else {
            throw .malformed("a length of \(raw) at byte \(start) runs past the end of the state")
        }
        return Int(raw)
    }

    static func readString(_ bytes: [UInt8], at offset: inout Int) throws(StateError) -> String {
        let count = try readCount(bytes, at: &offset)
        defer { offset += count }
        return String(decoding: bytes[offset ..< offset + count], as: UTF8.self)
    }
}

/// A state that cannot be read or written.
public enum StateError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bytes are not a well-formed state.
    case malformed(String)
    /// The state says something the type cannot hold.
    case mismatch(String)

    public var description: String {
        switch self {
        case .malformed(let why): "malformed state: \(why)"
        case .mismatch(let why): "state does not fit: \(why)"
        }
    }
}

/// The coding key of an array element, for coding paths.
struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { "\(intValue ?? 0)" }
    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.intValue = intValue }
}
