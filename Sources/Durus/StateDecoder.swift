#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Turns ``StateValue`` trees back into `Decodable` values. A reference
/// becomes the instance `resolve` gives for it (the identity map's, perhaps
/// a ghost), never a new object.
struct StateDecoder {
    /// The instance for a reference: its OID, the type name the record
    /// stored, and the static type the state declares there (a type that
    /// was never registered resolves to it when the names match).
    var resolve: (OID, String, PersistentObject.Type) throws -> PersistentObject

    func decode<T: Decodable>(_ type: T.Type, from value: StateValue) throws -> T {
        try unbox(value, as: type, path: [])
    }

    func unbox<T: Decodable>(_ value: StateValue, as type: T.Type, path: [any CodingKey]) throws -> T {
        func mismatch(_ what: String) -> DecodingError {
            .typeMismatch(T.self, .init(codingPath: path, debugDescription: "expected \(T.self), found \(what)"))
        }
        if T.self == String.self {
            guard case .string(let s) = value else { throw mismatch("\(value.kind)") }
            return s as! T
        }
        if T.self == Int.self { return try number(value, Int.self, path) as! T }
        if T.self == Bool.self {
            guard case .bool(let b) = value else { throw mismatch("\(value.kind)") }
            return b as! T
        }
        if T.self == Double.self { return try floating(value, path) as! T }
        if T.self == [Int].self, case .array(let items) = value {
            return try items.map { try number($0, Int.self, path) } as! T
        }
        if T.self == [String].self, case .array(let items) = value {
            return try items.map { item -> String in
                guard case .string(let s) = item else { throw mismatch("\(item.kind) in an array of String") }
                return s
            } as! T
        }
        if T.self == [Double].self, case .array(let items) = value {
            return try items.map { try floating($0, path) } as! T
        }
        if let declared = T.self as? PersistentObject.Type {
            guard case .reference(let oid, let typeName) = value else { throw mismatch("\(value.kind)") }
            let object = try resolve(oid, typeName, declared)
            guard let typed = object as? T else {
                throw mismatch("a reference to \(typeName)")
            }
            return typed
        }
        if T.self == Data.self {
            guard case .bytes(let b) = value else { throw mismatch("\(value.kind)") }
            return Data(b) as! T
        }
        if T.self == [UInt8].self {
            guard case .bytes(let b) = value else { throw mismatch("\(value.kind)") }
            return b as! T
        }
        if T.self == Date.self {
            return Date(timeIntervalSinceReferenceDate: try floating(value, path)) as! T
        }
        if T.self == UUID.self {
            guard case .bytes(let b) = value, b.count == 16 else { throw mismatch("\(value.kind)") }
            let uuid = UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                                   b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
            return uuid as! T
        }
        return try T(from: DecoderImpl(value: value, codingPath: path, owner: self))
    }

    func number<T: FixedWidthInteger>(_ value: StateValue, _ type: T.Type, _ path: [any CodingKey]) throws -> T {
        let result: T?
        switch value {
        case .int(let v): result = T(exactly: v)
        case .uint(let v): result = T(exactly: v)
        default: result = nil
        }
        guard let result else {
            throw DecodingError.typeMismatch(T.self, .init(codingPath: path, debugDescription: "\(value.kind) does not fit \(T.self)"))
        }
        return result
    }

    func floating(_ value: StateValue, _ path: [any CodingKey]) throws -> Double {
        switch value {
        case .double(let v): return v
        case .float(let v): return Double(v)
        case .int(let v): return Double(v)
        case .uint(let v): return Double(v)
        default:
            throw DecodingError.typeMismatch(Double.self, .init(codingPath: path, debugDescription: "found \(value.kind)"))
        }
    }
}

extension StateValue {
    var kind: String {
        switch self {
        case .null: "nil"
        case .bool: "a Bool"
        case .int, .uint: "an integer"
        case .double, .float: "a floating-point number"
        case .string: "a String"
        case .bytes: "bytes"
        case .array: "an array"
        case .keyed: "a keyed value"
        case .reference(_, let typeName): "a reference to \(typeName)"
        }
    }
}

private final class DecoderImpl: Decoder {
    let value: StateValue
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any] = [:]
    let owner: StateDecoder

    init(value: StateValue, codingPath: [any CodingKey], owner: StateDecoder) {
        self.value = value
        self.codingPath = codingPath
        self.owner = owner
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .keyed(let pairs) = value else {
            throw DecodingError.typeMismatch([String: Any].self, .init(codingPath: codingPath, debugDescription: "found \(value.kind)"))
        }
        return KeyedDecodingContainer(KeyedContainer<Key>(decoder: self, pairs: pairs))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        switch value {
        case .array(let items): return UnkeyedContainer(decoder: self, items: items)
        // Bytes written for [UInt8]-like sequences decode as arrays of numbers too.
        case .bytes(let bytes): return UnkeyedContainer(decoder: self, items: bytes.map { .uint(UInt64($0)) })
        default:
            throw DecodingError.typeMismatch([Any].self, .init(codingPath: codingPath, debugDescription: "found \(value.kind)"))
        }
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleContainer(decoder: self)
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: DecoderImpl
    let pairs: [(String, StateValue)]
    /// Built only for large containers (dictionaries); a struct's few
    /// properties are found faster by a scan, without hashing.
    let index: [String: Int]?
    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { pairs.compactMap { Key(stringValue: $0.0) } }

    init(decoder: DecoderImpl, pairs: [(String, StateValue)]) {
        self.decoder = decoder
        self.pairs = pairs
        if pairs.count > 12 {
            var index: [String: Int] = [:]
            index.reserveCapacity(pairs.count)
            for (position, pair) in pairs.enumerated() { index[pair.0] = position }
            self.index = index
        } else {
            index = nil
        }
    }

    /// The value under `name`; the last one when a key repeats.
    private func lookup(_ name: String) -> StateValue? {
        if let index { return index[name].map { pairs[$0].1 } }
        return pairs.last(where: { $0.0 == name })?.1
    }

    func contains(_ key: Key) -> Bool { lookup(key.stringValue) != nil }

    private func value(_ key: Key) throws -> StateValue {
        guard let value = lookup(key.stringValue) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "the state has no \(key.stringValue)"))
        }
        return value
    }

    func decodeNil(forKey key: Key) throws -> Bool { try value(key) == .null }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decoder.owner.unbox(try value(key), as: T.self, path: codingPath + [key])
    }

    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try int(key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try int(key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try int(key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try int(key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try int(key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try int(key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try int(key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try int(key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try int(key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float {
        Float(try decoder.owner.floating(try value(key), codingPath + [key]))
    }

    private func int<T: FixedWidthInteger>(_ key: Key) throws -> T {
        try decoder.owner.number(try value(key), T.self, codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey> {
        try DecoderImpl(value: try value(key), codingPath: codingPath + [key], owner: decoder.owner).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try DecoderImpl(value: try value(key), codingPath: codingPath + [key], owner: decoder.owner).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        DecoderImpl(value: lookup("super") ?? .null, codingPath: codingPath, owner: decoder.owner)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        DecoderImpl(value: try value(key), codingPath: codingPath + [key], owner: decoder.owner)
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: DecoderImpl
    let items: [StateValue]
    var currentIndex = 0
    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    init(decoder: DecoderImpl, items: [StateValue]) {
        self.decoder = decoder
        self.items = items
    }

    private mutating func next() throws -> StateValue {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath + [IndexKey(currentIndex)],
                                                              debugDescription: "the array has only \(items.count) values"))
        }
        defer { currentIndex += 1 }
        return items[currentIndex]
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { return false }
        if items[currentIndex] == .null {
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let path = codingPath + [IndexKey(currentIndex)]
        return try decoder.owner.unbox(try next(), as: T.self, path: path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let path = codingPath + [IndexKey(currentIndex)]
        return try DecoderImpl(value: try next(), codingPath: path, owner: decoder.owner).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let path = codingPath + [IndexKey(currentIndex)]
        return try DecoderImpl(value: try next(), codingPath: path, owner: decoder.owner).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let path = codingPath + [IndexKey(currentIndex)]
        return DecoderImpl(value: try next(), codingPath: path, owner: decoder.owner)
    }
}

private struct SingleContainer: SingleValueDecodingContainer {
    let decoder: DecoderImpl
    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool { decoder.value == .null }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try decoder.owner.unbox(decoder.value, as: T.self, path: codingPath)
    }

    func decode(_ type: Int8.Type) throws -> Int8 { try decoder.owner.number(decoder.value, Int8.self, codingPath) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decoder.owner.number(decoder.value, Int16.self, codingPath) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decoder.owner.number(decoder.value, Int32.self, codingPath) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decoder.owner.number(decoder.value, Int64.self, codingPath) }
    func decode(_ type: UInt.Type) throws -> UInt { try decoder.owner.number(decoder.value, UInt.self, codingPath) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decoder.owner.number(decoder.value, UInt8.self, codingPath) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decoder.owner.number(decoder.value, UInt16.self, codingPath) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decoder.owner.number(decoder.value, UInt32.self, codingPath) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decoder.owner.number(decoder.value, UInt64.self, codingPath) }
    func decode(_ type: Float.Type) throws -> Float { Float(try decoder.owner.floating(decoder.value, codingPath)) }
}
