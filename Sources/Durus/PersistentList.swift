/// An array that is one persistent object and tracks its own changes: every
/// mutation (setting an element, appending, inserting, removing, sorting)
/// marks it changed, so the next commit stores it. Elements may be plain
/// `Codable` values or persistent objects (other collections too), which are
/// stored as references and load as ghosts.
///
/// ```swift
/// let database = try Database(storage: MemoryStorage(), root: PersistentList<String>.self)
/// try database.transaction { connection in
///     let queue = try connection.root(PersistentList<String>.self)
///     queue.append("write")
///     queue.insert("plan", at: 0)
///     queue[1] += " tests"                    // changed in place: still tracked
/// }
/// let queue = try database.open().root(PersistentList<String>.self)
/// print(Array(queue))                         // ["plan", "write tests"]
/// ```
///
/// The list is one record: it suits lists read and written whole or in small
/// numbers; a long list with many writers conflicts often (the object is the
/// unit of change, as in Durus).
///
/// It is a class: mutate it through any reference, `let` included. The
/// standard library's own `mutating` extensions (such as `shuffle()`) need a
/// `var` and work on it too; the common mutations are methods of the class.
/// Slices (`list[2..<5]`) are `ArraySlice` snapshots, not live views.
///
/// Each specialization registers itself with ``PersistentTypes`` when an
/// instance is first made (new or loaded); see ``PersistentDictionary`` for
/// when ``PersistentContainer/registerType()`` is needed.
public class PersistentList<Element: Codable>: PersistentContainer<[Element]>, PersistentRoot {
    /// A new list of `elements`.
    public required convenience init<S: Sequence>(_ elements: S) where S.Element == Element {
        self.init()
        items = Array(elements)
    }

    /// A new list of `count` copies of `value`.
    public required convenience init(repeating value: Element, count: Int) {
        self.init()
        items = Array(repeating: value, count: count)
    }

    /// A new list of `elements`, as a literal writes them.
    public required convenience init(arrayLiteral elements: Element...) {
        self.init(elements)
    }

}

extension PersistentList: RandomAccessCollection, MutableCollection {
    public typealias Index = Int
    public typealias Indices = Range<Int>
    public typealias SubSequence = ArraySlice<Element>

    @inlinable public subscript(position: Int) -> Element {
        get {
            willRead()
            return items[position]
        }
        _modify {
            willWrite()
            yield &items[position]
        }
    }

    /// A snapshot of the elements in `bounds`; setting it replaces them
    /// (with any number of elements, as for `Array`).
    @inlinable public subscript(bounds: Range<Int>) -> ArraySlice<Element> {
        get {
            willRead()
            return items[bounds]
        }
        set {
            willWrite()
            items[bounds] = newValue
        }
    }

    /// Iterates over a snapshot of the contents (loaded once).
    @inlinable public func makeIterator() -> IndexingIterator<[Element]> {
        willRead()
        return items.makeIterator()
    }

    @inlinable public func withContiguousStorageIfAvailable<R>(
        _ body: (UnsafeBufferPointer<Element>) throws -> R
    ) rethrows -> R? {
        willRead()
        return try items.withUnsafeBufferPointer(body)
    }

    /// Marks the list changed, then lends its storage (the standard library's
    /// in-place algorithms, such as `sort()`, use this).
    @inlinable public func withContiguousMutableStorageIfAvailable<R>(
        _ body: (inout UnsafeMutableBufferPointer<Element>) throws -> R
    ) rethrows -> R? {
        willWrite()
        return try items.withUnsafeMutableBufferPointer(body)
    }

    @inlinable public func swapAt(_ i: Int, _ j: Int) {
        willWrite()
        items.swapAt(i, j)
    }

    /// Sorts in place by `areInIncreasingOrder`.
    @inlinable public func sort(by areInIncreasingOrder: (Element, Element) throws -> Bool) rethrows {
        willWrite()
        try items.sort(by: areInIncreasingOrder)
    }

    /// Reverses the elements in place.
    @inlinable public func reverse() {
        willWrite()
        items.reverse()
    }
}

extension PersistentList where Element: Comparable {
    /// Sorts in place, in increasing order.
    @inlinable public func sort() {
        willWrite()
        items.sort()
    }
}

extension PersistentList: RangeReplaceableCollection {
    // Every mutation the standard library offers by default is written here,
    // on the class: some defaults assign `self` (`removeAll()` does
    // `self = Self()`), which for a class would swap the caller's reference
    // for a new list and leave the stored one as it was.

    @inlinable public func replaceSubrange<C: Collection>(_ subrange: Range<Int>, with newElements: C)
        where C.Element == Element {
        willWrite()
        items.replaceSubrange(subrange, with: newElements)
    }

    @inlinable public func reserveCapacity(_ minimumCapacity: Int) {
        willRead()
        items.reserveCapacity(minimumCapacity)
    }

    @inlinable public func append(_ newElement: Element) {
        willWrite()
        items.append(newElement)
    }

    @inlinable public func append<S: Sequence>(contentsOf newElements: S) where S.Element == Element {
        willWrite()
        items.append(contentsOf: newElements)
    }

    @inlinable public func insert(_ newElement: Element, at i: Int) {
        willWrite()
        items.insert(newElement, at: i)
    }

    @inlinable public func insert<C: Collection>(contentsOf newElements: C, at i: Int) where C.Element == Element {
        willWrite()
        items.insert(contentsOf: newElements, at: i)
    }

    @inlinable @discardableResult public func remove(at i: Int) -> Element {
        willWrite()
        return items.remove(at: i)
    }

    @inlinable public func removeSubrange(_ bounds: Range<Int>) {
        willWrite()
        items.removeSubrange(bounds)
    }

    @inlinable public func removeSubrange<R: RangeExpression>(_ bounds: R) where R.Bound == Int {
        willWrite()
        items.removeSubrange(bounds)
    }

    @inlinable @discardableResult public func removeFirst() -> Element {
        willWrite()
        return items.removeFirst()
    }

    @inlinable public func removeFirst(_ k: Int) {
        willWrite()
        items.removeFirst(k)
    }

    @inlinable @discardableResult public func removeLast() -> Element {
        willWrite()
        return items.removeLast()
    }

    @inlinable public func removeLast(_ k: Int) {
        willWrite()
        items.removeLast(k)
    }

    /// Removes and returns the last element; an empty list is left unchanged.
    @inlinable public func popLast() -> Element? {
        willRead()
        guard !items.isEmpty else { return nil }
        willWrite()
        return items.removeLast()
    }

    /// Removes the elements that match. When none does, the list is left unchanged.
    @inlinable public func removeAll(where shouldBeRemoved: (Element) throws -> Bool) rethrows {
        willRead()
        guard let first = try items.firstIndex(where: shouldBeRemoved) else { return }
        willWrite()
        // Stable, in place, and the predicate sees each element once.
        var kept = first
        for i in first + 1 ..< items.count where try !shouldBeRemoved(items[i]) {
            items.swapAt(kept, i)
            kept += 1
        }
        items.removeSubrange(kept...)
    }
}

extension PersistentList: ExpressibleByArrayLiteral {}
