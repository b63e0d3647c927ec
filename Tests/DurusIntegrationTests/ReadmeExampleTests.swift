import Durus
import DurusBerkeleyDB
import DurusTestSupport
import Testing

/// ARCHITECTURE.md's storage example, as written there (in a temporary directory).
@Test func readmeExampleRunsAsDocumented() throws {
    let dir = TemporaryDirectory()
    defer { dir.remove() }
    let storage = try BerkeleyDBStorage(path: dir.file("bank.db"))
    let root = try storage.newOID()
    let child = try storage.newOID()
    try storage.commit([
        Record(oid: root, data: Array("root".utf8), references: [child]),
        Record(oid: child, data: Array("child".utf8), references: []),
    ])
    try storage.commit([Record(oid: root, data: Array("root".utf8), references: [])])
    #expect("\(try storage.sync())" == "[OID(1)]")
    #expect(try storage.verify().isClean)
    try storage.close()
}

/// The README's object example, as written there, in a namespace of its own.
enum Readme {
    final class Account: Persistent<Account.State> {
        struct State: PersistentState {              // every property has a default
            var owner = ""
            var balance = 0
        }
        var owner: String { get { state.owner } set { state.owner = newValue } }
        var balance: Int { get { state.balance } set { state.balance = newValue } }
    }

    final class Bank: Persistent<Bank.State> {       // the root's type
        struct State: PersistentState { var accounts: [String: Account] = [:] }
        var accounts: [String: Account] { get { state.accounts } set { state.accounts = newValue } }
    }
}

@Test func readmeObjectExampleRunsAsDocumented() throws {
    typealias Account = Readme.Account
    typealias Bank = Readme.Bank
    let dir = TemporaryDirectory()
    defer { dir.remove() }
    let database = try Database(storage: BerkeleyDBStorage(path: dir.file("bank.db")), root: Bank.self,
                                types: [Account.self])
    try database.transaction { connection in          // commits on return; retries on a conflict
        let bank = try connection.root(Bank.self)
        let alice = bank.accounts["alice"] ?? Account()
    alice.balance += 10
    bank.accounts["alice"] = alice
    }
    let connection = try database.open()              // long-lived, Durus style
    let alice = try connection.root(Bank.self).accounts["alice"]    // a ghost until touched
    #expect(alice?.status == .ghost)
    #expect(alice?.balance ?? 0 == 10)
}
