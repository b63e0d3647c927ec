import Durus
import DurusBerkeleyDB
import Foundation
import DurusTestSupport
import Testing

// MARK: Models

/// The root of the collection tests: each collection reached through a
/// reference whose declared type is the specialization itself.
final class Shelf: Persistent<Shelf.State> {
    struct State: PersistentState {
        var words: PersistentDictionary<String, Int>?
        var numbers: PersistentList<Int>?
        var tags: PersistentSet<Int>?
        var accounts: PersistentList<Account>?
        var byOwner: PersistentDictionary<String, Account>?
        var lists: PersistentDictionary<String, PersistentList<Int>>?
        var unlisted: Unlisted?
        var unlistedMany: PersistentList<Unlisted>?
    }
}

/// A type no test registers, under a name of its own: it can load only by
/// the declared type of the reference that reaches it.
final class Unlisted: Persistent<Unlisted.State> {
    struct State: PersistentState { var note = "" }
    override class var persistentTypeName: String { "DurusTests.Unlisted.NeverRegistered" }
    var note: String { get { state.note } set { state.note = newValue } }
}

/// Stands in for `PersistentDictionary<Int8, UInt16>`, a specialization this
/// process never makes before a test reads one: same name, same state.
final class Int8MapStandIn: PersistentObject {
    var items: [Int8: UInt16] = [:]
    override class var persistentTypeName: String { String(reflecting: PersistentDictionary<Int8, UInt16>.self) }
    override func encodeState(_ encoder: inout PersistentStateEncoder) throws { try encoder.encode(items) }
}

/// Two shapes of one holder (one stored name), to write a stand-in and read
/// the real specialization in its place.
final class HolderWriter: Persistent<HolderWriter.State> {
    struct State: PersistentState { var map: Int8MapStandIn? }
    override class var persistentTypeName: String { "DurusTests.CollectionHolder" }
}

final class HolderReader: Persistent<HolderReader.State> {
    struct State: PersistentState { var map: PersistentDictionary<Int8, UInt16>? }
    override class var persistentTypeName: String { "DurusTests.CollectionHolder" }
}

// MARK: A store that can be reopened

/// A store of `kind` with a ``Shelf`` root that a test can reopen: on
/// Berkeley DB the store is closed and opened again from its directory; in
/// memory a new ``Database`` is made over the same storage.
final class ReopenableStore {
    let kind: StorageKind
    let dir: TemporaryDirectory
    private(set) var storage: any Storage
    private(set) var database: Database

    init(_ kind: StorageKind, name: String = #function) throws {
        self.kind = kind
        dir = TemporaryDirectory(name)
        switch kind {
        case .memory: storage = MemoryStorage()
        case .berkeleyDB: storage = try openStore(dir.path)
        }
        database = try Database(storage: storage, root: Shelf.self, types: testTypes)
    }

    /// Reopens the store and gives a connection of the new database.
    func reopen() throws -> Connection {
        if kind == .berkeleyDB {
            try storage.close()
            storage = try openStore(dir.path)
        }
        database = try Database(storage: storage, root: Shelf.self, types: testTypes)
        return try database.open()
    }

    func close() {
        try? storage.close()
        dir.remove()
    }
}

// MARK: Property tests

/// One collection's property test: how to make it, read it whole, change it
/// at random (and the model alike), and check every way of reading it.
struct CollectionProperty<C: PersistentObject, Model: Equatable> {
    var path: WritableKeyPath<Shelf.State, C?>
    var empty: Model
    var make: (Model) -> C
    var contents: (C) -> Model
    /// Applies one random operation to the collection and the model; names it.
    var mutate: (C, inout Model, inout SeededRandom) -> String
    /// Reads the collection every other way and compares with the model.
    var check: (C, Model) -> Void

    /// `steps` random operations, interleaved with commits, aborts, fresh
    /// connections and reopenings; after each, the contents equal the model.
    func run(_ kind: StorageKind, seed: UInt64, steps: Int = 3000, name: String = #function) throws {
        let store = try ReopenableStore(kind, name: "\(name)\(seed)")
        defer { store.close() }
        var random = SeededRandom(seed: seed)
        var model = empty
        var committed = model
        var connection = try store.database.open()
        try connection.root(Shelf.self).state[keyPath: path] = make(model)
        try connection.commit()

        func collection() throws -> C {
            try #require(try connection.root(Shelf.self).state[keyPath: path])
        }
        var tally: [String: Int] = [:]
        for step in 0 ..< steps {
            let roll = Int.random(in: 0 ..< 100, using: &random)
            var what: String
            switch roll {
            case 0 ..< 78:
                what = mutate(try collection(), &model, &random)
            case 78:
                what = "replace with a new object"
                try connection.root(Shelf.self).state[keyPath: path] = make(model)
            case 79 ..< 88:
                what = "commit"
                try connection.commit()
                committed = model
                // What the commit stored, seen by a connection of its own.
                let checker = try store.database.open()
                let stored = try #require(try checker.root(Shelf.self).state[keyPath: path])
                try #require(contents(stored) == committed, "seed \(seed), step \(step): the commit stored something else")
            case 88 ..< 94:
                what = "abort"
                connection.abort()
                model = committed
            case 94 ..< 98:
                what = "fresh connection"
                connection = try store.database.open()
                model = committed
            default:
                what = "reopen"
                connection = try store.reopen()
                model = committed
            }
            tally[what.split(separator: " ").first.map(String.init) ?? what, default: 0] += 1
            let current = try collection()
            try #require(contents(current) == model, "seed \(seed), step \(step), after \(what)")
            if step % 7 == 0 { check(current, model) }
        }
        try connection.commit()
        let final = try #require(try store.reopen().root(Shelf.self).state[keyPath: path])
        #expect(contents(final) == model)
        // Every kind of step happened.
        #expect(tally["commit", default: 0] > 0 && tally["abort", default: 0] > 0 && tally["reopen", default: 0] > 0,
                "\(tally.sorted { $0.key < $1.key })")
    }
}

@Suite struct CollectionPropertyTests {
    static let seeds: [UInt64] = [101, 202]

    @Test(arguments: StorageKind.allCases, seeds)
    func dictionaryBehavesLikeDictionary(_ kind: StorageKind, _ seed: UInt64) throws {
        try CollectionProperty<PersistentDictionary<String, Int>, [String: Int]>(
            path: \.words, empty: [:],
            make: { PersistentDictionary($0) },
            contents: { $0.contents },
            mutate: Self.mutateDictionary,
            check: Self.checkDictionary
        ).run(kind, seed: seed)
    }

    @Test(arguments: StorageKind.allCases, seeds)
    func listBehavesLikeArray(_ kind: StorageKind, _ seed: UInt64) throws {
        try CollectionProperty<PersistentList<Int>, [Int]>(
            path: \.numbers, empty: [],
            make: { PersistentList($0) },
            contents: { $0.contents },
            mutate: Self.mutateList,
            check: Self.checkList
        ).run(kind, seed: seed)
    }

    @Test(arguments: StorageKind.allCases, seeds)
    func setBehavesLikeSet(_ kind: StorageKind, _ seed: UInt64) throws {
        try CollectionProperty<PersistentSet<Int>, Set<Int>>(
            path: \.tags, empty: [],
            make: { PersistentSet($0) },
            contents: { $0.contents },
            mutate: Self.mutateSet,
            check: Self.checkSet
        ).run(kind, seed: seed)
    }

    // MARK: Dictionary

    static func mutateDictionary(_ d: PersistentDictionary<String, Int>, _ m: inout [String: Int],
                                 _ r: inout SeededRandom) -> String {
        func anyKey() -> String { "k\(Int.random(in: 0 ..< 80, using: &r))" }
        /// Drawn from the sorted keys: hash order changes from process to process.
        func existingKey() -> String? { m.keys.sorted().randomElement(using: &r) }
        let value = Int.random(in: -1000 ... 1000, using: &r)
        switch Int.random(in: 0 ..< 100, using: &r) {
        case 0 ..< 28:
            let k = anyKey()
            d[k] = value
            m[k] = value
            return "set \(k)"
        case 28 ..< 36:
            let k = anyKey()
            d[k] = nil
            m[k] = nil
            return "set \(k) to nil"
        case 36 ..< 46:
            let k = anyKey()
            #expect(d.removeValue(forKey: k) == m.removeValue(forKey: k))
            return "removeValue \(k)"
        case 46 ..< 54:
            let k = anyKey()
            #expect(d.updateValue(value, forKey: k) == m.updateValue(value, forKey: k))
            return "updateValue \(k)"
        case 54 ..< 62:
            let k = anyKey()
            d[k, default: 0] += value
            m[k, default: 0] += value
            return "modify \(k) with a default"
        case 62 ..< 67:
            let k = anyKey()
            d[k]? -= 1
            m[k]? -= 1
            return "modify \(k) if present"
        case 67 ..< 73:
            let pairs = (0 ..< Int.random(in: 0 ... 5, using: &r)).map { (anyKey(), value + $0) }
            if Bool.random(using: &r) {
                let other = Dictionary(pairs, uniquingKeysWith: max)
                d.merge(other, uniquingKeysWith: min)
                m.merge(other, uniquingKeysWith: min)
            } else {
                d.merge(pairs, uniquingKeysWith: +)
                m.merge(pairs, uniquingKeysWith: +)
            }
            return "merge \(pairs.count)"
        case 73 ..< 79:
            guard let k = existingKey() else { return "remove(at:) on empty" }
            guard let index = d.index(forKey: k) else {
                Issue.record("no index for \(k), a key the model has")
                return "remove(at:) \(k)"
            }
            let removed = d.remove(at: index)
            #expect(removed.key == k && removed.value == m[k])
            m[k] = nil
            return "remove(at:) \(k)"
        case 79:
            if Int.random(in: 0 ..< 4, using: &r) == 0 {
                d.removeAll()
                m.removeAll()
                return "removeAll"
            }
            d.removeAll(keepingCapacity: true)      // rarely: both ways empty it
            m.removeAll()
            return "removeAll keeping capacity"
        case 80 ..< 82:
            let fresh = Dictionary((0 ..< Int.random(in: 0 ... 30, using: &r)).map { (anyKey(), $0) },
                                   uniquingKeysWith: max)
            d.contents = fresh
            m = fresh
            return "replace contents"
        default:
            let k = anyKey()
            #expect(d[k] == m[k])
            #expect(d[k, default: -1] == m[k, default: -1])
            #expect((d.index(forKey: k) != nil) == (m[k] != nil))
            return "read \(k)"
        }
    }

    static func checkDictionary(_ d: PersistentDictionary<String, Int>, _ m: [String: Int]) {
        #expect(d.count == m.count)
        #expect(d.isEmpty == m.isEmpty)
        #expect(d.keys.sorted() == m.keys.sorted())
        #expect(d.values.sorted() == m.values.sorted())
        var iterated: [String: Int] = [:]
        for (key, value) in d { iterated[key] = value }
        #expect(iterated == m)
        var walked: [String: Int] = [:]
        var index = d.startIndex
        while index != d.endIndex {
            walked[d[index].key] = d[index].value
            index = d.index(after: index)
        }
        #expect(walked == m)
        #expect(d.count == d.indices.count)
    }

    // MARK: List

    static func mutateList(_ l: PersistentList<Int>, _ m: inout [Int], _ r: inout SeededRandom) -> String {
        let n = m.count
        let value = Int.random(in: -500 ... 500, using: &r)
        func index() -> Int { Int.random(in: 0 ..< n, using: &r) }
        func range() -> Range<Int> {
            let a = Int.random(in: 0 ... n, using: &r), b = Int.random(in: 0 ... n, using: &r)
            return min(a, b) ..< max(a, b)
        }
        func some() -> [Int] { (0 ..< Int.random(in: 0 ... 4, using: &r)).map { value + $0 } }
        // Long lists shrink: removals are more likely beyond 150 elements.
        var roll = Int.random(in: 0 ..< 100, using: &r)
        if n > 150, roll < 25 { roll = 25 }
        switch roll {
        case 0 ..< 12:
            l.append(value)
            m.append(value)
            return "append"
        case 12 ..< 22:
            let i = Int.random(in: 0 ... n, using: &r)
            l.insert(value, at: i)
            m.insert(value, at: i)
            return "insert at \(i)"
        case 22 ..< 25:
            let more = some()
            if Bool.random(using: &r) {
                l.append(contentsOf: more)
                m.append(contentsOf: more)
                return "append(contentsOf:)"
            }
            let i = Int.random(in: 0 ... n, using: &r)
            l.insert(contentsOf: more, at: i)
            m.insert(contentsOf: more, at: i)
            return "insert(contentsOf:at:)"
        case 25 ..< 33:
            guard n > 0 else { return "remove(at:) on empty" }
            let i = index()
            #expect(l.remove(at: i) == m.remove(at: i))
            return "remove(at: \(i))"
        case 33 ..< 42:
            guard n > 0 else { return "set on empty" }
            let i = index()
            l[i] = value
            m[i] = value
            return "set [\(i)]"
        case 42 ..< 48:
            guard n > 0 else { return "modify on empty" }
            let i = index()
            l[i] += value
            m[i] += value
            return "modify [\(i)]"
        case 48 ..< 54:
            let bounds = range(), more = some()
            l.replaceSubrange(bounds, with: more)
            m.replaceSubrange(bounds, with: more)
            return "replaceSubrange \(bounds)"
        case 54 ..< 58:
            guard n > 0 else {
                #expect(l.popLast() == nil)
                return "popLast on empty"
            }
            switch Int.random(in: 0 ..< 3, using: &r) {
            case 0:
                #expect(l.removeLast() == m.removeLast())
                return "removeLast"
            case 1:
                #expect(l.popLast() == m.popLast())
                return "popLast"
            default:
                #expect(l.removeFirst() == m.removeFirst())
                return "removeFirst"
            }
        case 58 ..< 61:
            guard n > 0 else { return "swapAt on empty" }
            let i = index(), j = index()
            l.swapAt(i, j)
            m.swapAt(i, j)
            return "swapAt"
        case 61 ..< 63:
            switch Int.random(in: 0 ..< 3, using: &r) {
            case 0:
                l.sort()
                m.sort()
                return "sort"
            case 1:
                l.sort(by: >)
                m.sort(by: >)
                return "sort(by:)"
            default:
                l.reverse()
                m.reverse()
                return "reverse"
            }
        case 63 ..< 65:
            let divisor = Int.random(in: 2 ... 7, using: &r)
            l.removeAll(where: { $0 % divisor == 0 })
            m.removeAll(where: { $0 % divisor == 0 })
            return "removeAll(where:)"
        case 65 ..< 68:
            // As for Array, a slice set may differ in length.
            let bounds = range(), more = ArraySlice(some())
            #expect(Array(l[bounds]) == Array(m[bounds]))
            l[bounds] = more
            m[bounds] = more
            return "set slice \(bounds)"
        case 68 ..< 71:
            let bounds = range()
            switch Int.random(in: 0 ..< 3, using: &r) {
            case 0:
                l.removeSubrange(bounds)
                m.removeSubrange(bounds)
                return "removeSubrange \(bounds)"
            case 1:
                l.removeFirst(bounds.count)
                m.removeFirst(bounds.count)
                return "removeFirst(\(bounds.count))"
            default:
                l.removeLast(bounds.count)
                m.removeLast(bounds.count)
                return "removeLast(\(bounds.count))"
            }
        case 71:
            if Int.random(in: 0 ..< 3, using: &r) == 0 {
                l.removeAll(keepingCapacity: Bool.random(using: &r))
                m.removeAll()
                return "removeAll"
            }
            let fresh = (0 ..< Int.random(in: 0 ... 40, using: &r)).map { value + $0 }
            l.contents = fresh
            m = fresh
            return "replace contents"
        case 72 ..< 76:
            // The standard library's own mutating algorithms, through a `var`,
            // reach the list's storage and mark it changed.
            var list = l
            if Bool.random(using: &r) {
                let pivot = value
                let a = list.partition(by: { $0 >= pivot })
                let b = m.partition(by: { $0 >= pivot })
                #expect(a == b)
                #expect(list === l)
                return "partition(by:)"
            }
            list += [value, value]
            m += [value, value]
            #expect(list === l)
            return "+="
        default:
            guard n > 0 else {
                #expect(l.first == nil && l.last == nil)
                return "read empty"
            }
            let i = index(), bounds = range()
            #expect(l[i] == m[i])
            #expect(Array(l[bounds]) == Array(m[bounds]))
            #expect(l.first == m.first && l.last == m.last)
            #expect(l.firstIndex(of: value) == m.firstIndex(of: value))
            return "read"
        }
    }

    static func checkList(_ l: PersistentList<Int>, _ m: [Int]) {
        #expect(l.count == m.count)
        #expect(l.isEmpty == m.isEmpty)
        #expect(Array(l) == m)
        #expect(l.indices == m.indices)
        #expect(l.reduce(0, +) == m.reduce(0, +))
        #expect(Array(l.reversed()) == Array(m.reversed()))
        #expect(l.sorted() == m.sorted())
        #expect(l.withContiguousStorageIfAvailable { Array($0) } == m)
        var walked: [Int] = []
        for i in l.indices { walked.append(l[i]) }
        #expect(walked == m)
        if m.count > 2 {
            #expect(l[l.index(l.startIndex, offsetBy: 2)] == m[2])
            #expect(l.distance(from: l.startIndex, to: l.endIndex) == m.count)
        }
    }

    // MARK: Set

    static func mutateSet(_ s: PersistentSet<Int>, _ m: inout Set<Int>, _ r: inout SeededRandom) -> String {
        func member() -> Int { Int.random(in: 0 ..< 120, using: &r) }
        /// Drawn from the sorted members: hash order changes from process to process.
        func existing() -> Int? { m.sorted().randomElement(using: &r) }
        func some() -> [Int] { (0 ..< Int.random(in: 0 ... 6, using: &r)).map { _ in member() } }
        switch Int.random(in: 0 ..< 100, using: &r) {
        case 0 ..< 25:
            let x = member()
            let got = s.insert(x), want = m.insert(x)
            #expect(got.inserted == want.inserted && got.memberAfterInsert == want.memberAfterInsert)
            return "insert \(x)"
        case 25 ..< 38:
            let x = member()
            #expect(s.remove(x) == m.remove(x))
            return "remove \(x)"
        case 38 ..< 43:
            let x = member()
            #expect(s.update(with: x) == m.update(with: x))
            return "update \(x)"
        case 43 ..< 50:
            let more = some()
            s.formUnion(more)
            m.formUnion(more)
            return "formUnion"
        case 50 ..< 53:
            // Keeps most members: all but a few.
            let keep = Set(0 ..< 120).subtracting(some())
            s.formIntersection(keep)
            m.formIntersection(keep)
            return "formIntersection"
        case 53 ..< 58:
            let more = some()
            s.formSymmetricDifference(more)
            m.formSymmetricDifference(more)
            return "formSymmetricDifference"
        case 58 ..< 63:
            let fewer = some()
            s.subtract(fewer)
            m.subtract(fewer)
            return "subtract"
        case 63 ..< 68:
            // The SetAlgebra forms that take another PersistentSet.
            let other = Set(some())
            switch Int.random(in: 0 ..< 3, using: &r) {
            case 0:
                s.formUnion(PersistentSet(other))
                m.formUnion(other)
                return "formUnion(PersistentSet)"
            case 1:
                s.formSymmetricDifference(PersistentSet(other))
                m.formSymmetricDifference(other)
                return "formSymmetricDifference(PersistentSet)"
            default:
                s.subtract(PersistentSet(other))
                m.subtract(other)
                return "subtract(PersistentSet)"
            }
        case 68 ..< 72:
            guard let x = existing() else { return "remove(at:) on empty" }
            guard let index = s.firstIndex(of: x) else {
                Issue.record("no index for \(x), a member the model has")
                return "remove(at:) \(x)"
            }
            #expect(s.remove(at: index) == x)
            m.remove(x)
            return "remove(at:) \(x)"
        case 72:
            if Bool.random(using: &r) {
                s.removeAll()
                m.removeAll()
                return "removeAll"
            }
            let fresh = Set(some() + some())
            s.contents = fresh
            m = fresh
            return "replace contents"
        case 73 ..< 80:
            // Operations that make a new set leave this one as it was.
            let other = Set(some() + some())
            let otherSet = PersistentSet(other)
            #expect(s.union(otherSet).contents == m.union(other))
            #expect(s.intersection(otherSet).contents == m.intersection(other))
            #expect(s.symmetricDifference(otherSet).contents == m.symmetricDifference(other))
            #expect(s.subtracting(otherSet).contents == m.subtracting(other))
            #expect(s.isSubset(of: otherSet) == m.isSubset(of: other))
            #expect(s.isSuperset(of: otherSet) == m.isSuperset(of: other))
            #expect(s.isDisjoint(with: otherSet) == m.isDisjoint(with: other))
            return "make new sets"
        default:
            let x = member(), more = some()
            #expect(s.contains(x) == m.contains(x))
            #expect(s.isSubset(of: more) == m.isSubset(of: more))
            #expect(s.isSuperset(of: more) == m.isSuperset(of: more))
            #expect(s.isDisjoint(with: more) == m.isDisjoint(with: more))
            return "read"
        }
    }

    static func checkSet(_ s: PersistentSet<Int>, _ m: Set<Int>) {
        #expect(s.count == m.count)
        #expect(s.isEmpty == m.isEmpty)
        #expect(s.sorted() == m.sorted())
        #expect(Set(s) == m)
        var walked: [Int] = []
        var index = s.startIndex
        while index != s.endIndex {
            walked.append(s[index])
            index = s.index(after: index)
        }
        #expect(walked.sorted() == m.sorted())
        #expect(s == PersistentSet(m))
        #expect(s.isSubset(of: m) && s.isSuperset(of: m))
    }
}

// MARK: Behaviour

@Suite struct CollectionTests {
    /// The object is the unit of change, as in Durus: different keys of one
    /// dictionary, changed by two connections, conflict.
    @Test(arguments: StorageKind.allCases)
    func differentKeysOfOneDictionaryConflict(_ kind: StorageKind) throws {
        let store = try ReopenableStore(kind)
        defer { store.close() }
        try store.database.transaction { try $0.root(Shelf.self).state.words = ["start": 0] }
        let a = try store.database.open()
        let b = try store.database.open()
        let wordsA = try #require(try a.root(Shelf.self).state.words)
        let wordsB = try #require(try b.root(Shelf.self).state.words)
        wordsA["a"] = 1
        wordsB["b"] = 2
        try a.commit()
        #expect(throws: ConflictError.self) { try b.commit() }
        b.abort()
        #expect(wordsB.contents == ["start": 0, "a": 1], "after abort, the other commit is seen and ours is gone")
        wordsB["b"] = 2
        try b.commit()
        let c = try store.database.open()
        #expect(try c.root(Shelf.self).state.words?.contents == ["start": 0, "a": 1, "b": 2])
    }

    /// A collection of persistent objects stores references: they load as
    /// ghosts, and one OID is one instance whichever path reaches it.
    @Test(arguments: StorageKind.allCases)
    func collectionsOfObjectsHoldReferences(_ kind: StorageKind) throws {
        let store = try ReopenableStore(kind)
        defer { store.close() }
        try store.database.transaction { connection in
            let shelf = try connection.root(Shelf.self)
            let accounts = (0 ..< 3).map { Account(owner: "a\($0)", balance: $0 * 10) }
            shelf.state.accounts = PersistentList(accounts + [accounts[0]])   // the first one twice
            shelf.state.byOwner = PersistentDictionary(uniqueKeysWithValues: accounts.map { ($0.owner, $0) })
            shelf.state.lists = ["evens": [0, 2], "odds": [1, 3]]
        }
        let connection = try store.reopen()
        let shelf = try connection.root(Shelf.self)
        let list = try #require(shelf.state.accounts)
        let byOwner = try #require(shelf.state.byOwner)
        #expect(list.status == .ghost, "a collection reached by reference is a ghost")
        #expect(list.count == 4)
        #expect(list.allSatisfy { $0.status == .ghost }, "its elements are ghosts too")
        #expect(list[0] === list[3], "one OID, one instance")
        #expect(list[1] === byOwner["a1"], "whichever collection reaches it")
        #expect(list.map(\.balance) == [0, 10, 20, 0])
        #expect(list[1].status == .saved)

        // The record lists the references, for garbage collection.
        let record = try store.storage.load(try #require(list.oid))
        #expect(Set(record.references) == Set(list.compactMap(\.oid)))
        #expect(record.references.count == 3)

        // Changing an element changes the element, not the list.
        list[2].balance = 99
        #expect(list[2].status == .unsaved)
        #expect(list.status == .saved)
        try connection.commit()
        #expect(try store.database.open().root(Shelf.self).state.byOwner?["a2"]?.balance == 99)

        // Collections of collections: the inner ones are objects of their own.
        let lists = try #require(shelf.state.lists)
        let evens = try #require(lists["evens"])
        #expect(evens.status == .ghost)
        evens.append(4)
        #expect(evens.status == .unsaved && lists.status == .saved)
        try connection.commit()
        let other = try store.database.open()
        #expect(try other.root(Shelf.self).state.lists?["evens"]?.contents == [0, 2, 4])
        #expect(try other.root(Shelf.self).state.lists?["odds"]?.contents == [1, 3])
    }

    /// Mutations mark the collection changed; reads, and mutations that turn
    /// out to change nothing, do not; a ghost loads on first read.
    @Test func changeTrackingFollowsEveryOperation() throws {
        let store = try ReopenableStore(.memory)
        defer { store.close() }
        try store.database.transaction { connection in
            let shelf = try connection.root(Shelf.self)
            shelf.state.words = ["a": 1]
            shelf.state.numbers = [1, 2, 3]
            shelf.state.tags = [1, 2]
        }
        let connection = try store.database.open()
        let shelf = try connection.root(Shelf.self)
        let words = try #require(shelf.state.words)
        let numbers = try #require(shelf.state.numbers)
        let tags = try #require(shelf.state.tags)
        let all: [PersistentObject] = [words, numbers, tags]
        #expect(all.allSatisfy { $0.status == .ghost })

        let loadsBefore = connection.loadCount
        _ = words["a"]; _ = numbers.count; _ = tags.contains(1)
        #expect(connection.loadCount == loadsBefore + 3, "the first read loads each ghost")
        _ = words.count; _ = Array(numbers); _ = tags.sorted()
        #expect(connection.loadCount == loadsBefore + 3)
        #expect(all.allSatisfy { $0.status == .saved }, "reads change nothing")

        words.removeValue(forKey: "absent")
        numbers.removeAll(where: { $0 > 10 })
        tags.insert(1)
        tags.remove(7)
        #expect(all.allSatisfy { $0.status == .saved }, "operations that change nothing do not mark")

        let mutations: [(String, () -> Void)] = [
            ("dictionary subscript", { words["b"] = 2 }),
            ("dictionary default subscript", { words["a", default: 0] += 1 }),
            ("dictionary updateValue", { words.updateValue(5, forKey: "c") }),
            ("dictionary removeValue", { words.removeValue(forKey: "a") }),
            ("dictionary merge", { words.merge(["z": 1], uniquingKeysWith: +) }),
            ("list subscript", { numbers[0] += 1 }),
            ("list append", { numbers.append(4) }),
            ("list insert", { numbers.insert(0, at: 0) }),
            ("list remove", { numbers.remove(at: 0) }),
            ("list sort", { numbers.sort(by: >) }),
            ("list slice", { numbers[0 ..< 1] = [7] }),
            ("list replaceSubrange", { numbers.replaceSubrange(0 ..< 0, with: [9]) }),
            ("set insert", { tags.insert(3) }),
            ("set remove", { tags.remove(1) }),
            ("set formUnion", { tags.formUnion([8]) }),
            ("set subtract", { tags.subtract([8]) }),
        ]
        for (name, mutate) in mutations {
            connection.abort()
            #expect(all.allSatisfy { $0.status != .unsaved })
            mutate()
            #expect(all.contains { $0.status == .unsaved }, "\(name) marks its collection changed")
        }
        connection.abort()
        #expect(words.contents == ["a": 1] && numbers.contents == [1, 2, 3] && tags.contents == [1, 2],
                "aborted changes are gone")
    }

    /// A new collection registers its specialization, so a reference declared
    /// through a superclass finds it too.
    @Test func newCollectionsRegisterTheirSpecialization() throws {
        typealias Map = PersistentDictionary<UInt32, [String]>
        let name = String(reflecting: Map.self)
        #expect(name == "Durus.PersistentDictionary<Swift.UInt32, Swift.Array<Swift.String>>")
        let (database, cleanup) = try makeDatabase(.memory)
        defer { cleanup() }
        try database.transaction { connection in
            let map: Map = [7: ["seven"]]
            #expect(PersistentTypes.type(named: name) == Map.self)
            try connection.root(Bank.self).objects = [map, PersistentSet<UInt32>([1])]
        }
        let objects = try database.open().root(Bank.self).objects
        #expect((objects.first as? Map)?.contents == [7: ["seven"]])
        #expect((objects.last as? PersistentSet<UInt32>)?.contents == [1])
        PersistentList<UInt32>.registerType()
        #expect(PersistentTypes.type(named: String(reflecting: PersistentList<UInt32>.self)) == PersistentList<UInt32>.self)
    }

    /// A reference resolves to its declared type when the record names that
    /// type and nothing registered it.
    @Test(arguments: StorageKind.allCases)
    func anUnregisteredTypeLoadsByTheDeclaredType(_ kind: StorageKind) throws {
        let name = Unlisted.persistentTypeName
        let store = try ReopenableStore(kind)
        defer { store.close() }
        let oid = try store.database.transaction { connection -> OID? in
            let shelf = try connection.root(Shelf.self)
            let unlisted = Unlisted()
            unlisted.note = "found"
            shelf.state.unlisted = unlisted
            shelf.state.unlistedMany = [unlisted, Unlisted()]
            try connection.commit()
            return unlisted.oid
        }
        #expect(PersistentTypes.type(named: name) == nil, "nothing registered it")

        let connection = try store.reopen()
        let shelf = try connection.root(Shelf.self)
        let unlisted = try #require(shelf.state.unlisted)
        #expect(unlisted.status == .ghost)
        #expect(unlisted.note == "found")
        let many = try #require(shelf.state.unlistedMany)
        #expect(many.count == 2)
        #expect(many[0] === unlisted, "inside a collection too, one instance per OID")
        unlisted.note = "changed"
        try connection.commit()

        // Without a declared type (a bare OID), the name alone cannot be resolved.
        let bare = try store.database.open()
        let unlistedAt = try #require(oid)
        #expect(throws: DurusError.unknownType(name)) { try bare.get(unlistedAt) }
        #expect(try bare.root(Shelf.self).state.unlisted?.note == "changed")
        #expect(PersistentTypes.type(named: name) == nil, "resolving by the declared type registers nothing")
    }

    /// A collection specialization this process never made loads through a
    /// reference of that declared type, then registers itself.
    @Test func aCollectionSpecializationNeverMadeInTheProcessLoads() throws {
        let name = String(reflecting: PersistentDictionary<Int8, UInt16>.self)
        #expect(PersistentTypes.type(named: name) == nil)
        let storage = MemoryStorage()
        let holderOID: OID? = try {
            let writer = try Database(storage: storage, root: Bank.self, types: testTypes + [HolderWriter.self])
            return try writer.transaction { connection in
                let standIn = Int8MapStandIn()
                standIn.items = [-3: 300, 4: 4]
                let holder = HolderWriter()
                holder.state.map = standIn
                try connection.root(Bank.self).objects = [holder]
                try connection.commit()
                return holder.oid
            }
        }()
        #expect(PersistentTypes.type(named: name) == nil, "the stand-in wrote it: no PersistentDictionary<Int8, UInt16> was made")

        let reader = try Database(storage: storage, root: Bank.self, types: testTypes + [HolderReader.self])
        let connection = try reader.open()
        let holderAt = try #require(holderOID)
        let holder = try #require(try connection.get(holderAt) as? HolderReader)
        let map = try #require(holder.state.map)
        #expect(map.contents == [-3: 300, 4: 4])
        #expect(PersistentTypes.type(named: name) == PersistentDictionary<Int8, UInt16>.self, "loaded, it registered itself")
        map[5] = 5
        try connection.commit()
        let again = try reader.open()
        let oid = try #require(map.oid)
        #expect((try again.get(oid) as? PersistentDictionary<Int8, UInt16>)?.contents == [-3: 300, 4: 4, 5: 5],
                "and now loads by name alone")
    }

    /// The DocC examples, as written there (`print` made an expectation).
    @Test func docExamplesRunAsDocumented() throws {
        do {
            let database = try Database(storage: MemoryStorage(),
                                        root: PersistentDictionary<String, Int>.self)
            try database.transaction { connection in
                let stock = try connection.root(PersistentDictionary<String, Int>.self)
                stock["apples", default: 0] += 3        // marks the dictionary changed
                stock["pears"] = 2
            }
            let stock = try database.open().root(PersistentDictionary<String, Int>.self)
            #expect("\(stock["apples"] ?? 0) \(stock.count)" == "3 2")
        }
        do {
            let database = try Database(storage: MemoryStorage(), root: PersistentList<String>.self)
            try database.transaction { connection in
                let queue = try connection.root(PersistentList<String>.self)
                queue.append("write")
                queue.insert("plan", at: 0)
                queue[1] += " tests"                    // changed in place: still tracked
            }
            let queue = try database.open().root(PersistentList<String>.self)
            #expect("\(Array(queue))" == #"["plan", "write tests"]"#)
        }
        do {
            let database = try Database(storage: MemoryStorage(), root: PersistentSet<String>.self)
            try database.transaction { connection in
                let tags = try connection.root(PersistentSet<String>.self)
                tags.insert("swift")
                tags.formUnion(["durus", "swift"])
            }
            let tags = try database.open().root(PersistentSet<String>.self)
            #expect("\(tags.contains("durus")) \(tags.count)" == "true 2")
        }
    }
}
