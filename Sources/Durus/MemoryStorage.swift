import Synchronization

/// A storage that keeps records in memory: for tests, scratch work and
/// as the model the persistent engines are checked against.
///
/// It enforces the same commit rules as the Berkeley DB engine (OIDs must have
/// been handed out; references must name stored objects). It does not collect
/// garbage until ``pack()``, which removes what the root cannot reach.
public final class MemoryStorage: Storage {
    private struct State {
        var records: [OID: Record] = [:]
        var nextOID: UInt64 = 0
        var invalidations: [OID] = []
        var closed = false
    }

    private let state = Mutex(State())

    /// An empty storage.
    public init() {}

    /// The number of stored objects.
    public var count: Int { state.withLock { $0.records.count } }

    public func load(_ oid: OID) throws -> Record {
        try state.withLock { state throws(DurusError) in
            guard !state.closed else { throw .closed }
            guard let record = state.records[oid] else { throw .keyNotFound(oid) }
            return record
        }
    }

    public func newOID() throws -> OID {
        try state.withLock { state throws(DurusError) in
            guard !state.closed else { throw .closed }
            defer { state.nextOID += 1 }
            return OID(state.nextOID)
        }
    }

    public func newOIDs(count: Int) throws -> [OID] {
        try state.withLock { state throws(DurusError) in
            guard !state.closed else { throw .closed }
            defer { state.nextOID += UInt64(count) }
            return (0 ..< UInt64(count)).map { OID(state.nextOID + $0) }
        }
    }

    public func commit(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws {
        try handleInvalidations([])
        try state.withLock { state in
            guard !state.closed else { throw DurusError.closed }
            let storing = Set(records.map(\.oid))
            for record in records {
                guard record.oid.rawValue < state.nextOID else { throw DurusError.oidNotAllocated(record.oid) }
                let missing = record.referenceSet.filter { state.records[$0] == nil && !storing.contains($0) }
                if !missing.isEmpty { throw ConflictError(.write, oids: missing.sorted()) }
            }
            for record in records { state.records[record.oid] = record }
        }
    }

    public func sync() throws -> [OID] {
        try state.withLock { state throws(DurusError) in
            guard !state.closed else { throw .closed }
            defer { state.invalidations = [] }
            return state.invalidations
        }
    }

    public func pack() throws {
        try state.withLock { state throws(DurusError) in
            guard !state.closed else { throw .closed }
            var reachable: Set<OID> = []
            var pending = state.records[.root] == nil ? [] : [OID.root]
            while let oid = pending.popLast() {
                guard reachable.insert(oid).inserted, let record = state.records[oid] else { continue }
                pending.append(contentsOf: record.referenceSet.filter { !reachable.contains($0) })
            }
            let garbage = state.records.keys.filter { !reachable.contains($0) }
            for oid in garbage { state.records[oid] = nil }
            state.invalidations.append(contentsOf: garbage.sorted())
        }
    }

    public func forEachRecord(_ body: (Record) throws -> Void) throws {
        let snapshot = try state.withLock { state throws(DurusError) in
            guard !state.closed else { throw .closed }
            return Array(state.records.values)
        }
        for record in snapshot { try body(record) }
    }

    public func close() throws {
        state.withLock { $0.closed = true }
    }
}
