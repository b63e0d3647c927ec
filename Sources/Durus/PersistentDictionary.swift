/// A dictionary that is one persistent object and tracks its own changes:
/// setting, updating or removing a value marks it changed, so the next commit
/// stores it. Values may be plain `Codable` values or persistent objects
/// (other collections too), which are stored as references and load as ghosts.
///
/// ```swift
/// let database = try Database(storage: MemoryStorage(),
///                             root: PersistentDictionary<String, Int>.self)
/// try database.transaction { connection in
///     let stock = try connection.root(PersistentDictionary<String, Int>.self)
///     stock["apples", default: 0] += 3        // marks the dictionary changed
///     stock["pears"] = 2
/// }
/// let stock = try database.open().root(PersistentDictionary<String, Int>.self)
/// print(stock["apples"] ?? 0, stock.count)    // 3 2
/// ```
///
/// The object is the unit of change, as in Durus: two connections that change
/// different keys of one dictionary in the same interval conflict, and the
/// second commit throws ``ConflictError``. Keep a big or busy mapping in many
/// smaller objects (or a B-tree) when that matters.
///
/// Each specialization registers itself with ``PersistentTypes`` when an
/// instance is first made (new or loaded), and a reference whose declared type
/// is the specialization loads even when the process never made one. Only a
/// reference declared through a superclass (`PersistentObject`) needs the
/// type registered first: ``PersistentContainer/registerType()``, or `types:` of a ``Database``.
///
/// Indices are valid until the dictionary changes or becomes a ghost (at an
/// abort, a conflict, or when the cache drops it).
public final class PersistentDictionary<Key: Hashable & Codable, Value: Codable>: PersistentContainer<[Key: Value]>, PersistentRoot {
    /// A new dictionary holding `contents`.
    public convenience init(_ contents: [Key: Value]) {
        self.init()
        items = contents
    }

    /// A new dictionary from pairs whose keys must be unique.
    public convenience init<S: Sequence>(uniqueKeysWithValues pairs: S) where S.Element == (Key, Value) {
        self.init(Dictionary(uniqueKeysWithValues: pairs))
    }

    // MARK: Reading and changing

    /// The value for `key`, or `defaultValue`; changing it in place stores the result.
    @inlinable public subscript(key: Key, default defaultValue: @autoclosure () -> Value) -> Value {
        get {
            willRead()
            return items[key, default: defaultValue()]
        }
        _modify {
            willWrite()
            yield &items[key, default: defaultValue()]
        }
    }

    /// Sets the value for `key`, returning the one it replaced.
    @inlinable @discardableResult
    public func updateValue(_ value: Value, forKey key: Key) -> Value? {
        willWrite()
        return items.updateValue(value, forKey: key)
    }

    /// Removes `key`, returning its value. A key that is absent changes nothing
    /// (the dictionary is read, not marked changed).
    @inlinable @discardableResult
    public func removeValue(forKey key: Key) -> Value? {
        willRead()
        guard let index = items.index(forKey: key) else { return nil }
        willWrite()
        return items.remove(at: index).value
    }

    /// Removes the pair at `index`.
    @inlinable @discardableResult
    public func remove(at index: Index) -> Element {
        willWrite()
        return items.remove(at: index)
    }

    /// Merges `other` in; `combine` picks the value for a key both have.
    @inlinable public func merge(_ other: [Key: Value],
                                 uniquingKeysWith combine: (Value, Value) throws -> Value) rethrows {
        willWrite()
        try items.merge(other, uniquingKeysWith: combine)
    }

    /// Merges `pairs` in; `combine` picks the value for a key met twice.
    @inlinable public func merge<S: Sequence>(_ pairs: S,
                                              uniquingKeysWith combine: (Value, Value) throws -> Value) rethrows
        where S.Element == (Key, Value) {
        willWrite()
        try items.merge(pairs, uniquingKeysWith: combine)
    }

    /// Makes room for `minimumCapacity` pairs.
    @inlinable public func reserveCapacity(_ minimumCapacity: Int) {
        willRead()
        items.reserveCapacity(minimumCapacity)
    }

    /// The position of `key`, if present.
    @inlinable public func index(forKey key: Key) -> Index? {
        willRead()
        return items.index(forKey: key)
    }

    /// The keys (a snapshot).
    @inlinable public var keys: Dictionary<Key, Value>.Keys {
        willRead()
        return items.keys
    }

    /// The values (a snapshot).
    @inlinable public var values: Dictionary<Key, Value>.Values {
        willRead()
        return items.values
    }

}

extension PersistentDictionary: Collection {
    public typealias Element = (key: Key, value: Value)

    /// Positions are those of the contents, valid until the collection changes.
    public typealias Index = Dictionary<Key, Value>.Index

    @inlinable public subscript(position: Index) -> Element {
        willRead()
        return items[position]
    }
}

extension PersistentDictionary: ExpressibleByDictionaryLiteral {
    /// A new dictionary; the keys must be unique.
    public convenience init(dictionaryLiteral elements: (Key, Value)...) {
        self.init(uniqueKeysWithValues: elements)
    }
}
