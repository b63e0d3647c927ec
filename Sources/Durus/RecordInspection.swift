/// What tools (`durus census`, `durus dump`) can tell of a record without
/// the program's types.
extension Record {
    /// The class the record's data names: a Swift type name for Swift
    /// records, `module.Class` for Python Durus pickles; `nil` for neither.
    public var className: String? { ObjectRecord.typeName(of: data) }

    /// Whether the data is a Python Durus pickle (class pickle first).
    public var isPythonPickle: Bool { data.first == 0x80 }

    /// The state of a Swift record as a value tree (references included),
    /// or `nil` for a record that is not a Swift state.
    /// - Throws: ``DurusError/badState(oid:reason:)`` when a Swift state is damaged.
    public func swiftState() throws -> StateValue? {
        guard data.first == ObjectRecord.marker else { return nil }
        let (_, body) = try ObjectRecord.parse(data, oid: oid)
        var offset = 0
        do {
            return try StateValue.read(body, at: &offset)
        } catch {
            throw DurusError.badState(oid: oid, reason: "\(error)")
        }
    }

    /// The state of a Python Durus pickle record (what the object's
    /// `__getstate__()` gave), or `nil` for a record that is not a pickle.
    /// - Throws: ``DurusError/badState(oid:reason:)`` when the pickle is
    ///   damaged (the reason names the offset).
    public func pythonState() throws -> PickleValue? {
        guard PickleRecord.isDurusPickle(data) else { return nil }
        do {
            return try PickleRecord(data: data, oid: oid).state
        } catch {
            throw DurusError.badState(oid: oid, reason: error.description)
        }
    }
}
