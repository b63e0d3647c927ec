/// Errors of the Durus core and its storages that are not conflicts.
///
/// Every error that input can cause (a file, a frame, a record) is one of these
/// or a ``ConflictError``; none of them leaves a store half-written.
public enum DurusError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No object is stored under this OID (never stored, or collected).
    case keyNotFound(OID)
    /// Bytes that do not have the record layout.
    case malformedRecord(String)
    /// A record sent or filed under one OID names another.
    case oidMismatch(key: OID, embedded: OID)
    /// A record was committed for an OID that this storage never handed out.
    case oidNotAllocated(OID)
    /// The storage was closed.
    case closed
    /// The path exists but is not a store of this kind (an unrelated file or a
    /// non-empty directory of something else). Nothing was created or changed.
    case notAStore(path: String, reason: String)
    /// The store's files are damaged.
    case corruptStore(path: String, reason: String)
    /// A Durus file is damaged at `offset`: not a Durus file, cut short in
    /// its header, or garbage where a transaction, a record or the offset
    /// map should be.
    case corruptFile(path: String, offset: Int, reason: String)
    /// A Durus file ends inside the transaction that starts at `offset`, as
    /// when a commit is cut off by a crash. Opening with `repair` truncates
    /// the file there; every earlier transaction is kept.
    case tornTransaction(path: String, offset: Int)
    /// The store was written by a newer on-disk format than this build reads.
    case unsupportedFormat(path: String, found: Int, supported: Int)
    /// Another process has the store open for writing.
    case storeInUse(path: String)
    /// An operating-system call failed.
    case io(path: String, message: String)
    /// The file system holding the store is full (or the user's quota is
    /// used up). The write that met it was undone: a commit refused this
    /// way stored nothing, and once space is freed the same storage commits
    /// again, with no reopening and nothing to repair.
    case diskFull(path: String, message: String)
    /// A commit was stored, and other connections may already see it, but
    /// the storage could not confirm that it is durable: its log flush
    /// failed (a full disk, an I/O error, the storage closed meanwhile), or
    /// in a replication group the replicas did not acknowledge it in time.
    /// The connection counts it as committed. A crash (or a failover),
    /// or closing the store before a later commit's flush succeeds, could
    /// still lose it.
    case commitNotDurable(reason: String)
    /// The storage was opened read-only and was asked to change.
    case readOnly
    /// A stored object's state cannot be read: truncated, corrupt, of an
    /// unknown format version, or not what its type expects.
    case badState(oid: OID, reason: String)
    /// A record names a type that is not registered with the database.
    case unknownType(String)
    /// An object that belongs to another connection was linked into this one's.
    case foreignObject(OID)
    /// A conflict happened in this transaction: call `abort()` before going on.
    case abortRequired
    /// A record was committed under an OID that the server reserved for
    /// another client.
    case oidReserved(OID)
    /// The session was ended by its hub or server (too many pending
    /// invalidations, a timeout, a protocol violation), with the reason.
    case sessionDropped(String)
    /// The peer broke the wire protocol: an unexpected byte, a malformed
    /// frame, a length over the limit.
    case protocolViolation(String)
    /// A network connection could not be made, timed out or was lost.
    case network(address: String, message: String)

    public var description: String {
        switch self {
        case .keyNotFound(let oid): "no object stored under \(oid)"
        case .malformedRecord(let why): "malformed record: \(why)"
        case .oidMismatch(let key, let embedded): "record under \(key) names \(embedded)"
        case .oidNotAllocated(let oid): "\(oid) was never handed out by this storage"
        case .closed: "the storage is closed"
        case .notAStore(let path, let why): "\(path) is not a Durus store: \(why)"
        case .corruptStore(let path, let why): "\(path) is damaged: \(why)"
        case .corruptFile(let path, let offset, let why): "\(path) is damaged at offset \(offset): \(why)"
        case .tornTransaction(let path, let offset):
            "\(path) ends inside the transaction at offset \(offset) (a cut-off commit); open with repair to truncate it"
        case .unsupportedFormat(let path, let found, let supported):
            "\(path) has on-disk format \(found); this build reads format \(supported)"
        case .storeInUse(let path): "\(path) is open for writing in another process"
        case .io(let path, let message): "\(path): \(message)"
        case .diskFull(let path, let message): "\(path): the disk is full (\(message))"
        case .commitNotDurable(let why): "the commit was stored but is not known to be durable: \(why)"
        case .readOnly: "the storage is open read-only"
        case .badState(let oid, let why): "the state of \(oid) cannot be read: \(why)"
        case .unknownType(let name): "no persistent type is registered as \(name)"
        case .foreignObject(let oid): "\(oid) belongs to another connection and cannot be linked here"
        case .abortRequired: "a conflict is pending: abort() before going on"
        case .oidReserved(let oid): "\(oid) is reserved for another client"
        case .sessionDropped(let why): "the session was dropped: \(why)"
        case .protocolViolation(let why): "protocol violation: \(why)"
        case .network(let address, let message): "\(address): \(message)"
        }
    }
}

/// A transaction could not be committed, or an object could not be loaded,
/// because another client's commit got there first. Abort, then retry.
///
/// - `read`: the object was changed by another client since this client's
///   last commit or abort (loading it now would break repeatable reads).
/// - `write`: the commit touched objects another client changed, or
///   references an object that no longer exists (collected garbage).
public struct ConflictError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Which kind of conflict.
    public enum Kind: Sendable, Equatable { case read, write }

    public var kind: Kind
    /// The OIDs involved.
    public var oids: [OID]
    /// Set when ``Database/transaction(retries:timeLimit:_:)`` gave up: how
    /// it went until this, its last conflict.
    public var giveUp: GiveUp?

    /// How a retrying transaction ended in a conflict.
    public struct GiveUp: Equatable, Sendable {
        /// How many times the transaction ran, each ending in a conflict.
        public var tries: Int
        /// How many commits landed in the database between the first try's
        /// start and giving up: each retry waited for one, so a transaction
        /// that gives up lost its every try to a commit that happened.
        public var commitsLanded: Int
        /// True when the transaction's time limit ran out before its retries did.
        public var timedOut: Bool

        public init(tries: Int, commitsLanded: Int, timedOut: Bool) {
            self.tries = tries
            self.commitsLanded = commitsLanded
            self.timedOut = timedOut
        }
    }

    public init(_ kind: Kind, oids: [OID], giveUp: GiveUp? = nil) {
        self.kind = kind
        self.oids = oids
        self.giveUp = giveUp
    }

    public var description: String {
        let conflict = "\(kind == .read ? "read" : "write") conflict on \(oids.prefix(10).map(\.rawValue))\(oids.count > 10 ? "…" : "")"
        guard let giveUp else { return conflict }
        let why = giveUp.timedOut ? "its time limit ran out" : "its retries ran out"
        return "\(giveUp.tries) tries failed (the last: \(conflict)) while \(giveUp.commitsLanded) commits landed; \(why)"
    }
}
