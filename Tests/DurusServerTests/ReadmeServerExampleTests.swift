import Durus
import DurusBerkeleyDB
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
