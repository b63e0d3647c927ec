import Testing
@testable import Durus
import DurusTestSupport

/// Durus's BTree layout, grown and shrunk by Swift: the tree always holds
/// what a plain dictionary holds, in key order, with every node within
/// Durus's bounds, across commits and fresh connections.
@Suite struct DurusBTreeTests {
    /// Checks the B-tree's shape: keys in order, every node but the root
    /// holding degree − 1 … 2 × degree − 1 items, every leaf at one depth.
    func checkShape(_ node: DurusBTreeNode<Int, String>, isRoot: Bool, depth: Int, leafDepth: inout Int?) {
        node.willRead()
        if !isRoot { #expect(node.items.count >= node.degree - 1, "a node under its minimum") }
        #expect(node.items.count <= 2 * node.degree - 1, "a node over its maximum")
        #expect(zip(node.items, node.items.dropFirst()).allSatisfy { $0.key < $1.key })
        guard let children = node.nodes else {
            if let leafDepth { #expect(depth == leafDepth, "leaves at different depths") } else { leafDepth = depth }
            return
        }
        #expect(children.count == node.items.count + 1)
        for child in children { checkShape(child, isRoot: false, depth: depth + 1, leafDepth: &leafDepth) }
    }

    /// Tried: 3,000 seeded random insertions, replacements and removals
    /// (present and absent keys) at degrees 2, 4 and 16, committed every 100
    /// operations and checked from a fresh connection each time. Survives:
    /// the tree's contents equal the dictionary's, in key order, and its shape
    /// stays a B-tree (which the removals' borrowing and merging must keep).
    @Test(arguments: [2, 4, 16])
    func randomChangesKeepTheTreeEqualToADictionary(degree: Int) throws {
        typealias Root = DurusPersistentDict<String, DurusBTree<Int, String>>
        let database = try Database(storage: MemoryStorage(), root: Root.self)
        let connection = try database.open()
        let tree = try #require(DurusBTree<Int, String>(nodeDegree: degree))
        try connection.root(Root.self)["tree"] = tree
        try connection.commit()
        var model: [Int: String] = [:]
        var random = SeededRandom(seed: UInt64(degree))
        for step in 0 ..< 3_000 {
            let key = Int(random.next() % 400)
            if random.next() % 3 == 0 {
                #expect(tree.removeValue(forKey: key) == model.removeValue(forKey: key), "step \(step)")
            } else {
                tree.setValue("v\(step)", forKey: key)
                model[key] = "v\(step)"
            }
            guard step % 100 == 99 else { continue }
            try connection.commit()
            let fresh = try #require(try database.open().root(Root.self)["tree"])
            var seen: [(Int, String)] = []
            fresh.forEach { seen.append(($0, $1)) }
            #expect(seen.map(\.0) == model.keys.sorted(), "step \(step)")
            #expect(seen.allSatisfy { model[$0.0] == $0.1 }, "step \(step)")
            var leafDepth: Int?
            fresh.willRead()
            checkShape(try #require(fresh.root), isRoot: true, depth: 0, leafDepth: &leafDepth)
        }
        #expect(model.count > 50)
    }
}

