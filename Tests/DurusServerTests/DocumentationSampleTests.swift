import Durus
import DurusBerkeleyDB
import DurusClient
import DurusServer
import DurusTestSupport
import Foundation
import Synchronization
import Testing

/// The Swift samples of DurusServer's DocC articles, as written there, run
/// against a BerkeleyDBStorage in a temporary directory (paths changed),
/// with checks of what the articles say they do.
@Suite struct DocumentationSampleTests {
    final class Account: Persistent<Account.State> {
        struct State: PersistentState {
            var owner = ""
            var balance = 0
        }
        var owner: String { get { state.owner } set { state.owner = newValue } }
        var balance: Int { get { state.balance } set { state.balance = newValue } }
    }

    final class Bank: Persistent<Bank.State> {
        struct State: PersistentState { var accounts: [String: Account] = [:] }
        var accounts: [String: Account] { get { state.accounts } set { state.accounts = newValue } }
    }

    // MARK: Serving.md

    /// The in-process server: `run()` serves a Swift client of the socket
    /// beside the program's own connections, until the client's `Q`; it then
    /// returns, the socket file is gone, and the owner closes the store.
    @Test func anInProcessServerServesUntilQAndRemovesItsSocket() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let socket = directory.file("bank.sock")
        let database = try Database(storage: BerkeleyDBStorage(path: directory.file("bank.db")), root: Bank.self,
                                    types: [Account.self])
        let server = try DurusServer(hub: database.hub,
                                     configuration: ServerConfiguration(address: .unix(path: socket)))
        #expect(FileManager.default.fileExists(atPath: socket))
        let returned = Atomic(false)
        let runner = Thread {
            server.run()                    // until SIGINT or SIGTERM, a client's Q, or shutdown()
            returned.store(true, ordering: .releasing)
        }
        runner.start()

        let remote = try Database(storage: ClientStorage(address: .unix(path: socket)),
                                  root: Bank.self, types: [Account.self])
        try remote.transaction { try $0.root(Bank.self).accounts["alice"] = Account() }
        #expect(try database.open().root(Bank.self).accounts.keys.sorted() == ["alice"], "one hub, one store")
        try ClientStorage(address: .unix(path: socket)).shutdownServer()
        #expect(eventually { returned.load(ordering: .acquiring) })
        #expect(!FileManager.default.fileExists(atPath: socket))
        #expect(try database.open().root(Bank.self).accounts.count == 1, "the server leaves the store open")
        try database.close()
        try? remote.close()
    }

    /// A server of its own hub, on port 0: `address` holds the real port;
    /// `shutdown()` stops it and `waitUntilStopped()` returns.
    @Test func aServerOnPortZeroAndAClientStorageDatabase() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try BerkeleyDBStorage(path: directory.file("bank.db"))
        let server = try DurusServer(storage: storage, configuration: .init(address: .tcp(host: "127.0.0.1", port: 0)))
        guard case .tcp(let host, let port) = server.address else { Issue.record("not TCP"); return }
        #expect(port != 0)

        let database = try Database(storage: ClientStorage(address: .tcp(host: host, port: port)),
                                    root: Bank.self, types: [Account.self])
        try database.transaction { try $0.root(Bank.self).accounts["bob"] = Account() }
        try database.close()
        server.shutdown()
        server.shutdown()
        server.waitUntilStopped()
        #expect(storage.objectCount == 2)
        try storage.close()
    }

    /// The language boundary, on the Swift side: a Python object of a class
    /// no Swift type maps is a record Swift can handle as bytes, and a
    /// connection that loads it throws `unknownType` naming its Python class.
    @Test func swiftCannotOpenAPythonObjectAsATypedOne() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try BerkeleyDBStorage(path: directory.file("bank.db"))
        let database = try Database(storage: storage, root: Bank.self, types: [Account.self])
        defer { try? database.close() }
        let oid = try storage.newOID()
        let pickle: [UInt8] = [0x80, 0x02] + Array("cinventory\nWidget\nq\u{01}.".utf8)
        // Referenced from the root's record, or it would be collected as garbage at once.
        let root = try storage.load(.root)
        try storage.commit([
            Record(oid: .root, data: root.data, references: root.references + [oid]),
            Record(oid: oid, data: pickle, references: []),
        ])

        let record = try storage.load(oid)
        #expect(record.isPythonPickle && record.className == "inventory.Widget")
        #expect(throws: DurusError.unknownType("inventory.Widget")) {
            try database.open().get(oid)
        }
    }

    // MARK: Limits.md

    @Test func theLimitsAreAsTheTablesSay() throws {
        let defaults = ServerConfiguration()
        #expect(defaults.maxTransactionSize == 1 << 30 && defaults.maxRecordSize == 64 << 20)
        #expect(defaults.maxBulkLoad == 1_048_576)
        #expect(defaults.commitTimeout == .seconds(30) && defaults.frameTimeout == .seconds(60))
        #expect(defaults.invalidationLimit == 5_000_000 && defaults.eventLoopThreads == 2)
        #expect(defaults.address == .tcp(host: "127.0.0.1", port: 2972))
        if case .anyone = defaults.quitPolicy {} else { Issue.record("the default quit policy is anyone") }

        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try BerkeleyDBStorage(path: directory.file("store"))
        defer { try? storage.close() }
        var configuration = ServerConfiguration(address: .unix(path: directory.file("app.sock")))
        configuration.maxRecordSize = 16 << 20
        configuration.commitTimeout = .seconds(10)
        configuration.quitPolicy = .unixSocketOnly
        let server = try DurusServer(storage: storage, configuration: configuration)

        // A record over the limit: the client is dropped, nothing is stored.
        let client = try ClientStorage(address: server.address)
        let oid = try client.newOID()
        let big = Record(oid: oid, data: [UInt8](repeating: 7, count: 16 << 20), references: [])
        #expect(throws: (any Error).self) { try client.commit([big]) }
        #expect(throws: DurusError.keyNotFound(oid)) { try storage.load(oid) }
        #expect(eventually { server.clientCount == 0 })

        // Another client is served; on the Unix socket, its Q counts.
        let other = try ClientStorage(address: server.address)
        #expect(throws: DurusError.keyNotFound(.root)) { try other.load(.root) }
        try other.shutdownServer()
        server.waitUntilStopped()
    }

    @Test func aTCPClientsQIsRefusedWhenOnlyUnixSocketsMayQuit() throws {
        var configuration = ServerConfiguration(address: .tcp(host: "127.0.0.1", port: 0))
        configuration.quitPolicy = .unixSocketOnly
        let server = try DurusServer(storage: MemoryStorage(), configuration: configuration)
        defer { server.stop() }
        let client = try ClientStorage(address: server.address)
        try? client.shutdownServer()
        // The server still serves: the client that sent Q was dropped instead.
        #expect(eventually { server.clientCount == 0 })
        let other = try ClientStorage(address: server.address)
        #expect(throws: DurusError.keyNotFound(.root)) { try other.load(.root) }
        try other.close()
    }
}
