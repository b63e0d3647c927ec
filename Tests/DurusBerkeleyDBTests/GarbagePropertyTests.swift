import Durus
import DurusBerkeleyDB
import Foundation
import DurusTestSupport
import Testing

/// Random commits that add, relink and drop references among a few hundred
/// objects, checked after every commit against a mark-from-root oracle.
@Suite struct GarbagePropertyTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var seed: UInt64
        var cycles: Bool
        var method: AccessMethod
        var testDescription: String { "seed \(seed), \(cycles ? "with" : "without") cycles, \(method)" }
    }

    static let cases: [Case] = [
        Case(seed: 11, cycles: false, method: .btree),
        Case(seed: 12, cycles: false, method: .hash),
        Case(seed: 13, cycles: true, method: .btree),
        Case(seed: 14, cycles: true, method: .hash),
    ]

    @Test(arguments: cases)
    func storedSetFollowsReachability(_ testCase: Case) throws {
        let dir = TemporaryDirectory("property-\(testCase.seed)")
        defer { dir.remove() }
        var random = SeededRandom(seed: testCase.seed)
        let configure: (inout BerkeleyDBStorage.Configuration) -> Void = {
            $0.accessMethod = testCase.method
            $0.collectionBatchSize = 5
        }
        var storage = try openStore(dir.path, configure)
        defer { try? storage.close() }
        // The model: every stored object's references, as this test committed them.
        var graph: [OID: Set<OID>] = [:]
        let root = try storage.newOID()
        try storage.commit([Record(oid: root, data: [0], references: [])])
        graph[root] = []
        var collectedTotal = 0
        var largest = 0
        var sawLeak = false
        var verifiedLeak = false

        for step in 0 ..< 300 {
            var changed: [OID: Set<OID>] = [:]
            func refs(_ oid: OID) -> Set<OID> { changed[oid] ?? graph[oid] ?? [] }
            var live = graph.keys.sorted()
            for _ in 0 ..< Int.random(in: 1 ... 5, using: &random) {
                let roll = Int.random(in: 0 ..< 100, using: &random)
                if roll < 55 || live.count < 10 {
                    // Add a new object under a random parent, sometimes with a small subtree.
                    let parent = live.randomElement(using: &random)!
                    let oid = try storage.newOID()
                    changed[oid] = []
                    changed[parent] = refs(parent).union([oid])
                    if Bool.random(using: &random) {
                        let leaf = try storage.newOID()
                        changed[leaf] = []
                        changed[oid] = [leaf]
                        live.append(leaf)
                    }
                    live.append(oid)
                } else if roll < 88 {
                    // Relink: keep some of an object's references, add links to others.
                    let from = live.randomElement(using: &random)!
                    let kept = Set(refs(from).sorted().filter { _ in Bool.random(using: &random) })
                    let targets = (0 ..< Int.random(in: 0 ... 3, using: &random)).compactMap { _ -> OID? in
                        let to = live.randomElement(using: &random)!
                        return testCase.cycles || to > from ? to : nil
                    }
                    changed[from] = kept.union(targets).subtracting([from])
                    if testCase.cycles, let back = targets.first, back != from, Int.random(in: 0 ..< 3, using: &random) == 0 {
                        changed[back] = refs(back).union([from])      // a two-object cycle
                    }
                } else {
                    // Drop one reference.
                    let from = live.randomElement(using: &random)!
                    var current = refs(from)
                    if let victim = current.sorted().randomElement(using: &random) { current.remove(victim) }
                    changed[from] = current
                }
            }
            // Sorted: Set and Dictionary order changes from run to run, and the seed must replay.
            try storage.commit(changed.sorted { $0.key < $1.key }.map { oid, refs in
                Record(oid: oid, data: [UInt8(step % 256), UInt8.random(in: 0 ... 255, using: &random)], references: refs)
            })
            for (oid, refs) in changed { graph[oid] = refs }

            let collected = try storage.sync()
            collectedTotal += collected.count
            let stored = try storage.storedOIDs()
            let reachableNow = reachable(from: root, in: graph)
            #expect(Set(collected).isDisjoint(with: reachableNow), "step \(step): a reachable object was collected")
            #expect(stored.isSuperset(of: reachableNow), "step \(step): reachable objects are missing")
            #expect(Set(collected) == Set(graph.keys).subtracting(stored), "step \(step): sync() names exactly what was collected")
            for oid in collected { graph[oid] = nil }
            if !testCase.cycles {
                #expect(stored == reachableNow, "step \(step): acyclic garbage must be gone at once")
            } else {
                // What remains unreachable is held only by reference cycles.
                let unreachable = stored.subtracting(reachableNow)
                sawLeak = sawLeak || !unreachable.isEmpty
                let referenced = Set(unreachable.flatMap { graph[$0] ?? [] })
                #expect(unreachable.allSatisfy { referenced.contains($0) },
                        "step \(step): an unreferenced, unreachable object was kept")
            }
            #expect(storage.objectCount == stored.count)
            largest = max(largest, stored.count)
            let leakedNow = stored.subtracting(reachableNow)
            if step % 10 == 9 || (!leakedNow.isEmpty && !verifiedLeak) {
                let report = try storage.verify()
                #expect(report.isConsistent, "step \(step): \(report)")
                let leaked = stored.subtracting(reachableNow)
                #expect(Set(report.leaked) == leaked, "step \(step): verify names every leaked cycle member")
                #expect(report.isClean == leaked.isEmpty)
                if !leaked.isEmpty { verifiedLeak = true }
            }
            if step % 50 == 49 {
                // Reopen now and then: counts, queue and OIDs persist.
                try storage.close()
                storage = try openStore(dir.path, configure)
                #expect(try storage.storedOIDs() == stored)
            }
        }
        #expect(collectedTotal > 100, "the run must exercise collection")
        #expect(largest >= 100, "the graph must grow to a few hundred objects; it reached \(largest)")
        #expect(sawLeak == testCase.cycles, "a cyclic run must leak cycles; an acyclic one never")
        if testCase.cycles {
            let report = try storage.verify()
            #expect(Set(report.leaked) == (try storage.storedOIDs()).subtracting(reachable(from: root, in: graph)))
            #expect(verifiedLeak || !report.leaked.isEmpty, "verify must have named a leaked cycle at least once")
        }
    }
}
