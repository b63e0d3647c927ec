import Durus
import DurusClient
import Foundation
import Synchronization

/// The storage one site of a replication group serves (`durus serve
/// --replication`): loads from its own copy always; new OIDs, commits and
/// packs on its own store while it is the master, and forwarded to the
/// master over protocol v1 while it is a replica.
///
/// A forwarded commit keeps every guarantee a client has at the master:
///
/// - When the exchange begins, this site takes the master's commit
///   exchange (no other commit can begin there meanwhile), asks the master
///   for its commit-log end, and waits until its own copy holds it. The
///   commits the master announced but is still applying are named by its
///   answer to the exchange: the invalidations the committing client then
///   gets are complete.
/// - The client's transaction goes to the master; once the master accepts
///   it, this site waits until its copy holds the master's commit-log end
///   again, so the client reads its own write here at once.
/// - Every session of this site gets the commit's OIDs exactly once: the
///   hub tells the others; the commit log's entry for it is skipped.
///
/// While no master is known, new OIDs, commits and packs wait up to
/// ``masterWait`` and then throw ``ReplicationError/noMaster``; loads go on.
public final class ReplicatedSiteStorage: Storage, @unchecked Sendable {
    /// This site's replicated store.
    public let local: BerkeleyDBStorage
    /// Where this site serves Durus clients (`host:port`), advertised to the
    /// group while it is the master.
    public let serviceAddress: String
    /// How long new OIDs, commits and packs wait for a master to be known.
    public let masterWait: Duration
    /// How long a forwarded commit waits to arrive here.
    public let applyWait: Duration

    private struct Link {
        var address: String?
        var commits: ClientStorage?
        var probe: ClientStorage?
        var oids: [OID] = []
        /// The connection holding the master's exchange, between
        /// ``prepareCommitExchange()`` and the commit or abandon.
        var exchange: ClientStorage?
    }

    private let link = Mutex(Link())
    /// Held while the forwarding connection is in use (from the start of a
    /// commit exchange to its end, which may come on another thread: a semaphore).
    private let line = DispatchSemaphore(value: 1)
    private let stopped = Mutex(false)
    private let advertiserDone = DispatchSemaphore(value: 0)

    /// Serves `local` (a store opened with a replication configuration).
    /// `onRoleChange` is called (on a thread of its own) each time this
    /// site's role or its master changes, for logging.
    public init(local: BerkeleyDBStorage, serviceAddress: String,
                masterWait: Duration = .seconds(10), applyWait: Duration = .seconds(10),
                onRoleChange: (@Sendable (ReplicationRole, BerkeleyDBStorage.Replication.Address?) -> Void)? = nil) throws {
        guard local.isReplicated else {
            throw ReplicationError.invalidConfiguration("the store is not replicated")
        }
        self.local = local
        self.serviceAddress = serviceAddress
        self.masterWait = masterWait
        self.applyWait = applyWait
        let done = advertiserDone
        let thread = Thread { [weak self] in
            var seen: (ReplicationRole, BerkeleyDBStorage.Replication.Address?)?
            while let self, !self.stopped.withLock({ $0 }) {
                let now = (local.role, local.master)
                if seen == nil || seen!.0 != now.0 || seen!.1 != now.1 {
                    seen = now
                    onRoleChange?(now.0, now.1)
                }
                // A master tells the group where it serves.
                if now.0 == .master { try? local.advertise(serviceAddress: serviceAddress) }
                Thread.sleep(forTimeInterval: 0.01)
            }
            done.signal()
        }
        thread.name = "durus-replication-advertiser"
        thread.start()
    }

    deinit { try? close() }

    // MARK: Loads: always here

    /// A replica's copy changes under its sessions as commits arrive: after
    /// each load, ``sync()`` reports every commit the load could have seen.
    public var reportsInvalidationsAfterLoads: Bool { true }

    public func load(_ oid: OID) throws -> Record { try bulkLoad([oid])[0] }

    public func bulkLoad(_ oids: [OID]) throws -> [Record] {
        guard local.role != .master else { return try local.bulkLoad(oids) }
        // The commit log's end in the load's own transaction: every commit
        // the records could reflect is read into sync() before they are handed out.
        let (records, end) = try local.bulkLoadWithCommitLogEnd(oids)
        if end > local.appliedSequence { try local.waitForSequence(end, timeout: applyWait) }
        return records
    }


    /// The OIDs of commits (and collections) read from the commit log so far:
    /// by the loads, by a forwarded commit's wait, or by the watcher, which
    /// polls every ``BerkeleyDBStorage/Replication/pollInterval``.
    public func sync() throws -> [OID] { try local.sync() }

    public func forEachRecord(_ body: (Record) throws -> Void) throws { try local.forEachRecord(body) }

    // MARK: Changes: here on the master, forwarded on a replica

    public func newOID() throws -> OID { try newOIDs(count: 1)[0] }

    public func newOIDs(count: Int) throws -> [OID] {
        let deadline = ContinuousClock.now + masterWait
        while true {
            if local.role == .master { return try local.newOIDs(count: count) }
            if let taken = takeOIDs(count) { return taken }
            do {
                try withLine { connection in try refill(connection, wanted: count) }
            } catch let error where Self.isLinkFailure(error) && ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    public func prepareCommitExchange() throws {
        let deadline = ContinuousClock.now + masterWait
        while true {
            if local.role == .master { return }
            do {
                return try beginForwardedExchange()
            } catch let error where Self.isLinkFailure(error) && ContinuousClock.now < deadline {
                // The master went away before this commit reached it: wait
                // for the election and take the new master's exchange.
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
    }

    private func beginForwardedExchange() throws {
        try acquireLine()
        var began: ClientStorage?
        do {
            let connection = try forwardingConnection()
            try refill(connection, wanted: 256)
            let told = try connection.beginCommit()
            began = connection
            try local.waitForSequence(try probe().commitLogEnd(), timeout: applyWait)
            // The master may still be applying commits whose exchanges ended
            // (its hub lands them after the exchange): they are past its
            // commit-log end, but its answer names their OIDs. Every session
            // here hears of them now, the committing one included.
            local.reportInvalidations(told)
            link.withLock { $0.exchange = connection }
        } catch {
            if let began { try? began.abandonCommit() }
            line.signal()
            resetLinkAfter(error)
            throw error
        }
    }

    public func abandonCommitExchange() {
        guard let connection = link.withLock({ link in defer { link.exchange = nil }; return link.exchange }) else { return }
        do { try connection.abandonCommit() } catch { resetLinkAfter(error) }
        line.signal()
    }

    public func commit(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws {
        guard let connection = link.withLock({ link in defer { link.exchange = nil }; return link.exchange }) else {
            try local.commit(records, handleInvalidations: handleInvalidations)
            return
        }
        do {
            try handleInvalidations([])
        } catch {
            link.withLock { $0.exchange = connection }
            abandonCommitExchange()
            throw error
        }
        guard !records.isEmpty else {
            link.withLock { $0.exchange = connection }
            abandonCommitExchange()
            return
        }
        local.expectOwnCommit(records.map(\.oid))
        do {
            try connection.finishCommit(records)
        } catch {
            local.forgetOwnCommit()
            line.signal()
            resetLinkAfter(error)
            throw error
        }
        line.signal()
        do {
            try local.waitForSequence(try probe().commitLogEnd(), timeout: applyWait)
        } catch {
            throw DurusError.commitNotDurable(reason: "committed at the master, but not yet applied at this site: \(error)")
        }
    }

    public func commitAwaitingFlush(_ records: [Record], handleInvalidations: ([OID]) throws -> Void) throws -> PendingFlush? {
        if link.withLock({ $0.exchange == nil }) {
            return try local.commitAwaitingFlush(records, handleInvalidations: handleInvalidations)
        }
        try commit(records, handleInvalidations: handleInvalidations)
        return nil
    }

    /// While this site is the master, the hub hands it the commits it
    /// received after their exchanges ended, as they arrive, to apply in
    /// batches (see ``commitAwaitingFlush(batch:)``): one wait for the
    /// replicas' acknowledgements serves every commit of a batch.
    public var appliesCommitsAfterTheExchange: Bool {
        local.role == .master && link.withLock { $0.exchange == nil }
    }

    /// Commits `batch` in one transaction on this site's store while it is
    /// the master (a site demoted meanwhile refuses them); otherwise one at a time.
    public func commitAwaitingFlush(batch: [[Record]]) -> [Result<PendingFlush?, any Error>] {
        guard link.withLock({ $0.exchange == nil }) else {
            return batch.map { records in Result { try commitAwaitingFlush(records, handleInvalidations: { _ in }) } }
        }
        return local.commitAwaitingFlush(batch: batch)
    }

    /// Collects garbage on the master: here when this site is the master,
    /// else asked of the master.
    public func pack() throws {
        if local.role == .master { return try local.pack() }
        try withLine { connection in try connection.pack() }
    }

    /// Stops forwarding and closes the local store.
    public func close() throws {
        guard !stopped.withLock({ stopped in defer { stopped = true }; return stopped }) else { return }
        _ = advertiserDone.wait(timeout: .now() + 2)
        dropLink()
        try local.close()
    }

    // MARK: The link to the master

    private func takeOIDs(_ count: Int) -> [OID]? {
        link.withLock { link in
            guard link.oids.count >= count else { return nil }
            defer { link.oids.removeFirst(count) }
            return Array(link.oids.prefix(count))
        }
    }

    /// Fetches OIDs from the master until at least `wanted` are pooled.
    private func refill(_ connection: ClientStorage, wanted: Int) throws {
        while link.withLock({ $0.oids.count }) < wanted {
            let fetched = try connection.newOIDs(count: 255)
            link.withLock { $0.oids += fetched }
        }
    }

    private func acquireLine() throws {
        guard line.wait(timeout: .now() + Double(masterWait.components.seconds)) == .success else {
            throw ReplicationError.noMaster
        }
    }

    private func withLine<T>(_ body: (ClientStorage) throws -> T) throws -> T {
        try acquireLine()
        defer { line.signal() }
        do {
            return try body(try forwardingConnection())
        } catch {
            resetLinkAfter(error)
            throw error
        }
    }

    /// The master's Durus address, waiting up to ``masterWait`` for one to be
    /// known and to have advertised where it serves.
    private func masterServiceAddress() throws -> String {
        let deadline = ContinuousClock.now + masterWait
        while true {
            if let master = local.master, master != local.replicationAddress,
               let address = local.serviceAddress(of: master) {
                return address
            }
            if local.role == .master { throw ReplicationError.notMaster(master: nil) }
            if ContinuousClock.now >= deadline { throw ReplicationError.noMaster }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    private func forwardingConnection() throws -> ClientStorage {
        let address = try masterServiceAddress()
        if let current = link.withLock({ $0.address == address ? $0.commits : nil }) { return current }
        dropLink()
        guard let service = Self.parse(address) else {
            throw ReplicationError.invalidConfiguration("the master advertised \(address), not HOST:PORT")
        }
        let connection = try ClientStorage(address: service, connectTimeout: .seconds(2), ioTimeout: .seconds(30))
        link.withLock { link in
            link.address = address
            link.commits = connection
            // OIDs of another master: its reservations may not have reached this one.
            link.oids = []
        }
        return connection
    }

    /// A second connection to the master for ``ClientStorage/commitLogEnd()``,
    /// usable while the first holds the master's commit exchange.
    private func probe() throws -> ClientStorage {
        let (address, current) = link.withLock { ($0.address, $0.probe) }
        if let current { return current }
        guard let address, let service = Self.parse(address) else { throw ReplicationError.noMaster }
        let connection = try ClientStorage(address: service, connectTimeout: .seconds(2), ioTimeout: .seconds(30))
        link.withLock { $0.probe = connection }
        return connection
    }

    /// A failure of the link to the master (it died, or stopped being master):
    /// worth trying again once a master is known.
    private static func isLinkFailure(_ error: any Error) -> Bool {
        switch error {
        case DurusError.network, DurusError.closed, DurusError.protocolViolation, ReplicationError.noMaster,
             ReplicationError.notMaster: true
        default: false
        }
    }

    /// After a network failure, the next request connects afresh (to
    /// whichever site is master by then).
    private func resetLinkAfter(_ error: any Error) {
        switch error {
        case DurusError.network, DurusError.closed, DurusError.protocolViolation: dropLink()
        default: break
        }
    }

    private func dropLink() {
        let old = link.withLock { link in
            defer { link = Link() }
            return [link.commits, link.probe]
        }
        for connection in old.compactMap({ $0 }) { try? connection.close() }
    }

    private static func parse(_ text: String) -> ServerAddress? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return nil }
        return .tcp(host: String(text[..<colon]), port: port)
    }
}
