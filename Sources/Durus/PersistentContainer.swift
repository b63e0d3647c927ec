/// What a persistent collection keeps: a `Codable` value with an empty form.
public protocol PersistentContents: Codable {
    init()
}

extension Array: PersistentContents where Element: Codable {}
extension Dictionary: PersistentContents where Key: Codable, Value: Codable {}
extension Set: PersistentContents where Element: Codable {}

/// The shared part of ``PersistentDictionary``, ``PersistentList`` and
/// ``PersistentSet``: one plain collection as the object's whole state,
/// emptied when the object becomes a ghost, and the registration of each
/// generic specialization (which cannot be listed up front) on first use.
open class PersistentContainer<Contents: PersistentContents>: PersistentObject, CustomStringConvertible,
    CustomDebugStringConvertible {
    /// The contents; a ghost holds an empty collection.
    @usableFromInline final var items: Contents

    /// An empty collection.
    public required override init() {
        items = Contents()
        super.init()
        PersistentTypes.registerOnce(Self.self)
    }

    public required init(ghost: GhostMarker) {
        items = Contents()
        super.init(ghost: ghost)
        PersistentTypes.registerOnce(Self.self)
    }

    public required init(from decoder: any Decoder) throws {
        items = Contents()
        try super.init(from: decoder)
    }

    /// Registers this specialization (once). Needed only to load one through
    /// ``Connection/get(_:)`` or a reference declared as a superclass, in a
    /// process that has made none yet.
    public static func registerType() {
        PersistentTypes.registerOnce(self)
    }

    open override func encodeState(_ encoder: inout PersistentStateEncoder) throws {
        try encoder.encode(items)
    }

    open override func decodeState(_ decoder: PersistentStateDecoder) throws {
        items = try decoder.decode(Contents.self)
    }

    open override func clearState() {
        super.clearState()
        items = Contents()
    }

    /// The contents as a plain collection (a copy); setting it replaces them.
    @inlinable public final var contents: Contents {
        get {
            willRead()
            return items
        }
        set {
            willWrite()
            items = newValue
        }
    }

    /// The contents' description (loads them).
    public var description: String { String(describing: contents) }
    public var debugDescription: String { "\(Swift.type(of: self))(\(String(reflecting: contents)))" }
}

/// What the three collections share of `Collection`: each reads the
/// contents (loading a ghost) and answers from them. Positions are the
/// contents' own, valid until the collection changes.
extension PersistentContainer where Contents: Collection {
    /// The number of elements.
    @inlinable public var count: Int {
        willRead()
        return items.count
    }

    @inlinable public var isEmpty: Bool {
        willRead()
        return items.isEmpty
    }

    @inlinable public var startIndex: Contents.Index {
        willRead()
        return items.startIndex
    }

    @inlinable public var endIndex: Contents.Index {
        willRead()
        return items.endIndex
    }

    @inlinable public func index(after i: Contents.Index) -> Contents.Index {
        willRead()
        return items.index(after: i)
    }

    /// Iterates over a snapshot of the contents (loaded once).
    @inlinable public func makeIterator() -> Contents.Iterator {
        willRead()
        return items.makeIterator()
    }
}

/// Contents that can be emptied: `Array`, `Dictionary` and `Set`.
public protocol ClearableContents: PersistentContents, Collection {
    mutating func removeAll(keepingCapacity keepCapacity: Bool)
}

extension Array: ClearableContents where Element: Codable {}
extension Dictionary: ClearableContents where Key: Codable, Value: Codable {}
extension Set: ClearableContents where Element: Codable {}

extension PersistentContainer where Contents: ClearableContents {
    /// Removes every element. An empty collection is left unchanged (not
    /// marked changed).
    @inlinable public func removeAll(keepingCapacity keepCapacity: Bool = false) {
        willRead()
        guard !items.isEmpty else { return }
        willWrite()
        items.removeAll(keepingCapacity: keepCapacity)
    }
}

/// Contents looked up by key: a `Dictionary`.
public protocol KeyedContents: PersistentContents {
    associatedtype Key: Hashable
    associatedtype Value
    subscript(key: Key) -> Value? { get set }
}

extension Dictionary: KeyedContents where Key: Codable, Value: Codable {}

extension PersistentContainer where Contents: KeyedContents {
    /// The value for `key`; setting `nil` removes the key.
    @inlinable public subscript(key: Contents.Key) -> Contents.Value? {
        get {
            willRead()
            return items[key]
        }
        _modify {
            willWrite()
            yield &items[key]
        }
    }
}
