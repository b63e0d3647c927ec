import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One store, shared by any number of ``Connection``s, each with the
/// isolation a client of a Durus server has.
///
/// ```swift
/// let database = try Database(storage: BerkeleyDBStorage(path: "bank.db"), root: Bank.self,
///                             types: [Account.self])
/// let count = try database.transaction { connection in
///     let bank = try connection.root(Bank.self)
///     bank.accounts["alice"] = Account(owner: "alice")
///     return bank.accounts.count
/// }
/// ```
public final class Database: Sendable {
    /// Settings shared by the database's connections.
    public struct Configuration: Sendable {
        /// The number of objects each connection keeps loaded between transactions.
        public var cacheSize: Int
        /// Compresses states with zlib when that pays. A state is stored
        /// compressed when that makes it smaller; a type whose state shrank
        /// by less than an eighth (random or already compressed bytes) is
        /// tried again only after its next 15 states are written plain,
        /// sparing a deflate pass that gains nothing. Reading accepts both,
        /// whatever this says.
        public var compression: Bool
        /// States smaller than this many bytes are written plain, even with
        /// ``compression`` on: a small state saves a few hundred bytes at
        /// most. 0 compresses every state that shrinks (Durus compresses
        /// every state).
        public var minimumCompressedSize: Int

        public init(cacheSize: Int = 100_000, compression: Bool = true, minimumCompressedSize: Int = 1024) {
            self.cacheSize = cacheSize
            self.compression = compression
            self.minimumCompressedSize = minimumCompressedSize
        }
    }

    /// The sessions over the storage.
    public let hub: SessionHub
    public let configuration: Configuration
    private let idle = Mutex<[IdleConnection]>([])
    /// False once ``close()`` began; transactions running are in `running`.
    private let isOpen = Mutex(true)
    private let running = DispatchGroup()

    /// The store's storage.
    public var storage: any Storage { hub.storage }

    /// Opens `storage`, registers `root` and `types`, and creates the root
    /// object (`Root()`) when the store has none.
    public init<Root: PersistentRoot>(storage: any Storage, root: Root.Type, types: [PersistentObject.Type] = [],
                                        configuration: Configuration = .init()) throws {
        hub = SessionHub(storage: storage)
        self.configuration = configuration
        PersistentTypes.register([root] + types)
        do {
            _ = try storage.load(.root)
        } catch DurusError.keyNotFound {
            let oid = try storage.newOID()
            guard oid == .root else {
                throw DurusError.corruptStore(path: "\(storage)", reason: "the store has no root but handed out \(oid) first")
            }
            // Closed, not parked: a parked session hears of every OID others
            // commit, a cost that a program using only `open()` never asked for.
            let session = hub.openSession()
            defer { try? session.close() }
            let connection = Connection(storage: session, configuration: configuration)
            connection.adopt(Root(), as: .root)
            do {
                try connection.commit()
            } catch DurusError.commitNotDurable {
                // The root is stored, as after any commit; the disk's trouble shows at the next one.
            }
        }
    }

    /// A new connection, Durus style: long-lived, with its own cache.
    public func open() throws -> Connection {
        guard isOpen.withLock({ $0 }) else { throw DurusError.closed }
        return Connection(storage: hub.openSession(), configuration: configuration)
    }

    /// The most invalidations a parked connection of the pool collects. Its
    /// session hears of every object others commit, and a pool connection
    /// may wait unused for any number of commits: past this it is dropped
    /// (its cache would be mostly stale anyway) and the next transaction
    /// opens a fresh one.
    static let parkedInvalidationLimit = 100_000

    /// A connection of the pool, with its session.
    private func openPooled() -> IdleConnection {
        let session = hub.openSession()
        return IdleConnection(connection: Connection(storage: session, configuration: configuration), session: session)
    }

    /// A parked connection whose session still lives, or a new one.
    private func takePooled() -> IdleConnection {
        while let pooled = idle.withLock({ $0.popLast() }) {
            guard pooled.session.unpark() else { continue }
            // A parked connection's cache may predate others' commits: synchronize first.
            pooled.connection.abort()
            return pooled
        }
        return openPooled()
    }

    /// Runs `body` in a transaction and commits it; on a conflict, aborts and
    /// runs it again, up to `retries` more times. Connections (and their
    /// caches) are reused between calls.
    ///
    /// A retry never races the commit it lost to: it waits until that commit
    /// has landed (or failed), so each try that fails has lost to a commit
    /// that happened, and a committer paused halfway cannot make the others
    /// spend their retries in a spin. From the third try on, `body` runs
    /// holding the database's commit exchange: no other connection of this
    /// database commits until it is done, so its commit cannot lose to them.
    /// (Commits `body` itself makes on its own thread, through other
    /// connections or nested transactions, go through; a `body` that waits
    /// for another thread's commit to this database would wait forever.)
    /// Over a ``Storage`` shared with other processes (a server's clients),
    /// their commits can still win; a retry that saw no commit of this
    /// database land first waits a short, growing, random while.
    ///
    /// - Parameters:
    ///   - retries: how many more times to run `body` after a conflict.
    ///   - timeLimit: no retry starts after this much time has passed since
    ///     the call; `nil` for none.
    ///   - body: the transaction's work, given the connection it runs on;
    ///     it runs once per try, each try starting from a fresh view.
    /// - Throws: the last ``ConflictError``, with ``ConflictError/giveUp``
    ///   saying how many tries failed and how many commits landed meanwhile,
    ///   when every try conflicted or the time limit ran out; any other error
    ///   at once (the transaction is aborted). After
    ///   ``DurusError/commitNotDurable(reason:)`` the transaction is
    ///   committed (only its result is lost): do not run it again.
    /// The result is `Sendable`: persistent objects must not leave the
    /// transaction, whose connection goes back to a pool other threads use.
    public func transaction<T: Sendable>(retries: Int = 3, timeLimit: Duration? = nil,
                                         _ body: (Connection) throws -> T) throws -> T {
        try isOpen.withLock { open throws(DurusError) in
            guard open else { throw .closed }
            running.enter()
        }
        defer { running.leave() }
        let pooled = takePooled()
        let connection = pooled.connection
        defer { recycle(pooled) }
        let clock = ContinuousClock()
        let deadline = timeLimit.map { clock.now + $0 }
        let landedAtStart = hub.commitsLanded
        var tries = 0
        var unseenWins = 0
        while true {
            tries += 1
            // The commits this try's view holds: one that lands later is
            // one this try can lose to.
            let seen = pooled.session.commitsSeen
            do {
                guard tries > Self.optimisticTries else {
                    let result = try body(connection)
                    try connection.commit()
                    return result
                }
                return try hub.exclusively {
                    connection.abort()              // whatever landed before the exchange was ours
                    let result = try body(connection)
                    try connection.commit()
                    return result
                }
            } catch var conflict as ConflictError {
                let timedOut = deadline.map { clock.now >= $0 } ?? false
                guard tries <= retries, !timedOut else {
                    connection.abort()
                    conflict.giveUp = .init(tries: tries, commitsLanded: hub.commitsLanded - landedAtStart, timedOut: timedOut)
                    throw conflict
                }
                // Lost to a commit that is being applied: wait until it lands.
                hub.waitForCommitInFlight()
                if hub.commitsLanded == seen {
                    // Lost to a commit made elsewhere (another client of a server).
                    unseenWins += 1
                    Self.pause(afterUnseenWins: unseenWins, until: deadline)
                }
                // Once, after the waits: the next try starts from what landed meanwhile.
                connection.abort()
            } catch {
                connection.abort()
                throw error
            }
        }
    }

    /// Tries that run without holding the exchange; later ones hold it.
    static let optimisticTries = 2

    /// A random pause of up to 100 µs × 2ⁿ⁻¹ (at most 10 ms), cut short by `deadline`.
    private static func pause(afterUnseenWins n: Int, until deadline: ContinuousClock.Instant?) {
        let most = min(100 << min(n - 1, 7), 10_000)
        var wait = Duration.microseconds(Int.random(in: most / 2 ... most))
        if let deadline { wait = min(wait, max(.zero, deadline - .now)) }
        let micros = wait.components.attoseconds / 1_000_000_000_000
        if micros > 0 { usleep(UInt32(micros)) }
    }

    /// Closes the database: new transactions and ``open()`` throw
    /// ``DurusError/closed``, transactions running on other threads are
    /// waited for, the pool's connections are closed, then the storage.
    /// Connections from ``open()`` stay usable only for what they hold in
    /// memory: anything that reaches the storage throws
    /// ``DurusError/closed``. Closing again does nothing.
    ///
    /// Call it from outside any transaction of this database (from inside
    /// one it would wait for itself).
    public func close() throws {
        let first = isOpen.withLock { open in
            defer { open = false }
            return open
        }
        guard first else { return }
        running.wait()
        for pooled in idle.withLock({ pool in defer { pool = [] }; return pool }) { try? pooled.session.close() }
        try storage.close()
    }

    private func recycle(_ pooled: IdleConnection) {
        guard pooled.session.park(limit: Self.parkedInvalidationLimit) else { return }
        idle.withLock { $0.append(pooled) }
    }

    /// How many OIDs each parked connection's session has pending (for tests).
    var parkedPending: [Int] { idle.withLock { $0.map { hub.pendingCount($0.session.id) } } }
}

/// A connection parked between transactions; only one caller takes it at a time.
private struct IdleConnection: @unchecked Sendable {
    let connection: Connection
    let session: SessionStorage
}

extension Connection {
    /// Makes `object` the object stored under `oid` (the root of a new store).
    func adopt(_ object: PersistentObject, as oid: OID) {
        precondition(object.oid == nil && object.core == nil, "only a new, unattached object can be adopted")
        object.oid = oid
        object.core = core
        core.registerAdopted(object)
    }
}
