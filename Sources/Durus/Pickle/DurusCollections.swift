/// Python Durus 4.3's `durus.persistent_dict.PersistentDict`: a dictionary
/// a Python program and a Swift program share. Its record is a Durus pickle
/// (the state `{'data': {…}}`) that Python loads as its own `PersistentDict`,
/// and one Python wrote loads as this type where a reference declares it
/// (`str` or `int` keys). The full dictionary is ``PersistentContainer/contents``.
///
/// ```swift
/// @Persistent(python: "bank.Bank")
/// final class Bank: PersistentObject, PersistentRoot {
///     var accounts = DurusPersistentDict<String, Account>()
/// }
/// ```
public final class DurusPersistentDict<Key: Hashable & Codable, Value: Codable>: PersistentContainer<[Key: Value]>, PersistentRoot {
    public override class var pythonClass: String? { "durus.persistent_dict.PersistentDict" }

    /// The keys, in no particular order.
    public var keys: [Key] { willRead(); return Array(items.keys) }
    /// The values, in no particular order.
    public var values: [Value] { willRead(); return Array(items.values) }

    public override func encodeState(_ encoder: inout PersistentStateEncoder) throws {
        try encoder.encode(DurusSlot(data: items))
    }

    public override func decodeState(_ decoder: PersistentStateDecoder) throws {
        items = try decoder.decode(DurusSlot<[Key: Value]>.self).data
    }
}

/// Python Durus 4.3's `durus.persistent_list.PersistentList` (the state
/// `{'data': […]}`); see ``DurusPersistentDict``. Everything else is a
/// ``PersistentList``'s.
public final class DurusPersistentList<Element: Codable>: PersistentList<Element> {
    public override class var pythonClass: String? { "durus.persistent_list.PersistentList" }

    public override func encodeState(_ encoder: inout PersistentStateEncoder) throws {
        try encoder.encode(DurusSlot(data: items))
    }

    public override func decodeState(_ decoder: PersistentStateDecoder) throws {
        items = try decoder.decode(DurusSlot<[Element]>.self).data
    }
}

/// Python Durus 4.3's `durus.persistent_set.PersistentSet` (the state
/// `{'s': set(…)}`); see ``DurusPersistentDict``.
public final class DurusPersistentSet<Element: Hashable & Codable>: PersistentContainer<Set<Element>>, PersistentRoot {
    public override class var pythonClass: String? { "durus.persistent_set.PersistentSet" }

    /// Whether the set holds `element`.
    public func contains(_ element: Element) -> Bool { willRead(); return items.contains(element) }

    /// Adds `element`; whether it was new.
    @discardableResult public func insert(_ element: Element) -> Bool {
        willWrite()
        return items.insert(element).inserted
    }

    /// Removes `element`; whether it was there.
    @discardableResult public func remove(_ element: Element) -> Bool {
        willWrite()
        return items.remove(element) != nil
    }

    public override func encodeState(_ encoder: inout PersistentStateEncoder) throws {
        try encoder.encode(DurusSetSlot(s: items))
    }

    public override func decodeState(_ decoder: PersistentStateDecoder) throws {
        items = try decoder.decode(DurusSetSlot<Element>.self).s
    }
}

/// The state of Durus's `PersistentDict` and `PersistentList`: one slot, `data`.
struct DurusSlot<Contents: PersistentContents>: PersistentState {
    var data = Contents()
}

/// The state of Durus's `PersistentSet`: one slot, `s`.
struct DurusSetSlot<Element: Hashable & Codable>: PersistentState {
    var s: Set<Element> = []
}
