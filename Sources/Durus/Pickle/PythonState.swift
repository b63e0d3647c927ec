#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The bridge between a Python Durus object's state (a pickled dict of
/// attributes) and a Swift persistent type mapped to its class (see
/// ``PersistentObject/pythonClass``).
///
/// Reading: the pickled state becomes a ``StateValue`` that the Swift type
/// decodes as it decodes its own records, by property name, with the same
/// schema-evolution rules: `None` is nil, `bool`, `int` (within 64 bits),
/// `float`, `str` and `bytes` are themselves, a `tuple`, `list`, `set` or
/// `frozenset` is an array, a `dict` keyed by `str` or `int` is a keyed value
/// (so a `[String: V]` or `[Int: V]`), and a reference is a reference.
///
/// Writing: a mapped object's state is pickled as Durus pickles an object's
/// `__getstate__()`: a dict of its properties by name. Swift's values map
/// back: an array is a `list`, a `Set` a `set`, a dictionary a `dict` (keyed
/// by `int` when the Swift key is an integer), a nested struct a `dict`, a
/// `Date` a `float` (seconds since 2001), a `UUID` 16 `bytes`.
///
/// What cannot cross: an object of a Python class no Swift type maps, any
/// other pickled object (a `datetime`, a `Decimal`), an integer beyond 64
/// bits and a dict keyed by anything but `str` or `int` are errors when read
/// (``DurusError/badState(oid:reason:)``); a tuple written back from Swift is
/// a list.
enum PythonState {
    /// The pickled state of `oid` as a ``StateValue``.
    static func stateValue(_ value: PickleValue, oid: OID) throws(DurusError) -> StateValue {
        switch value {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .bigInt(let big):
            throw .badState(oid: oid, reason: "the Python integer \(big) does not fit in 64 bits")
        case .double(let d): return .double(d)
        case .bytes(let b): return .bytes(b)
        case .string(let s): return .string(s)
        case .tuple(let items), .list(let items), .set(let items), .frozenset(let items):
            var values: [StateValue] = []
            values.reserveCapacity(items.count)
            for item in items { values.append(try stateValue(item, oid: oid)) }
            return .array(values)
        case .dict(let entries):
            var pairs: [(String, StateValue)] = []
            pairs.reserveCapacity(entries.count)
            for entry in entries {
                let key: String
                switch entry.key {
                case .string(let s): key = s
                case .int(let i): key = String(i)
                default: throw .badState(oid: oid, reason: "a Python dict key \(kind(entry.key)) has no Swift counterpart (str or int only)")
                }
                pairs.append((key, try stateValue(entry.value, oid: oid)))
            }
            return .keyed(pairs)
        case .persistent(let reference):
            return .reference(OID(reference.oid), typeName: reference.classGlobal?.description ?? "")
        case .global(let global):
            throw .badState(oid: oid, reason: "the state holds the Python class or function \(global), which has no Swift counterpart")
        case .object(let object):
            throw .badState(oid: oid, reason: "the state holds a Python object built by \(kind(object.callable)), which has no Swift counterpart")
        }
    }

    /// The state's binary form, for ``StateReader``.
    static func stateBytes(_ value: PickleValue, oid: OID) throws(DurusError) -> [UInt8] {
        var out: [UInt8] = []
        try stateValue(value, oid: oid).write(to: &out)
        return out
    }

    private static func kind(_ value: PickleValue) -> String {
        switch value {
        case .null: "None"
        case .bool: "bool"
        case .int, .bigInt: "int"
        case .double: "float"
        case .bytes: "bytes"
        case .string: "str"
        case .tuple: "tuple"
        case .list: "list"
        case .dict: "dict"
        case .set: "set"
        case .frozenset: "frozenset"
        case .global(let global): global.description
        case .persistent: "persistent reference"
        case .object(let object): kind(object.callable)
        }
    }

    /// The class global a Swift type's stored name stands for: a Python
    /// class `module.name` split at its last dot.
    static func global(_ typeName: String) -> PickleValue.Global {
        guard let dot = typeName.lastIndex(of: ".") else { return .init("__main__", typeName) }
        return .init(String(typeName[..<dot]), String(typeName[typeName.index(after: dot)...]))
    }
}

/// Pickles `Encodable` values as Python sees them (see ``PythonState``);
/// persistent objects met inside become Durus persistent references.
struct PickleStateEncoder {
    /// Gives the OID of a persistent object met while encoding, as the state encoder's does.
    var reference: (PersistentObject) throws -> OID

    func pickle<T: Encodable>(_ value: T) throws -> PickleValue {
        if let leaf = try leaf(value) { return leaf }
        let encoder = PickleEncoderImpl(owner: self)
        try value.encode(to: encoder)
        return encoder.box.value
    }

    func persistent(_ object: PersistentObject) throws -> PickleValue {
        let oid = try reference(object)
        let name = object.pythonClassName ?? PersistentTypes.name(of: Swift.type(of: object))
        return .persistent(.init(oid: oid.rawValue, classGlobal: PythonState.global(name)))
    }

    /// The values written without an encoder; nil for anything else.
    func leaf<T: Encodable>(_ value: T) throws -> PickleValue? {
        if let leaf = PickleValue.leaf(value) { return leaf }
        if T.self is PersistentObject.Type { return try persistent(PersistentObject.object(value)) }
        if let set = value as? any PythonSetEncodable { return .set(try set.pickledElements(self)) }
        if let dictionary = value as? any PythonDictEncodable { return .dict(try dictionary.pickledEntries(self)) }
        if let tuple = value as? any PythonTupleEncodable { return .tuple(try tuple.pickledItems(self)) }
        return nil
    }
}

/// A value pickled as a Python `tuple` (Durus's B-tree items).
protocol PythonTupleEncodable {
    func pickledItems(_ encoder: PickleStateEncoder) throws -> [PickleValue]
}

/// A Swift dictionary keyed by `String` or `Int`, pickled as a Python `dict`
/// keyed by `str` or `int`.
protocol PythonDictEncodable {
    func pickledEntries(_ encoder: PickleStateEncoder) throws -> [PickleValue.Entry]
}

extension Dictionary: PythonDictEncodable where Key: StateDictionaryKey, Value: Encodable {
    func pickledEntries(_ encoder: PickleStateEncoder) throws -> [PickleValue.Entry] {
        try map { key, value in
            let pickledKey: PickleValue = if let number = key as? Int { .int(Int64(number)) } else { .string(key.stateKey) }
            return .init(pickledKey, try encoder.pickle(value))
        }
    }
}

/// A Swift `Set`, pickled as a Python `set`.
protocol PythonSetEncodable {
    func pickledElements(_ encoder: PickleStateEncoder) throws -> [PickleValue]
}

extension Set: PythonSetEncodable where Element: Encodable {
    func pickledElements(_ encoder: PickleStateEncoder) throws -> [PickleValue] {
        try map { try encoder.pickle($0) }
    }
}

/// A value under construction.
private final class PickleBox {
    enum Kind { case value, list, dict }
    var kind = Kind.value
    var scalar = PickleValue.null
    var items: [PickleBox] = []
    var entries: [(PickleValue, PickleBox)] = []

    init(_ scalar: PickleValue = .null) { self.scalar = scalar }

    var value: PickleValue {
        switch kind {
        case .value: scalar
        case .list: .list(items.map(\.value))
        case .dict: .dict(entries.map { .init($0.0, $0.1.value) })
        }
    }
}

private final class PickleEncoderImpl: Encoder {
    let codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    let owner: PickleStateEncoder
    let box: PickleBox

    init(owner: PickleStateEncoder, box: PickleBox = PickleBox()) {
        self.owner = owner
        self.box = box
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if box.kind != .dict { box.kind = .dict; box.entries = [] }
        return KeyedEncodingContainer(PickleKeyed<Key>(encoder: self))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if box.kind != .list { box.kind = .list; box.items = [] }
        return PickleUnkeyed(encoder: self)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { PickleSingle(encoder: self) }

    func child<T: Encodable>(_ value: T) throws -> PickleBox {
        if let leaf = try owner.leaf(value) { return PickleBox(leaf) }
        let nested = PickleEncoderImpl(owner: owner)
        try value.encode(to: nested)
        return nested.box
    }
}

private struct PickleKeyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: PickleEncoderImpl
    var codingPath: [any CodingKey] { [] }

    /// Properties by name (dictionaries keyed by `String` or `Int` are pickled
    /// before they reach an encoder, their integer keys as integers).
    private func key(_ key: Key) -> PickleValue { .string(key.stringValue) }

    mutating func encodeNil(forKey key: Key) throws { encoder.box.entries.append((self.key(key), PickleBox(.null))) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        encoder.box.entries.append((self.key(key), try encoder.child(value)))
    }
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        guard let value else { return try encodeNil(forKey: key) }
        try encode(value, forKey: key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let nested = PickleEncoderImpl(owner: encoder.owner)
        encoder.box.entries.append((self.key(key), nested.box))
        return nested.container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = PickleEncoderImpl(owner: encoder.owner)
        encoder.box.entries.append((self.key(key), nested.box))
        return nested.unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder { superEncoder(named: .string("super")) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(named: self.key(key)) }

    private func superEncoder(named name: PickleValue) -> any Encoder {
        let nested = PickleEncoderImpl(owner: encoder.owner)
        encoder.box.entries.append((name, nested.box))
        return nested
    }
}

private struct PickleUnkeyed: UnkeyedEncodingContainer {
    let encoder: PickleEncoderImpl
    var codingPath: [any CodingKey] { [] }
    var count: Int { encoder.box.items.count }

    mutating func encodeNil() throws { encoder.box.items.append(PickleBox(.null)) }
    mutating func encode<T: Encodable>(_ value: T) throws { encoder.box.items.append(try encoder.child(value)) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let nested = PickleEncoderImpl(owner: encoder.owner)
        encoder.box.items.append(nested.box)
        return nested.container(keyedBy: keyType)
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let nested = PickleEncoderImpl(owner: encoder.owner)
        encoder.box.items.append(nested.box)
        return nested.unkeyedContainer()
    }

    mutating func superEncoder() -> any Encoder {
        let nested = PickleEncoderImpl(owner: encoder.owner)
        encoder.box.items.append(nested.box)
        return nested
    }
}

private struct PickleSingle: SingleValueEncodingContainer {
    let encoder: PickleEncoderImpl
    var codingPath: [any CodingKey] { [] }

    private func set(_ value: PickleValue) {
        encoder.box.kind = .value
        encoder.box.scalar = value
    }

    mutating func encodeNil() throws { set(.null) }
    mutating func encode(_ value: Bool) throws { set(.bool(value)) }
    mutating func encode(_ value: String) throws { set(.string(value)) }
    mutating func encode(_ value: Double) throws { set(.double(value)) }
    mutating func encode(_ value: Float) throws { set(.double(Double(value))) }
    mutating func encode(_ value: Int) throws { set(.int(Int64(value))) }
    mutating func encode(_ value: Int8) throws { set(.int(Int64(value))) }
    mutating func encode(_ value: Int16) throws { set(.int(Int64(value))) }
    mutating func encode(_ value: Int32) throws { set(.int(Int64(value))) }
    mutating func encode(_ value: Int64) throws { set(.int(value)) }
    mutating func encode(_ value: UInt) throws { try encode(UInt64(value)) }
    mutating func encode(_ value: UInt8) throws { set(.int(Int64(value))) }
    mutating func encode(_ value: UInt16) throws { set(.int(Int64(value))) }
    mutating func encode(_ value: UInt32) throws { set(.int(Int64(value))) }
    mutating func encode(_ value: UInt64) throws {
        guard let fits = Int64(exactly: value) else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "\(value) does not fit a 64-bit Python int as this bridge writes them"))
        }
        set(.int(fits))
    }
    mutating func encode<T: Encodable>(_ value: T) throws {
        let child = try encoder.child(value)
        encoder.box.kind = child.kind
        encoder.box.scalar = child.scalar
        encoder.box.items = child.items
        encoder.box.entries = child.entries
    }
}
