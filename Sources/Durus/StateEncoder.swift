#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Turns `Encodable` values into ``StateValue`` trees. Persistent objects met
/// anywhere inside become references, through `reference`.
struct StateEncoder {
    /// Gives the OID of a persistent object met while encoding (a commit
    /// assigns OIDs to new objects here) and records it as referenced.
    var reference: (PersistentObject) throws -> OID

    func encode<T: Encodable>(_ value: T) throws -> StateValue {
        try entry(value, path: []).value
    }

    /// Encodes `value` as a node tree, written out later without building
    /// a ``StateValue`` tree in between.
    func entry<T: Encodable>(_ value: T, path: [any CodingKey]) throws -> Node.Entry {
        if let leaf = try leaf(value) { return leaf }
        return try composite(value, path: path)
    }

    /// `entry` for a value `leaf` declined: a dictionary or an optional
    /// written here, or anything else through an encoder.
    func composite<T: Encodable>(_ value: T, path: [any CodingKey]) throws -> Node.Entry {
        if let direct = value as? any DirectlyEncoded { return try direct.stateEntry(self, path: path) }
        let encoder = EncoderImpl(codingPath: path, owner: self)
        try value.encode(to: encoder)
        return encoder.node.kind == .value ? .value(encoder.node.scalar) : .node(encoder.node)
    }

    /// A value encoded without an encoder: a common leaf type, or an array
    /// of Int, String or Double written straight to bytes (B-tree nodes);
    /// nil for anything else.
    func leaf<T: Encodable>(_ value: T) throws -> Node.Entry? {
        // Exact metatype comparisons before `scalar`'s one dynamic cast.
        if T.self == [Int].self {
            let integers = value as! [Int]
            guard !integers.isEmpty else { return .value(.array([])) }
            var out: [UInt8] = []
            out.reserveCapacity(2 + 2 * integers.count)
            Varint.writeDeltas(integers.lazy.map { Int64($0) }, to: &out)
            return .raw(out)
        }
        if T.self == [String].self { return .raw(Self.array(value as! [String]) { out, v in StateValue.string(v).write(to: &out) }) }
        if T.self == [Double].self { return .raw(Self.array(value as! [Double]) { out, v in StateValue.double(v).write(to: &out) }) }
        if let scalar = try scalar(value) { return .value(scalar) }
        return nil
    }

    private static func array<E>(_ elements: [E], _ write: (inout [UInt8], E) -> Void) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(2 + elements.count * 4)
        StateValue.writeHeader(.array, count: elements.count, to: &out)
        for element in elements { write(&out, element) }
        return out
    }

    /// The common leaf types (`LeafValueModel.leaf(_:)`) and object
    /// references, encoded without an encoder; nil for anything else.
    func scalar<T: Encodable>(_ value: T) throws -> StateValue? {
        if let leaf = StateValue.leaf(value) { return leaf }
        // Last: the one dynamic test, for every type that is none of the above.
        if T.self is PersistentObject.Type {
            let object = PersistentObject.object(value)
            return .reference(try reference(object), typeName: PersistentTypes.name(of: Swift.type(of: object)))
        }
        return nil
    }
}

/// A value under construction; containers share nodes by reference and
/// append to them in place (primitives are stored inline, without a node).
final class Node {
    enum Kind { case value, array, keyed, raw }
    enum Entry {
        case value(StateValue)
        case node(Node)
        /// A value already in its binary form.
        case raw([UInt8])

        var value: StateValue {
            switch self {
            case .value(let v): return v
            case .node(let n): return n.value
            case .raw(let bytes):
                var offset = 0
                // Written by this encoder, so well-formed.
                return (try? StateValue.read(bytes, at: &offset)) ?? .null
            }
        }

        /// The entry of an optional holding this entry's value: the same,
        /// unless the value reads as nil (null, or a nil inside an optional),
        /// which is wrapped in ``StateValue/optional(_:)`` to keep its level.
        var present: Entry {
            switch self {
            case .value(.null), .value(.optional): .value(.optional(value))
            default: self
            }
        }

        func write(to out: inout [UInt8]) {
            switch self {
            case .value(let v): v.write(to: &out)
            case .node(let n): n.write(to: &out)
            case .raw(let bytes): out.append(contentsOf: bytes)
            }
        }
    }

    // Exempt from run-time exclusivity checks (a tenth of encoding's time):
    // only the state encoder touches a node, never in overlapping accesses.
    @exclusivity(unchecked) var kind = Kind.value
    @exclusivity(unchecked) var scalar = StateValue.null
    @exclusivity(unchecked) var entries: [Entry] = []
    /// Keys of a keyed node, parallel to `entries` (a repeated key: the last wins when read).
    @exclusivity(unchecked) var keys: [String] = []
    /// The binary form of a raw node.
    @exclusivity(unchecked) var raw: [UInt8] = []

    var value: StateValue {
        switch kind {
        case .value: scalar
        case .array: .array(entries.map(\.value))
        case .keyed: .keyed(zip(keys, entries).map { ($0, $1.value) })
        case .raw: Entry.raw(raw).value
        }
    }

    /// Writes the binary form, as `value.write(to:)` would, without the tree.
    func write(to out: inout [UInt8]) {
        switch kind {
        case .value: scalar.write(to: &out)
        case .raw: out.append(contentsOf: raw)
        case .array:
            if let integers = StateValue.integers(entries, { if case .value(.int(let value)) = $0 { value } else { nil } }) {
                Varint.writeDeltas(integers, to: &out)
                return
            }
            StateValue.writeHeader(.array, count: entries.count, to: &out)
            for entry in entries { entry.write(to: &out) }
        case .keyed:
            StateValue.writeHeader(.keyed, count: entries.count, to: &out)
            for (key, entry) in zip(keys, entries) {
                Varint.writeString(key, to: &out)
                entry.write(to: &out)
            }
        }
    }

    /// Makes this node a `kind`, with room for `capacity` entries of a keyed one.
    func become(_ kind: Kind, capacity: Int = 0) {
        guard self.kind != kind else { return }
        self.kind = kind
        entries = []
        keys = []
        raw = []
        if kind == .keyed, capacity > 0 {
            entries.reserveCapacity(capacity)
            keys.reserveCapacity(capacity)
        }
    }
}

private final class EncoderImpl: Encoder {
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    let owner: StateEncoder
    let node: Node

    init(codingPath: [any CodingKey], owner: StateEncoder, node: Node = Node()) {
        self.codingPath = codingPath
        self.owner = owner
        self.node = node
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        // Room for a small struct's properties at once, rather than three
        // reallocations on the way to four.
        node.become(.keyed, capacity: 4)
        return KeyedEncodingContainer(KeyedContainer<Key>(encoder: self, node: node))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        node.become(.array)
        return UnkeyedContainer(encoder: self, node: node)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleContainer(encoder: self)
    }

    func entry<T: Encodable>(_ value: T, key: (any CodingKey)?) throws -> Node.Entry {
        // Leaves first: their coding path is never needed, so never built.
        if let leaf = try owner.leaf(value) { return leaf }
        return try owner.composite(value, path: key.map { codingPath + [$0] } ?? codingPath)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: EncoderImpl
    let node: Node
    var codingPath: [any CodingKey] { encoder.codingPath }

    private func set(_ key: Key, _ child: Node) {
        node.keys.append(key.stringValue)
        node.entries.append(.node(child))
    }

    private func set(_ key: Key, _ value: StateValue) {
        node.keys.append(key.stringValue)
        node.entries.append(.value(value))
    }

    mutating func encodeNil(forKey key: Key) throws { set(key, .null) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { set(key, .bool(value)) }
    mutating func encode(_ value: String, forKey key: Key) throws { set(key, .string(value)) }
    mutating func encode(_ value: Double, forKey key: Key) throws { set(key, .double(value)) }
    mutating func encode(_ value: Float, forKey key: Key) throws { set(key, .float(value)) }
    mutating func encode(_ value: Int, forKey key: Key) throws { set(key, .int(Int64(value))) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { set(key, .int(Int64(value))) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { set(key, .int(Int64(value))) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { set(key, .int(Int64(value))) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { set(key, .int(value)) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { set(key, .uint(UInt64(value))) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { set(key, .uint(UInt64(value))) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { set(key, .uint(UInt64(value))) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { set(key, .uint(UInt64(value))) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { set(key, .uint(value)) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        let entry = try encoder.entry(value, key: key)
        node.keys.append(key.stringValue)
        node.entries.append(entry)
    }

    // A nil is written as null, not left out: a key the state lacks means a
    // record written before the property existed, which loads with its default.
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: Int8?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: Int16?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: Int32?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: Int128?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: UInt?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: UInt8?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: UInt16?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: UInt32?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: UInt64?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent(_ value: UInt128?, forKey key: Key) throws { if let value { try encode(value, forKey: key) } else { set(key, .null) } }
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        guard let value else { return set(key, .null) }
        let entry = try encoder.entry(value, key: key)
        node.keys.append(key.stringValue)
        node.entries.append(entry.present)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
        -> KeyedEncodingContainer<NestedKey> {
        let child = Node()
        child.become(.keyed)
        set(key, child)
        let nested = EncoderImpl(codingPath: codingPath + [key], owner: encoder.owner, node: child)
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(encoder: nested, node: child))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = Node()
        child.become(.array)
        set(key, child)
        return UnkeyedContainer(encoder: EncoderImpl(codingPath: codingPath + [key], owner: encoder.owner, node: child), node: child)
    }

    mutating func superEncoder() -> any Encoder { superEncoder(named: "super", key: nil) }

    mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(named: key.stringValue, key: key) }

    private func superEncoder(named name: String, key: Key?) -> any Encoder {
        let child = Node()
        node.keys.append(name)
        node.entries.append(.node(child))
        return EncoderImpl(codingPath: codingPath + (key.map { [$0] } ?? []), owner: encoder.owner, node: child)
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let encoder: EncoderImpl
    let node: Node
    var codingPath: [any CodingKey] { encoder.codingPath }
    var count: Int { node.entries.count }

    private func append(_ child: Node) { node.entries.append(.node(child)) }

    private func append(_ value: StateValue) { node.entries.append(.value(value)) }

    mutating func encodeNil() throws { append(.null) }
    mutating func encode(_ value: Bool) throws { append(.bool(value)) }
    mutating func encode(_ value: String) throws { append(.string(value)) }
    mutating func encode(_ value: Double) throws { append(.double(value)) }
    mutating func encode(_ value: Float) throws { append(.float(value)) }
    mutating func encode(_ value: Int) throws { append(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { append(.int(value)) }
    mutating func encode(_ value: UInt64) throws { append(.uint(value)) }
    mutating func encode(_ value: UInt8) throws { append(.uint(UInt64(value))) }
    mutating func encode<T: Encodable>(_ value: T) throws { node.entries.append(try encoder.entry(value, key: IndexKey(count))) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let child = Node()
        child.become(.keyed)
        let nested = EncoderImpl(codingPath: codingPath + [IndexKey(count)], owner: encoder.owner, node: child)
        append(child)
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(encoder: nested, node: child))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let child = Node()
        child.become(.array)
        let nested = EncoderImpl(codingPath: codingPath + [IndexKey(count)], owner: encoder.owner, node: child)
        append(child)
        return UnkeyedContainer(encoder: nested, node: child)
    }

    mutating func superEncoder() -> any Encoder {
        let child = Node()
        let nested = EncoderImpl(codingPath: codingPath + [IndexKey(count)], owner: encoder.owner, node: child)
        append(child)
        return nested
    }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let encoder: EncoderImpl
    var codingPath: [any CodingKey] { encoder.codingPath }

    private func set(_ value: StateValue) {
        encoder.node.become(.value)
        encoder.node.scalar = value
    }

    mutating func encodeNil() throws { set(.null) }
    mutating func encode(_ value: Bool) throws { set(.bool(value)) }
    mutating func encode(_ value: String) throws { set(.string(value)) }
    mutating func encode(_ value: Double) throws { set(.double(value)) }
    mutating func encode(_ value: Float) throws { set(.float(value)) }
    mutating func encode(_ value: Int) throws { set(.int(Int64(value))) }
    mutating func encode(_ value: Int8) throws { set(.int(Int64(value))) }
    mutating func encode(_ value: Int16) throws { set(.int(Int64(value))) }
    mutating func encode(_ value: Int32) throws { set(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { set(.int(value)) }
    mutating func encode(_ value: UInt) throws { set(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt8) throws { set(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt16) throws { set(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt32) throws { set(.uint(UInt64(value))) }
    mutating func encode(_ value: UInt64) throws { set(.uint(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        switch try encoder.entry(value, key: nil) {
        case .value(let v): set(v)
        case .raw(let bytes):
            encoder.node.become(.raw)
            encoder.node.raw = bytes
        case .node(let n):
            let node = encoder.node
            node.kind = n.kind
            node.scalar = n.scalar
            node.entries = n.entries
            node.keys = n.keys
            node.raw = n.raw
        }
    }
}

/// A value the state encoder writes itself, without an `Encoder`.
protocol DirectlyEncoded {
    func stateEntry(_ encoder: StateEncoder, path: [any CodingKey]) throws -> Node.Entry
}

/// An optional as ``StateValue`` describes it: nil as null, a value as
/// itself, or wrapped when it reads as nil.
extension Optional: DirectlyEncoded where Wrapped: Encodable {
    func stateEntry(_ encoder: StateEncoder, path: [any CodingKey]) throws -> Node.Entry {
        guard let wrapped = self else { return .value(.null) }
        return try encoder.entry(wrapped, path: path).present
    }
}

/// A dictionary keyed by String or Int, as Swift's `Dictionary` coding
/// writes it (a keyed value), without a coding key per entry.
extension Dictionary: DirectlyEncoded where Key: StateDictionaryKey, Value: Codable {
    func stateEntry(_ encoder: StateEncoder, path: [any CodingKey]) throws -> Node.Entry {
        let node = Node()
        node.become(.keyed, capacity: count)
        for (key, value) in self {
            node.keys.append(key.stateKey)
            if let leaf = try encoder.leaf(value) {
                node.entries.append(leaf)
            } else {
                node.entries.append(try encoder.composite(value, path: path + [key.codingKey]))
            }
        }
        return .node(node)
    }
}
