/// A place records live: the seam between the object layer, the server and
/// every engine (``MemoryStorage``, the Berkeley DB store, Durus files, a
/// remote server).
///
/// A storage knows nothing of objects: a record is bytes plus the OIDs it
/// references. Implementations are safe to call from many threads at once;
/// commits are applied one at a time and atomically.
///
/// ```swift
/// let storage = MemoryStorage()
/// let root = try storage.newOID()                       // OID 0
/// let child = try storage.newOID()
/// try storage.commit([
///     Record(oid: root, data: Array("root".utf8), references: [child]),
///     Record(oid: child, data: Array("child".utf8), references: []),
/// ])
/// let record = try storage.load(child)
/// ```
public protocol Storage: AnyObject, Sendable, MigrationSource {
    /// The current record of `oid`.
    /// - Throws: ``DurusError/keyNotFound(_:)`` when nothing is stored under
    ///   it (never stored, or collected); a ``ConflictError`` of kind `read`
    ///   from a storage that checks read consistency (a remote server).
    func load(_ oid: OID) throws -> Record

    /// The current records of `oids`, in order. Engines that can read many
    /// records at once do so; the default loads them one by one.
    func bulkLoad(_ oids: [OID]) throws -> [Record]

    /// A fresh OID, never handed out before by this storage and never to be
    /// handed out again, even after a crash. The first one is the root, 0.
    func newOID() throws -> OID

    /// `count` fresh OIDs, as ``newOID()`` hands them out. Engines hand them
    /// out together, consecutive where they can; the default calls
    /// ``newOID()`` `count` times.
    func newOIDs(count: Int) throws -> [OID]

    /// Applies `records` as one atomic transaction.
    ///
    /// `handleInvalidations` is called first with the OIDs that other clients
    /// committed since this client last synchronized (a remote server sends
    /// them at this point); it may throw to abandon the commit with nothing
    /// written. Local storages call it with no OIDs.
    ///
    /// - Throws: ``DurusError/oidNotAllocated(_:)`` for a record whose OID was
    ///   never handed out; a ``ConflictError`` of kind `write` when a record
    ///   references an OID that no longer exists and is not in `records`.
    ///   Nothing is written when it throws, except with
    ///   ``DurusError/commitNotDurable(reason:)``: written, and visible, but
    ///   not confirmed on the disk (a ``SessionStorage`` over a storage whose
    ///   flush failed).
    func commit(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws

    /// Commits as ``commit(_:handleInvalidations:)`` does, except that a
    /// storage whose commits wait for the disk may return as soon as the
    /// commit is applied (and visible to loads), before it is on the disk,
    /// handing back that wait. Call it after releasing whatever serializes
    /// your commits, and report the commit only once it returns: waits that
    /// overlap share one disk flush (group commit), so commits from several
    /// clients are not one flush each. `nil`: nothing is left to wait for.
    /// The default commits in full and returns `nil`.
    ///
    /// Until the wait returns, a crash may lose the commit, although others
    /// could already read it. An implementation must make every later
    /// commit durable only with this one (Berkeley DB's log is written in
    /// order), so a commit reported durable never depends on a lost one.
    /// A wait that throws leaves the commit applied but of unknown fate, as
    /// a crash would: tell its client so, not that nothing was stored.
    func commitAwaitingFlush(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws
        -> PendingFlush?

    /// The OIDs whose cached copies must be dropped: objects others committed
    /// since the last call, and objects collected as garbage.
    func sync() throws -> [OID]

    /// Removes every object not reachable from the root.
    func pack() throws

    /// Calls `body` with every stored record, in no particular order. Costs
    /// O(objects stored). Commits made while it runs may or may not be seen.
    func forEachRecord(_ body: (Record) throws -> Void) throws

    /// Releases the storage. Later calls throw ``DurusError/closed``.
    func close() throws

    /// Called by a ``SessionHub`` when a commit exchange is granted, before
    /// it reads ``sync()`` and hands the committing session its
    /// invalidations: a storage whose commits are made elsewhere (a
    /// replica forwarding to its master) takes the remote exchange here and
    /// catches up, so those invalidations are complete. Either
    /// ``commit(_:handleInvalidations:)`` or ``abandonCommitExchange()``
    /// follows. The default does nothing.
    func prepareCommitExchange() throws

    /// Ends an exchange ``prepareCommitExchange()`` began, with nothing
    /// committed. The default does nothing.
    func abandonCommitExchange()

    /// Whether a load may return a record whose invalidation ``sync()`` has
    /// yet to report (a replica, where commits arrive by replication): a
    /// ``SessionHub`` then reads ``sync()`` after each load, before it
    /// checks the record is fresh for the session. The default is false.
    var reportsInvalidationsAfterLoads: Bool { get }

    /// Whether a ``SessionHub`` may hand the commit exchange to the next
    /// session before this storage has applied the commit just received
    /// (the hub still applies commits one at a time, in the order their
    /// exchanges ended): true for a storage that commits locally and
    /// needs nothing of the exchange while it applies. The default is false.
    var appliesCommitsAfterTheExchange: Bool { get }
    /// Applies `batch`, commits in the order given, each atomic and each
    /// standing or falling alone, as a ``SessionHub`` lands the commits that
    /// were waiting behind one another (see ``appliesCommitsAfterTheExchange``).
    /// Each outcome is what ``commitAwaitingFlush(_:handleInvalidations:)``
    /// would return for it. An engine may make them one transaction, so
    /// that one log write, flush or wait for replicas serves them all. The
    /// default commits them one at a time.
    func commitAwaitingFlush(batch: [[Record]]) -> [Result<PendingFlush?, any Error>]
    /// Counts the times this storage lost track of what others committed: a
    /// `ClientStorage` of several addresses that moved to another server of a
    /// replication group cannot know what was committed while it moved.
    /// When it changes, a ``Connection`` treats every object it holds as
    /// changed by others (the transaction in progress conflicts; cached
    /// objects load again). The default is always 0.
    var sessionGeneration: Int { get }
}

/// A storage's wait for the disk after a commit it applied (see
/// ``Storage/commitAwaitingFlush(_:handleInvalidations:)``): it returns once
/// the commit is durable, and throws when that cannot be confirmed, leaving
/// the commit applied but in doubt.
public typealias PendingFlush = @Sendable () throws -> Void

extension Storage {
    public func prepareCommitExchange() throws {}

    public var reportsInvalidationsAfterLoads: Bool { false }

    public var appliesCommitsAfterTheExchange: Bool { false }
    public var sessionGeneration: Int { 0 }
    public func commitAwaitingFlush(batch: [[Record]]) -> [Result<PendingFlush?, any Error>] {
        batch.map { records in Result { try commitAwaitingFlush(records, handleInvalidations: { _ in }) } }
    }

    public func abandonCommitExchange() {}

    public func commitAwaitingFlush(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws
        -> PendingFlush? {
        try commit(records, handleInvalidations: handleInvalidations)
        return nil
    }

    public func bulkLoad(_ oids: [OID]) throws -> [Record] {
        try oids.map { try load($0) }
    }

    /// Commits `records` atomically; see ``Storage/commit(_:handleInvalidations:)``.
    public func commit(_ records: [Record]) throws {
        try commit(records, handleInvalidations: { _ in })
    }

    public func newOIDs(count: Int) throws -> [OID] {
        try (0 ..< count).map { _ in try newOID() }
    }
}
