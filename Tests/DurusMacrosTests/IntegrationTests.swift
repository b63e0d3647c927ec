import Foundation
import Testing
import Durus
import DurusMacros

@Suite struct PersistentIntegrationTests {
    func makeBank() throws -> Database {
        try Database(storage: MemoryStorage(), root: Bank.self, types: [Account.self])
    }

    @Test func storesAndLoadsProperties() throws {
        let database = try makeBank()
        try database.transaction { connection in
            let bank = try connection.root(Bank.self)
            let alice = Account(owner: "alice", balance: 10)
            alice.tier = .gold
            bank.accounts["alice"] = alice
            bank.accounts["bob"] = Account(owner: "bob")
            bank.name = "first"
        }

        let connection = try database.open()
        let bank = try connection.root(Bank.self)
        #expect(bank.name == "first")
        #expect(bank.accounts.keys.sorted() == ["alice", "bob"])
        let alice = try #require(bank.accounts["alice"])
        #expect(alice.status == .ghost)
        #expect(alice.owner == "alice")           // the read loads the ghost
        #expect(alice.status == .saved)
        #expect(alice.balance == 10)
        #expect(alice.history == [])
        #expect(alice.tier == .gold)
        #expect(bank.accounts["bob"]?.tier == .basic)
        #expect(bank.accounts["bob"]?.balance == 0)
        #expect(bank.status == .saved)            // reading changed nothing
    }

    @Test func inPlaceMutationMarksChanged() throws {
        let database = try makeBank()
        let connection = try database.open()
        let bank = try connection.root(Bank.self)
        bank.accounts["carol"] = Account(owner: "carol")
        try connection.commit()
        #expect(bank.status == .saved)

        bank.accounts["dave"] = Account(owner: "dave")      // _modify, not get + set
        #expect(bank.status == .unsaved)
        try connection.commit()

        let carol = try #require(bank.accounts["carol"])
        #expect(carol.status == .saved)
        carol.history.append(7)
        #expect(carol.status == .unsaved)
        carol.balance += 5
        try connection.commit()

        let other = try database.open()
        let reloaded = try other.root(Bank.self)
        #expect(reloaded.accounts.keys.sorted() == ["carol", "dave"])
        #expect(reloaded.accounts["carol"]?.history == [7])
        #expect(reloaded.accounts["carol"]?.balance == 5)
    }

    @Test func transientIsResetWhenGhosted() throws {
        let database = try makeBank()
        try database.transaction { connection in
            try connection.root(Bank.self).accounts["erin"] = Account(owner: "erin", balance: 1)
        }
        let connection = try database.open()
        let erin = try #require(try connection.root(Bank.self).accounts["erin"])
        #expect(erin.owner == "erin")             // loads it
        let seen = Date()
        erin.lastViewed = seen
        erin.note = "stale"
        #expect(erin.status == .saved)            // transient writes change no state
        try connection.commit()
        #expect(erin.lastViewed == seen)          // a commit keeps it

        erin.balance = 99
        #expect(erin.lastViewed == seen)
        connection.abort()                        // ghosts the changed object
        #expect(erin.status == .ghost)
        #expect(erin.lastViewed == nil)
        #expect(erin.note == "fresh")
        #expect(erin.balance == 1)                // reloaded, the change dropped

        // Never stored: another connection sees the initial values.
        erin.lastViewed = seen
        erin.balance = 2
        try connection.commit()
        let other = try database.open()
        let copy = try #require(try other.root(Bank.self).accounts["erin"])
        #expect(copy.balance == 2)
        #expect(copy.lastViewed == nil)
        #expect(copy.note == "fresh")
    }

    @Test func ghostsRunNoInitializer() throws {
        let database = try Database(storage: MemoryStorage(), root: TallyRoot.self, types: [Tally.self])
        #expect(TallyRoot.initializations.load(ordering: .relaxed) == 1)
        try database.transaction { connection in
            let root = try connection.root(TallyRoot.self)
            root.tallies = (1...3).map { Tally(label: "t\($0)", count: $0) }
        }
        #expect(Tally.initializations.load(ordering: .relaxed) == 3)

        let connection = try database.open()
        let root = try connection.root(TallyRoot.self)
        #expect(root.tallies.map(\.label) == ["t1", "t2", "t3"])
        #expect(root.tallies.map(\.count) == [1, 2, 3])
        #expect(connection.loadCount == 4)
        #expect(Tally.initializations.load(ordering: .relaxed) == 3)
        #expect(TallyRoot.initializations.load(ordering: .relaxed) == 1)
    }

    @Test func schemaEvolution() throws {
        let storage = MemoryStorage()
        let first = try Database(storage: storage, root: ProfileV1.self)
        try first.transaction { connection in
            let profile = try connection.root(ProfileV1.self)
            profile.name = "ada"
            profile.score = 3
        }

        // The new version, registered under the same stored type name.
        let second = try Database(storage: storage, root: ProfileV2.self)
        let connection = try second.open()
        let profile = try connection.root(ProfileV2.self)
        #expect(profile.displayName == "ada")     // found under its old name
        #expect(profile.age == 18)                // missing: the default
        #expect(profile.tags == ["new"])
        #expect(profile.nickname == nil)

        profile.age = 36
        profile.nickname = "countess"
        try connection.commit()
        let again = try second.open().root(ProfileV2.self)
        #expect(again.displayName == "ada")
        #expect(again.age == 36)
        #expect(again.nickname == "countess")
    }

    /// A committed nil reads back as nil, not as the default, at whatever
    /// level of optional it stands.
    @Test func committedNilsReadBackAsNil() throws {
        let database = try Database(storage: MemoryStorage(), root: Annotated.self)
        try database.transaction { connection in
            let annotated = try connection.root(Annotated.self)
            annotated.note = nil
            annotated.twice = .some(nil)
        }
        let annotated = try database.open().root(Annotated.self)
        #expect(annotated.note == nil)
        #expect(annotated.twice == Int??.some(nil))
    }
}
