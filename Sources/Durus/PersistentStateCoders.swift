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
