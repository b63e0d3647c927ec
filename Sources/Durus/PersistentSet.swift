/// A set that is one persistent object and tracks its own changes: inserting
/// or removing members marks it changed, so the next commit stores it.
/// Members are `Hashable & Codable` values.
///
/// ```swift
/// let database = try Database(storage: MemoryStorage(), root: PersistentSet<String>.self)
/// try database.transaction { connection in
///     let tags = try connection.root(PersistentSet<String>.self)
///     tags.insert("swift")
///     tags.formUnion(["durus", "swift"])
/// }
/// let tags = try database.open().root(PersistentSet<String>.self)
/// print(tags.contains("durus"), tags.count)   // true 2
/// ```
///
/// An operation that turns out to change nothing (inserting a member that is
/// there, removing one that is not) only reads the set and does not mark it
/// changed. The operations that make a set (`union`, `intersection`, …) make
/// a new, unsaved `PersistentSet`; for a plain `Set` use ``PersistentContainer/contents``.
/// `==` compares contents (as `SetAlgebra` requires); use `===` for identity.
///
/// Each specialization registers itself with ``PersistentTypes`` when an
/// instance is first made (new or loaded); see ``PersistentDictionary`` for
/// when ``PersistentContainer/registerType()`` is needed.
public final class PersistentSet<Element: Hashable & Codable>: PersistentContainer<Set<Element>>, PersistentRoot {
    /// A new set of `elements`.
    public convenience init<S: Sequence>(_ elements: S) where S.Element == Element {
        self.init()
        items = Set(elements)
    }


    /// Makes room for `minimumCapacity` members.
    @inlinable public func reserveCapacity(_ minimumCapacity: Int) {
        willRead()
        items.reserveCapacity(minimumCapacity)
    }

    /// Removes the member at `position`.
    @inlinable @discardableResult public func remove(at position: Index) -> Element {
        willWrite()
        return items.remove(at: position)
    }
}

extension PersistentSet: SetAlgebra {
    @inlinable public func contains(_ member: Element) -> Bool {
        willRead()
        return items.contains(member)
    }

    @inlinable @discardableResult
    public func insert(_ newMember: Element) -> (inserted: Bool, memberAfterInsert: Element) {
        willRead()
        if let present = items.firstIndex(of: newMember) { return (false, items[present]) }
        willWrite()
        return items.insert(newMember)
    }

    @inlinable @discardableResult public func remove(_ member: Element) -> Element? {
        willRead()
        guard let index = items.firstIndex(of: member) else { return nil }
        willWrite()
        return items.remove(at: index)
    }

    @inlinable @discardableResult public func update(with newMember: Element) -> Element? {
        willWrite()
        return items.update(with: newMember)
    }

    @inlinable public func union(_ other: PersistentSet) -> PersistentSet {
        PersistentSet(contents.union(other.contents))
    }

    @inlinable public func intersection(_ other: PersistentSet) -> PersistentSet {
        PersistentSet(contents.intersection(other.contents))
    }

    @inlinable public func symmetricDifference(_ other: PersistentSet) -> PersistentSet {
        PersistentSet(contents.symmetricDifference(other.contents))
    }

    @inlinable public func subtracting(_ other: PersistentSet) -> PersistentSet {
        PersistentSet(contents.subtracting(other.contents))
    }

    @inlinable public func formUnion(_ other: PersistentSet) { formUnion(other.contents) }
    @inlinable public func formIntersection(_ other: PersistentSet) { formIntersection(other.contents) }
    @inlinable public func formSymmetricDifference(_ other: PersistentSet) { formSymmetricDifference(other.contents) }
    @inlinable public func subtract(_ other: PersistentSet) { subtract(other.contents) }

    @inlinable public func isSubset(of other: PersistentSet) -> Bool { contents.isSubset(of: other.contents) }
    @inlinable public func isSuperset(of other: PersistentSet) -> Bool { contents.isSuperset(of: other.contents) }
    @inlinable public func isDisjoint(with other: PersistentSet) -> Bool { contents.isDisjoint(with: other.contents) }

    // With any sequence, as `Set` offers.

    /// Adds the members of `other`.
    @inlinable public func formUnion<S: Sequence>(_ other: S) where S.Element == Element {
        willWrite()
        items.formUnion(other)
    }

    /// Keeps only the members that `other` has too.
    @inlinable public func formIntersection<S: Sequence>(_ other: S) where S.Element == Element {
        willWrite()
        items.formIntersection(other)
    }

    /// Keeps the members that exactly one of this set and `other` has.
    @inlinable public func formSymmetricDifference<S: Sequence>(_ other: S) where S.Element == Element {
        willWrite()
        items.formSymmetricDifference(other)
    }

    /// Removes the members of `other`.
    @inlinable public func subtract<S: Sequence>(_ other: S) where S.Element == Element {
        willWrite()
        items.subtract(other)
    }

    @inlinable public func isSubset<S: Sequence>(of other: S) -> Bool where S.Element == Element {
        willRead()
        return items.isSubset(of: other)
    }

    @inlinable public func isSuperset<S: Sequence>(of other: S) -> Bool where S.Element == Element {
        willRead()
        return items.isSuperset(of: other)
    }

    @inlinable public func isDisjoint<S: Sequence>(with other: S) -> Bool where S.Element == Element {
        willRead()
        return items.isDisjoint(with: other)
    }

    /// Equal contents (loading both sets); use `===` for the same object.
    @inlinable public static func == (a: PersistentSet, b: PersistentSet) -> Bool {
        a === b || a.contents == b.contents
    }
}

extension PersistentSet: Collection {
    /// Positions are those of the contents, valid until the collection changes.
    public typealias Index = Set<Element>.Index

    @inlinable public subscript(position: Index) -> Element {
        willRead()
        return items[position]
    }

    @inlinable public func firstIndex(of member: Element) -> Index? {
        willRead()
        return items.firstIndex(of: member)
    }
}

extension PersistentSet: ExpressibleByArrayLiteral {
    public convenience init(arrayLiteral elements: Element...) {
        self.init(elements)
    }
}
