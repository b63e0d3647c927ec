import Synchronization

/// The data part of a record written for a Swift object:
///
///     0xD5 · format version (2) · flags (bit 0: body compressed)
///     · type-name length (u16) · type name (UTF-8) · body
///
/// The type name stands uncompressed at the front so tools can report it
/// without decoding the state. 0xD5 never starts a Python pickle (0x80), so
/// a store may hold both kinds.
enum ObjectRecord {
    static let marker: UInt8 = 0xD5
    /// The version written. Version 2 added ``Tag/intDeltas``, version 3
    /// ``Tag/optional``; records of versions 1 and 2 (without them) read the same.
    static let version: UInt8 = 3
    static let compressedFlag: UInt8 = 1

    /// What compressing a state gave.
    enum Compression {
        /// Not tried: not asked, or a body too small to gain.
        case notTried
        /// Shrank the body by an eighth or more.
        case paid
        /// Shrank it by less (the record holds whichever is smaller).
        case poor
    }

    static func data(typeName: String, body: [UInt8], compress: Bool) -> (bytes: [UInt8], compression: Compression) {
        var name = Array(typeName.utf8)
        if name.count > Int(UInt16.max) { name = Array(name.prefix(Int(UInt16.max))) }
        var payload = body
        var flags: UInt8 = 0
        var outcome = Compression.notTried
        if compress, body.count > 64 {
            outcome = .poor
            if let packed = Zlib.compress(body), packed.count < body.count {
                if packed.count <= body.count - body.count / 8 { outcome = .paid }
                payload = packed
                flags |= compressedFlag
            }
        }
        var out: [UInt8] = [marker, version, flags, UInt8(name.count >> 8), UInt8(name.count & 0xFF)]
        out.reserveCapacity(out.count + name.count + payload.count)
        out.append(contentsOf: name)
        out.append(contentsOf: payload)
        return (out, outcome)
    }

    /// The type name (UTF-8) and the (inflated) body of a record's data.
    static func parse(_ bytes: ArraySlice<UInt8>, oid: OID) throws(DurusError) -> (name: ArraySlice<UInt8>, body: [UInt8]) {
        guard let first = bytes.first else { throw .badState(oid: oid, reason: "the record has no data") }
        guard first == marker else {
            if first == 0x80 { throw .unknownType(pickleClassName(Array(bytes)) ?? "a Python pickle") }
            throw .badState(oid: oid, reason: "the data starts with byte \(first), not a Swift state")
        }
        let start = bytes.startIndex
        guard bytes.count >= 5 else { throw .badState(oid: oid, reason: "the state header is truncated") }
        guard 1 ... version ~= bytes[start + 1] else {
            throw .badState(oid: oid, reason: "state format version \(bytes[start + 1]); this build reads versions 1 to \(version)")
        }
        let nameLength = Int(bytes[start + 3]) << 8 | Int(bytes[start + 4])
        guard bytes.count >= 5 + nameLength else { throw .badState(oid: oid, reason: "the type name is truncated") }
        let name = bytes[start + 5 ..< start + 5 + nameLength]
        let payload = bytes[(start + 5 + nameLength)...]
        guard bytes[start + 2] & compressedFlag != 0 else { return (name, Array(payload)) }
        guard let body = Zlib.decompress(payload) else {
            throw .badState(oid: oid, reason: "the compressed state does not inflate")
        }
        return (name, body)
    }

    /// The class a record names, for Swift records and Python pickles alike.
    static func typeName(of data: ArraySlice<UInt8>) -> String? {
        if data.first == marker { return swiftTypeName(of: data).map { String(decoding: $0, as: UTF8.self) } }
        return data.first == 0x80 ? pickleClassName(Array(data.prefix(512))) : nil
    }

    /// The type name (UTF-8) a Swift record's header holds; nil for any other data.
    static func swiftTypeName(of data: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        let start = data.startIndex
        guard data.first == marker, data.count >= 5 else { return nil }
        let length = Int(data[start + 3]) << 8 | Int(data[start + 4])
        guard data.count >= 5 + length else { return nil }
        return data[start + 5 ..< start + 5 + length]
    }

    /// Durus pickles start with the class as a protocol-2 global: 0x80 0x02 'c' module '\n' name '\n'.
    static func pickleClassName(_ bytes: [UInt8]) -> String? {
        guard bytes.count > 3, bytes[0] == 0x80, bytes[2] == UInt8(ascii: "c") else { return nil }
        let lines = bytes[3...].split(separator: UInt8(ascii: "\n"), maxSplits: 2, omittingEmptySubsequences: false)
        guard lines.count >= 2 else { return nil }
        return String(decoding: lines[0], as: UTF8.self) + "." + String(decoding: lines[1], as: UTF8.self)
    }
}

/// Writes an object's state for ``PersistentObject/encodeState(_:)``.
public struct PersistentStateEncoder {
    let encoder: StateEncoder
    var state: Node.Entry = .value(.null)
    /// The state as written so far by the direct path (see ``beginProperties(count:)``).
    var bytes: [UInt8] = []
    /// Whether the direct path wrote the state.
    var direct = false
    /// The type of the last object the direct path referenced, and its stored name.
    var lastType: ObjectIdentifier?
    var lastTypeName = ""

    init(encoder: StateEncoder) {
        self.encoder = encoder
        bytes.reserveCapacity(64)  // a small state in one allocation, not four
    }

    /// Encodes `state` as the object's whole state.
    public mutating func encode<T: Encodable>(_ state: T) throws {
        if let pickler {
            pythonState = try pickler.pickle(state)
            return
        }
        self.state = try encoder.entry(state, path: [])
    }

    /// Set for an object of a type mapped to a Python class: the state is
    /// then pickled (see ``PersistentObject/pythonClass``).
    var pickler: PickleStateEncoder?
    /// The properties pickled so far, by name.
    var pythonProperties: [PickleValue.Entry] = []
    /// A whole state pickled by ``encode(_:)``.
    var pythonState: PickleValue?

    /// The pickled state: the whole state, or the properties as a dict.
    var pickledState: PickleValue { pythonState ?? .dict(pythonProperties) }

    /// The state's binary form.
    mutating func finish() -> [UInt8] {
        if !direct { state.write(to: &bytes) }
        return bytes
    }
}

/// Reads an object's state for ``PersistentObject/decodeState(_:)``.
public struct PersistentStateDecoder {
    let reader: StateReader

    /// Decodes the whole state as `T`. For a ``PersistentState``, properties
    /// missing from the record take `T()`'s values (one stored as nil is
    /// nil), renamed ones are found under their old names, and ones the type
    /// dropped are ignored.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        var reader = self.reader
        if let evolving = T.self as? any PersistentState.Type,
           let evolved = try SchemaEvolution.fill(reader, as: evolving) {
            reader = StateReader(bytes: evolved, resolve: reader.resolve)
            _ = try reader.validate()
        }
        return try reader.unbox(T.self, .at(0), parent: nil, key: nil)
    }
}

enum SchemaEvolution {
    /// What a state type's `init()` encodes to, key by key, computed once per
    /// type, with the keys whose default holds a persistent object (a new
    /// object cannot stand in for a property an old record lacks).
    struct Template {
        var keys: [[UInt8]] = []
        var values: [[UInt8]] = []
        var withObjects: Set<String> = []
        var renamed: [String: String] = [:]
    }

    private static let templates = Mutex<[ObjectIdentifier: Template]>([:])

    /// The state rewritten into `type`'s present shape (renamed keys under
    /// their new names, missing ones with their defaults), or nil when the
    /// record already has it, as records written by the present type do.
    static func fill(_ reader: StateReader, as type: any PersistentState.Type) throws -> [UInt8]? {
        let bytes = reader.bytes
        guard bytes.first == Tag.keyed.rawValue else { return nil }
        let template = try template(type)
        let stored = try reader.keyedEntries(0)
        func key(_ entry: KeyedEntry) -> ArraySlice<UInt8> { bytes[entry.key ..< entry.key + entry.keyLength] }
        if template.renamed.isEmpty {
            // Usually the keys are the template's, in its order: one comparison each.
            let complete = template.keys.enumerated().allSatisfy { index, name in
                (index < stored.count && key(stored[index]).elementsEqual(name)) || stored.contains { key($0).elementsEqual(name) }
            }
            if complete { return nil }
        }
        var names: [String] = []
        var renamedAny = false
        for entry in stored {
            let name = String(decoding: key(entry), as: UTF8.self)
            if let new = template.renamed[name] {
                names.append(new)
                renamedAny = true
            } else {
                names.append(name)
            }
        }
        // Keys the type no longer has stay: decoding ignores them.
        let present = Set(names)
        let missing = template.keys.indices.filter { !present.contains(String(decoding: template.keys[$0], as: UTF8.self)) }
        if let index = missing.first(where: { template.withObjects.contains(String(decoding: template.keys[$0], as: UTF8.self)) }) {
            // The connection that loads the state names its OID.
            throw DurusError.badState(oid: .root, reason: "the record has no '\(String(decoding: template.keys[index], as: UTF8.self))', "
                + "and its default is a new persistent object, which loading cannot create; store it once with a value")
        }
        if missing.isEmpty && !renamedAny { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + missing.reduce(0) { $0 + template.keys[$1].count + template.values[$1].count + 2 })
        StateValue.writeHeader(.keyed, count: stored.count + missing.count, to: &out)
        for (name, entry) in zip(names, stored) {
            Varint.writeString(name, to: &out)
            out.append(contentsOf: bytes[entry.value ..< entry.end])
        }
        for index in missing {
            Varint.write(UInt64(template.keys[index].count), to: &out)
            out.append(contentsOf: template.keys[index])
            out.append(contentsOf: template.values[index])
        }
        return out
    }

    private static func template(_ type: any PersistentState.Type) throws -> Template {
        if let known = templates.withLock({ $0[ObjectIdentifier(type)] }) { return known }
        var referenced = false
        func encodeDefault<S: PersistentState>(_: S.Type) throws -> [(String, StateValue)] {
            let encoder = StateEncoder(reference: { _ in
                referenced = true
                return OID(.max)
            })
            guard case .keyed(let pairs) = try encoder.encode(S()) else { return [] }
            return pairs
        }
        var template = Template()
        for (key, value) in try encodeDefault(type) {
            template.keys.append(Array(key.utf8))
            var bytes: [UInt8] = []
            value.write(to: &bytes)
            template.values.append(bytes)
            if referenced && value.containsReference { template.withObjects.insert(key) }
        }
        template.renamed = type.renamedProperties
        let result = template
        templates.withLock { $0[ObjectIdentifier(type)] = result }
        return result
    }
}

extension StateValue {
    var containsReference: Bool {
        switch self {
        case .reference: true
        case .array(let items): items.contains { $0.containsReference }
        case .keyed(let pairs): pairs.contains { $0.1.containsReference }
        case .optional(let value): value.containsReference
        default: false
        }
    }
}

/// Stored type names and the Swift types they stand for.
///
/// A record names its object's type; a connection makes ghosts of the
/// registered type, so a reference whose static type is a superclass loads
/// as the right subclass. ``Database`` registers the types it is given.
///
/// Names are matched in their stable form (see
/// ``PersistentObject/persistentTypeName``), so a name that spells the
/// module of a standard library, Foundation or Durus type, as
/// `String(reflecting:)` does (`Durus.BTree<FoundationEssentials.Date,
/// Swift.String>` here, `Foundation.Date` on macOS), finds the type
/// registered as `BTree<Date, String>`.
public enum PersistentTypes {
    /// Types by the stable form of their names.
    private static let registry = Mutex<[String: PersistentObject.Type]>([:])

    /// Registers each type under its ``PersistentObject/persistentTypeName``.
    public static func register(_ types: [PersistentObject.Type]) {
        let named = types.map { (stableName($0.persistentTypeName), $0) }
        registry.withLock { map in
            for (name, type) in named { map[name] = type }
        }
    }

    private static let registered = Mutex<Set<ObjectIdentifier>>([])

    /// Registers `type` the first time it is asked, by identity: later calls
    /// cost one lookup and compute no name. The library's generic collections
    /// call it from their initializers, since their specializations cannot be
    /// listed up front.
    public static func registerOnce(_ type: PersistentObject.Type) {
        registered.withLock { seen in
            // Inside the lock, so no caller returns before the name is registered.
            if seen.insert(ObjectIdentifier(type)).inserted { register([type]) }
        }
    }

    /// The type registered under `name`, or under another spelling of it
    /// that names the modules of built-in types.
    public static func type(named name: String) -> PersistentObject.Type? {
        if let type = registry.withLock({ $0[name] }) { return type }
        let stable = stableName(name)
        return stable == name ? nil : registry.withLock { $0[stable] }
    }

    /// Whether a stored type name names `type`, in any spelling of it.
    static func isName(_ stored: String, of type: PersistentObject.Type) -> Bool {
        let name = name(of: type)
        return stored == name || stableName(stored) == stableName(name)
    }

    /// The modules whose types are named without their module: the standard
    /// library's, Foundation's (in each module it lives in) and Durus's.
    private static let builtInModules = ["Swift.", "Foundation.", "FoundationEssentials.", "FoundationInternationalization.", "Durus."]

    /// `name` (a type name as `String(reflecting:)` spells it) with the
    /// module dropped from each standard library, Foundation or Durus type
    /// in it: `Durus.BTree<FoundationEssentials.Date, Swift.String>` becomes
    /// `BTree<Date, String>`, and `MyApp.Account` stays as it is.
    static func stableName(_ name: String) -> String {
        var result = ""
        var rest = Substring(name)
        // At the start of a (possibly module-qualified) name, not inside one.
        var atStart = true
        while let character = rest.first {
            if atStart, let module = builtInModules.first(where: { rest.hasPrefix($0) }) {
                rest = rest.dropFirst(module.count)
                atStart = false
                continue
            }
            result.append(character)
            rest = rest.dropFirst()
            atStart = !(character.isLetter || character.isNumber || character == "_" || character == ".")
        }
        return result
    }

    private static let names = Mutex<[ObjectIdentifier: String]>([:])

    /// `type.persistentTypeName`, computed once per type (the default,
    /// `String(reflecting:)`, is slow to recompute at every reference).
    static func name(of type: PersistentObject.Type) -> String {
        let key = ObjectIdentifier(type)
        if let known = names.withLock({ $0[key] }) { return known }
        let name = type.persistentTypeName
        names.withLock { $0[key] = name }
        return name
    }
}
