#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decodes `Decodable` values straight from a state's bytes (the format of
/// ``StateValue``), without building a value tree first: a container reads
/// its header when asked for, a keyed one indexes where its values start,
/// and every leaf is read in place. A reference becomes the instance
/// `resolve` gives for it (the identity map's, perhaps a ghost), never a
/// new object.
///
/// The bytes must have passed ``validate()`` (the checks of
/// ``StateValue/skip(_:at:depth:)``), which `Connection` runs on every
/// record before decoding, so the reads here meet well-formed values only
/// (they still check bounds, and throw rather than trap); what they decide
/// is whether a value fits its Swift type.
final class StateReader {
    let bytes: [UInt8]
    /// The entries of a keyed state, found by ``validate()``.
    private(set) var topEntries: [KeyedEntry]?
    /// The instance for a reference: its OID, the type name the record
    /// stored (UTF-8), and the static type the state declares there.
    let resolve: (OID, ArraySlice<UInt8>, PersistentObject.Type) throws -> PersistentObject

    init(bytes: [UInt8], resolve: @escaping (OID, ArraySlice<UInt8>, PersistentObject.Type) throws -> PersistentObject) {
        self.bytes = bytes
        self.resolve = resolve
    }

    /// Decodes the value at `slot` as `T`. `parent` and `key` name where it
    /// sits, for coding paths, which are built only when asked for.
    func unbox<T: Decodable>(_ type: T.Type, _ slot: Slot, parent: DecoderImpl?, key: (any CodingKey)?) throws -> T {
        // Exact metatype checks for the common types: cheap, and no decoder.
        if T.self == String.self { return try string(slot, parent, key) as! T }
        if T.self == Int.self { return try integer(slot, Int.self, parent, key) as! T }
        if T.self == Bool.self { return try bool(slot, parent, key) as! T }
        if T.self == Double.self { return try floating(slot, parent, key) as! T }
        if let declared = T.self as? PersistentObject.Type {
            guard let typed = try object(slot, declared, parent, key) as? T else {
                throw DecodingError.typeMismatch(T.self, .init(codingPath: DecoderImpl.path(parent, key),
                                                               debugDescription: "expected \(T.self), found \(kind(slot))"))
            }
            return typed
        }
        if T.self == [Int].self, case .at(let offset) = slot {
            if bytes[offset] == Tag.intDeltas.rawValue { return try integers(offset) as! T }
            if bytes[offset] == Tag.array.rawValue { return try elements(offset) { try nextInteger(&$0, parent, key) } as! T }
        }
        if T.self == [String].self, case .at(let offset) = slot, bytes[offset] == Tag.array.rawValue {
            return try elements(offset) { try nextString(&$0, parent, key) } as! T
        }
        if T.self == [Double].self, case .at(let offset) = slot, bytes[offset] == Tag.array.rawValue {
            return try elements(offset) { try nextDouble(&$0, parent, key) } as! T
        }
        if T.self == [UInt8].self, let raw = rawBytes(slot) { return Array(raw) as! T }
        if T.self == Data.self {
            guard let raw = rawBytes(slot) else { throw mismatch(T.self, slot, parent, key) }
            return Data(raw) as! T
        }
        if T.self == Date.self { return Date(timeIntervalSinceReferenceDate: try floating(slot, parent, key)) as! T }
        if T.self == UUID.self {
            guard let b = rawBytes(slot), b.count == 16 else { throw mismatch(T.self, slot, parent, key) }
            let s = b.startIndex
            let uuid = UUID(uuid: (b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7],
                                   b[s + 8], b[s + 9], b[s + 10], b[s + 11], b[s + 12], b[s + 13], b[s + 14], b[s + 15]))
            return uuid as! T
        }
        // An optional's value that reads as nil, wrapped (nil and other values go through `Optional`'s own decoding).
        if case .at(let offset) = slot, bytes[offset] == Tag.optional.rawValue, let optional = T.self as? any WrappedOptional.Type {
            return try optional.present(from: self, at: offset + 1, parent: parent, key: key) as! T
        }
        if let dictionary = T.self as? any StateCodableDictionary.Type, case .at(let offset) = slot {
            return try dictionary.decodeState(from: self, at: offset, parent: parent, key: key) as! T
        }
        return try T(from: DecoderImpl(reader: self, slot: slot, parent: parent, key: key))
    }

    // MARK: Leaves

    func integer<T: FixedWidthInteger>(_ slot: Slot, _ type: T.Type, _ parent: DecoderImpl?, _ key: (any CodingKey)?) throws -> T {
        switch slot {
        case .integer(let v):
            if let value = T(exactly: v) { return value }
        case .at(let offset):
            var at = offset + 1
            switch bytes[offset] {
            case Tag.int.rawValue:
                let raw = try Varint.read(bytes, at: &at)
                if let value = T(exactly: Varint.signed(raw)) { return value }
            case Tag.uint.rawValue:
                if let value = T(exactly: try Varint.read(bytes, at: &at)) { return value }
            default: break
            }
        }
        throw DecodingError.typeMismatch(T.self, .init(codingPath: DecoderImpl.path(parent, key),
                                                       debugDescription: "\(kind(slot)) does not fit \(T.self)"))
    }

    func floating(_ slot: Slot, _ parent: DecoderImpl?, _ key: (any CodingKey)?) throws -> Double {
        guard case .at(let offset) = slot else { return try Double(integer(slot, Int64.self, parent, key)) }
        var at = offset + 1
        switch bytes[offset] {
        case Tag.double.rawValue: return Double(bitPattern: try fixed(&at, as: UInt64.self))
        case Tag.float.rawValue: return Double(Float(bitPattern: try fixed(&at, as: UInt32.self)))
        case Tag.int.rawValue: return Double(try integer(slot, Int64.self, parent, key))
        case Tag.uint.rawValue: return Double(try integer(slot, UInt64.self, parent, key))
        default:
            throw DecodingError.typeMismatch(Double.self, .init(codingPath: DecoderImpl.path(parent, key),
                                                                debugDescription: "found \(kind(slot))"))
        }
    }

    func string(_ slot: Slot, _ parent: DecoderImpl?, _ key: (any CodingKey)?) throws -> String {
        guard case .at(let offset) = slot, bytes[offset] == Tag.string.rawValue else {
            throw mismatch(String.self, slot, parent, key)
        }
        var at = offset + 1
        return try Varint.readString(bytes, at: &at)
    }

    func bool(_ slot: Slot, _ parent: DecoderImpl?, _ key: (any CodingKey)?) throws -> Bool {
        if case .at(let offset) = slot {
            if bytes[offset] == Tag.trueValue.rawValue { return true }
            if bytes[offset] == Tag.falseValue.rawValue { return false }
        }
        throw mismatch(Bool.self, slot, parent, key)
    }

    func isNull(_ slot: Slot) -> Bool {
        if case .at(let offset) = slot { return bytes[offset] == Tag.null.rawValue }
        return false
    }

    /// The payload of a bytes value; nil for any other value.
    func rawBytes(_ slot: Slot) -> ArraySlice<UInt8>? {
        guard case .at(let offset) = slot, bytes[offset] == Tag.bytes.rawValue else { return nil }
        var at = offset + 1
        guard let count = try? Varint.readCount(bytes, at: &at) else { return nil }
        return bytes[at ..< at + count]
    }

    func object(_ slot: Slot, _ declared: PersistentObject.Type, _ parent: DecoderImpl?, _ key: (any CodingKey)?) throws -> PersistentObject {
        guard case .at(let offset) = slot, bytes[offset] == Tag.reference.rawValue else {
            throw mismatch(declared, slot, parent, key)
        }
        var at = offset + 1
        let oid = OID(try fixed(&at, as: UInt64.self))
        let count = try Varint.readCount(bytes, at: &at)
        return try resolve(oid, bytes[at ..< at + count], declared)
    }

    /// The elements of the array at `offset`, each read by `element`, which
    /// reads the element at the offset it is given and moves it past it.
    private func elements<E>(_ offset: Int, _ element: (inout Int) throws -> E) throws -> [E] {
        var at = offset + 1
        let count = try Varint.readCount(bytes, at: &at, each: 1)
        var result: [E] = []
        result.reserveCapacity(count)
        for _ in 0 ..< count { result.append(try element(&at)) }
        return result
    }

    /// The elements of the ``Tag/intDeltas`` array at `offset`.
    private func integers(_ offset: Int) throws -> [Int] {
        var at = offset + 1
        let count = try Varint.readCount(bytes, at: &at, each: 1)
        var result: [Int] = []
        result.reserveCapacity(count)
        try Varint.readDeltas(bytes, at: &at, count: count) { result.append(Int($0)) }
        return result
    }

    /// Reads the value at `at` with `read`, then steps over it.
    private func generic<E>(_ at: inout Int, _ read: (Slot) throws -> E) throws -> E {
        let value = try read(.at(at))
        try StateValue.skip(bytes, at: &at)
        return value
    }

    /// One integer of an array: the common case (a signed integer) read and
    /// stepped over in one go.
    private func nextInteger(_ at: inout Int, _ parent: DecoderImpl?, _ key: (any CodingKey)?) throws -> Int {
        if at < bytes.count, bytes[at] == Tag.int.rawValue {
            var next = at + 1
            let raw = try Varint.read(bytes, at: &next)
            at = next
            return Int(Varint.signed(raw))
        }
        return try generic(&at) { try integer($0, Int.self, parent, key) }
    }

    private func nextString(_ at: inout Int, _ parent: DecoderImpl?, _ key: (any CodingKey)?) throws -> String {
        if at < bytes.count, bytes[at] == Tag.string.rawValue {
            var next = at + 1
            let string = try Varint.readString(bytes, at: &next)
            at = next
            return string
        }
        return try generic(&at) { try string($0, parent, key) }
    }

    private func nextDouble(_ at: inout Int, _ parent: DecoderImpl?, _ key: (any CodingKey)?) throws -> Double {
        if at < bytes.count, bytes[at] == Tag.double.rawValue {
            var next = at + 1
            let value = Double(bitPattern: try fixed(&next, as: UInt64.self))
            at = next
            return value
        }
        return try generic(&at) { try floating($0, parent, key) }
    }

    func fixed<T: FixedWidthInteger>(_ offset: inout Int, as type: T.Type) throws(StateError) -> T {
        try StateValue.fixed(bytes, &offset, as: type)
    }

    func mismatch(_ type: Any.Type, _ slot: Slot, _ parent: DecoderImpl?, _ key: (any CodingKey)?) -> DecodingError {
        .typeMismatch(type, .init(codingPath: DecoderImpl.path(parent, key), debugDescription: "expected \(type), found \(kind(slot))"))
    }

    func kind(_ slot: Slot) -> String {
        guard case .at(let offset) = slot else { return "an integer" }
        switch Tag(rawValue: bytes[offset]) {
        case .null: return "nil"
        case .falseValue, .trueValue: return "a Bool"
        case .int, .uint: return "an integer"
        case .double, .float: return "a floating-point number"
        case .string: return "a String"
        case .bytes: return "bytes"
        case .array, .intDeltas: return "an array"
        case .optional: return "an optional's value"
        case .keyed: return "a keyed value"
        case .reference:
            var at = offset + 9
            return "a reference to \((try? Varint.readString(bytes, at: &at)) ?? "?")"
        case nil: return "an unknown value"
        }
    }

    // MARK: Keyed values

    /// Checks the whole state as ``StateValue/skip(_:at:depth:)`` does and
    /// returns where it ends. A keyed state (a struct's, a dictionary's) is
    /// indexed on the way, so its container and schema evolution need no
    /// second walk.
    func validate() throws(StateError) -> Int {
        guard bytes.first == Tag.keyed.rawValue else {
            var at = 0
            try StateValue.skip(bytes, at: &at)
            return at
        }
        var at = 0
        let entries = try walkKeyed(&at, depth: 0)
        topEntries = entries
        return at
    }

    /// Where each key and value of the keyed value at `offset` starts.
    func keyedEntries(_ offset: Int) throws -> [KeyedEntry] {
        if offset == 0, let topEntries { return topEntries }
        var at = offset
        return try walkKeyed(&at, depth: 0)
    }

    private func walkKeyed(_ at: inout Int, depth: Int) throws(StateError) -> [KeyedEntry] {
        at += 1
        let count = try Varint.readCount(bytes, at: &at, each: 2)
        var entries: [KeyedEntry] = []
        entries.reserveCapacity(count)
        for _ in 0 ..< count {
            let length = try Varint.readCount(bytes, at: &at)
            let key = at
            at += length
            let value = at
            try StateValue.skip(bytes, at: &at, depth: depth + 1)
            entries.append(KeyedEntry(key: key, keyLength: length, value: value, end: at))
        }
        return entries
    }

    func keyString(_ entry: KeyedEntry) -> String {
        String(decoding: bytes[entry.key ..< entry.key + entry.keyLength], as: UTF8.self)
    }

    func keyEquals(_ entry: KeyedEntry, _ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        guard entry.keyLength == utf8.count else { return false }
        for i in 0 ..< utf8.count where bytes[entry.key + i] != utf8[i] { return false }
        return true
    }
}

/// Where a value is: at an offset of the state, or an integer already read
/// from an array of them: one element of a ``Tag/intDeltas`` array, or of a
/// bytes value (so `[UInt8]`-like values written as bytes also decode as
/// arrays of numbers).
enum Slot {
    case at(Int)
    case integer(Int64)
}

struct KeyedEntry {
    var key: Int
    var keyLength: Int
    var value: Int
    /// Where the value ends.
    var end: Int
}

/// A `Decoder` for one value of a state; its coding path is built only when asked for.
final class DecoderImpl: Decoder {
    let reader: StateReader
    let slot: Slot
    let parent: DecoderImpl?
    let key: (any CodingKey)?
    let userInfo: [CodingUserInfoKey: Any] = [:]

    init(reader: StateReader, slot: Slot, parent: DecoderImpl?, key: (any CodingKey)?) {
        self.reader = reader
        self.slot = slot
        self.parent = parent
        self.key = key
    }

    var codingPath: [any CodingKey] { (parent?.codingPath ?? []) + (key.map { [$0] } ?? []) }

    static func path(_ parent: DecoderImpl?, _ key: (any CodingKey)?) -> [any CodingKey] {
        (parent?.codingPath ?? []) + (key.map { [$0] } ?? [])
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .at(let offset) = slot, reader.bytes[offset] == Tag.keyed.rawValue else {
            throw DecodingError.typeMismatch([String: Any].self, .init(codingPath: codingPath, debugDescription: "found \(reader.kind(slot))"))
        }
        return KeyedDecodingContainer(KeyedContainer<Key>(decoder: self, entries: try reader.keyedEntries(offset)))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        if case .at(let offset) = slot {
            var at = offset + 1
            switch reader.bytes[offset] {
            case Tag.array.rawValue:
                let count = try Varint.readCount(reader.bytes, at: &at, each: 1)
                return UnkeyedContainer(decoder: self, count: count, cursor: at, mode: .values)
            case Tag.intDeltas.rawValue:
                let count = try Varint.readCount(reader.bytes, at: &at, each: 1)
                return UnkeyedContainer(decoder: self, count: count, cursor: at, mode: .deltas(previous: 0))
            case Tag.bytes.rawValue:
                let count = try Varint.readCount(reader.bytes, at: &at)
                return UnkeyedContainer(decoder: self, count: count, cursor: at, mode: .bytes)
            default: break
            }
        }
        throw DecodingError.typeMismatch([Any].self, .init(codingPath: codingPath, debugDescription: "found \(reader.kind(slot))"))
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleContainer(decoder: self)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: DecoderImpl
    let entries: [KeyedEntry]
    /// Built only for large containers; a struct's few properties are found
    /// faster by a scan of their bytes, without hashing or a String.
    let index: [String: Int]?
    var reader: StateReader { decoder.reader }
    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { entries.compactMap { Key(stringValue: reader.keyString($0)) } }

    init(decoder: DecoderImpl, entries: [KeyedEntry]) {
        self.decoder = decoder
        self.entries = entries
        if entries.count > 12 {
            var index: [String: Int] = [:]
            index.reserveCapacity(entries.count)
            for entry in entries { index[decoder.reader.keyString(entry)] = entry.value }
            self.index = index
        } else {
            index = nil
        }
    }

    /// Where the value under `key` starts; the last one when a key repeats.
    private func find(_ key: Key) -> Int? {
        if let index { return index[key.stringValue] }
        var name = key.stringValue
        return name.withUTF8 { utf8 in
            for entry in entries.reversed() where reader.keyEquals(entry, utf8) { return entry.value }
            return nil
        }
    }

    func contains(_ key: Key) -> Bool { find(key) != nil }

    private func slot(_ key: Key) throws -> Slot {
        guard let offset = find(key) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "the state has no \(key.stringValue)"))
        }
        return .at(offset)
    }

    func decodeNil(forKey key: Key) throws -> Bool { reader.isNull(try slot(key)) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try reader.unbox(T.self, try slot(key), parent: decoder, key: key)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let offset = find(key), !reader.isNull(.at(offset)) else { return nil }
        // A value that reads as nil is wrapped (see `StateValue`): it is inside.
        let start = reader.bytes[offset] == Tag.optional.rawValue ? offset + 1 : offset
        return try reader.unbox(T.self, .at(start), parent: decoder, key: key)
    }

    func decode(_ type: String.Type, forKey key: Key) throws -> String { try reader.string(try slot(key), decoder, key) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try reader.bool(try slot(key), decoder, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try reader.floating(try slot(key), decoder, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { Float(try reader.floating(try slot(key), decoder, key)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try int(key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try int(key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try int(key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try int(key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try int(key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try int(key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try int(key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try int(key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try int(key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try int(key) }

    private func int<T: FixedWidthInteger>(_ key: Key) throws -> T {
        try reader.integer(try slot(key), T.self, decoder, key)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey> {
        try DecoderImpl(reader: reader, slot: try slot(key), parent: decoder, key: key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try DecoderImpl(reader: reader, slot: try slot(key), parent: decoder, key: key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        var name = "super"
        let offset = name.withUTF8 { utf8 in entries.last(where: { reader.keyEquals($0, utf8) })?.value }
        guard let offset else {
            // A missing "super" reads as nil, as an empty superclass state would.
            return DecoderImpl(reader: StateReader(bytes: [Tag.null.rawValue], resolve: reader.resolve), slot: .at(0),
                               parent: decoder, key: nil)
        }
        return DecoderImpl(reader: reader, slot: .at(offset), parent: decoder, key: nil)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        DecoderImpl(reader: reader, slot: try slot(key), parent: decoder, key: key)
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    enum Mode {
        /// Values, each with its tag.
        case values
        /// The bytes of a bytes value, each an unsigned integer.
        case bytes
        /// Integers as ``Tag/intDeltas`` writes them, after `previous`.
        case deltas(previous: Int64)
    }

    let decoder: DecoderImpl
    let total: Int
    /// Where the next element starts (for bytes: where the payload starts).
    var cursor: Int
    var mode: Mode
    var currentIndex = 0
    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { total }
    var isAtEnd: Bool { currentIndex >= total }
    var reader: StateReader { decoder.reader }

    init(decoder: DecoderImpl, count: Int, cursor: Int, mode: Mode) {
        self.decoder = decoder
        total = count
        self.cursor = cursor
        self.mode = mode
    }

    private mutating func next() throws -> Slot {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath + [IndexKey(currentIndex)],
                                                              debugDescription: "the array has only \(total) values"))
        }
        defer { currentIndex += 1 }
        switch mode {
        case .values:
            let slot = Slot.at(cursor)
            try StateValue.skip(reader.bytes, at: &cursor)
            return slot
        case .bytes:
            return .integer(Int64(reader.bytes[cursor + currentIndex]))
        case .deltas(let previous):
            let value = previous &+ Varint.signed(try Varint.read(reader.bytes, at: &cursor))
            mode = .deltas(previous: value)
            return .integer(value)
        }
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, case .values = mode, reader.isNull(.at(cursor)) else { return false }
        _ = try next()
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let index = IndexKey(currentIndex)
        return try reader.unbox(T.self, try next(), parent: decoder, key: index)
    }

    mutating func decode(_ type: String.Type) throws -> String {
        let index = IndexKey(currentIndex)
        return try reader.string(try next(), decoder, index)
    }

    mutating func decode(_ type: Int.Type) throws -> Int {
        let index = IndexKey(currentIndex)
        return try reader.integer(try next(), Int.self, decoder, index)
    }

    mutating func decode(_ type: UInt8.Type) throws -> UInt8 {
        let index = IndexKey(currentIndex)
        return try reader.integer(try next(), UInt8.self, decoder, index)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let index = IndexKey(currentIndex)
        return try DecoderImpl(reader: reader, slot: try next(), parent: decoder, key: index).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let index = IndexKey(currentIndex)
        return try DecoderImpl(reader: reader, slot: try next(), parent: decoder, key: index).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let index = IndexKey(currentIndex)
        return DecoderImpl(reader: reader, slot: try next(), parent: decoder, key: index)
    }
}

private struct SingleContainer: SingleValueDecodingContainer {
    let decoder: DecoderImpl
    var codingPath: [any CodingKey] { decoder.codingPath }
    var reader: StateReader { decoder.reader }
    var slot: Slot { decoder.slot }

    func decodeNil() -> Bool { reader.isNull(slot) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try reader.unbox(T.self, slot, parent: decoder.parent, key: decoder.key)
    }

    func decode(_ type: String.Type) throws -> String { try reader.string(slot, decoder.parent, decoder.key) }
    func decode(_ type: Bool.Type) throws -> Bool { try reader.bool(slot, decoder.parent, decoder.key) }
    func decode(_ type: Double.Type) throws -> Double { try reader.floating(slot, decoder.parent, decoder.key) }
    func decode(_ type: Float.Type) throws -> Float { Float(try reader.floating(slot, decoder.parent, decoder.key)) }
    func decode(_ type: Int.Type) throws -> Int { try int() }
    func decode(_ type: Int8.Type) throws -> Int8 { try int() }
    func decode(_ type: Int16.Type) throws -> Int16 { try int() }
    func decode(_ type: Int32.Type) throws -> Int32 { try int() }
    func decode(_ type: Int64.Type) throws -> Int64 { try int() }
    func decode(_ type: UInt.Type) throws -> UInt { try int() }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try int() }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try int() }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try int() }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try int() }

    private func int<T: FixedWidthInteger>() throws -> T { try reader.integer(slot, T.self, decoder.parent, decoder.key) }
}

// MARK: Dictionaries

/// A dictionary key stored as a keyed value's key, as Swift's own
/// `Dictionary` coding writes it: a String as itself, an Int in decimal.
protocol StateDictionaryKey: Hashable {
    init?(stateKey: ArraySlice<UInt8>)
    var stateKey: String { get }
    /// The key in coding paths.
    var codingKey: any CodingKey { get }
}

extension String: StateDictionaryKey {
    init?(stateKey: ArraySlice<UInt8>) { self = String(decoding: stateKey, as: UTF8.self) }
    var stateKey: String { self }
    var codingKey: any CodingKey { NameKey(stringValue: self) }
}

extension Int: StateDictionaryKey {
    init?(stateKey: ArraySlice<UInt8>) {
        var digits = stateKey[...]
        let negative = digits.first == UInt8(ascii: "-")
        if negative { digits = digits.dropFirst() }
        // Plain decimal, as `String(Int)` writes it, is read here; anything
        // else (a sign, 19 digits that may overflow) the standard parser decides.
        guard !digits.isEmpty, digits.count <= 18,
              digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            guard let value = Int(String(decoding: stateKey, as: UTF8.self)) else { return nil }
            self = value
            return
        }
        let value = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        self = negative ? -value : value
    }

    var stateKey: String { String(self) }
    var codingKey: any CodingKey { IndexKey(self) }
}

/// Dictionaries keyed by String or Int: coded in the same form as Swift's
/// `Dictionary` coding (a keyed value), without a coding key per entry.
protocol StateCodableDictionary {
    static func decodeState(from reader: StateReader, at offset: Int, parent: DecoderImpl?, key: (any CodingKey)?) throws -> Self
}

extension Dictionary: StateCodableDictionary where Key: StateDictionaryKey, Value: Codable {
    static func decodeState(from reader: StateReader, at offset: Int, parent: DecoderImpl?, key: (any CodingKey)?) throws -> Self {
        guard reader.bytes[offset] == Tag.keyed.rawValue else { throw reader.mismatch(Self.self, .at(offset), parent, key) }
        let entries = try reader.keyedEntries(offset)
        // Entries with a coding path, so that an error inside a value names where it is.
        let holder = DecoderImpl(reader: reader, slot: .at(offset), parent: parent, key: key)
        func decodedKey(_ entry: KeyedEntry) throws -> Key {
            guard let key = Key(stateKey: reader.bytes[entry.key ..< entry.key + entry.keyLength]) else {
                throw DecodingError.dataCorrupted(.init(codingPath: holder.codingPath,
                                                        debugDescription: "the key \(reader.keyString(entry)) is not a \(Key.self)"))
            }
            return key
        }
        // Persistent values (a bucket of objects): the type is tested once,
        // not once an entry.
        if let declared = Value.self as? PersistentObject.Type {
            // Gathered first, then built in one call: a subscript store per
            // entry in this unspecialized code would look up the metadata
            // of `Value?` every time.
            var pairs: [(Key, Value)] = []
            pairs.reserveCapacity(entries.count)
            for entry in entries {
                let dictionaryKey = try decodedKey(entry)
                let object = try reader.object(.at(entry.value), declared, holder, dictionaryKey.codingKey)
                guard let typed = object as? Value else {
                    throw DecodingError.typeMismatch(Value.self, .init(codingPath: DecoderImpl.path(holder, dictionaryKey.codingKey),
                                                                       debugDescription: "expected \(Value.self), found \(reader.kind(.at(entry.value)))"))
                }
                pairs.append((dictionaryKey, typed))
            }
            // A repeated key: the last wins, as for any other value.
            return Dictionary(pairs, uniquingKeysWith: { _, last in last })
        }
        var result: [Key: Value] = [:]
        result.reserveCapacity(entries.count)
        for entry in entries {
            let dictionaryKey = try decodedKey(entry)
            result[dictionaryKey] = try reader.unbox(Value.self, .at(entry.value), parent: holder, key: dictionaryKey.codingKey)
        }
        return result
    }
}

/// `Optional`, for the one form the reader decodes itself: a value that
/// reads as nil, wrapped in ``Tag/optional``.
protocol WrappedOptional {
    /// `.some` of the value at `offset`, inside the wrapper.
    static func present(from reader: StateReader, at offset: Int, parent: DecoderImpl?, key: (any CodingKey)?) throws -> Self
}

extension Optional: WrappedOptional where Wrapped: Decodable {
    static func present(from reader: StateReader, at offset: Int, parent: DecoderImpl?, key: (any CodingKey)?) throws -> Self {
        .some(try reader.unbox(Wrapped.self, .at(offset), parent: parent, key: key))
    }
}

/// A key met in a dictionary, for coding paths.
struct NameKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
