import Dispatch
import Durus
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A Durus storage server: one store, many clients, protocol v1 as Durus 4.3
/// speaks it, so Python Durus clients and `ClientStorage` alike can use it.
///
/// ```swift
/// let storage = try BerkeleyDBStorage(path: "data")
/// let server = try DurusServer(storage: storage, configuration: .init(address: .tcp(host: "127.0.0.1", port: 2972)))
/// server.waitUntilStopped()         // until a client sends Q, or shutdown() is called
/// try storage.close()
/// ```
///
/// Every client gets a session of a `SessionHub` (pass your own hub to
/// share the store with in-process `Connection`s). Loads from different
/// clients are answered in parallel, on ``ServerConfiguration/eventLoopThreads``
/// threads, and never wait for a commit; commits are applied one at a time,
/// on the committing client's event loop, and a storage's wait for the disk
/// (`Storage.commitAwaitingFlush(_:handleInvalidations:)`) is made on
/// threads of its own after the next client's commit may begin, so commits
/// from different clients share their fsyncs (group commit). A storage
/// whose plain commit blocks on the disk should hand that wait back there.
/// Packs run in the background. A client that breaks the protocol, stalls
/// mid-request, or falls too far behind is dropped alone, with the reason
/// logged.
public final class DurusServer: Sendable {
    /// The sessions the server's clients use.
    public let hub: SessionHub
    public let configuration: ServerConfiguration
    /// Where the server listens (with the real port when port 0 was asked for).
    public let address: ServerAddress

    private let core: ServerCore
    private let group: MultiThreadedEventLoopGroup
    private let listener: any Channel
    private let stopped = Mutex<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    /// Serves `storage`, with a hub of its own.
    public convenience init(storage: any Storage, configuration: ServerConfiguration = .init(),
                            logger: Logger = Logger(label: "durus.server")) throws {
        try self.init(hub: SessionHub(storage: storage), configuration: configuration, logger: logger)
    }

    /// Binds the address and starts serving the storage of `hub`.
    ///
    /// - Throws: `DurusError.network(address:message:)` when the address
    ///   cannot be bound (in use, no permission, a Unix socket path where
    ///   another server is listening or where a file that is not a socket lies).
    public init(hub: SessionHub, configuration: ServerConfiguration = .init(),
                logger: Logger = Logger(label: "durus.server")) throws {
        self.hub = hub
        self.configuration = configuration
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopThreads))
        let core = ServerCore(hub: hub, configuration: configuration, logger: logger)
        let isUnix: Bool
        if case .unix = configuration.address { isUnix = true } else { isUnix = false }
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .childChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 64 << 10, high: 256 << 10))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ClientHandler(server: core, isUnixSocket: isUnix))
                }
            }
        if !isUnix {
            bootstrap = bootstrap
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
        }
        do {
            switch configuration.address {
            case .tcp(let host, let port):
                listener = try bootstrap.bind(host: host, port: port).wait()
                address = .tcp(host: host, port: listener.localAddress?.port ?? port)
            case .unix(let path):
                try UnixSocketFile.prepare(path)
                listener = try bootstrap.bind(unixDomainSocketPath: path).wait()
                try UnixSocketFile.setAccess(path, owner: configuration.unixSocketOwner,
                                             group: configuration.unixSocketGroup, mode: configuration.unixSocketMode)
                address = configuration.address
            }
        } catch {
            try? group.syncShutdownGracefully()
            core.shutdownPools()
            if let error = error as? DurusError { throw error }
            throw DurusError.network(address: "\(configuration.address)", message: "cannot listen: \(error)")
        }
        self.group = group
        self.core = core
        core.onShutdownRequest { [weak self] in self?.shutdown() }
        logger.notice("ready", metadata: ["address": "\(address)"])
    }

    /// The number of clients connected.
    public var clientCount: Int { core.clientCount }

    /// The most bytes the server has held at one time for any one client:
    /// its requests read but not yet answered, and answers it has not yet
    /// taken. A client that sends without reading is served only until its
    /// unread answers pass the channel's high-water mark (256 KiB), so this
    /// stays near that, whatever the client sends.
    public var peakClientBufferedBytes: Int { core.peakBuffered.load(ordering: .relaxed) }

    /// Stops serving: no new connections; each client is closed once a
    /// commit it has in flight is applied and answered; then the threads
    /// end. The storage is left open for its owner to close. Safe to call
    /// from any thread, more than once.
    public func shutdown() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        // Never on an event loop thread: shutting the group down waits for them.
        DispatchQueue.global().async { [self] in
            try? listener.close().wait()
            core.drainClients(timeout: .seconds(10))
            // Commits whose exchange ended are applied on the event loops:
            // every one lands before the loops stop.
            core.hub.waitForAnnouncedCommits()
            core.shutdownPools()
            try? group.syncShutdownGracefully()
            if case .unix(let path) = address { unlink(path) }
            core.logger.notice("stopped")
            done.signal()
        }
    }

    /// Blocks until the server has stopped (a client's `Q`, or ``shutdown()``).
    public func waitUntilStopped() {
        done.wait()
        done.signal()
    }

    /// Serves until one of `signals` arrives (or a client's `Q`, or
    /// ``shutdown()``), then stops as ``shutdown()`` does (a Unix socket's
    /// file is removed) and returns once the server has stopped. While it
    /// runs, the signals are caught instead of ending the process; their
    /// previous dispositions are restored when it returns. The storage is
    /// left open for its owner to close.
    ///
    /// ```swift
    /// let server = try DurusServer(hub: database.hub, configuration: .init(address: .unix(path: "bank.sock")))
    /// server.run()                  // until SIGINT or SIGTERM
    /// try database.close()
    /// ```
    public func run(untilSignals signals: [Int32] = [SIGINT, SIGTERM]) {
        let sources = signals.map { number in
            let previous = signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                core.logger.notice("signal received, stopping", metadata: ["signal": "\(number)"])
                shutdown()
            }
            source.resume()
            return (number, previous, source)
        }
        waitUntilStopped()
        for (number, previous, source) in sources {
            source.cancel()
            signal(number, previous)
        }
    }
}

/// What the server's client handlers share.
final class ServerCore: Sendable {
    let hub: SessionHub
    let configuration: ServerConfiguration
    let logger: Logger
    let commitPool: NIOThreadPool
    private let backgroundPool: NIOThreadPool
    private let packing = Atomic(false)
    let peakBuffered = Atomic(0)
    private let bytesSincePack = Atomic(0)
    private let clients = Mutex<[ObjectIdentifier: (channel: any Channel, drain: @Sendable () -> Void)]>([:])
    private let shutdownRequest = Mutex<(@Sendable () -> Void)?>(nil)

    init(hub: SessionHub, configuration: ServerConfiguration, logger: Logger) {
        self.hub = hub
        self.configuration = configuration
        self.logger = logger
        // Threads that wait for commits' flushes: overlapping waits share one
        // fsync, so more waiting threads let more commits share it.
        commitPool = NIOThreadPool(numberOfThreads: Self.commitThreads)
        commitPool.start()
        backgroundPool = NIOThreadPool(numberOfThreads: 1)
        backgroundPool.start()
    }

    /// Threads waiting for flushes that group together.
    static let commitThreads = 4

    var clientCount: Int { clients.withLock { $0.count } }

    func register(_ channel: any Channel, drain: @escaping @Sendable () -> Void) {
        clients.withLock { $0[ObjectIdentifier(channel)] = (channel, drain) }
    }

    func unregister(_ channel: any Channel) {
        _ = clients.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func onShutdownRequest(_ body: @escaping @Sendable () -> Void) {
        shutdownRequest.withLock { $0 = body }
    }

    func requestShutdown() {
        shutdownRequest.withLock { $0 }?()
    }

    /// Asks every client to close, then waits (up to `timeout`) for them to go.
    func drainClients(timeout: Duration) {
        for client in clients.withLock({ Array($0.values) }) { client.drain() }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clientCount > 0, clock.now < deadline { usleep(2_000) }
        for client in clients.withLock({ Array($0.values) }) { client.channel.close(promise: nil) }
    }

    func shutdownPools() {
        try? commitPool.syncShutdownGracefully()
        try? backgroundPool.syncShutdownGracefully()
    }

    /// Starts a pack in the background unless one is running.
    func startPack(reason: String) {
        guard packing.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            logger.info("pack already running", metadata: ["reason": "\(reason)"])
            return
        }
        bytesSincePack.store(0, ordering: .relaxed)
        logger.notice("pack started", metadata: ["reason": "\(reason)"])
        backgroundPool.submit { [self] state in
            defer { packing.store(false, ordering: .releasing) }
            guard state == .active else { return }
            let clock = ContinuousClock()
            let start = clock.now
            do {
                try hub.storage.pack()
                logger.notice("pack finished", metadata: ["duration": "\(clock.now - start)"])
            } catch {
                logger.error("pack failed", metadata: ["error": "\(error)"])
            }
        }
    }

    func noteBuffered(_ bytes: Int) {
        peakBuffered.max(bytes, ordering: .relaxed)
    }

    func noteCommitted(bytes: Int) {
        let total = bytesSincePack.add(bytes + 8, ordering: .relaxed).newValue
        if configuration.packAfterBytes > 0, total >= configuration.packAfterBytes {
            startPack(reason: "\(total) bytes committed since the last pack")
        }
    }
}
