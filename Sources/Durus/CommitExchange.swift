import Synchronization

/// A commit exchange in progress: the session holds the hub's commit slot
/// until it commits or abandons. Either ends it; a second call does nothing.
package final class CommitExchange: Sendable {
    let hub: SessionHub
    let id: Int
    /// What others committed since the session last synchronized, handed over
    /// (and cleared) when the exchange began.
    package let invalidations: [OID]
    private let open = Atomic(true)

    init(hub: SessionHub, id: Int, invalidations: [OID]) {
        self.hub = hub
        self.id = id
        self.invalidations = invalidations
    }

    deinit { abandon() }

    /// Applies `records` atomically and ends the exchange.
    ///
    /// - Throws: ``DurusError/oidReserved(_:)`` for a record under an OID
    ///   another session reserved; whatever the storage throws (a
    ///   ``ConflictError``, ``DurusError/oidNotAllocated(_:)``, …). Nothing
    ///   is written when it throws; the exchange is ended either way.
    package func commit(_ records: [Record]) throws {
        try end(committing: records, awaitingFlush: false)
    }

    /// Applies `records` atomically and ends the exchange, like ``commit(_:)``,
    /// but leaves the wait for the disk to the caller, to be made after the
    /// exchange is free for the next session
    /// (see ``Storage/commitAwaitingFlush(_:handleInvalidations:)``): the
    /// server reports the commit to its client only once that wait returns.
    /// A wait that fails throws ``DurusError/commitNotDurable(reason:)``:
    /// the commit stands, but is not known to be on the disk.
    package func commitAwaitingFlush(_ records: [Record]) throws -> PendingFlush? {
        try end(committing: records, awaitingFlush: true)
    }

    /// Ends the exchange with `records` committed, applying them after the
    /// exchange when the storage allows (``Storage/appliesCommitsAfterTheExchange``):
    /// the next session's exchange then begins while they are applied.
    ///
    /// `apply` is called once the records' turn has come: at once (on this
    /// thread, the exchange already ended) when no commit before them is
    /// still being applied, else on the thread that applied the one before.
    /// It gets the function that applies them and returns the outcome (what
    /// ``commitAwaitingFlush(_:)`` returns or throws), which it must run, on
    /// a thread of its choosing: the commits after wait for it.
    package func commitAfterExchange(
        _ records: [Record],
        apply: @escaping @Sendable (@escaping @Sendable () -> Result<PendingFlush?, any Error>) -> Void
    ) {
        guard hub.storage.appliesCommitsAfterTheExchange else {
            let outcome = Result { try end(committing: records, awaitingFlush: true) }
            apply { outcome }
            return
        }
        guard open.exchange(false, ordering: .acquiringAndReleasing) else {
            apply { .failure(DurusError.closed) }
            return
        }
        hub.commitAfterExchange(id, records, apply: apply)
    }

    @discardableResult
    private func end(committing records: [Record], awaitingFlush: Bool) throws -> PendingFlush? {
        guard open.exchange(false, ordering: .acquiringAndReleasing) else { throw DurusError.closed }
        defer { hub.endExchange() }
        let oids = Set(records.map(\.oid))
        return try hub.apply(id, records, awaitingFlush: awaitingFlush) { remote in
            if let clash = remote.first(where: oids.contains) { throw ConflictError(.write, oids: [clash]) }
        }
    }

    /// Ends the exchange with nothing committed.
    package func abandon() {
        if open.exchange(false, ordering: .acquiringAndReleasing) { hub.abandonExchange() }
    }
}
