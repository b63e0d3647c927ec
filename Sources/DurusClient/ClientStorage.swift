import Durus
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A storage on a Durus server, reached over protocol v1: the Swift server
/// (`durus serve`) or Python Durus 4.3's `durus -s`.
///
/// ```swift
/// let storage = try ClientStorage(address: .tcp(host: "127.0.0.1", port: 2972))
/// let database = try Database(storage: storage, root: Bank.self)
/// ```
///
/// Calls block until the server answers (a `Connection` loads
/// synchronously) and are safe from many threads: one request is on the wire
/// at a time. OIDs are fetched in batches of ``oidBatchSize``. A load of an
/// object another client committed since this client last synchronized
/// throws `ConflictError` of kind `read`; a refused commit one of kind
/// `write`. An answer that breaks the protocol throws
/// `DurusError.protocolViolation(_:)` and closes the connection, as does a
/// network failure or timeout (`DurusError.network(address:message:)`).
///
/// ## Several sites
///
/// Given the sites of a replication group
/// (``init(addresses:connectTimeout:ioTimeout:oidBatchSize:failoverTimeout:)``),
/// it connects to the first that answers, and when a request fails with a
/// network error it moves to the next site that answers, trying them in
/// turn for up to ``failoverTimeout``, and makes the request there.
/// Invalidations sent while it moved are unknown, so
/// ``sessionGeneration`` grows by one: a `Connection` then treats every
/// object it holds as changed by others (the transaction in progress
/// conflicts and can be retried; cached objects load again). A commit
/// whose transaction was on its way when the site went away throws
/// `DurusError.network(address:message:)`: it may or may not have landed.
public final class ClientStorage: Storage, @unchecked Sendable {
    /// The sites this storage may use, in the order it tries them.
    public let addresses: [ServerAddress]
    /// OIDs fetched per `M` request.
    public let oidBatchSize: Int
    /// How long a move to another site may take, from the failure that
    /// started it (with one address: no moves).
    public let failoverTimeout: Duration
    private let connectTimeout: Duration
    private let ioTimeout: Duration

    // `socket`, `site`, `isClosed` and `oidPool` are only touched with `lock` held.
    private let lock = Mutex(())
    private var socket: BlockingSocket?
    /// The index in `addresses` of the site in use (or last used).
    private var site = 0
    private var isClosed = false
    private var oidPool: [OID] = []
    private let generation = Atomic<Int>(0)

    /// Connects and checks the protocol version.
    ///
    /// - Parameters:
    ///   - address: the server: TCP host and port, or a Unix socket path.
    ///   - connectTimeout: how long to wait for the connection.
    ///   - ioTimeout: how long any one read or write may wait.
    ///   - oidBatchSize: OIDs fetched at a time (1…255).
    public convenience init(address: ServerAddress = .standard, connectTimeout: Duration = .seconds(10),
                            ioTimeout: Duration = .seconds(60), oidBatchSize: Int = 32) throws {
        try self.init(addresses: [address], connectTimeout: connectTimeout, ioTimeout: ioTimeout,
                      oidBatchSize: oidBatchSize)
    }

    /// Connects to the first of `addresses` that answers with protocol v1,
    /// and moves to another of them when the site in use goes away.
    ///
    /// - Parameters:
    ///   - addresses: the sites of one replication group (or one server), tried in order.
    ///   - connectTimeout: how long to wait for each connection.
    ///   - ioTimeout: how long any one read or write may wait; a site that
    ///     does not answer within it counts as gone.
    ///   - oidBatchSize: OIDs fetched at a time (1…255).
    ///   - failoverTimeout: how long a move to another site may take.
    /// - Throws: `DurusError.network(address:message:)` naming the last
    ///   address tried when none answers; `DurusError.protocolViolation(_:)`
    ///   from a server of another protocol version.
    public init(addresses: [ServerAddress], connectTimeout: Duration = .seconds(10),
                ioTimeout: Duration = .seconds(60), oidBatchSize: Int = 32,
                failoverTimeout: Duration = .seconds(30)) throws {
        guard !addresses.isEmpty else {
            throw DurusError.network(address: "", message: "no server address given")
        }
        self.addresses = addresses
        self.oidBatchSize = min(max(oidBatchSize, 1), 255)
        self.failoverTimeout = failoverTimeout
        self.connectTimeout = connectTimeout
        self.ioTimeout = ioTimeout
        var lastError: (any Error)?
        for index in addresses.indices {
            do {
                socket = try Self.connect(addresses[index], connectTimeout: connectTimeout, ioTimeout: ioTimeout)
                site = index
                return
            } catch let error as DurusError {
                guard case .network = error else { throw error }
                lastError = error
            }
        }
        throw lastError!
    }

    deinit { try? close() }

    /// The site in use, or the one last used while none is.
    public var address: ServerAddress { lock.withLock { _ in addresses[site] } }

    /// How many times this storage moved to another site (see the type's
    /// documentation): each time, what others committed meanwhile is unknown.
    public var sessionGeneration: Int { generation.load(ordering: .acquiring) }

    private static func connect(_ address: ServerAddress, connectTimeout: Duration,
                                ioTimeout: Duration) throws -> BlockingSocket {
        let socket = try BlockingSocket(connectingTo: address, connectTimeout: connectTimeout, ioTimeout: ioTimeout)
        var hello: [UInt8] = [WireProtocol.Command.version.rawValue]
        BigEndian.append(WireProtocol.version, to: &hello)
        do {
            try socket.write(hello)
            let theirs = try socket.readUInt32()
            guard theirs == WireProtocol.version else {
                throw DurusError.protocolViolation("the server speaks protocol \(theirs), not \(WireProtocol.version)")
            }
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    /// With `lock` held: connects to the next site that answers, trying
    /// each in turn from the one after the lost site until `deadline`.
    private func moveToAnotherSite(deadline: ContinuousClock.Instant) throws {
        var lastError: (any Error)?
        var attempt = 1
        while true {
            let index = (site + attempt) % addresses.count
            attempt += 1
            do {
                let socket = try Self.connect(addresses[index], connectTimeout: connectTimeout, ioTimeout: ioTimeout)
                site = index
                self.socket = socket
                oidPool.removeAll()
                generation.add(1, ordering: .releasing)
                return
            } catch let error as DurusError {
                guard case .network = error else { throw error }
                lastError = error
            }
            if ContinuousClock.now >= deadline { throw lastError! }
            // A round of every site failed: give an election or a restart a moment.
            if attempt % addresses.count == 1 { usleep(50_000) }
        }
    }

    /// Runs one request. A failure other than an answer closes the
    /// connection; with several addresses, a network failure moves to
    /// another site and, while `movable` says so, makes the request there.
    private func exchange<T>(movable: () -> Bool = { true }, _ body: (BlockingSocket) throws -> T) throws -> T {
        try lock.withLock { _ in
            var deadline: ContinuousClock.Instant?
            while true {
                guard !isClosed else { throw DurusError.closed }
                if self.socket == nil {
                    // The site was lost by an earlier request.
                    guard addresses.count > 1 else { throw DurusError.closed }
                    try moveToAnotherSite(deadline: deadline ?? ContinuousClock.now + failoverTimeout)
                }
                guard let socket else { throw DurusError.closed }
                do {
                    return try body(socket)
                } catch let error as DurusError {
                    switch error {
                    case .keyNotFound, .abortRequired: throw error
                    default:
                        socket.close()
                        self.socket = nil
                    }
                    guard case .network = error, addresses.count > 1, movable() else { throw error }
                    deadline = deadline ?? ContinuousClock.now + failoverTimeout
                    try moveToAnotherSite(deadline: deadline!)
                }
            }
        }
    }

    private static func readLoadAnswer(_ socket: BlockingSocket, _ oid: OID) throws -> Record {
        let status = try socket.readByte()
        switch WireProtocol.Status(rawValue: status) {
        case .okay:
            let length = try socket.readUInt32()
            return try Record(key: oid, bytes: try socket.read(Int(length)))
        case .keyError:
            throw DurusError.keyNotFound(oid)
        case .invalid:
            throw ConflictError(.read, oids: [oid])
        case nil:
            throw DurusError.protocolViolation("load of \(oid) answered with status byte \(status)")
        }
    }

    public func load(_ oid: OID) throws -> Record {
        try exchange { socket in
            try socket.write([WireProtocol.Command.load.rawValue] + oid.bytes)
            return try Self.readLoadAnswer(socket, oid)
        }
    }

    /// Loads `oids` with one `B` request. Every answer is read before a
    /// missing or stale object is reported, so the connection stays in step.
    public func bulkLoad(_ oids: [OID]) throws -> [Record] {
        guard !oids.isEmpty else { return [] }
        return try exchange { socket in
            var request: [UInt8] = [WireProtocol.Command.bulkLoad.rawValue]
            BigEndian.append(UInt32(oids.count), to: &request)
            for oid in oids { oid.append(to: &request) }
            try socket.write(request)
            var records: [Record] = []
            var firstError: (any Error)?
            var stale: [OID] = []
            for oid in oids {
                do {
                    records.append(try Self.readLoadAnswer(socket, oid))
                } catch let conflict as ConflictError {
                    stale += conflict.oids
                } catch DurusError.keyNotFound(let missing) {
                    firstError = firstError ?? DurusError.keyNotFound(missing)
                }
            }
            if !stale.isEmpty { throw ConflictError(.read, oids: stale) }
            if let firstError { throw firstError }
            return records
        }
    }

    public func newOID() throws -> OID {
        try exchange { socket in
            if oidPool.isEmpty {
                try socket.write([WireProtocol.Command.newOIDs.rawValue, UInt8(oidBatchSize)])
                let bytes = try socket.read(8 * oidBatchSize)
                oidPool = stride(from: 8 * (oidBatchSize - 1), through: 0, by: -8).map {
                    OID(bytes: bytes[$0 ..< $0 + 8])!
                }
            }
            return oidPool.removeLast()
        }
    }

    /// The commit exchange: the server sends the OIDs others committed since
    /// this client last synchronized; `handleInvalidations` sees them and may
    /// throw to abandon the commit (the server is told, nothing is written).
    public func commit(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws {
        // Moved to another site and made again only until the invalidations
        // arrive: after that, the transaction may be on its way.
        var invalidationsRead = false
        try exchange(movable: { !invalidationsRead }) { socket in
            try socket.write([WireProtocol.Command.commit.rawValue])
            let invalidations = try Self.readOIDs(socket)
            invalidationsRead = true
            do {
                try handleInvalidations(invalidations)
            } catch {
                try socket.write([0, 0, 0, 0])
                throw error
            }
            try Self.sendTransaction(records, on: socket)
        }
    }

    // MARK: A commit exchange in steps (a replica forwarding its clients' commits)

    /// Begins a commit exchange and returns the OIDs the server sends (others'
    /// commits since this client last synchronized). The server's exchange
    /// is then this client's until ``finishCommit(_:)`` or ``abandonCommit()``;
    /// the caller must make no other request on this storage meanwhile.
    public func beginCommit() throws -> [OID] {
        try exchange(movable: { false }) { socket in
            try socket.write([WireProtocol.Command.commit.rawValue])
            return try Self.readOIDs(socket)
        }
    }

    /// Sends the transaction of an exchange ``beginCommit()`` began.
    /// - Throws: `ConflictError` of kind `write` when the server refuses it.
    public func finishCommit(_ records: [Record]) throws {
        try exchange(movable: { false }) { socket in
            try Self.sendTransaction(records, on: socket)
        }
    }

    /// Ends an exchange ``beginCommit()`` began, committing nothing.
    public func abandonCommit() throws {
        try exchange(movable: { false }) { socket in try socket.write([0, 0, 0, 0]) }
    }

    /// The server's commit-log end (`WireProtocol.commitLogEndCommand`):
    /// only `durus serve` sites of a replication group answer it.
    public func commitLogEnd() throws -> UInt64 {
        try exchange { socket in
            try socket.write([WireProtocol.commitLogEndCommand])
            let bytes = try socket.read(8)
            return bytes.reduce(0) { $0 << 8 | UInt64($1) }
        }
    }

    public func sync() throws -> [OID] {
        try exchange { socket in
            try socket.write([WireProtocol.Command.sync.rawValue])
            return try Self.readOIDs(socket)
        }
    }

    /// Sends the transaction of a commit exchange and reads the server's
    /// status (none for an empty transaction, as the protocol has it).
    private static func sendTransaction(_ records: [Record], on socket: BlockingSocket) throws {
        let data = WireProtocol.encodeTransaction(records)
        var frame: [UInt8] = []
        frame.reserveCapacity(4 + data.count)
        BigEndian.append(UInt32(data.count), to: &frame)
        frame += data
        try socket.write(frame)
        guard !data.isEmpty else { return }
        let status = try socket.readByte()
        switch WireProtocol.Status(rawValue: status) {
        case .okay: return
        case .invalid: throw ConflictError(.write, oids: records.map(\.oid))
        default: throw DurusError.protocolViolation("commit answered with status byte \(status)")
        }
    }

    private static func readOIDs(_ socket: BlockingSocket) throws -> [OID] {
        let count = Int(try socket.readUInt32())
        guard count > 0 else { return [] }
        // Read in slices, so a corrupt count cannot make us allocate it up front.
        var oids: [OID] = []
        var remaining = count
        while remaining > 0 {
            let batch = min(remaining, 65_536)
            let bytes = try socket.read(8 * batch)
            for index in 0 ..< batch { oids.append(OID(bytes: bytes[(8 * index) ..< (8 * index + 8)])!) }
            remaining -= batch
        }
        return oids
    }

    /// Asks the server to start packing (collecting garbage) in the background.
    public func pack() throws {
        try exchange { socket in
            try socket.write([WireProtocol.Command.pack.rawValue])
            let status = try socket.readByte()
            guard status == WireProtocol.Status.okay.rawValue else {
                throw DurusError.protocolViolation("pack answered with status byte \(status)")
            }
        }
    }

    /// Visits every object reachable from the root, loading them in batches
    /// (protocol v1 has no way to list stored records). Keeps the set of
    /// OIDs seen in memory: 8 bytes or so an object.
    public func forEachRecord(_ body: (Record) throws -> Void) throws {
        var seen: Set<OID> = [.root]
        var frontier: [OID] = [.root]
        do {
            _ = try load(.root)
        } catch DurusError.keyNotFound {
            return
        }
        while !frontier.isEmpty {
            let batch = Array(frontier.suffix(100))
            frontier.removeLast(batch.count)
            for record in try bulkLoad(batch) {
                try body(record)
                for reference in record.references where seen.insert(reference).inserted {
                    frontier.append(reference)
                }
            }
        }
    }

    /// Asks the server to shut down (`Q`). The connection is closed after.
    public func shutdownServer() throws {
        try exchange(movable: { false }) { socket in
            try socket.write([WireProtocol.Command.quit.rawValue])
            socket.close()
            self.socket = nil
            isClosed = true
        }
    }

    /// Says goodbye (`.`) and closes the connection.
    public func close() throws {
        lock.withLock { _ in
            isClosed = true
            guard let socket else { return }
            try? socket.write([WireProtocol.Command.close.rawValue])
            socket.close()
            self.socket = nil
        }
    }
}
