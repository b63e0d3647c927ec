/// How much a commit promises once ``BerkeleyDBStorage/commit(_:handleInvalidations:)`` returns.
///
/// Every mode keeps the store consistent: after any crash, recovery brings it
/// back to the state after some commit, never to a half-applied one.
public enum Durability: String, Sendable, CaseIterable {
    /// The log is flushed to disk at every commit: an acknowledged commit
    /// survives a process crash, an operating-system crash and power loss
    /// (as far as the disk honours `fsync`). The slowest mode.
    case full
    /// The log is written to the operating system at every commit but not
    /// flushed: an acknowledged commit survives a process crash (`kill -9`);
    /// an operating-system crash or power loss may lose the latest commits.
    /// This matches Durus's own FileStorage, which never calls `fsync`.
    ///
    /// In a replication group, a site writes its own commits so, but keeps
    /// the commits it applies from its master in the log buffer until a
    /// later write: a replica's newest commits may be lost with its
    /// process, and come back from the group when it restarts. With
    /// `quorum` acknowledgements, an acknowledged commit is then on the
    /// master's disk (written, not flushed) and in a replica's memory: it
    /// survives the loss of any one site, process or machine.
    case writeNoSync = "write-no-sync"
    /// The log stays in memory until its buffer fills: even a process crash
    /// may lose the latest commits (up to one log buffer). The fastest mode.
    case none
}

/// The Berkeley DB access method of the records and reference-count tables,
/// chosen when a store is created and kept for its life.
public enum AccessMethod: String, Sendable, CaseIterable {
    /// Ordered by OID: iteration and bulk scans follow OID order. The default.
    case btree
    /// Hashed by OID: no order, sometimes faster for random loads of huge stores.
    case hash
}

extension BerkeleyDBStorage {
    /// Settings for opening a ``BerkeleyDBStorage``.
    ///
    /// ```swift
    /// var configuration = BerkeleyDBStorage.Configuration()
    /// configuration.durability = .writeNoSync
    /// configuration.cacheSize = 256 << 20
    /// let storage = try BerkeleyDBStorage(path: "bank.db", configuration: configuration)
    /// ```
    public struct Configuration: Sendable {
        /// What a returned commit promises. Settable at every open.
        public var durability: Durability = .full
        /// The access method of a store created by this open; an existing
        /// store keeps the one it was created with.
        public var accessMethod: AccessMethod = .btree
        /// Berkeley DB's page cache, in bytes.
        public var cacheSize: Int = 64 << 20
        /// Loads and scans read a snapshot and never wait for a commit: the
        /// tables keep multiple versions of their pages (Berkeley DB's
        /// `DB_MULTIVERSION`), and a write copies a page before changing it.
        /// Off, pages change in place, which makes bulk writes (a migration)
        /// about twice as fast, and reads see committed data but not a
        /// snapshot: a load may wait for a commit, and a long scan (``verify()``,
        /// the cycle collector) may see commits made while it runs. Settable
        /// at every open; a store migrated without it serves with it.
        public var snapshotReads = true
        /// Opens without taking the writer's lock and refuses every change:
        /// for tools that inspect a store another process is serving.
        public var readOnly = false
        /// Opens the store for ``BerkeleyDBStorage/migrate(from:batchSize:progress:)``
        /// alone, as ``migration`` does: the records, reference-count and
        /// garbage tables are written without log records (Berkeley DB's
        /// `DB_TXN_NOT_DURABLE`), which spares a migration the log's copy
        /// and checksum of everything it writes.
        /// The price is that a crash leaves those tables unusable, so the
        /// store says so: while a migration runs or after one was cut short,
        /// every other open fails with `DurusError.corruptStore(path:reason:)`
        /// asking for the migration to be run again, and a migration-only open
        /// of it starts the tables afresh. Such an open refuses
        /// commits, collections and new OIDs; a finished migration's tables
        /// are on disk in full before it returns, and the next ordinary open
        /// logs them as usual.
        public var migrationOnly = false
        /// Creates the directory and an empty store when the path does not exist.
        public var createIfMissing = true
        /// Size of the lock tables (locks, lockers and lock objects each): it
        /// bounds the largest commit, which locks the pages it writes.
        /// Smaller tables open faster; too small, they make large commits
        /// and collections fail.
        public var maxLocks = 200_000
        /// Most transactions active at once (loads run in snapshot transactions).
        public var maxTransactions = 1_000
        /// Size of one log file before Berkeley DB starts the next.
        public var logFileSize = 16 << 20
        /// The in-memory log buffer; with ``Durability/none`` this is what a
        /// crash may lose at most.
        public var logBufferSize = 1 << 20
        /// How often the background task checkpoints and removes log files
        /// that recovery no longer needs.
        public var checkpointInterval: Duration = .seconds(10)
        /// Garbage objects deleted per Berkeley DB transaction while collecting,
        /// so a huge cascade never overflows the lock table or the log.
        public var collectionBatchSize = 1_000
        /// Collects garbage on a background thread, a batch at a time with the
        /// commit lock taken per batch, instead of before each commit returns:
        /// a commit that drops a huge structure then returns at once, and the
        /// collected OIDs reach ``BerkeleyDBStorage/sync()`` as batches finish.
        public var collectsInBackground = false
        /// With ``collectsInBackground``, a pause between batches, so that a
        /// large collection leaves the disk and the cache to loads.
        public var collectionPause: Duration = .zero
        /// Runs the cycle collector (``BerkeleyDBStorage/collectCycles(batchSize:)``)
        /// on a background thread each time commits have stored this many
        /// bytes since the last run, as Durus's `gcbytes` packs; 0 (the
        /// default) never does. `close()` waits for a run under way.
        public var collectCyclesAfterBytes = 0
        /// Called after each collection that deleted anything: a drain of the
        /// garbage queue, or a run of the cycle collector. It runs on the
        /// collecting thread while commits wait, so keep it short (log, count).
        ///
        /// ```swift
        /// configuration.onCollection = { event in
        ///     if case .garbage(let report) = event { print("collected \(report.collected)") }
        /// }
        /// ```
        public var onCollection: (@Sendable (BerkeleyDBStorage.CollectionEvent) -> Void)?
        /// Makes the store a site of a replication group (see ``Replication``);
        /// nil (the default) keeps it to itself. A replicated store reads
        /// without snapshots whatever ``snapshotReads`` says: Berkeley DB
        /// refuses snapshot transactions on a replica, and a role change
        /// does not reopen the tables.
        public var replication: Replication?

        public init() {}
    }
}
