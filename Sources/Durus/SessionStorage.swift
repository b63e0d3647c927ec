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
        try hub.checkFresh(id, oid)
        let record = try hub.storage.load(oid)
        if hub.storage.reportsInvalidationsAfterLoads { try hub.absorbStorageInvalidations() }
        try hub.checkFresh(id, oid)
        return record
    }

    public func bulkLoad(_ oids: [OID]) throws -> [Record] {
        try hub.checkFresh(id, oids)
        let records = try hub.storage.bulkLoad(oids)
        if hub.storage.reportsInvalidationsAfterLoads { try hub.absorbStorageInvalidations() }
        try hub.checkFresh(id, oids)
        return records
    }

    /// Loads `oid` as a server answers it: a missing or stale object is an
    /// answer, not an error.
    /// - Throws: errors of the storage itself (closed, damaged), or
    ///   ``DurusError/sessionDropped(_:)``.
    package func answer(_ oid: OID) throws -> LoadAnswer {
        do {
            return .record(try load(oid))
        } catch DurusError.keyNotFound {
            return .notFound
        } catch let conflict as ConflictError where conflict.kind == .read {
            return .invalid
        }
    }

    /// A fresh OID, reserved for this session until it commits a record under it.
    public func newOID() throws -> OID { try hub.reserveOID(id) }

    /// `count` fresh OIDs, reserved for this session as ``newOID()`` reserves one.
    public func newOIDs(count: Int) throws -> [OID] { try hub.reserveOIDs(id, count: count) }

    /// Commits through the hub (see ``Storage/commit(_:handleInvalidations:)``);
    /// with a storage that waits for the disk, the wait comes after the
    /// exchange is released, and a wait that fails throws
    /// ``DurusError/commitNotDurable(reason:)`` for a commit that stands.
    public func commit(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws {
        try hub.commit(id, records, handleInvalidations: handleInvalidations)
    }

    /// Waits (without blocking the caller) for the exclusive commit exchange;
    /// `granted` gets it, with this session's pending invalidations, on
    /// whatever thread released it. The holder must end it with
    /// ``CommitExchange/commit(_:)`` or ``CommitExchange/abandon()``.
    package func beginExchange(_ granted: @escaping @Sendable (Result<CommitExchange, any Error>) -> Void) {
        hub.beginExchange(id, granted: granted)
    }

    public func sync() throws -> [OID] { try hub.sync(id) }

    /// The hub's ``SessionHub/commitsLanded`` as of this session's last
    /// synchronization (a sync, a commit, or the start of a commit
    /// exchange): the session's view holds every commit counted there.
    public var commitsSeen: Int { hub.commitsSeen(id) }

    /// The shared storage's: a session loses what the storage lost.
    public var sessionGeneration: Int { hub.storage.sessionGeneration }

    public func pack() throws { try hub.storage.pack() }

    public func forEachRecord(_ body: (Record) throws -> Void) throws { try hub.storage.forEachRecord(body) }

    /// Ends this session; the shared storage stays open.
    public func close() throws { hub.close(id) }

    /// Caps what may pend while the session's connection is parked in
    /// ``Database``'s pool (beyond `limit` it is dropped, and the pool opens
    /// a fresh one instead); false when it was already dropped.
    func park(limit: Int) -> Bool { hub.setInvalidationLimit(id, limit) }

    /// Lifts the cap of ``park(limit:)`` for a connection taken from the
    /// pool; false when the session was dropped while parked.
    func unpark() -> Bool { hub.setInvalidationLimit(id, nil) }
}
