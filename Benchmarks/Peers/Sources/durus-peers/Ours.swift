import Durus
import DurusBerkeleyDB
import Foundation

// swift-durus's side: the same classes and phases as `durus-bench objects`
// (Benchmarks/durus-bench/ObjectsSuite.swift), without its ceilings and
// memory lines.

final class Item: Persistent<Item.State> {
    struct State: PersistentState {
        var name = ""
        var value = 0
        var tags: [String] = []
    }
    var value: Int { get { state.value } set { state.value = newValue } }
}

/// 1000 consecutive items.
final class Bucket: Persistent<Bucket.State> {
    struct State: PersistentState { var items: [Int: Item] = [:] }
}

final class BenchRoot: Persistent<BenchRoot.State> {
    struct State: PersistentState { var buckets: [Bucket] = [] }
    func item(_ number: Int) -> Item? { state.buckets[number / 1000].state.items[number] }
}

/// Runs the four phases on a new BerkeleyDBStorage (write-no-sync) at `path`:
/// rates by line name.
func runOurs(path: String, _ work: Workload) throws -> [String: Double] {
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.durability = .writeNoSync
    configuration.cacheSize = 256 << 20
    var random = BenchRandom(state: 7)
    var rates: [String: Double] = [:]

    let storage = try BerkeleyDBStorage(path: path, configuration: configuration)
    defer { try? storage.close() }
    let database = try Database(storage: storage, root: BenchRoot.self, types: [Item.self, Bucket.self],
                                configuration: .init(cacheSize: max(1_000_000, 2 * work.objects)))
    let connection = try database.open()
    let root = try connection.root(BenchRoot.self)

    // create: N items, a commit every `batch`.
    rates["create"] = try rate(1) { _ in
        for number in 0 ..< work.objects {
            if number % 1000 == 0 { root.state.buckets.append(Bucket()) }
            let item = Item()
            item.state = .init(name: "item-\(number)", value: number, tags: ["t\(number % 7)", "u\(number % 11)"])
            root.state.buckets[number / 1000].state.items[number] = item
            if (number + 1) % work.batch == 0 { try connection.commit() }
        }
        try connection.commit()
    } * Double(work.objects)

    // rmw-commit: one random item, value += 1, commit.
    rates["rmw-commit"] = try rate(work.rmw) { _ in
        let item = root.item(Int.random(in: 0 ..< work.objects, using: &random))
        item?.value += 1
        try connection.commit()
    }

    // cold-read: a new connection of the same database, nothing in its
    // object cache (as ObjectsSuite's cold phase: the storage, and so
    // Berkeley DB's own cache, stays open).
    let fresh = try database.open()
    let freshRoot = try fresh.root(BenchRoot.self)
    var checksum = 0
    rates["cold-read"] = rate(work.cold) { _ in
        checksum &+= freshRoot.item(Int.random(in: 0 ..< work.objects, using: &random))?.value ?? 0
    }
    try fresh.commit()

    // warm-read: every item loaded in that connection and kept in a
    // dictionary by number, as the GRDB side keeps its fetched structs; then
    // reads of `.value` (a persistent property: a status check, then the state).
    var byNumber: [Int: Item] = [:]
    var total = 0
    for number in 0 ..< work.objects {
        guard let item = freshRoot.item(number) else { continue }
        byNumber[number] = item
        total += item.value
    }
    guard total == work.expectedTotal else {
        throw PeersError(description: "swift-durus: stored values sum to \(total), not \(work.expectedTotal)")
    }
    let loads = fresh.loadCount
    rates["warm-read"] = rate(work.warm) { _ in
        checksum &+= byNumber[Int.random(in: 0 ..< work.objects, using: &random)]?.value ?? 0
    }
    guard fresh.loadCount == loads else { throw PeersError(description: "swift-durus: warm reads loaded records") }
    // The ceiling of any object layer whose objects are class instances:
    // the same values as plain Swift objects, kept and read the same way.
    var plainByNumber: [Int: PlainItem] = [:]
    for (number, item) in byNumber { plainByNumber[number] = PlainItem(name: "item-\(number)", value: item.value, tags: []) }
    rates["warm-read-plain-classes"] = rate(work.warm) { _ in
        checksum &+= plainByNumber[Int.random(in: 0 ..< work.objects, using: &random)]?.value ?? 0
    }
    print("swift-durus checksum \(checksum)")
    return rates
}

/// An item as a plain Swift class: what a warm read of a class instance costs
/// with nothing persistent about it.
final class PlainItem {
    var name: String
    var value: Int
    var tags: [String]

    init(name: String, value: Int, tags: [String]) {
        (self.name, self.value, self.tags) = (name, value, tags)
    }
}
