import Synchronization

/// Many clients over one storage, each with its own view: what the storage
/// server does for network clients, and ``Database`` for connections in a
/// process, with one and the same code.
///
/// Each session keeps the OIDs others committed (and the garbage the storage
/// collected) since it last synchronized. Loading one of them is a read
/// conflict; a commit hands them to the committing client first, is applied
/// exclusively, then adds its OIDs to every other session. OIDs a session
/// obtains from ``SessionStorage/newOID()`` are reserved for it until it
/// commits them: another session storing one is refused.
///
/// Commits are applied one at a time, in the order their exchanges ended.
/// With a storage that ``Storage/appliesCommitsAfterTheExchange``, a
/// server's commit ends its exchange as soon as its records are received:
/// the next session's exchange begins while they are applied, and its
/// invalidations include them.
///
/// ```swift
/// let hub = SessionHub(storage: MemoryStorage())
/// let alice = hub.openSession(), bob = hub.openSession()
/// let oid = try alice.newOID()
/// try alice.commit([Record(oid: oid, data: [1], references: [])])
/// try bob.sync()        // [oid]: bob drops any cached copy
/// ```
public final class SessionHub: Sendable {
    /// The storage all sessions share.
    public let storage: any Storage

    /// A class, so that looking one up under the lock (twice for every
    /// load) copies no sets. Only touched with `state` locked.
    private final class Session {
        var pending: Set<OID> = []
        var limit: Int?
        let onDrop: (@Sendable (String) -> Void)?
        var dropped: String?
        /// The hub's count of landed commits when the session last took its
        /// pending invalidations: every commit counted there is in its view.
        var commitsSeen = 0

        init(limit: Int?, onDrop: (@Sendable (String) -> Void)?) {
            self.limit = limit
            self.onDrop = onDrop
        }

        /// Adds what another session committed; the reason it is dropped
        /// when that takes it over its limit.
        func add(_ oids: [OID]) -> String? {
            guard dropped == nil else { return nil }
            pending.formUnion(oids)
            guard let limit, pending.count > limit else { return nil }
            let reason = "\(pending.count) invalidations pending, over the limit of \(limit): the client does not synchronize"
            dropped = reason
            pending = []
            return reason
        }
    }

    /// A commit announced and not applied yet: its OIDs are stale for every
    /// other session until it is applied and they are pending.
    private struct InFlight {
        let token: Int
        let session: Int
        let oids: Set<OID>
        /// Sessions whose commit exchange already handed them these OIDs.
        var told: Set<Int> = []
    }

    private struct State {
        var sessions: [Int: Session] = [:]
        var reservations = OIDReservations()
        var nextID = 0
        var inFlight: [InFlight] = []
        var nextToken = 0

        func isInFlight(_ oid: OID, forOthersThan id: Int) -> Bool {
            inFlight.contains { $0.session != id && $0.oids.contains(oid) }
        }
    }

    private let state = Mutex(State())
    /// Held for a whole commit exchange, so commits never interleave.
    private let exchange = ExchangeQueue()
    /// Held while a commit is applied, and taken in exchange order: commits
    /// land one at a time, in the order they were announced.
    private let applies = ExchangeQueue()
    /// The number of commits that stood (applied by the storage).
    private let landed = Atomic<Int>(0)

    /// A commit whose exchange ended before it was applied, waiting in
    /// ``applies``; its outcome once a batch applied it.
    private struct Waiting {
        let id: Int
        let records: [Record]
        let oids: [OID]
        var outcome: Result<PendingFlush?, any Error>?
    }

    /// Commits waiting to land after their exchange, by token.
    private let waiting = Mutex<[Int: Waiting]>([:])

    public init(storage: any Storage) {
        self.storage = storage
    }

    /// A new session's view of the storage, as a ``Storage``.
    ///
    /// - Parameters:
    ///   - invalidationLimit: the most OIDs the session may have pending
    ///     before it is dropped (a client that never synchronizes would
    ///     otherwise grow without bound); `nil` for no limit.
    ///   - onDrop: called once, with the reason, when the session is dropped.
    public func openSession(invalidationLimit: Int? = nil,
                            onDrop: (@Sendable (String) -> Void)? = nil) -> SessionStorage {
        // Commits a replica applied before this session began are not news
        // to it: they go to the sessions already open (the next sync reads them).
        if storage.reportsInvalidationsAfterLoads { try? absorbStorageInvalidations() }
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            state.sessions[state.nextID] = Session(limit: invalidationLimit, onDrop: onDrop)
            return state.nextID
        }
        return SessionStorage(hub: self, id: id)
    }

    /// The number of open sessions.
    public var sessionCount: Int { state.withLock { $0.sessions.count } }

    /// The number of commits applied through this hub since it was made: a
    /// count that only grows, to tell whether any commit landed between two
    /// moments.
    public var commitsLanded: Int { landed.load(ordering: .acquiring) }

    /// Blocks until the commit exchange is free: a commit being applied now
    /// has landed (or failed) when this returns. Returns at once when the
    /// calling thread holds the exchange itself (see ``exclusively(_:)``).
    public func waitForCommitInFlight() {
        guard !exchange.isHeldByCurrentThread else { return }
        exchange.acquire()
        exchange.release()
        waitForAnnouncedCommits()
    }

    /// Blocks until every commit whose exchange has ended has been applied
    /// (see ``Storage/appliesCommitsAfterTheExchange``). The server calls it
    /// before its event loops, which apply them, stop.
    package func waitForAnnouncedCommits() {
        applies.acquire()
        applies.release()
    }

    /// Runs `body` holding the commit exchange: no session's commit lands
    /// meanwhile, except the commits `body` itself makes on this thread
    /// (those go through without waiting). A transaction that keeps losing
    /// to others runs so to be sure of its turn.
    public func exclusively<T>(_ body: () throws -> T) rethrows -> T {
        if exchange.isHeldByCurrentThread { return try body() }
        exchange.acquire()
        waitForAnnouncedCommits()
        exchange.markHeldByCurrentThread(true)
        defer {
            exchange.markHeldByCurrentThread(false)
            exchange.release()
        }
        return try body()
    }

    /// Sets the most OIDs session `id` may have pending before it is dropped;
    /// false when it already was dropped (or closed).
    func setInvalidationLimit(_ id: Int, _ limit: Int?) -> Bool {
        state.withLock { state in
            guard let session = state.sessions[id], session.dropped == nil else { return false }
            state.sessions[id]!.limit = limit
            return true
        }
    }

    /// The number of OIDs session `id` has pending (for tests).
    func pendingCount(_ id: Int) -> Int { state.withLock { $0.sessions[id]?.pending.count ?? 0 } }

    func close(_ id: Int) {
        state.withLock { state in
            guard state.sessions.removeValue(forKey: id) != nil else { return }
            state.reservations.releaseAll(of: id)
        }
    }

    private func live(_ state: inout State, _ id: Int) throws(DurusError) -> Session {
        guard let session = state.sessions[id] else { throw .sessionDropped("the session is closed") }
        if let reason = session.dropped { throw .sessionDropped(reason) }
        return session
    }

    func checkFresh(_ id: Int, _ oid: OID) throws {
        let stale = try state.withLock { state throws(DurusError) in
            let session = try live(&state, id)
            return (!session.pending.isEmpty && session.pending.contains(oid))
                || (!state.inFlight.isEmpty && state.isInFlight(oid, forOthersThan: id))
        }
        if stale { throw ConflictError(.read, oids: [oid]) }
    }

    func checkFresh(_ id: Int, _ oids: [OID]) throws {
        let stale = try state.withLock { state throws(DurusError) in
            let session = try live(&state, id)
            return oids.filter { session.pending.contains($0) || state.isInFlight($0, forOthersThan: id) }
        }
        if !stale.isEmpty { throw ConflictError(.read, oids: stale) }
    }

    func reserveOID(_ id: Int) throws -> OID {
        try reserveOIDs(id, count: 1)[0]
    }

    /// `count` fresh OIDs reserved for session `id`, under one lock.
    func reserveOIDs(_ id: Int, count: Int) throws -> [OID] {
        let oids = try storage.newOIDs(count: count)
        try state.withLock { state throws(DurusError) in
            _ = try live(&state, id)
            for oid in oids { state.reservations.reserve(oid, for: id) }
        }
        return oids
    }

    /// How many commits had landed when session `id` last synchronized.
    func commitsSeen(_ id: Int) -> Int { state.withLock { $0.sessions[id]?.commitsSeen ?? 0 } }

    /// The number of runs of reserved OIDs all sessions hold (for tests).
    var reservedRunCount: Int { state.withLock { $0.reservations.runCount } }

    /// Collects what the storage reports (garbage it collected) into every session.
    func absorbStorageInvalidations() throws {
        let collected = try storage.sync()
        addPending(collected, except: nil)
    }

    private func restorePending(_ id: Int, _ oids: [OID]) {
        guard !oids.isEmpty else { return }
        state.withLock { state in state.sessions[id]?.pending.formUnion(oids) }
    }

    /// Session `id`'s pending OIDs, cleared. For a commit exchange
    /// (`withInFlight`), also those of commits announced and not applied
    /// yet: the session commits after them, so it must hear of them now
    /// (and is not told again when they land).
    private func takePending(_ id: Int, withInFlight: Bool = false) throws -> [OID] {
        try state.withLock { state throws(DurusError) in
            let session = try live(&state, id)
            // Read under the lock addPending takes, and a commit is counted
            // only after its OIDs are pending: what is counted is seen.
            session.commitsSeen = landed.load(ordering: .acquiring)
            defer { session.pending = [] }
            guard withInFlight, !state.inFlight.isEmpty else { return Array(session.pending) }
            var oids = session.pending
            for index in state.inFlight.indices where state.inFlight[index].session != id {
                oids.formUnion(state.inFlight[index].oids)
                state.inFlight[index].told.insert(id)
            }
            return Array(oids)
        }
    }

    func sync(_ id: Int) throws -> [OID] {
        try absorbStorageInvalidations()
        return try takePending(id)
    }

    /// An in-process commit, durable (as the storage makes it) when it
    /// returns. It is applied with the exchange held and waits for the disk
    /// after releasing it (group commit): the next session's commit is
    /// applied meanwhile, and waits that overlap share one write and fsync.
    /// A commit applied whose wait then fails throws
    /// ``DurusError/commitNotDurable(reason:)``: stored, and in doubt only
    /// against a crash, where any other failure means nothing was stored.
    func commit(_ id: Int, _ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws {
        let flush: PendingFlush?
        do {
            // Inside `exclusively`, this thread holds the exchange already.
            let nested = exchange.isHeldByCurrentThread
            if !nested { exchange.acquire() }
            defer { if !nested { exchange.release() } }
            // Commits announced before this exchange land first.
            applies.acquire()
            defer { applies.release() }
            try storage.prepareCommitExchange()
            let mine: [OID]
            do {
                try absorbStorageInvalidations()
                mine = try takePending(id)
            } catch {
                storage.abandonCommitExchange()
                throw error
            }
            do {
                try checkReservations(id, records)
            } catch {
                // Refused before the connection heard of these: kept for its next sync.
                restorePending(id, mine)
                storage.abandonCommitExchange()
                throw error
            }
            // Heard before the commit is in flight: a commit the connection
            // turns down never makes others' loads conflict.
            do {
                try handleInvalidations(mine)
            } catch {
                storage.abandonCommitExchange()
                throw error
            }
            flush = try apply(id, records, awaitingFlush: true, reservationsChecked: true) { remote in
                if !remote.isEmpty { try handleInvalidations(remote) }
            }
        }
        try flush?()
    }

    /// Starts a commit exchange for a client that sends its records later
    /// (the server, between sending `C`'s answer and reading the data).
    func beginExchange(_ id: Int, granted: @escaping @Sendable (Result<CommitExchange, any Error>) -> Void) {
        exchange.acquire { [self] in
            do {
                try storage.prepareCommitExchange()
            } catch {
                exchange.release()
                granted(.failure(error))
                return
            }
            do {
                try absorbStorageInvalidations()
                granted(.success(CommitExchange(hub: self, id: id, invalidations: try takePending(id, withInFlight: true))))
            } catch {
                storage.abandonCommitExchange()
                exchange.release()
                granted(.failure(error))
            }
        }
    }

    func endExchange() { exchange.release() }

    /// Ends an exchange with nothing committed: the storage hears of it first.
    func abandonExchange() {
        storage.abandonCommitExchange()
        exchange.release()
    }

    /// Applies `records` for session `id`, the exchange held: checks that no
    /// record takes an OID reserved by another session, commits, and tells
    /// every other session.
    @discardableResult
    func apply(_ id: Int, _ records: [Record], awaitingFlush: Bool = false, reservationsChecked: Bool = false,
               handleInvalidations: ([OID]) throws -> Void) throws -> PendingFlush? {
        let oids = records.map(\.oid)
        let token = try announce(id, oids, reservationsChecked: reservationsChecked)
        return try land(token, id, records, oids, awaitingFlush: awaitingFlush, handleInvalidations: handleInvalidations)
    }

    /// For a server's commit exchange: announces `records` (the exchange
    /// held), ends the exchange, and hands `apply` the function that applies
    /// them once every commit announced before has landed (see
    /// ``CommitExchange/commitAfterExchange(_:apply:)``).
    func commitAfterExchange(
        _ id: Int, _ records: [Record],
        apply: @escaping @Sendable (@escaping @Sendable () -> Result<PendingFlush?, any Error>) -> Void
    ) {
        let oids = records.map(\.oid)
        let token: Int
        do {
            token = try announce(id, oids, reservationsChecked: false)
        } catch {
            endExchange()
            apply { .failure(error) }
            return
        }
        waiting.withLock { $0[token] = Waiting(id: id, records: records, oids: oids) }
        let land: @Sendable () -> Result<PendingFlush?, any Error> = { [self] in
            defer { applies.release() }
            return landWaiting(token)
        }
        let now = applies.acquireOrEnqueue { apply(land) }
        // The next session's exchange begins now; its invalidations hold these OIDs.
        endExchange()
        if now { apply(land) }
    }

    /// With ``applies`` held: the outcome of waiting commit `token`. A batch
    /// that went before may have applied it; otherwise it lands now,
    /// together with every commit waiting behind it, in order, in one
    /// storage batch (``Storage/commitAwaitingFlush(batch:)``): the commits
    /// still land in exchange order, and the others find their outcome here
    /// when their turn comes.
    private func landWaiting(_ token: Int) -> Result<PendingFlush?, any Error> {
        enum Turn { case landed(Result<PendingFlush?, any Error>), batch([(token: Int, commit: Waiting)]) }
        let turn: Turn = waiting.withLock { waiting in
            if let outcome = waiting[token]?.outcome {
                waiting[token] = nil
                return .landed(outcome)
            }
            return .batch(waiting.filter { $0.key >= token && $0.value.outcome == nil }
                .sorted { $0.key < $1.key }.map { (token: $0.key, commit: $0.value) })
        }
        guard case .batch(let batch) = turn else {
            if case .landed(let outcome) = turn { return outcome }
            return .failure(DurusError.closed)
        }
        let outcomes = storage.commitAwaitingFlush(batch: batch.map(\.commit.records))
        var results: [Result<PendingFlush?, any Error>] = []
        for ((token, commit), outcome) in zip(batch, outcomes) {
            results.append(Result { try bookkeep(token, commit.id, commit.oids, outcome) })
        }
        // The commit is applied: a failure to read the storage's
        // invalidations now must not make it look failed.
        try? absorbStorageInvalidations()
        waiting.withLock { waiting in
            for ((other, _), result) in zip(batch, results) where other != token { waiting[other]?.outcome = result }
            waiting[token] = nil
        }
        return results[0]
    }

    /// What ``land`` does after the storage's commit, for a commit a batch
    /// applied: a commit that stands is told to every other session not told
    /// already, counted, and its reservations released; in flight no more either way.
    private func bookkeep(_ token: Int, _ id: Int, _ oids: [OID], _ outcome: Result<PendingFlush?, any Error>) throws
        -> PendingFlush? {
        defer { state.withLock { $0.inFlight.removeAll { $0.token == token } } }
        var inDoubt: DurusError?
        let flush: PendingFlush?
        switch outcome {
        case .success(let wait):
            flush = wait.map(Self.inDoubtOnFailure)
        case .failure(DurusError.commitNotDurable(let reason)):
            flush = nil
            inDoubt = .commitNotDurable(reason: reason)
        case .failure(let error):
            throw error
        }
        addPending(oids, except: id, toldBy: token)
        landed.add(1, ordering: .releasing)
        state.withLock { state in
            for oid in oids { state.reservations.release(oid, by: id) }
        }
        if let inDoubt { throw inDoubt }
        return flush
    }

    /// Marks `oids` in flight for session `id`'s commit; a token for ``land``.
    ///
    /// While the records are written, loading one of them is a read
    /// conflict for every other session (whatever it synchronized), and
    /// once they are written the OIDs are pending for all: so a load that
    /// could see a new record never passes for fresh.
    private func announce(_ id: Int, _ oids: [OID], reservationsChecked: Bool) throws -> Int {
        try state.withLock { state throws(DurusError) in
            _ = try live(&state, id)
            if !reservationsChecked { try Self.checkReservations(id, oids.lazy, in: state) }
            defer { state.nextToken += 1 }
            state.inFlight.append(InFlight(token: state.nextToken, session: id, oids: Set(oids)))
            return state.nextToken
        }
    }

    /// Applies an announced commit (``applies`` held) and tells every other
    /// session not told already.
    private func land(_ token: Int, _ id: Int, _ records: [Record], _ oids: [OID], awaitingFlush: Bool,
                      handleInvalidations: ([OID]) throws -> Void) throws -> PendingFlush? {
        defer { state.withLock { $0.inFlight.removeAll { $0.token == token } } }
        let reportRemote = { (remote: [OID]) throws in
            // A remote storage (a server) reports others' commits here.
            self.addPending(remote, except: id)
            try handleInvalidations(remote)
        }
        var flush: PendingFlush?
        // A storage that is itself a session of a hub may report a commit
        // that stands but is not known durable: told to the others all the same.
        var inDoubt: DurusError?
        do {
            if awaitingFlush {
                flush = try storage.commitAwaitingFlush(records, handleInvalidations: reportRemote).map(Self.inDoubtOnFailure)
            } else {
                try storage.commit(records, handleInvalidations: reportRemote)
            }
        } catch DurusError.commitNotDurable(let reason) {
            inDoubt = .commitNotDurable(reason: reason)
        }
        addPending(oids, except: id, toldBy: token)
        // Counted once every other session has its OIDs pending (see `commitsSeen`).
        landed.add(1, ordering: .releasing)
        state.withLock { state in
            for oid in oids { state.reservations.release(oid, by: id) }
        }
        // The commit is applied: a failure to read the storage's
        // invalidations now must not make it look failed (the next sync
        // reads them).
        try? absorbStorageInvalidations()
        if let inDoubt { throw inDoubt }
        return flush
    }

    /// Throws ``DurusError/oidReserved(_:)`` when a record takes an OID
    /// another session reserved (or ``DurusError/sessionDropped(_:)``).
    /// Checked with the exchange held, it holds until the commit: no
    /// session can reserve an OID that is already in use.
    private func checkReservations(_ id: Int, _ records: [Record]) throws {
        try state.withLock { state throws(DurusError) in
            _ = try live(&state, id)
            try Self.checkReservations(id, records.lazy.map(\.oid), in: state)
        }
    }

    private static func checkReservations(_ id: Int, _ oids: some Sequence<OID>, in state: State) throws(DurusError) {
        for oid in oids {
            if let owner = state.reservations.owner(of: oid), owner != id { throw .oidReserved(oid) }
        }
    }

    /// A storage's wait for the disk after a commit it applied: failing, it
    /// leaves the commit in doubt, not undone.
    private static func inDoubtOnFailure(_ wait: @escaping PendingFlush) -> PendingFlush {
        {
            do {
                try wait()
            } catch DurusError.commitNotDurable(let reason) {
                throw DurusError.commitNotDurable(reason: reason)
            } catch {
                throw DurusError.commitNotDurable(reason: "\(error)")
            }
        }
    }

    /// Adds `oids` to every session's pending OIDs but `id`'s and those the
    /// in-flight commit `token` names as told.
    private func addPending(_ oids: [OID], except id: Int?, toldBy token: Int? = nil) {
        guard !oids.isEmpty else { return }
        let drops = state.withLock { state in
            var drops: [(@Sendable (String) -> Void, String)] = []
            let told = token.flatMap { token in state.inFlight.first { $0.token == token }?.told } ?? []
            for other in state.sessions.keys where other != id && !told.contains(other) {
                if let reason = state.sessions[other]!.add(oids), let onDrop = state.sessions[other]!.onDrop {
                    drops.append((onDrop, reason))
                }
            }
            return drops
        }
        for (onDrop, reason) in drops { onDrop(reason) }
    }
}
