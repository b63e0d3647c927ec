import Synchronization

/// Reads a record written by an earlier shape of a ``PersistentState`` type:
/// properties the record lacks take the type's defaults, and renamed ones
/// are found under their old names.
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
