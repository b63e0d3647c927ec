import DurusMacros
import Foundation
import Testing

/// The README's macro example, as written there, in a namespace of its own.
enum ReadmeMacros {
    @Persistent final class Account: PersistentObject {
        var owner: String                          // stored; a ghost has ""
        var balance: Int = 0
        @Transient var lastViewed: Date? = nil     // never stored; reset when ghosted
        init(owner: String) {
            self.owner = owner
            super.init()                           // PersistentObject has several designated inits
        }
    }

    @Persistent final class Bank: PersistentObject, PersistentRoot {
        var accounts: [String: Account] = [:]
    }
}

@Test func readmeMacroExampleWorks() throws {
    typealias Account = ReadmeMacros.Account
    let database = try Database(storage: MemoryStorage(), root: ReadmeMacros.Bank.self, types: [Account.self])
    try database.transaction { connection in
        let bank = try connection.root(ReadmeMacros.Bank.self)
        let alice = Account(owner: "alice")
        alice.lastViewed = Date()
        bank.accounts["alice"] = alice
        bank.accounts["alice"]?.balance += 5
    }
    let connection = try database.open()
    let alice = try #require(try connection.root(ReadmeMacros.Bank.self).accounts["alice"])
    #expect(alice.status == .ghost)
    #expect(alice.owner == "alice" && alice.balance == 5)
    #expect(alice.lastViewed == nil, "transient: never stored")
}

/// The README's transaction example, as written there: it compiles, and
/// with nobody else committing it commits at the first try.
@Test func readmeTransactionExampleWorks() throws {
    typealias Bank = ReadmeMacros.Bank
    let database = try Database(storage: MemoryStorage(), root: Bank.self, types: [ReadmeMacros.Account.self])
    try database.transaction { try $0.root(Bank.self).accounts["alice"] = ReadmeMacros.Account(owner: "alice") }
    var gaveUp = false
    do {
        try database.transaction(retries: 5, timeLimit: .seconds(2)) { connection in
            let bank = try connection.root(Bank.self)
            bank.accounts["alice"]?.balance -= 1
        }
    } catch let conflict as ConflictError where conflict.giveUp != nil {
        print(conflict)     // "6 tries failed (the last: write conflict on [3]) while 6 commits landed; …"
        gaveUp = true
    }
    #expect(!gaveUp)
    #expect(try database.transaction { try $0.root(Bank.self).accounts["alice"]?.balance } == -1)
}
