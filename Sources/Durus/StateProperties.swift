#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// The direct path of the state codec: a state written and read property by
// property, by name, with no `Encoder` or `Decoder` in between. `@Persistent`
// generates these calls; the bytes are the ones the `Codable` path writes for
// the same struct, so each path reads what the other wrote.

extension PersistentStateEncoder {
    /// Starts a state of `count` properties, each then written once with an
    /// `encode(_:forKey:)` call, in the order the type declares them.
    public mutating func beginProperties(count: Int) {
        direct = true
        if pickler != nil { return pythonProperties.reserveCapacity(count) }
        StateValue.writeHeader(.keyed, count: count, to: &bytes)
    }

    /// Writes a property's name and its value.
    public mutating func encode(_ value: String, forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        Varint.writeString(key, to: &bytes)
        bytes.append(Tag.string.rawValue)
        Varint.writeString(value, to: &bytes)
    }

    /// Writes a property's name and its value.
    public mutating func encode(_ value: Int, forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        Varint.writeString(key, to: &bytes)
        bytes.append(Tag.int.rawValue)
        Varint.write(Varint.zigzag(Int64(value)), to: &bytes)
    }

    /// Writes a property's name and its value.
    public mutating func encode(_ value: Bool, forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        Varint.writeString(key, to: &bytes)
        bytes.append(value ? Tag.trueValue.rawValue : Tag.falseValue.rawValue)
    }

    /// Writes a property's name and its value.
    public mutating func encode(_ value: Double, forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        Varint.writeString(key, to: &bytes)
        bytes.append(Tag.double.rawValue)
        BigEndian.append(value.bitPattern, to: &bytes)
    }

    /// Writes a property's name and its value: nil as null.
    public mutating func encode(_ value: String?, forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        guard let value else { return encodeNil(forKey: key) }
        try encode(value, forKey: key)
    }

    /// Writes a property's name and its value: nil as null.
    public mutating func encode(_ value: Int?, forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        guard let value else { return encodeNil(forKey: key) }
        try encode(value, forKey: key)
    }

    /// Writes a property's name and its value.
    public mutating func encode(_ value: [String], forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        Varint.writeString(key, to: &bytes)
        StateValue.writeHeader(.array, count: value.count, to: &bytes)
        for element in value {
            bytes.append(Tag.string.rawValue)
            Varint.writeString(element, to: &bytes)
        }
    }

    /// Writes a property's name and its value.
    public mutating func encode(_ value: [Int], forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        Varint.writeString(key, to: &bytes)
        guard !value.isEmpty else { return StateValue.writeHeader(.array, count: 0, to: &bytes) }
        Varint.writeDeltas(value.lazy.map { Int64($0) }, to: &bytes)
    }

    /// Writes a property's name and a reference to the object it holds (a
    /// new object gets its OID and is stored by the same commit).
    public mutating func encode<T: PersistentObject>(_ value: T, forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        Varint.writeString(key, to: &bytes)
        try writeReference(value)
    }

    /// Writes a property's name and a reference to the object it holds, or null.
    public mutating func encode<T: PersistentObject>(_ value: T?, forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        guard let value else { return encodeNil(forKey: key) }
        try encode(value, forKey: key)
    }

    /// Writes a property's name and references to the objects it holds, in order.
    public mutating func encode<V: PersistentObject>(_ value: [V], forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        Varint.writeString(key, to: &bytes)
        StateValue.writeHeader(.array, count: value.count, to: &bytes)
        for object in value { try writeReference(object) }
    }

    /// Writes a property's name and its entries, each a reference.
    public mutating func encode<V: PersistentObject>(_ value: [String: V], forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        Varint.writeString(key, to: &bytes)
        StateValue.writeHeader(.keyed, count: value.count, to: &bytes)
        for (name, object) in value {
            Varint.writeString(name, to: &bytes)
            try writeReference(object)
        }
    }

    /// Writes a property's name and its entries, each a reference, keyed by
    /// the integers in decimal (as Swift's `Dictionary` coding does).
    public mutating func encode<V: PersistentObject>(_ value: [Int: V], forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        Varint.writeString(key, to: &bytes)
        StateValue.writeHeader(.keyed, count: value.count, to: &bytes)
        for (number, object) in value {
            Varint.writeString(String(number), to: &bytes)
            try writeReference(object)
        }
    }

    /// Writes a property's name and its value, as the `Codable` path does.
    public mutating func encode<T: Encodable>(_ value: T, forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        let entry = try encoder.entry(value, path: [NameKey(stringValue: key)])
        Varint.writeString(key, to: &bytes)
        entry.write(to: &bytes)
    }

    /// Writes a property's name and its value, as the `Codable` path does:
    /// nil as null, and a value that reads as nil itself wrapped, so that it
    /// keeps its level.
    public mutating func encode<T: Encodable>(_ value: T?, forKey key: String) throws {
        if pickler != nil { return try pickleProperty(value, key) }
        guard let value else { return encodeNil(forKey: key) }
        let entry = try encoder.entry(value, path: [NameKey(stringValue: key)])
        Varint.writeString(key, to: &bytes)
        entry.present.write(to: &bytes)
    }

    private mutating func pickleProperty<T: Encodable>(_ value: T, _ key: String) throws {
        pythonProperties.append(.init(.string(key), try pickler!.pickle(value)))
    }

    private mutating func encodeNil(forKey key: String) {
        Varint.writeString(key, to: &bytes)
        bytes.append(Tag.null.rawValue)
    }

    private mutating func writeReference(_ object: PersistentObject) throws {
        let oid = try encoder.reference(object)
        bytes.append(Tag.reference.rawValue)
        oid.append(to: &bytes)
        // A collection's objects are mostly of one type: its name is looked up once.
        let type = Swift.type(of: object)
        if lastType != ObjectIdentifier(type) {
            lastType = ObjectIdentifier(type)
            lastTypeName = PersistentTypes.name(of: type)
        }
        Varint.writeString(lastTypeName, to: &bytes)
    }
}

extension PersistentStateDecoder {
    /// Whether the state is a set of properties by name, as the direct path
    /// reads it (a struct's state; not a collection's).
    public var hasProperties: Bool { reader.topEntries != nil }

    /// The value of the property `key` (the `index`-th the type declares, where
    /// records written by this type have it), or nil when the state has no
    /// such property: the caller then decodes through ``decode(_:)``, which
    /// applies schema evolution.
    public func property<T: Decodable>(_ type: T.Type, forKey key: String, index: Int) throws -> T? {
        guard let offset = find(key, index) else { return nil }
        return try reader.unbox(T.self, .at(offset), parent: nil, key: NameKey(stringValue: key))
    }

    /// `property(_:forKey:index:)` for an optional: `.some(nil)` for a
    /// stored nil, nil when the state has no such property.
    public func property<T: Decodable>(_ type: T?.Type, forKey key: String, index: Int) throws -> T?? {
        guard let offset = find(key, index) else { return nil }
        if reader.bytes[offset] == Tag.null.rawValue { return .some(nil) }
        // A value that reads as nil is wrapped (see `StateValue`): it is inside.
        let start = reader.bytes[offset] == Tag.optional.rawValue ? offset + 1 : offset
        return .some(try reader.unbox(T.self, .at(start), parent: nil, key: NameKey(stringValue: key)))
    }

    /// See ``property(_:forKey:index:)``.
    public func property(_ type: String.Type, forKey key: String, index: Int) throws -> String? {
        guard let offset = find(key, index) else { return nil }
        return try reader.string(.at(offset), nil, NameKey(stringValue: key))
    }

    /// See ``property(_:forKey:index:)``.
    public func property(_ type: Int.Type, forKey key: String, index: Int) throws -> Int? {
        guard let offset = find(key, index) else { return nil }
        return try reader.integer(.at(offset), Int.self, nil, NameKey(stringValue: key))
    }

    /// See ``property(_:forKey:index:)``.
    public func property(_ type: Bool.Type, forKey key: String, index: Int) throws -> Bool? {
        guard let offset = find(key, index) else { return nil }
        return try reader.bool(.at(offset), nil, NameKey(stringValue: key))
    }

    /// See ``property(_:forKey:index:)``.
    public func property(_ type: Double.Type, forKey key: String, index: Int) throws -> Double? {
        guard let offset = find(key, index) else { return nil }
        return try reader.floating(.at(offset), nil, NameKey(stringValue: key))
    }

    /// See ``property(_:forKey:index:)``.
    public func property(_ type: [String].Type, forKey key: String, index: Int) throws -> [String]? {
        guard let offset = find(key, index) else { return nil }
        return try reader.unbox([String].self, .at(offset), parent: nil, key: NameKey(stringValue: key))
    }

    /// See ``property(_:forKey:index:)``.
    public func property(_ type: [Int].Type, forKey key: String, index: Int) throws -> [Int]? {
        guard let offset = find(key, index) else { return nil }
        return try reader.unbox([Int].self, .at(offset), parent: nil, key: NameKey(stringValue: key))
    }

    /// Where the value of `key` starts: the `index`-th entry when it has that
    /// name (a record written by the present type), else the last entry of
    /// that name (as the `Codable` path reads a repeated key).
    private func find(_ key: String, _ index: Int) -> Int? {
        guard let entries = reader.topEntries else { return nil }
        var key = key
        return key.withUTF8 { utf8 in
            if index < entries.count, reader.keyEquals(entries[index], utf8) {
                // A repeated key is rare; a later entry of the same name wins.
                if !entries[(index + 1)...].contains(where: { reader.keyEquals($0, utf8) }) { return entries[index].value }
            }
            for entry in entries.reversed() where reader.keyEquals(entry, utf8) { return entry.value }
            return nil
        }
    }
}
