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

    /// Ends the exchange with `records` committed, applying them after the
    /// exchange when the storage allows (``Storage/appliesCommitsAfterTheExchange``):
    /// the next session's exchange then begins while they are applied.
    ///
    /// `apply` is called once the records' turn has come: at once (on this
    /// thread, the exchange already ended) when no commit before them is
    /// still being applied, else on the thread that applied the one before.
    /// It gets the function that applies them and returns the outcome, which
    /// it must run, on a thread of its choosing: the commits after wait for
    /// it. The outcome is the storage's wait for the disk, if it left one
    /// (see ``Storage/commitAwaitingFlush(_:handleInvalidations:)``: the
    /// server answers only once that wait returns; a wait that fails throws
    /// ``DurusError/commitNotDurable(reason:)``, the commit standing), or the
    /// error that refused the commit: ``DurusError/oidReserved(_:)`` for a
    /// record under an OID another session reserved, or whatever the storage
    /// throws (a ``ConflictError``, …), nothing being written then.
    package func commitAfterExchange(
        _ records: [Record],
        apply: @escaping @Sendable (@escaping @Sendable () -> Result<PendingFlush?, any Error>) -> Void
    ) {
        guard hub.storage.appliesCommitsAfterTheExchange else {
            let outcome = Result { try applyInExchange(records) }
            apply { outcome }
            return
        }
        guard open.exchange(false, ordering: .acquiringAndReleasing) else {
            apply { .failure(DurusError.closed) }
            return
        }
        hub.commitAfterExchange(id, records, apply: apply)
    }

    /// Applies `records` with the exchange held, then ends it (a storage
    /// whose commits are made elsewhere, such as a replica's).
    private func applyInExchange(_ records: [Record]) throws -> PendingFlush? {
        guard open.exchange(false, ordering: .acquiringAndReleasing) else { throw DurusError.closed }
        defer { hub.endExchange() }
        let oids = Set(records.map(\.oid))
        return try hub.apply(id, records, awaitingFlush: true) { remote in
            if let clash = remote.first(where: oids.contains) { throw ConflictError(.write, oids: [clash]) }
        }
    }

    /// Ends the exchange with nothing committed.
    package func abandon() {
        if open.exchange(false, ordering: .acquiringAndReleasing) { hub.abandonExchange() }
    }
}
