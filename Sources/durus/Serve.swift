import ArgumentParser
import Dispatch
import Durus
import DurusBerkeleyDB
import DurusServer
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

extension Durability: ExpressibleByArgument {}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a store to Durus clients (Swift and Python Durus 4.3) over protocol v1.",
        discussion: """
            With no options, serves the Berkeley DB store in ./durus-data (created if missing) \
            on 127.0.0.1:2972, as `durus -s` does. SIGINT or SIGTERM stop it cleanly; after a \
            crash it starts again on the same address and store, recovering by itself.

            Examples:
              durus serve
              durus serve --db /var/lib/app --port 3000 --durability write-no-sync
              durus serve --unix /run/app/durus.sock --unix-mode 660 --unix-group app
              durus serve --db a --port 2972 --replication 127.0.0.1:7001
              durus serve --db b --port 2973 --replication 127.0.0.1:7002 --peer 127.0.0.1:7001

            With --replication, the store is one site of a group kept by Berkeley DB's \
            replication manager. The first site started with no reachable --peer creates \
            the group; others join through any peer. Every site serves loads from its own \
            copy; a replica forwards new OIDs, commits and packs to the master.
            """
    )

    @Option(help: "The store's directory.")
    var db = "durus-data"

    @Option(help: "The host or address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The TCP port to listen on.")
    var port = 2972

    @Option(help: "Listen on this Unix socket path instead of TCP.")
    var unix: String?

    @Option(help: "Owner (user name) of the Unix socket file.")
    var unixOwner: String?

    @Option(help: "Group of the Unix socket file.")
    var unixGroup: String?

    @Option(help: "Permission bits of the Unix socket file, in octal (660).")
    var unixMode: String?

    @Option(help: "What a commit promises: full (fsync), write-no-sync (survives a process crash; Durus FileStorage's level), or none.")
    var durability: Durability = .full

    @Option(help: "Berkeley DB cache size in MiB.")
    var cacheMegabytes = 64

    @Option(help: "Who may stop the server with Q: anyone, unix (Unix-socket clients only), nobody.")
    var allowQuit = "anyone"

    @Option(help: "Start a background pack after this many committed bytes (0: never).")
    var gcBytes = 0

    @Option(help: "Seconds a client may take to send a transaction once the commit exchange is its.")
    var commitTimeout = 30

    @Option(help: "Pending invalidations after which an idle client is dropped.")
    var invalidationLimit = 5_000_000

    @Flag(inversion: .prefixedNo, help: "Collect garbage on a background thread rather than before each commit returns.")
    var backgroundCollection = true

    @Option(help: "Threads serving connections.")
    var threads = 2

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = "notice"

    @Option(help: "Join a replication group: this site's replication address, HOST:PORT (not the Durus port).")
    var replication: String?

    @Option(help: "Another site's replication address, HOST:PORT (repeatable); used to join the group.")
    var peer: [String] = []

    @Option(help: "Election priority (0: never master).")
    var priority = 100

    @Option(help: "What a commit waits for: quorum, all, one or none of the sites.")
    var acks = "quorum"

    @Option(help: "Seconds new OIDs and commits at a replica wait for a master before the client is dropped.")
    var masterWait = 10

    @Option(help: "Where the other sites reach this one's Durus port, HOST:PORT (default: --host:--port, or the --replication host with --port when --host is a wildcard).")
    var advertise: String?

    /// Where replicas forward to while this site is the master.
    var serviceAddress: String {
        if let advertise { return advertise }
        let wildcard = ["0.0.0.0", "::", "[::]", ""].contains(host)
        if wildcard, let replication, let site = BerkeleyDBStorage.Replication.Address(replication) {
            return "\(site.host):\(port)"
        }
        return "\(host):\(port)"
    }

    func validate() throws {
        if let unixMode, UInt32(unixMode, radix: 8) == nil { throw ValidationError("--unix-mode takes octal digits, as 660") }
        guard ["anyone", "unix", "nobody"].contains(allowQuit) else { throw ValidationError("--allow-quit is anyone, unix or nobody") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level \(logLevel)") }
        guard (1 ... 65535).contains(port) || port == 0 else { throw ValidationError("--port is 0…65535") }
        if let replication {
            guard BerkeleyDBStorage.Replication.Address(replication) != nil else {
                throw ValidationError("--replication takes HOST:PORT, not \(replication)")
            }
            guard unix == nil, port != 0 else {
                throw ValidationError("--replication needs a TCP --port other than 0: replicas forward commits to it")
            }
        }
        for peer in peer where BerkeleyDBStorage.Replication.Address(peer) == nil {
            throw ValidationError("--peer takes HOST:PORT, not \(peer)")
        }
        if !peer.isEmpty && replication == nil { throw ValidationError("--peer needs --replication") }
        if let advertise {
            guard replication != nil else { throw ValidationError("--advertise needs --replication") }
            guard BerkeleyDBStorage.Replication.Address(advertise) != nil else {
                throw ValidationError("--advertise takes HOST:PORT, not \(advertise)")
            }
        }
        guard BerkeleyDBStorage.Replication.Acknowledgements(rawValue: acks) != nil else {
            throw ValidationError("--acks is quorum, all, one or none")
        }
        guard priority >= 0 else { throw ValidationError("--priority is 0 or more") }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "durus.serve")
        var storageConfiguration = BerkeleyDBStorage.Configuration()
        storageConfiguration.durability = durability
        storageConfiguration.cacheSize = cacheMegabytes << 20
        storageConfiguration.collectsInBackground = backgroundCollection
        storageConfiguration.onCollection = { event in logCollection(event, logger) }
        var configuration = ServerConfiguration(address: unix.map { .unix(path: $0) } ?? .tcp(host: host, port: port))
        configuration.unixSocketOwner = unixOwner
        configuration.unixSocketGroup = unixGroup
        configuration.unixSocketMode = unixMode.flatMap { UInt32($0, radix: 8) }
        configuration.quitPolicy = switch allowQuit {
        case "unix": .unixSocketOnly
        case "nobody": .nobody
        default: .anyone
        }
        configuration.packAfterBytes = gcBytes
        configuration.commitTimeout = .seconds(commitTimeout)
        configuration.invalidationLimit = invalidationLimit
        configuration.eventLoopThreads = threads
        if let replication, let local = BerkeleyDBStorage.Replication.Address(replication) {
            var settings = BerkeleyDBStorage.Replication(local: local, peers: peer.compactMap { .init($0) })
            settings.priority = priority
            settings.acknowledgements = .init(rawValue: acks) ?? .quorum
            storageConfiguration.replication = settings
        }
        do {
            let local = try BerkeleyDBStorage(path: db, configuration: storageConfiguration)
            let storage: any Storage
            if local.isReplicated {
                storage = try ReplicatedSiteStorage(local: local, serviceAddress: serviceAddress,
                                                    masterWait: .seconds(masterWait)) { role, master in
                    logger.notice("replication role", metadata: ["role": "\(role.rawValue)",
                                                                 "master": "\(master.map { "\($0)" } ?? "unknown")"])
                }
                configuration.commitLogEnd = { try local.commitLogEnd() }
                logger.notice("replicating", metadata: ["role": "\(local.role.rawValue)", "site": "\(replication ?? "")",
                                                        "master": "\(local.master.map { "\($0)" } ?? "unknown")"])
            } else {
                storage = local
            }
            let server = try DurusServer(storage: storage, configuration: configuration, logger: logger)
            logger.notice("serving", metadata: ["db": "\(db)", "durability": "\(durability.rawValue)"])
            let statusWriter = local.isReplicated ? ReplicationStatus.startWriting(local) : nil
            server.run(untilSignals: [SIGINT, SIGTERM])
            statusWriter?.stop()
            try storage.close()
            logger.notice("store closed")
        } catch {
            throw CommandFailure.report(error)
        }
    }
}

/// Logs a collection: large ones (a thousand objects or more, or any cycle
/// collection) at info, the small drains most commits cause at debug.
func logCollection(_ event: BerkeleyDBStorage.CollectionEvent, _ logger: Logger) {
    switch event {
    case .garbage(let report):
        logger.log(level: report.collected >= 1_000 ? .info : .debug, "garbage collected",
                   metadata: ["objects": "\(report.collected)", "duration": "\(formatted(report.duration))"])
    case .cycles(let report):
        logger.info("cycles collected",
                    metadata: ["collected": "\(report.collected)", "marked": "\(report.marked)",
                               "duration": "\(formatted(report.duration))"])
    }
}

/// Ends a command that failed: one line on standard error, exit status 2.
enum CommandFailure {
    static func report(_ error: any Error) -> ExitCode {
        let line = Array("durus: \(error)\n".utf8)
        _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
        return ExitCode(2)
    }
}
