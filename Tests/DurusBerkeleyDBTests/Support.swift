import Durus
import DurusBerkeleyDB
import Foundation

/// A fresh directory under the system's temporary folder, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "durus-test-\(safe)-\(UUID().uuidString.prefix(8))"
    }

    func file(_ name: String) -> String { path + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}


/// Opens a store with a short checkpoint interval unless told otherwise.
func openStore(_ path: String, _ configure: (inout BerkeleyDBStorage.Configuration) -> Void = { _ in }) throws -> BerkeleyDBStorage {
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.cacheSize = 8 << 20
    configuration.durability = .none
    configure(&configuration)
    return try BerkeleyDBStorage(path: path, configuration: configuration)
}

extension Storage {
    /// Every stored OID.
    func storedOIDs() throws -> Set<OID> {
        var oids: Set<OID> = []
        try forEachRecord { oids.insert($0.oid) }
        return oids
    }
}

/// What the root reaches in a graph given as OID → references.
func reachable(from root: OID, in graph: [OID: Set<OID>]) -> Set<OID> {
    var seen: Set<OID> = []
    var pending = graph[root] == nil ? [] : [root]
    while let oid = pending.popLast() {
        guard seen.insert(oid).inserted else { continue }
        pending.append(contentsOf: (graph[oid] ?? []).filter { !seen.contains($0) })
    }
    return seen
}
