import Durus
import DurusBerkeleyDB
import Foundation

final class TreeHolder: Persistent<TreeHolder.State> {
    struct State: PersistentState { var tree: BTree<Int, Int>? }
}

struct TreeRates {
    var insert = 0.0, lookup = 0.0, range = 0.0
}

/// One run of the BTree workload through swift-durus on Berkeley DB, write-no-sync.
func runSwiftTree(order: Int, keys: [Int], batch: Int, lookups: Int, ranges: Int, path: String) throws -> TreeRates {
    try? FileManager.default.removeItem(atPath: path)
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.durability = .writeNoSync
    configuration.cacheSize = 512 << 20
    let storage = try BerkeleyDBStorage(path: path, configuration: configuration)
    defer {
        try? storage.close()
        try? FileManager.default.removeItem(atPath: path)
    }
    let database = try Database(storage: storage, root: TreeHolder.self, configuration: .init(cacheSize: 2 * keys.count))
    var rates = TreeRates()
    let writer = try database.open()
    let holder = try writer.root(TreeHolder.self)
    let tree = BTree<Int, Int>(order: order)
    holder.state.tree = tree
    try writer.commit()
    rates.insert = try rate(1) { _ in
        for (number, key) in keys.enumerated() {
            tree[key] = key * 2
            if (number + 1) % batch == 0 { try writer.commit() }
        }
        try writer.commit()
    } * Double(keys.count)

    var random = BenchRandom(state: 11)
    let reader = try database.open()
    guard let readTree = try reader.root(TreeHolder.self).state.tree else { throw BenchError(description: "no tree") }
    var total = 0
    rates.lookup = rate(lookups) { _ in total &+= readTree[Int.random(in: 0 ..< keys.count, using: &random)] ?? 0 }
    var scanned = 0
    rates.range = rate(ranges) { _ in
        let low = Int.random(in: 0 ..< Swift.max(1, keys.count - 100), using: &random)
        for _ in readTree[low ..< low + 100] { scanned += 1 }
    }
    guard scanned >= ranges * Swift.min(100, keys.count) * 99 / 100 else {
        throw BenchError(description: "ranges returned \(scanned) entries")
    }
    return rates
}

/// `collections`: BTree insert, lookup and range throughput against Python
/// Durus 4.3's durus.btree.BTree on FileStorage, same keys, same order.
func runCollectionsSuite(_ arguments: [String]) throws {
    let entries = option("--entries", in: arguments, default: 1_000_000)
    let batch = option("--batch", in: arguments, default: 10_000)
    let lookups = option("--lookups", in: arguments, default: 100_000)
    let ranges = option("--ranges", in: arguments, default: 2_000)
    let python = optionString("--python", in: arguments) ?? defaultPython()
    let orders = optionString("--orders", in: arguments).map { $0.split(separator: ",").compactMap { Int($0) } } ?? []
    print("collections suite: BTree<Int, Int> of \(entries) entries inserted in random order, commits of \(batch); "
        + "\(lookups) random lookups and \(ranges) 100-entry ranges through a fresh connection")
    print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; \(Date()); python: \(python)")
    let scratch = scratchDirectory("collections")
    try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }

    var random = BenchRandom(state: 3)
    let keys = Array(0 ..< entries).shuffled(using: &random)

    if !orders.isEmpty {
        print("\nnode size (minimum degree) against throughput, swift-durus only:")
        print("order     inserts/s     lookups/s      ranges/s")
        for order in orders {
            let r = try runSwiftTree(order: order, keys: keys, batch: batch, lookups: lookups, ranges: ranges,
                                     path: scratch + "/order-\(order)")
            print(String(format: "%5d  %12.0f  %12.0f  %12.0f", order, r.insert, r.lookup, r.range))
        }
    }

    let theirs = try runPython(python, script: pythonScript("btree_bench.py"),
                               ["--dir", scratch, "--entries", "\(entries)", "--batch", "\(batch)",
                                "--lookups", "\(lookups)", "--ranges", "\(ranges)"])
    let ours = try runSwiftTree(order: BTree<Int, Int>.defaultOrder, keys: keys, batch: batch, lookups: lookups,
                                ranges: ranges, path: scratch + "/swift")
    report("collections: swift-durus BTree (Berkeley DB, write-no-sync) vs. Durus 4.3 durus.btree.BTree (FileStorage, no fsync)",
           theirs: "Durus 4.3", [
               Comparison(name: "btree-insert", unit: "entries/s", ours: ours.insert, theirs: theirs["insert_per_s"] ?? 0),
               Comparison(name: "btree-lookup", unit: "lookups/s", ours: ours.lookup, theirs: theirs["lookup_per_s"] ?? 0),
               Comparison(name: "btree-range100", unit: "ranges/s", ours: ours.range, theirs: theirs["range_per_s"] ?? 0),
           ])
}
