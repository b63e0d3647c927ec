import Synchronization

/// Many clients over one storage, each with its own view: what the storage
/// server does for network clients, and ``Database`` for connections in a
/// process, with one and the same code.
///
/// Each session keeps the OIDs others committed (and the garbage the storage
/// collected) since it last synchronized. Loading one of them is a read
/// conflict; a commit hands them to the committing client first, is applied
/// exclusively, then adds its OIDs to every other session.
public final class SessionHub: Sendable {
    /// The storage all sessions share.
    public let storage: any Storage

    private struct State {
        var pending: [Int: Set<OID>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())
    /// Held for a whole commit exchange, so commits never interleave.
    private let exchange = Mutex(())

    public init(storage: any Storage) {
        self.storage = storage
    }

    /// A new session's view of the storage, as a ``Storage``.
    public func openSession() -> SessionStorage {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            state.pending[state.nextID] = []
            return state.nextID
        }
        return SessionStorage(hub: self, id: id)
    }

    /// The number of open sessions.
    public var sessionCount: Int { state.withLock { $0.pending.count } }

    func close(_ id: Int) {
        _ = state.withLock { $0.pending.removeValue(forKey: id) }
    }

    func checkFresh(_ id: Int, _ oids: [OID]) throws {
        let stale = state.withLock { state in oids.filter { state.pending[id]?.contains($0) == true } }
        if !stale.isEmpty { throw ConflictError(.read, oids: stale) }
    }

    /// Collects what the storage reports (garbage it collected) into every session.
    private func absorbStorageInvalidations() throws {
        let collected = try storage.sync()
        guard !collected.isEmpty else { return }
        state.withLock { state in
            for id in state.pending.keys { state.pending[id]?.formUnion(collected) }
        }
    }

    func sync(_ id: Int) throws -> [OID] {
        try absorbStorageInvalidations()
        return state.withLock { state in
            defer { state.pending[id] = [] }
            return Array(state.pending[id] ?? [])
        }
    }

    func commit(_ id: Int, _ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws {
        try exchange.withLock { _ in
            try absorbStorageInvalidations()
            let mine = state.withLock { state in
                defer { state.pending[id] = [] }
                return Array(state.pending[id] ?? [])
            }
            let oids = records.map(\.oid)
            // Others learn of these OIDs before the storage has them: a load
            // racing this commit then finds them pending afterwards (see
            // `SessionStorage.load`). If the commit fails, they only ghost
            // objects that did not change, which is harmless.
            var announced = false
            try storage.commit(records, handleInvalidations: { remote in
                // A remote storage (a server) reports others' commits here.
                self.addPending(remote, except: id)
                try handleInvalidations(mine + remote)
                self.addPending(oids, except: id)
                announced = true
            })
            if !announced { addPending(oids, except: id) }
            // The commit is applied: a failure to read the storage's
            // invalidations now must not make it look failed (the next sync
            // reads them).
            try? absorbStorageInvalidations()
        }
    }

    private func addPending(_ oids: [OID], except id: Int) {
        guard !oids.isEmpty else { return }
        state.withLock { state in
            for other in state.pending.keys where other != id { state.pending[other]?.formUnion(oids) }
        }
    }
}

/// One session of a ``SessionHub``: the storage as one client sees it.
public final class SessionStorage: Storage {
    let hub: SessionHub
    let id: Int

    init(hub: SessionHub, id: Int) {
        self.hub = hub
        self.id = id
    }

    deinit { hub.close(id) }

    /// Checked before and after the load: a commit announces its OIDs before
    /// it is applied, so a record that changed during the load is caught.
    public func load(_ oid: OID) throws -> Record {
        try hub.checkFresh(id, [oid])
        let record = try hub.storage.load(oid)
        try hub.checkFresh(id, [oid])
        return record
    }

    public func bulkLoad(_ oids: [OID]) throws -> [Record] {
        try hub.checkFresh(id, oids)
        let records = try hub.storage.bulkLoad(oids)
        try hub.checkFresh(id, oids)
        return records
    }

    public func newOID() throws -> OID { try hub.storage.newOID() }

    public func commit(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws {
        try hub.commit(id, records, handleInvalidations: handleInvalidations)
    }

    public func sync() throws -> [OID] { try hub.sync(id) }

    public func pack() throws { try hub.storage.pack() }

    public func forEachRecord(_ body: (Record) throws -> Void) throws { try hub.storage.forEachRecord(body) }

    /// Ends this session; the shared storage stays open.
    public func close() throws { hub.close(id) }
}
