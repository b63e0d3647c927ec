import Durus

/// How a ``DurusServer`` listens, what it accepts, and when it gives up on a client.
///
/// ```swift
/// var configuration = ServerConfiguration(address: .unix(path: "/run/durus.sock"))
/// configuration.unixSocketMode = 0o660
/// configuration.quitPolicy = .unixSocketOnly
/// ```
public struct ServerConfiguration: Sendable {
    /// Who may shut the server down with `Q`.
    public enum QuitPolicy: Sendable {
        /// Any client (Durus 4.3's behaviour).
        case anyone
        /// Clients on a Unix socket only: a TCP client's `Q` drops that client.
        case unixSocketOnly
        /// Nobody: `Q` drops the client that sent it.
        case nobody
    }

    /// Where to listen; port 0 picks a free port (see ``DurusServer/address``).
    public var address: ServerAddress
    /// The owner given to a Unix socket file (a user name), if any.
    public var unixSocketOwner: String?
    /// The group given to a Unix socket file (a group name), if any.
    public var unixSocketGroup: String?
    /// The permission bits of a Unix socket file, if set (as `0o660`).
    public var unixSocketMode: UInt32?
    /// The largest record accepted in a commit, in bytes.
    public var maxRecordSize: Int
    /// The largest transaction (the data of one commit) accepted, in bytes.
    /// A client announcing more is dropped before anything is allocated.
    public var maxTransactionSize: Int
    /// The most OIDs one `B` request may ask for.
    public var maxBulkLoad: Int
    /// How long a client may take, from being handed the commit exchange, to
    /// send its whole transaction. A client over it loses the exchange and is dropped.
    public var commitTimeout: Duration
    /// How long a client may stay silent with a request half sent, or leave
    /// its answers unread while more of its requests wait to be answered.
    public var frameTimeout: Duration
    /// The most invalidations a client may have pending (it has not synced
    /// or committed while others committed that many objects); over it, the
    /// client is dropped and told nothing more.
    public var invalidationLimit: Int
    /// Who may stop the server with `Q`.
    public var quitPolicy: QuitPolicy
    /// Start a background pack after this many bytes have been committed
    /// since the last one (Durus's `gcbytes`); 0 turns it off.
    public var packAfterBytes: Int
    /// Threads serving client connections (loads run on them).
    public var eventLoopThreads: Int
    /// For a site of a replication group: the end of its commit log, sent
    /// to a replica forwarding commits here that asks for it
    /// (`WireProtocol.commitLogEndCommand`). nil: the command is refused
    /// like any unknown one.
    public var commitLogEnd: (@Sendable () throws -> UInt64)? = nil

    public init(address: ServerAddress = .standard) {
        self.address = address
        unixSocketOwner = nil
        unixSocketGroup = nil
        unixSocketMode = nil
        maxRecordSize = 64 << 20
        maxTransactionSize = 1 << 30
        maxBulkLoad = 1 << 20
        commitTimeout = .seconds(30)
        frameTimeout = .seconds(60)
        invalidationLimit = 5_000_000
        quitPolicy = .anyone
        packAfterBytes = 0
        eventLoopThreads = 2
    }
}
