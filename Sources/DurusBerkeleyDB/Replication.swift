import CBerkeleyDB
import CDurusReplication
import Durus
import Foundation
import Synchronization

extension BerkeleyDBStorage {
    /// How a store takes part in a replication group run by Berkeley DB's
    /// replication manager: log shipping, elections and acknowledgements
    /// are Berkeley DB's; this says where the sites are and how long to wait.
    ///
    /// The first site started with no reachable peer creates the group and
    /// becomes its master; a site started with a reachable peer joins through
    /// it and gets a copy of the store. A site that has been a member once
    /// remembers the group (Berkeley DB's `__db.rep.system`) and ignores
    /// ``peers`` afterwards.
    ///
    /// ```swift
    /// var configuration = BerkeleyDBStorage.Configuration()
    /// configuration.replication = .init(local: .init(host: "127.0.0.1", port: 7001),
    ///                                   peers: [.init(host: "127.0.0.1", port: 7002)])
    /// let storage = try BerkeleyDBStorage(path: "site-a", configuration: configuration)
    /// ```
    public struct Replication: Sendable, Equatable {
        /// A site's replication address: where its replication manager listens.
        public struct Address: Sendable, Hashable, CustomStringConvertible {
            public var host: String
            public var port: UInt16

            public init(host: String, port: UInt16) {
                self.host = host
                self.port = port
            }

            /// Parses `HOST:PORT`; nil for anything else.
            public init?(_ text: String) {
                guard let colon = text.lastIndex(of: ":"), case let host = String(text[..<colon]), !host.isEmpty,
                      let port = UInt16(text[text.index(after: colon)...]), port > 0 else { return nil }
                self.init(host: host, port: port)
            }

            public var description: String { "\(host):\(port)" }
        }

        /// How many sites must hold a commit before the master's commit returns.
        public enum Acknowledgements: String, Sendable, CaseIterable {
            /// A majority of the group (counting the master): no acknowledged
            /// commit is lost while a majority survives. The default.
            case quorum
            /// Every site of the group.
            case all
            /// At least one other site.
            case one
            /// None: the master does not wait (a failover may lose recent commits).
            case none
        }

        /// This site's replication address (not its Durus port).
        public var local: Address
        /// Other sites to join the group through; any one reachable is enough.
        public var peers: [Address]
        /// Election priority; the highest priority among the most up-to-date
        /// sites wins an election. 0: this site never becomes master.
        public var priority: Int = 100
        /// What a commit on the master waits for.
        public var acknowledgements: Acknowledgements = .quorum
        /// How long a commit waits for its acknowledgements. A commit not
        /// acknowledged in time throws `DurusError.commitNotDurable(reason:)`:
        /// it is stored on the master but may be lost in a failover.
        public var ackTimeout: Duration = .seconds(1)
        /// How often the master sends a heartbeat.
        public var heartbeatSend: Duration = .milliseconds(200)
        /// How long a replica hears nothing from the master before it calls an
        /// election (longer than ``heartbeatSend``).
        public var heartbeatMonitor: Duration = .milliseconds(700)
        /// How long an election waits for votes.
        public var electionTimeout: Duration = .seconds(1)
        /// The pause before a failed election is tried again.
        public var electionRetry: Duration = .milliseconds(500)
        /// The pause before a lost connection to a site is tried again.
        public var connectionRetry: Duration = .milliseconds(300)
        /// How long opening waits to join the group, for a master to be
        /// known and for the tables to arrive; also the bound on a peer that
        /// accepts a connection but never answers as a replication site.
        public var startTimeout: Duration = .seconds(30)
        /// How often a replica looks for newly replicated commits (the
        /// source of its sessions' invalidations).
        public var pollInterval: Duration = .milliseconds(2)

        public init(local: Address, peers: [Address] = []) {
            self.local = local
            self.peers = peers
        }
    }
}

/// A replicated store's part in its group.
public enum ReplicationRole: String, Sendable {
    /// Commits are made here.
    case master
    /// A copy kept up to date by the master: loads are answered here,
    /// commits must go to the master.
    case replica
    /// Not known yet (starting, or between an old master's loss and the election).
    case unknown
}

/// A position in the master's log, handed out for a commit: a replica that
/// has applied it (``BerkeleyDBStorage/waitUntilApplied(_:timeout:)``) holds
/// that commit and every earlier one. Berkeley DB's `DB_TXN_TOKEN`, 20 bytes.
public struct CommitToken: Sendable, Hashable, CustomStringConvertible {
    /// The size of a token in bytes.
    public static let size = 20
    /// The token's bytes, to carry to another site as they are.
    public let bytes: [UInt8]

    /// A token from its bytes; nil unless there are exactly ``size``.
    public init?(bytes: [UInt8]) {
        guard bytes.count == Self.size else { return nil }
        self.bytes = bytes
    }

    public var description: String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// Parses the hexadecimal form ``description`` prints.
    public init?(hex: String) {
        guard hex.count == 2 * Self.size else { return nil }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index ..< next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        self.init(bytes: bytes)
    }
}

/// Why a replicated store could not do what was asked.
public enum ReplicationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// This site is a replica: commits, new OIDs and collections go to the
    /// master (named when known).
    case notMaster(master: BerkeleyDBStorage.Replication.Address?)
    /// No master is known (an election is under way, or too few sites are up).
    case noMaster
    /// Opening could not join the group.
    case cannotJoinGroup(reason: String)
    /// A peer accepted a connection but never answered as a replication site
    /// within the start timeout. Berkeley DB's call cannot be cancelled, so
    /// the environment stays open in this process: exit it.
    case peerNotAReplicationSite(peers: [String])
    /// The commit has not reached this replica within the time allowed; it may later.
    case replicaBehind
    /// The commit will never reach this site: a failover rolled it back.
    case commitLost
    /// Configuration that cannot work, such as a read-only replicated open.
    case invalidConfiguration(String)
    /// The group told this site it is no longer a member (a site from
    /// another group took its address); it must not serve.
    case removedFromGroup

    public var description: String {
        switch self {
        case .notMaster(let master): "this site is a replica; the master is \(master.map { "\($0)" } ?? "not known")"
        case .noMaster: "no master is known in the replication group"
        case .cannotJoinGroup(let why): "cannot join the replication group: \(why)"
        case .peerNotAReplicationSite(let peers):
            "peer \(peers.joined(separator: ", ")) accepted a connection but did not answer as a Berkeley DB replication site; this process must exit"
        case .replicaBehind: "the commit has not reached this replica yet"
        case .commitLost: "the commit was rolled back by a failover and will never arrive"
        case .invalidConfiguration(let why): "invalid replication configuration: \(why)"
        case .removedFromGroup: "this site was removed from its replication group (another group's site at its address?)"
        }
    }
}

private func microseconds(_ duration: Duration) -> UInt32 {
    let (seconds, attoseconds) = duration.components
    return UInt32(clamping: max(0, seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
}

private func secondsOf(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

// MARK: Opening

extension BerkeleyDBStorage {
    /// Settings legal before the environment opens: the event callback,
    /// acknowledgements, priority, timeouts, strict two-site elections.
    static func configureReplication(_ env: UnsafeMutablePointer<DB_ENV>, _ replication: Replication) throws {
        let acks: Int32 = switch replication.acknowledgements {
        case .quorum: 0
        case .all: 1
        case .one: 2
        case .none: 3
        }
        try Engine.check(durus_rep_configure(env, acks, Int32(clamping: replication.priority),
                                             microseconds(replication.ackTimeout),
                                             microseconds(replication.heartbeatSend),
                                             microseconds(max(replication.heartbeatMonitor, replication.heartbeatSend * 2)),
                                             microseconds(replication.electionTimeout),
                                             microseconds(replication.electionRetry),
                                             microseconds(replication.connectionRetry)),
                         "configure replication")
    }

    /// The environment is open: declare the sites and start the replication
    /// manager, creating the group only when this site has never been a
    /// member and no peer is reachable; then wait for a role.
    /// Returns false when the start could not be bounded (the environment must then be leaked).
    static func startReplication(_ env: UnsafeMutablePointer<DB_ENV>, _ path: String, _ replication: Replication) throws {
        let deadline = ContinuousClock.now + replication.startTimeout
        let member = FileManager.default.fileExists(atPath: path + "/__db.rep.system")
        let reachable = member ? [] : replication.peers.filter { durus_tcp_probe($0.host, UInt32($0.port), 300) == 1 }
        let creator = !member && reachable.isEmpty
        let localCode = durus_rep_local_site(env, replication.local.host, UInt32(replication.local.port), creator ? 1 : 0)
        // EINVAL, BDB3667: another process set a different local site in this environment.
        if localCode == EINVAL { throw DurusError.storeInUse(path: path) }
        try Engine.check(localCode, "declare the local site \(replication.local)")
        for peer in replication.peers where peer != replication.local {
            try Engine.check(durus_rep_peer_site(env, peer.host, UInt32(peer.port)), "declare the peer \(peer)")
        }
        while true {
            let code = try startBounded(env, until: deadline, peers: reachable)
            if code == 0 { break }
            if code == durus_DB_REP_UNAVAIL && !member && ContinuousClock.now < deadline {
                // A peer answered but no master is known yet: never create a
                // group here (that would split it); try again.
                Thread.sleep(forTimeInterval: 0.5)
                continue
            }
            if code == durus_DB_REP_UNAVAIL {
                throw ReplicationError.cannotJoinGroup(reason: "no master answered through \(reachable.map(\.description).joined(separator: ", ")) within \(replication.startTimeout)")
            }
            throw Engine.error(code, "start replication")
        }
        // A site of a group started with peers that are none of its sites,
        // one of them answering: it was pointed at another group, which it
        // cannot join (a member keeps its own group and ignores --peer).
        if member, !replication.peers.isEmpty {
            var buffer = [CChar](repeating: 0, count: 4096)
            if durus_rep_site_names(env, &buffer, buffer.count) == 0 {
                let sites = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.split(separator: " ").map(String.init)
                let known = Set(sites.compactMap(Replication.Address.init).flatMap(resolved))
                let strangers = replication.peers.filter { $0 != replication.local && resolved($0).isDisjoint(with: known) }
                if strangers.count == replication.peers.filter({ $0 != replication.local }).count, !strangers.isEmpty,
                   strangers.contains(where: { durus_tcp_probe($0.host, UInt32($0.port), 300) == 1 }) {
                    throw ReplicationError.invalidConfiguration("\(path) is a site of a replication group whose other sites are \(sites.isEmpty ? "none" : sites.joined(separator: ", ")); --peer \(strangers.map(\.description).joined(separator: ", ")) is none of them, and a site cannot move to another group. Start a site of that group from an empty directory")
                }
            }
        }
        // A role: master, or a replica that knows its master and has caught up.
        while ContinuousClock.now < deadline {
            if durus_rep_local_site_removed(env) != 0 { throw ReplicationError.removedFromGroup }
            let role = durus_rep_role(env)
            if role == durus_role_master { return }
            if role == durus_role_replica, durus_rep_master_eid(env) >= 0, durus_rep_startup_done(env) != 0 { return }
            Thread.sleep(forTimeInterval: 0.005)
        }
        // A member that has its copy opens it and serves loads until a master appears.
        if member && FileManager.default.fileExists(atPath: path + "/meta.db") { return }
        throw ReplicationError.noMaster
    }

    /// `repmgr_start` on a thread of its own: it can block for ever on a
    /// peer that is some other service. Its return code, or
    /// ``ReplicationError/peerNotAReplicationSite(peers:)`` at the deadline.
    private static func startBounded(_ env: UnsafeMutablePointer<DB_ENV>, until deadline: ContinuousClock.Instant,
                                     peers: [Replication.Address]) throws -> Int32 {
        let result = Mutex<Int32?>(nil)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) let handle = env
        let thread = Thread {
            let code = durus_rep_start(handle)
            result.withLock { $0 = code }
            done.signal()
        }
        thread.name = "durus-repmgr-start"
        thread.start()
        let seconds = max(0.5, secondsOf(deadline - ContinuousClock.now))
        guard done.wait(timeout: .now() + seconds) == .success else {
            throw ReplicationError.peerNotAReplicationSite(peers: peers.map(\.description))
        }
        return result.withLock { $0 } ?? -1
    }
}

// MARK: State kept while open

/// What a replicated store tracks beside Berkeley DB: the commit-log watcher's
/// position, whether the master's in-memory counters are current, the last
/// commit token, lag.
final class ReplicationState: @unchecked Sendable {
    let configuration: BerkeleyDBStorage.Replication
    struct Watch {
        /// The last commit-log sequence number read (or written, as master).
        var sequence: UInt64 = 0
        /// Whether the counters and OID allocator reflect this site as master.
        var masterLoaded = false
        /// Seconds between a commit on the master and its arrival here, last seen.
        var lagSeconds: Double = 0
        /// The OIDs of a commit this site forwarded to the master: its entry
        /// is not reported by sync() (the hub told the other sessions already).
        var ownCommit: Set<OID>?
    }
    private let watch = Mutex(Watch())
    /// Set when a rollback or an internal init made the tables be reopened:
    /// the next look at the watch rereads the latest entries (see `rewindOnRollback`).
    /// A flag, not a change under `watch`, since the reopening can happen
    /// inside a read the watcher makes while it holds `watch`.
    private let rewindPending = Atomic<Bool>(false)
    let lastToken = Mutex<CommitToken?>(nil)
    private let stopped = Mutex(false)
    private let finished = Mutex(true)

    init(configuration: BerkeleyDBStorage.Replication) {
        self.configuration = configuration
    }

    /// Runs `body` with the watch, first applying a rewind asked for by ``rewindAfterReopen()``.
    func withWatch<T: Sendable, E: Error>(_ body: (inout Watch) throws(E) -> T) throws(E) -> T {
        try watch.withLock { watch throws(E) -> T in
            if rewindPending.exchange(false, ordering: .acquiringAndReleasing) {
                watch.sequence = watch.sequence > rewindOnRollback ? watch.sequence - rewindOnRollback : 0
                watch.masterLoaded = false
            }
            return try body(&watch)
        }
    }

    /// The tables were reopened after a rollback or an internal init: what
    /// was read last may have been replaced.
    func rewindAfterReopen() { rewindPending.store(true, ordering: .releasing) }

    /// Starts the watcher thread, which feeds replicated commits' OIDs to ``BerkeleyDBStorage/sync()``.
    func startWatcher(_ storage: BerkeleyDBStorage) {
        finished.withLock { $0 = false }
        let interval = max(0.0002, secondsOf(configuration.pollInterval))
        let thread = Thread { [weak storage, self] in
            while !self.stopped.withLock({ $0 }) {
                guard let storage else { break }
                storage.watchCommitLog()
                Thread.sleep(forTimeInterval: interval)
            }
            self.finished.withLock { $0 = true }
        }
        thread.name = "durus-replication-watcher"
        thread.start()
    }

    func stop() {
        stopped.withLock { $0 = true }
        while !finished.withLock({ $0 }) { Thread.sleep(forTimeInterval: 0.001) }
    }
}

/// `address` as numeric `ip:port` strings (every address its host resolves
/// to), or its own text when it does not resolve.
private func resolved(_ address: BerkeleyDBStorage.Replication.Address) -> Set<String> {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(address.host, String(address.port), &hints, &list) == 0, let first = list else {
        return [address.description]
    }
    defer { freeaddrinfo(first) }
    var found: Set<String> = []
    var entry: UnsafeMutablePointer<addrinfo>? = first
    while let current = entry {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        if getnameinfo(current.pointee.ai_addr, current.pointee.ai_addrlen, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
            found.insert("\(host.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }):\(address.port)")
        }
        entry = current.pointee.ai_next
    }
    return found.isEmpty ? [address.description] : found
}

/// How far back a watcher rereads the commit log after a demotion or a
/// rollback: entries an old master wrote and lost may have been written
/// again by the new master under the same numbers. Rereading is harmless
/// (an invalidation too many only costs a reload).
private let rewindOnRollback: UInt64 = 1_000
/// Entries kept in the commit log; a replica further behind than this sees
/// a gap and reports it (``BerkeleyDBStorage/commitLogGaps``).
let commitLogRetention: UInt64 = 100_000

extension BerkeleyDBStorage {
    /// Whether this store is replicated.
    public var isReplicated: Bool { replicationState != nil }

    /// This site's role in its group; ``ReplicationRole/master`` for a store
    /// that is not replicated.
    public var role: ReplicationRole {
        guard replicationState != nil else { return .master }
        // Read with the handles open: after close the environment is gone.
        guard let code = try? reading({ () throws in durus_rep_role(env) }) else { return .unknown }
        switch code {
        case durus_role_master: return .master
        case durus_role_replica: return .replica
        default: return .unknown
        }
    }

    /// The master's replication address, when one is known (this site's own
    /// when it is the master); nil for a store that is not replicated.
    public var master: Replication.Address? {
        guard let state = replicationState else { return nil }
        return try? reading { () throws -> Replication.Address? in
            let eid = durus_rep_master_eid(env)
            if eid == -2 { return state.configuration.local }
            guard eid >= 0 else { return nil }
            var buffer = [CChar](repeating: 0, count: 256)
            var port: UInt32 = 0
            guard durus_rep_site_address(env, eid, &buffer, buffer.count, &port) == 0 else { return nil }
            let host = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            return Replication.Address(host: host, port: UInt16(truncatingIfNeeded: port))
        }
    }

    /// Waits until this site has `role` (for ``ReplicationRole/replica``:
    /// and knows its master), or `timeout` passes.
    /// - Throws: ``ReplicationError/noMaster`` at the timeout.
    public func waitForRole(_ wanted: ReplicationRole, timeout: Duration) throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let now = role
            if now == wanted && (wanted != .replica || master != nil) { return }
            if ContinuousClock.now >= deadline { throw ReplicationError.noMaster }
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    /// Waits until a master is known and returns its address.
    /// - Throws: ``ReplicationError/noMaster`` when none is known within `timeout`.
    public func waitForMaster(timeout: Duration) throws -> Replication.Address {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let master { return master }
            if ContinuousClock.now >= deadline { throw ReplicationError.noMaster }
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    /// The token of the latest commit made through this storage as master:
    /// a replica that has applied it holds every commit made here before it.
    public var lastCommitToken: CommitToken? { replicationState?.lastToken.withLock { $0 } }

    /// Waits until this site has applied the commit `token` names (at once
    /// on the master and when already applied).
    /// - Throws: ``ReplicationError/replicaBehind`` when it has not arrived
    ///   within `timeout`; ``ReplicationError/commitLost`` when it never will.
    public func waitUntilApplied(_ token: CommitToken, timeout: Duration) throws {
        guard replicationState != nil else { return }
        let deadline = ContinuousClock.now + timeout
        while true {
            let left = max(Duration.zero, deadline - ContinuousClock.now)
            let code = try reading { () throws in
                token.bytes.withUnsafeBytes { durus_txn_applied(env, $0.baseAddress, microseconds(left)) }
            }
            switch code {
            case 0, durus_DB_KEYEMPTY: return
            case durus_DB_TIMEOUT: throw ReplicationError.replicaBehind
            case durus_DB_NOTFOUND: throw ReplicationError.commitLost
            case durus_DB_LOCK_DEADLOCK, durus_DB_REP_LOCKOUT:
                // Locked out during a role change or a sync: try again until the deadline.
                if ContinuousClock.now >= deadline { throw ReplicationError.replicaBehind }
                Thread.sleep(forTimeInterval: 0.02)
            default:
                throw Engine.error(code, "wait for a commit to be applied")
            }
        }
    }

    /// The last commit-log sequence number this site has seen (written as
    /// master, or read as replica).
    public var appliedSequence: UInt64 { replicationState?.withWatch { $0.sequence } ?? 0 }

    /// Replication lag last seen here: seconds between a commit on the master
    /// and its arrival at this site (0 on the master), and log bytes this
    /// replica knows it is missing.
    public var replicationLag: (seconds: Double, bytes: UInt64) {
        guard let state = replicationState else { return (0, 0) }
        var bytes: UInt64 = 0
        if role == .replica { _ = try? reading { () throws in durus_rep_lag_bytes(env, &bytes) } }
        return (role == .master ? 0 : state.withWatch { $0.lagSeconds }, bytes)
    }

    /// The group's sites other than this one, and how many are connected now.
    public var replicationSites: (known: Int, connected: Int) {
        guard replicationState != nil else { return (0, 0) }
        var all: UInt32 = 0
        var connected: UInt32 = 0
        _ = try? reading { () throws in durus_rep_site_counts(env, &all, &connected) }
        return (Int(all), Int(connected))
    }

    /// Reads commit-log entries a replica has received since the last look
    /// and adds their OIDs to what ``sync()`` reports. Does nothing on a master.
    func watchCommitLog() {
        guard let state = replicationState, let log = commitLog else { return }
        if durus_rep_local_site_removed(env) != 0 { return }
        let master = durus_rep_role(env) == durus_role_master
        if master { return }
        state.withWatch { watch in
            if watch.masterLoaded {
                // Demoted: what this site wrote last may be rolled back and rewritten.
                watch.masterLoaded = false
                watch.sequence = watch.sequence > rewindOnRollback ? watch.sequence - rewindOnRollback : 0
            }
            do {
                try readCommitLog(log, after: &watch)
            } catch {
                // Locked out, deadlocked or a dead handle: the next tick tries again.
            }
        }
    }

    /// Reads entries after `watch.sequence` into `collected`; under the watch lock.
    private func readCommitLog(_ log: Table, after watch: inout ReplicationState.Watch) throws {
        var oids: [OID] = []
        var last = watch.sequence
        var newestStamp: UInt64 = 0
        var own = watch.ownCommit
        try reading { () throws in
            try readTransaction { txn in
                oids = []
                last = watch.sequence
                own = watch.ownCommit
                try log.entries(after: watch.sequence, limit: 10_000, txn: txn) { sequence, value in
                    last = sequence
                    guard value.count >= 8 else { return }
                    newestStamp = UInt64(bigEndian: value.loadUnaligned(as: UInt64.self))
                    var entry: [OID] = []
                    var offset = 8
                    while offset + 8 <= value.count {
                        entry.append(OID(UInt64(bigEndian: value.loadUnaligned(fromByteOffset: offset, as: UInt64.self))))
                        offset += 8
                    }
                    if let mine = own, mine.count == entry.count, mine == Set(entry) {
                        own = nil
                        return
                    }
                    oids.append(contentsOf: entry)
                }
            }
        }
        watch.ownCommit = own
        guard last != watch.sequence else { return }
        if !oids.isEmpty { collected.withLock { $0.append(contentsOf: oids) } }
        watch.sequence = last
        if newestStamp > 0 {
            let now = UInt64(Date().timeIntervalSince1970 * 1e6)
            watch.lagSeconds = now > newestStamp ? Double(now - newestStamp) / 1e6 : 0
        }
    }

    /// Loads `oids` and reads the commit log's end in the same transaction:
    /// every commit the records could reflect is at or before that end.
    /// A replica uses it to know which commits its sessions must hear of.
    public func bulkLoadWithCommitLogEnd(_ oids: [OID]) throws -> (records: [Record], end: UInt64) {
        try reading { () throws in
            try snapshot { txn in
                let loaded = try oids.map { oid in
                    guard let bytes = try records.get(oid, txn: txn) else { throw DurusError.keyNotFound(oid) }
                    return try Record(bytes: bytes)
                }
                return (loaded, try commitLog?.lastSequence(txn: txn) ?? 0)
            }
        }
    }

    /// The last commit-log sequence number in this site's copy (0 when
    /// none): what a replica forwarding a commit here waits to hold.
    public func commitLogEnd() throws -> UInt64 {
        guard let log = commitLog else { return 0 }
        return try reading { () throws in try readTransaction { txn in try log.lastSequence(txn: txn) } }
    }

    /// Waits until this site's copy holds commit-log entry `sequence` (and
    /// so every commit up to it), and its OIDs are ready for ``sync()``.
    /// - Throws: ``ReplicationError/replicaBehind`` after `timeout`.
    public func waitForSequence(_ sequence: UInt64, timeout: Duration) throws {
        guard let state = replicationState, let log = commitLog else { return }
        let deadline = ContinuousClock.now + timeout
        while true {
            let reached = try state.withWatch { watch in
                if watch.sequence < sequence { try readCommitLog(log, after: &watch) }
                return watch.sequence >= sequence
            }
            if reached { return }
            if ContinuousClock.now >= deadline { throw ReplicationError.replicaBehind }
            Thread.sleep(forTimeInterval: 0.0005)
        }
    }

    /// Before a replicated open of `path`: a store made without replication
    /// either founds a group (no peer answers: the environment is closed
    /// cleanly and its shared regions removed, so it reopens replicated with
    /// its contents) or is refused (a peer answers: joining would replace
    /// the store with the group's copy). Anything else passes unchanged.
    static func admitToReplication(_ path: String, _ replication: Replication) throws {
        let fm = FileManager.default
        guard fm.fileExists(atPath: path + "/meta.db"), !fm.fileExists(atPath: path + "/__db.rep.system") else { return }
        let answering = replication.peers.filter { durus_tcp_probe($0.host, UInt32($0.port), 300) == 1 }
        guard answering.isEmpty else {
            throw ReplicationError.invalidConfiguration("\(path) holds a store made without replication; joining the group through \(answering.map(\.description).joined(separator: ", ")) would replace it with the group's copy. Start a joining site from an empty directory; to replicate this store, start it with no peer that answers: it founds a group with its contents")
        }
        // Recovered and closed cleanly, then without its shared regions
        // (made without replication, they cannot be joined with it).
        var plain = Configuration()
        plain.cacheSize = 8 << 20
        try BerkeleyDBStorage(path: path, configuration: plain).close()
        let lock = try takeWriterLock(path, readOnly: false)
        defer { Foundation.close(lock) }
        for file in (try? fm.contentsOfDirectory(atPath: path)) ?? [] where file.hasPrefix("__db.") {
            try? fm.removeItem(atPath: path + "/" + file)
        }
    }

    /// Adds `oids` to what ``sync()`` reports next: objects changed by
    /// commits this site knows of before its copy holds them.
    public func reportInvalidations(_ oids: [OID]) {
        guard !oids.isEmpty else { return }
        collected.withLock { $0.append(contentsOf: oids) }
    }

    /// Tells the commit-log reader that a commit of exactly `oids` is this
    /// site's own, forwarded to the master: its entry is left out of what
    /// ``sync()`` reports (the sessions here heard of it from the hub).
    public func expectOwnCommit(_ oids: [OID]) {
        replicationState?.withWatch { $0.ownCommit = Set(oids) }
    }

    /// Forgets ``expectOwnCommit(_:)`` (the commit was refused).
    public func forgetOwnCommit() {
        replicationState?.withWatch { $0.ownCommit = nil }
    }

    /// Records, on the master, the address where this site serves Durus
    /// clients, so that replicas can forward commits to it. Does nothing
    /// when it is recorded already or this site is not the master.
    public func advertise(serviceAddress: String) throws {
        guard let state = replicationState, role == .master else { return }
        let key = "service-address \(state.configuration.local)"
        guard try reading({ () throws in try readTransaction { txn in try meta.string(key, txn: txn) } }) != serviceAddress else { return }
        try reading { () throws in
            try requireWritable()
            try writeTransaction { txn in try meta.putString(key, serviceAddress, txn: txn) }
        }
    }

    /// The address where `site` serves Durus clients, as it advertised
    /// (``advertise(serviceAddress:)``) and replication brought here.
    public func serviceAddress(of site: Replication.Address) -> String? {
        // In a transaction: a call without one waits 5 s when it meets a role change.
        try? reading { () throws in try readTransaction { txn in try meta.string("service-address \(site)", txn: txn) } }
    }

    /// This site's replication address, when replicated.
    public var replicationAddress: Replication.Address? { replicationState?.configuration.local }

    /// On the master, before the first change after becoming master: the
    /// counters and OID reservation are read again from the replicated
    /// metadata, and commit-log entries not yet read are turned into
    /// invalidations, so nothing this site applied as a replica is missed.
    /// Call with `writer` held.
    func loadMasterState(_ counters: inout Counters) throws {
        guard let state = replicationState else { return }
        guard durus_rep_role(env) == durus_role_master else {
            throw ReplicationError.notMaster(master: master)
        }
        if durus_rep_local_site_removed(env) != 0 { throw ReplicationError.removedFromGroup }
        let loaded = try state.withWatch { watch in
            guard !watch.masterLoaded else { return false }
            if let log = commitLog { try readCommitLog(log, after: &watch) }
            let (reserved, objects, bytes, format) = try readTransaction { txn in
                (try meta.uint64("next-oid", txn: txn), try meta.uint64("objects", txn: txn), try meta.uint64("bytes", txn: txn),
                 try meta.uint64("format", txn: txn))
            }
            counters.omitsCountOfOne = format >= 2
            oids.withLock { allocator in
                allocator = OIDAllocator(next: reserved, reserved: reserved)
            }
            counters.objects = objects
            counters.bytes = bytes
            counters.garbageQueued = true
            counters.drain = nil
            counters.logSequence = nil
            watch.masterLoaded = true
            return true
        }
        // A group whose store is of format 1: its new master brings it to format 2.
        if loaded, !counters.omitsCountOfOne { try upgradeCounts(&counters) }
    }

    /// Appends a commit-log entry (the OIDs a commit changed or a collection
    /// deleted) in `txn`, on a replicated master; drops the entry that falls
    /// out of the retention window.
    func appendCommitLog(_ oids: [OID], _ counters: inout Counters, txn: Txn) throws {
        guard replicationState != nil, let log = commitLog, !oids.isEmpty else { return }
        let sequence: UInt64
        if let known = counters.logSequence {
            sequence = known + 1
        } else {
            sequence = try log.lastSequence(txn: txn) + 1
        }
        var value = [UInt8]()
        value.reserveCapacity(8 + 8 * oids.count)
        withUnsafeBytes(of: UInt64(Date().timeIntervalSince1970 * 1e6).bigEndian) { value.append(contentsOf: $0) }
        for oid in oids { value.append(contentsOf: oid.bytes) }
        try log.put(OID(sequence), value, txn: txn)
        if sequence > commitLogRetention { try log.delete(OID(sequence - commitLogRetention), txn: txn) }
        counters.logSequence = sequence
    }

    /// After a commit with a log entry has been made: the watcher's position follows it.
    func noteCommitLogWritten(_ counters: Counters) {
        guard let state = replicationState, let sequence = counters.logSequence else { return }
        state.withWatch { $0.sequence = max($0.sequence, sequence) }
    }

    /// Runs `body` in a degree-3 read transaction (replicas cannot read
    /// snapshots), retried when it loses a deadlock to replication's apply.
    func readTransaction<T>(_ body: (Txn) throws -> T) throws -> T {
        var attempt = 0
        while true {
            var txn: Txn?
            let begun = durus_txn_begin(env, &txn, 0)
            if begun == durus_DB_REP_LOCKOUT && attempt < Self.deadlockRetries {
                attempt += 1
                Thread.sleep(forTimeInterval: 0.005)
                continue
            }
            try Engine.check(begun, "begin a read transaction")
            do {
                let result = try body(txn!)
                try Engine.check(durus_txn_commit(txn, 0), "end a read transaction")
                return result
            } catch let error as BerkeleyDBError
                where (error.code == durus_DB_LOCK_DEADLOCK || error.code == durus_DB_REP_LOCKOUT) && attempt < Self.deadlockRetries {
                _ = durus_txn_abort(txn)
                attempt += 1
                Thread.sleep(forTimeInterval: error.code == durus_DB_REP_LOCKOUT ? 0.005 : 0.0005)
            } catch {
                _ = durus_txn_abort(txn)
                throw error
            }
        }
    }

    /// Opens a table on a replica: without creating it, waiting until
    /// replication has brought it.
    static func openReplicatedTable(_ env: UnsafeMutablePointer<DB_ENV>, _ file: String, until deadline: ContinuousClock.Instant,
                                    _ configuration: Configuration, _ path: String) throws -> Table {
        while true {
            do {
                return try openTable(env, file, durus_DB_UNKNOWN, create: false, configuration, path)
            } catch {
                if ContinuousClock.now >= deadline {
                    throw ReplicationError.cannotJoinGroup(reason: "\(file) did not arrive from the master: \(error)")
                }
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
    }
}

// MARK: The commit-log table

extension Table {
    /// The highest sequence number in a commit log; 0 when empty.
    func lastSequence(txn: Txn) throws -> UInt64 {
        try withCursor(txn: txn) { cursor in try cursor.lastKey()?.rawValue ?? 0 }
    }

    /// Calls `body` with each entry after `sequence`, in order, at most `limit`.
    func entries(after sequence: UInt64, limit: Int, txn: Txn,
                 _ body: (UInt64, UnsafeRawBufferPointer) throws -> Void) throws {
        var dbc: UnsafeMutablePointer<DBC>?
        try Engine.check(durus_cursor_open(handle, txn, &dbc, 0), "open a cursor on \(name)")
        defer { _ = durus_cursor_close(dbc) }
        var key = (sequence + 1).bigEndian
        var position = durus_DB_SET_RANGE
        var count = 0
        var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 8)
        defer { buffer.deallocate() }
        while count < limit {
            var klen: UInt32 = 8
            var dlen: UInt32 = 0
            let code = durus_cursor_entry(dbc, position, &key, 8, &klen, buffer.baseAddress, UInt32(buffer.count), &dlen)
            if code == durus_DB_NOTFOUND { return }
            if code == durus_DB_BUFFER_SMALL {
                buffer.deallocate()
                buffer = .allocate(byteCount: Int(dlen) * 2, alignment: 8)
                continue
            }
            try Engine.check(code, "read \(name)")
            guard klen == 8 else { throw DurusError.corruptStore(path: name, reason: "a commit-log key of \(klen) bytes") }
            try body(UInt64(bigEndian: key), UnsafeRawBufferPointer(rebasing: buffer[..<Int(dlen)]))
            position = durus_DB_NEXT
            count += 1
        }
    }

    /// Closes the handle and opens the file again (after Berkeley DB
    /// declared it dead: a rollback or an internal init replaced the file's
    /// contents under it). Only while no other thread uses the table.
    func reopen(_ env: UnsafeMutablePointer<DB_ENV>) throws {
        _ = durus_db_close(handle)
        handle = try Engine.openHandle(env, file: name, name: name, type: durus_DB_UNKNOWN,
                                       flags: durus_DB_THREAD | durus_DB_AUTO_COMMIT)
    }
}
