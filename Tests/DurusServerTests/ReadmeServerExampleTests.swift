import Durus
import DurusTestSupport
import Foundation
import Synchronization
import DurusBerkeleyDB
import DurusClient
import DurusServer
import Testing

/// The README's server snippets: a program serves its own store and uses it
/// in-process, while a Swift client works through the socket.
@Test func readmeServerExample() throws {
    let directory = TemporaryDirectory()
    defer { directory.remove() }
    let storage = try BerkeleyDBStorage(path: directory.file("bank.db"))
    let database = try Database(storage: storage, root: Ledger.self, types: [Entry.self])
    let server = try DurusServer(hub: database.hub, configuration: .init(address: .unix(path: directory.file("bank.sock"))))
    defer { server.stop(); try? storage.close() }

    let remote = try Database(storage: ClientStorage(address: .unix(path: directory.file("bank.sock"))),
                              root: Ledger.self, types: [Entry.self])
    try remote.transaction { try $0.root(Ledger.self).entries.append(Entry(label: "from the socket", amount: 1)) }
    try database.transaction { try $0.root(Ledger.self).entries.append(Entry(label: "in-process", amount: 2)) }
    let labels = try remote.transaction { try $0.root(Ledger.self).entries.map(\.label) }
    #expect(labels == ["from the socket", "in-process"])
}

/// The in-process server's life as the README shows it: `run()` serves
/// until a signal (SIGUSR2 here, so that nothing else in the test process
/// hears it), then stops, removes its socket file and returns; the store is
/// then closed by its owner.
@Test func anInProcessServerRunsUntilASignalAndRemovesItsSocket() throws {
    let directory = TemporaryDirectory()
    defer { directory.remove() }
    let socket = directory.file("bank.sock")
    let database = try Database(storage: BerkeleyDBStorage(path: directory.file("bank.db")), root: Ledger.self,
                                types: [Entry.self])
    let server = try DurusServer(hub: database.hub, configuration: .init(address: .unix(path: socket)))
    #expect(FileManager.default.fileExists(atPath: socket))
    // A signal sent before `run` catches it is ignored, not fatal.
    let old = signal(SIGUSR2, SIG_IGN)
    defer { signal(SIGUSR2, old) }
    let returned = Atomic(false)
    let runner = Thread {
        server.run(untilSignals: [SIGUSR2])
        returned.store(true, ordering: .releasing)
    }
    runner.start()
    let client = try ClientStorage(address: .unix(path: socket))
    _ = try client.load(.root)
    try client.close()
    let stopped = eventually(.seconds(10)) {
        kill(getpid(), SIGUSR2)
        return returned.load(ordering: .acquiring)
    }
    #expect(stopped)
    #expect(!FileManager.default.fileExists(atPath: socket))
    try database.close()
    #expect(throws: DurusError.closed) { try database.storage.load(.root) }
}
