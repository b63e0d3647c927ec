import Durus
import DurusBerkeleyDB
import Foundation

/// A fresh directory under the system's temporary folder, made at once and
/// removed by `remove()`; its name starts with the test's.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(_ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "durus-test-\(safe.prefix(40))-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// The path of `name` inside the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Opens a Berkeley DB store for a test: an 8 MiB cache and no durability
/// (tests need none) unless `configure` says otherwise.
public func openStore(_ path: String, _ configure: (inout BerkeleyDBStorage.Configuration) -> Void = { _ in }) throws -> BerkeleyDBStorage {
    var configuration = BerkeleyDBStorage.Configuration()
    configuration.cacheSize = 8 << 20
    configuration.durability = .none
    configure(&configuration)
    return try BerkeleyDBStorage(path: path, configuration: configuration)
}

/// Opens a Berkeley DB store for a test with the given durability.
public func openStore(_ path: String, durability: Durability) throws -> BerkeleyDBStorage {
    try openStore(path) { $0.durability = durability }
}

extension Storage {
    /// Every stored OID.
    public func storedOIDs() throws -> Set<OID> {
        var oids: Set<OID> = []
        try forEachRecord { oids.insert($0.oid) }
        return oids
    }
}

/// What the root reaches in a graph given as OID → references.
public func reachable(from root: OID, in graph: [OID: Set<OID>]) -> Set<OID> {
    var seen: Set<OID> = []
    var pending = graph[root] == nil ? [] : [root]
    while let oid = pending.popLast() {
        guard seen.insert(oid).inserted else { continue }
        pending.append(contentsOf: (graph[oid] ?? []).filter { !seen.contains($0) })
    }
    return seen
}
