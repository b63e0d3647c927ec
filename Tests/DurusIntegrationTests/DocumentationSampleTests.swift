import DurusBerkeleyDB
import DurusMacros
import DurusTestSupport
import Foundation
import Testing

/// The Swift samples of the DocC articles of Durus and DurusBerkeleyDB, as
/// written there, each run against a BerkeleyDBStorage in a temporary
/// directory (paths changed, `print` turned into checks), with checks of
/// what the article says they do.
@Suite struct DocumentationSampleTests {
    // MARK: The articles' classes

    @Persistent final class Counter: PersistentObject, PersistentRoot {
        var hits: Int = 0
    }

    @Persistent final class Account: PersistentObject {
        var owner: String                   // no initial value: "" in a ghost
        var balance: Int = 0

        init(owner: String) {
            self.owner = owner
            super.init()                    // required: PersistentObject has several designated inits
        }
    }

    @Persistent final class Bank: PersistentObject, PersistentRoot {
        var accounts: [String: Account] = [:]
    }

    @Persistent final class Team: PersistentObject, PersistentRoot {
        var members: PersistentList<Account> = PersistentList()
        var scores: PersistentDictionary<String, Int> = PersistentDictionary()
        var tags: PersistentSet<String> = PersistentSet()
    }

    @Persistent final class Atlas: PersistentObject, PersistentRoot {
        var cities: BTree<String, Int> = BTree()            // name → population
    }

    @Persistent final class Shop: PersistentObject, PersistentRoot {
        var prices: [String: Int] = [:]
        var cachedTotal: ComputedAttribute<Int> = ComputedAttribute()

        var total: Int { cachedTotal.get { prices.values.reduce(0, +) } }

        func setPrice(_ price: Int, for item: String) {
            prices[item] = price
            cachedTotal.invalidate()
        }
    }

    /// A bank holding alice with a balance of 10, as ObjectLayerRules starts.
    private func bankWithAlice(_ directory: TemporaryDirectory, configuration: Database.Configuration = .init()) throws -> Database {
        let database = try Database(storage: BerkeleyDBStorage(path: directory.file("bank.db")), root: Bank.self,
                                    types: [Account.self], configuration: configuration)
        try database.transaction { connection in
            let alice = Account(owner: "alice")
            alice.balance = 10
            try connection.root(Bank.self).accounts["alice"] = alice
        }
        return database
    }

    // MARK: Durus.md

    @Test func landingPageCounterCounts() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try Database(storage: BerkeleyDBStorage(path: directory.file("counter.db")), root: Counter.self)
        try database.transaction { connection in
            try connection.root(Counter.self).hits += 1
        }
        try database.close()

        let again = try Database(storage: BerkeleyDBStorage(path: directory.file("counter.db")), root: Counter.self)
        defer { try? again.close() }
        #expect(try again.open().root(Counter.self).hits == 1)
    }

    // MARK: GettingStarted.md

    @Test func gettingStartedRunsAsWritten() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try BerkeleyDBStorage(path: directory.file("bank.db"))    // a directory, created if missing
        let database = try Database(storage: storage, root: Bank.self, types: [Account.self])

        let connection = try database.open()
        let bank = try connection.root(Bank.self)
        bank.accounts["alice"] = Account(owner: "alice")
        #expect(bank.accounts["alice"]?.oid == nil, "a new object gets its OID at commit")
        try connection.commit()
        #expect(bank.accounts["alice"]?.oid != nil)

        // Changing a property in place counts as a change.
        bank.accounts["alice"]?.balance += 5
        try connection.commit()
        #expect(try database.open().root(Bank.self).accounts["alice"]?.balance == 5)

        let balance = try database.transaction(retries: 3) { connection in
            let alice = try connection.root(Bank.self).accounts["alice"]!
            alice.balance += 10
            return alice.balance
        }
        #expect(balance == 15)

        let second = try database.open()
        let ghost = try second.root(Bank.self).accounts["alice"]!
        try database.close()
        #expect(throws: DurusError.closed) { try database.open() }
        #expect(throws: DurusError.closed) { try database.transaction { _ in } }
        // What the connection holds in memory can still be read; the storage cannot be reached.
        #expect(try connection.root(Bank.self).accounts.count == 1)
        #expect(throws: DurusError.closed) { try connection.commit() }
        _ = ghost.balance
        #expect(second.pendingError as? DurusError == .closed, "a ghost cannot load from a closed store")
    }

    // MARK: ObjectLayerRules.md

    @Test func eachConnectionHasItsOwnView() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try bankWithAlice(directory)
        defer { try? database.close() }

        let a = try database.open()
        let b = try database.open()
        let alice = try a.root(Bank.self).accounts["alice"]!
        #expect(alice.balance == 10)

        try b.root(Bank.self).accounts["alice"]!.balance = 20
        try b.commit()
        #expect(alice.balance == 10, "a's transaction goes on")
        a.abort()
        #expect(alice.balance == 20)
    }

    @Test func aWriteConflictIsAbortedAndRetried() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try bankWithAlice(directory)
        defer { try? database.close() }
        let a = try database.open()
        let b = try database.open()
        var caught: ConflictError?

        try a.root(Bank.self).accounts["alice"]!.balance += 1
        try b.root(Bank.self).accounts["alice"]!.balance += 1
        try a.commit()
        do {
            try b.commit()
        } catch let conflict as ConflictError {        // .write, on alice's OID
            caught = conflict
            b.abort()
            try b.root(Bank.self).accounts["alice"]!.balance += 1
            try b.commit()
        }

        let aliceOID = try #require(try a.root(Bank.self).accounts["alice"]?.oid)
        #expect(caught?.kind == .write && caught?.oids == [aliceOID])
        #expect(try database.open().root(Bank.self).accounts["alice"]?.balance == 12)
    }

    @Test func committingChangesAfterAConflictWithoutAbortingIsRefused() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try bankWithAlice(directory)
        defer { try? database.close() }
        let a = try database.open()
        let b = try database.open()
        try a.root(Bank.self).accounts["alice"]!.balance += 1
        try b.root(Bank.self).accounts["alice"]!.balance += 1
        try a.commit()
        #expect(throws: ConflictError.self) { try b.commit() }
        #expect(throws: DurusError.abortRequired) { try b.commit() }
        b.abort()
        // A transaction that changed nothing never conflicts at commit.
        _ = try b.root(Bank.self).accounts["alice"]!.balance
        try a.root(Bank.self).accounts["alice"]!.balance += 1
        try a.commit()
        try b.commit()
    }

    @Test func aTransactionRetriesAndReportsHowItGaveUp() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try bankWithAlice(directory)
        defer { try? database.close() }

        var gaveUp: ConflictError?
        do {
            try database.transaction(retries: 5, timeLimit: .seconds(2)) { connection in
                try connection.root(Bank.self).accounts["alice"]!.balance -= 1
            }
        } catch let conflict as ConflictError where conflict.giveUp != nil {
            gaveUp = conflict
        }
        #expect(gaveUp == nil)
        #expect(try database.open().root(Bank.self).accounts["alice"]?.balance == 9)

        // Giving up: every try loses to a commit that happened.
        let other = try database.open()
        do {
            try database.transaction(retries: 0) { connection in
                try connection.root(Bank.self).accounts["alice"]!.balance -= 1
                try other.root(Bank.self).accounts["alice"]!.balance += 100
                try other.commit()
            }
        } catch let conflict as ConflictError where conflict.giveUp != nil {
            gaveUp = conflict
        }
        let giveUp = try #require(gaveUp?.giveUp)
        #expect(gaveUp?.kind == .write)
        #expect(giveUp.tries == 1 && giveUp.commitsLanded == 1 && !giveUp.timedOut)
        #expect("\(gaveUp!)".hasPrefix("1 tries failed (the last: write conflict on"))
        #expect(try database.open().root(Bank.self).accounts["alice"]?.balance == 109)
    }

    @Test func aGhostLoadsAtItsFirstAccess() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try bankWithAlice(directory)
        defer { try? database.close() }

        let connection = try database.open()
        let alice = try connection.root(Bank.self).accounts["alice"]!
        #expect("\(alice.status)" == "ghost")
        #expect(alice.balance == 10)                   // loads it
        #expect("\(alice.status)" == "saved")
        #expect(try connection.root(Bank.self).accounts["alice"]! === alice, "one OID is one instance")
        #expect(try connection.get(alice.oid!) === alice)
    }

    @Test func theCacheShrinksAtCommitAndAbort() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try BerkeleyDBStorage(path: directory.file("bank.db"))
        let database = try Database(storage: storage, root: Bank.self, types: [Account.self],
                                    configuration: .init(cacheSize: 1_000))
        defer { try? database.close() }
        #expect(database.configuration.cacheSize == 1_000)
        #expect(Database.Configuration().cacheSize == 100_000)

        // The rule, with a cache of 16 objects.
        let small = try Database(storage: BerkeleyDBStorage(path: directory.file("small.db")), root: Bank.self,
                                 types: [Account.self], configuration: .init(cacheSize: 16))
        defer { try? small.close() }
        try small.transaction { connection in
            let bank = try connection.root(Bank.self)
            for index in 0 ..< 40 { bank.accounts["\(index)"] = Account(owner: "\(index)") }
        }
        let connection = try small.open()
        let accounts = try connection.root(Bank.self).accounts.values.sorted { $0.owner < $1.owner }
        #expect(accounts.count == 40 && connection.cachedCount == 41)
        try connection.commit()
        #expect(connection.cachedCount == 14, "down to seven eighths of 16")
        #expect(accounts.allSatisfy { !$0.owner.isEmpty }, "a ghosted object loads again when read")
        connection.shrinkCache()
        #expect(connection.cachedCount == 14)
    }

    @Test func aFailedLazyLoadLeavesBlanksAndDoomsTheTransaction() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try bankWithAlice(directory)
        defer { try? database.close() }

        let reader = try database.open()
        let bank = try reader.root(Bank.self)
        let alice = bank.accounts["alice"]!            // a ghost

        let writer = try database.open()
        let bankSeenByWriter = try writer.root(Bank.self)
        bankSeenByWriter.accounts["bob"] = Account(owner: "bob")
        bankSeenByWriter.accounts["alice"]!.balance = 99
        try writer.commit()

        #expect(alice.balance == 0)                    // a blank, since bank changed too
        #expect(alice.owner == "")
        let pending = try #require(reader.pendingError as? ConflictError)
        #expect(pending.kind == .read && pending.oids == [alice.oid!])
        #expect(throws: pending) { try reader.commit() }
        reader.abort()
        #expect(reader.pendingError == nil)
        #expect(alice.balance == 99)

        // Through get(_:) the same failure is thrown where it happens.
        let other = try database.open()
        let otherBank = try other.root(Bank.self)
        let ghost = otherBank.accounts["alice"]!
        bankSeenByWriter.accounts["carol"] = Account(owner: "carol")
        bankSeenByWriter.accounts["alice"]!.balance = 7
        try writer.commit()
        #expect { try other.get(ghost.oid!) } throws: { ($0 as? ConflictError)?.kind == .read }
        #expect(other.pendingError == nil)
        other.abort()
        #expect(ghost.balance == 7)
    }

    // MARK: Collections.md

    @Test func persistentCollectionsAsWritten() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try Database(storage: BerkeleyDBStorage(path: directory.file("team.db")), root: Team.self,
                                    types: [Account.self])
        defer { try? database.close() }

        try database.transaction { connection in
            let team = try connection.root(Team.self)
            team.members.append(Account(owner: "alice"))
            team.scores["alice", default: 0] += 3
            team.tags.insert("blue")
        }
        let team = try database.open().root(Team.self)
        #expect(team.members.count == 1 && team.scores["alice"]! == 3 && team.tags.contains("blue"))
        #expect(team.members[0].owner == "alice")
        #expect(team.scores.contents == ["alice": 3])

        // A change that changes nothing only reads.
        let connection = try database.open()
        let tags = try connection.root(Team.self).tags
        tags.insert("blue")
        #expect("\(tags.status)" == "saved")
        tags.insert("red")
        #expect("\(tags.status)" == "unsaved")
    }

    @Test func twoConnectionsChangingOneDictionaryConflict() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try Database(storage: BerkeleyDBStorage(path: directory.file("team.db")), root: Team.self,
                                    types: [Account.self])
        defer { try? database.close() }
        let a = try database.open(), b = try database.open()
        try a.root(Team.self).scores["x"] = 1
        try b.root(Team.self).scores["y"] = 2
        try a.commit()
        #expect(throws: ConflictError.self) { try b.commit() }
    }

    @Test func aBTreeAsWritten() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try Database(storage: BerkeleyDBStorage(path: directory.file("atlas.db")), root: Atlas.self)
        defer { try? database.close() }

        try database.transaction { connection in
            let cities = try connection.root(Atlas.self).cities
            cities["Lyon"] = 522_000
            cities["Berlin"] = 3_850_000
            cities["Oslo"] = 709_000
        }
        let cities = try database.open().root(Atlas.self).cities
        var walked: [String] = []
        for (name, population) in cities.items(from: "B", to: "M") {
            walked.append("\(name) \(population)")                // Berlin, then Lyon
        }
        #expect(walked == ["Berlin 3850000", "Lyon 522000"])
        #expect(cities.min!.key == "Berlin" && cities["Oslo"]! == 709_000)
        #expect(cities["B" ..< "M"].map(\.key) == ["Berlin", "Lyon"])
        #expect(cities.count == 3)

        let sorted = BTree(sorted: [("a", 1), ("b", 2), ("c", 3)])
        #expect(sorted.items().map(\.value) == [1, 2, 3])
        #expect(sorted.remove("b") == 2 && sorted.items().map(\.key) == ["a", "c"])
    }

    @Test func aComputedAttributeIsDroppedEverywhereAfterInvalidate() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try Database(storage: BerkeleyDBStorage(path: directory.file("shop.db")), root: Shop.self)
        defer { try? database.close() }
        try database.transaction { connection in
            let shop = try connection.root(Shop.self)
            shop.setPrice(1, for: "a")
            shop.setPrice(2, for: "b")
        }
        let a = try database.open(), b = try database.open()
        let shopA = try a.root(Shop.self)
        #expect(shopA.total == 3)
        #expect(shopA.cachedTotal.hasCachedValue)
        try b.root(Shop.self).setPrice(10, for: "c")
        try b.commit()
        #expect(shopA.total == 3, "a's transaction keeps its cached value")
        a.abort()
        #expect(!shopA.cachedTotal.hasCachedValue)
        #expect(shopA.total == 13)
    }

    // MARK: SchemaEvolution.md

    @Persistent final class AddedV1: PersistentObject, PersistentRoot {
        override class var persistentTypeName: String { "DocSamples.Added" }
        var owner: String = ""
    }

    /// Version 2: older records load with currency "EUR" and nickname nil.
    @Persistent final class AddedV2: PersistentObject, PersistentRoot {
        override class var persistentTypeName: String { "DocSamples.Added" }
        var owner: String = ""
        var currency: String = "EUR"
        var nickname: String?
    }

    @Test func anAddedPropertyLoadsWithItsDefaultAndARemovedOneIsDropped() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try BerkeleyDBStorage(path: directory.file("store"))
        defer { try? storage.close() }
        try Database(storage: storage, root: AddedV1.self).transaction { try $0.root(AddedV1.self).owner = "alice" }

        let second = try Database(storage: storage, root: AddedV2.self)
        let account = try second.open().root(AddedV2.self)
        #expect(account.owner == "alice" && account.currency == "EUR" && account.nickname == nil)
        try second.transaction { try $0.root(AddedV2.self).currency = "USD" }
        #expect(try keys(of: storage.load(.root)) == ["owner", "currency", "nickname"])

        // Back to version 1: currency and nickname are ignored, then left out.
        let third = try Database(storage: storage, root: AddedV1.self)
        try third.transaction { connection in
            let account = try connection.root(AddedV1.self)
            #expect(account.owner == "alice")
            account.owner = "alice b."
        }
        #expect(try keys(of: storage.load(.root)) == ["owner"])
    }

    @Persistent final class ObjectDefaultV1: PersistentObject, PersistentRoot {
        override class var persistentTypeName: String { "DocSamples.ObjectDefault" }
        var owner: String = ""
    }

    @Persistent final class ObjectDefaultV2: PersistentObject, PersistentRoot {
        override class var persistentTypeName: String { "DocSamples.ObjectDefault" }
        var owner: String = ""
        var tags: PersistentList<String> = PersistentList()
    }

    @Persistent final class ObjectDefaultV3: PersistentObject, PersistentRoot {
        override class var persistentTypeName: String { "DocSamples.ObjectDefault" }
        var owner: String = ""
        var tags: PersistentList<String>?
    }

    @Test func anAddedPersistentObjectDefaultCannotLoadButAnOptionalOneCan() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try BerkeleyDBStorage(path: directory.file("store"))
        defer { try? storage.close() }
        try Database(storage: storage, root: ObjectDefaultV1.self).transaction { try $0.root(ObjectDefaultV1.self).owner = "alice" }

        let second = try Database(storage: storage, root: ObjectDefaultV2.self)
        #expect { try second.open().root(ObjectDefaultV2.self) } throws: { error in
            guard case DurusError.badState(let oid, _) = error else { return false }
            return oid == .root
        }
        let third = try Database(storage: storage, root: ObjectDefaultV3.self)
        try third.transaction { connection in
            let account = try connection.root(ObjectDefaultV3.self)
            #expect(account.owner == "alice" && account.tags == nil)
            account.tags = PersistentList(["new"])           // created when first needed
        }
        #expect(try third.open().root(ObjectDefaultV3.self).tags.map { Array($0) } == ["new"])
    }

    @Persistent final class Profile: PersistentObject, PersistentRoot {
        var motto: String? = "carpe diem"
    }

    @Test func aCommittedNilLoadsAsNilWhateverTheDefault() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try Database(storage: BerkeleyDBStorage(path: directory.file("store")), root: Profile.self)
        defer { try? database.close() }
        #expect(try database.open().root(Profile.self).motto == "carpe diem")
        try database.transaction { try $0.root(Profile.self).motto = nil }
        #expect(try database.open().root(Profile.self).motto == nil)
    }

    @Persistent final class RenamedV1: PersistentObject, PersistentRoot {
        override class var persistentTypeName: String { "DocSamples.Renamed" }
        var owner: String = ""
    }

    @Persistent(renamed: ["owner": "holder"])
    final class RenamedV2: PersistentObject, PersistentRoot {
        override class var persistentTypeName: String { "DocSamples.Renamed" }
        var holder: String = ""              // stored as "owner" by older versions
    }

    final class RenamedByHand: Persistent<RenamedByHand.State> {
        override class var persistentTypeName: String { "DocSamples.Renamed" }
        struct State: PersistentState {
            var holder = ""
            static var renamedProperties: [String: String] { ["owner": "holder"] }
        }
    }

    @Test func aRenamedPropertyIsFoundUnderItsOldName() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try BerkeleyDBStorage(path: directory.file("store"))
        defer { try? storage.close() }
        try Database(storage: storage, root: RenamedV1.self).transaction { try $0.root(RenamedV1.self).owner = "alice" }
        #expect(try Database(storage: storage, root: RenamedV2.self).open().root(RenamedV2.self).holder == "alice")
        #expect(try Database(storage: storage, root: RenamedByHand.self).open().root(RenamedByHand.self).state.holder == "alice")
    }

    @Persistent final class RetypedV1: PersistentObject, PersistentRoot {
        override class var persistentTypeName: String { "DocSamples.Retyped" }
        var count: String = "many"
    }

    @Persistent final class RetypedV2: PersistentObject, PersistentRoot {
        override class var persistentTypeName: String { "DocSamples.Retyped" }
        var count: Int = 0
    }

    @Test func aPropertyWhoseTypeChangedFailsToLoad() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try BerkeleyDBStorage(path: directory.file("store"))
        defer { try? storage.close() }
        try Database(storage: storage, root: RetypedV1.self).transaction { try $0.root(RetypedV1.self).count = "three" }
        let second = try Database(storage: storage, root: RetypedV2.self)
        #expect { try second.open().root(RetypedV2.self) } throws: { error in
            guard case DurusError.badState(let oid, _) = error else { return false }
            return oid == .root
        }
    }

    @Persistent final class Client: PersistentObject, PersistentRoot {        // was DocSamples.Account
        override class var persistentTypeName: String { "DocSamples.Account" }
        var owner: String = ""
    }

    @Test func typeNamesAreStableAndAnOverrideKeepsThem() throws {
        #expect(Account.persistentTypeName == "DurusIntegrationTests.DocumentationSampleTests.Account")
        #expect(BTree<Date, String>.persistentTypeName == "BTree<Date, String>")
        #expect(PersistentList<Account>.persistentTypeName
            == "PersistentList<DurusIntegrationTests.DocumentationSampleTests.Account>")

        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try BerkeleyDBStorage(path: directory.file("store"))
        defer { try? storage.close() }
        let database = try Database(storage: storage, root: Client.self)
        try database.transaction { try $0.root(Client.self).owner = "alice" }
        #expect(try storage.load(.root).className == "DocSamples.Account")
        #expect(try database.open().root(Client.self).owner == "alice")

        // A record whose class name no registered type has, as after a rename without the override.
        let record = try storage.load(.root)
        let data = Array(record.data)
        let nameLength = Int(data[3]) << 8 | Int(data[4])
        let renamed = Array("DocSamples.Customer".utf8)
        let old = Array(data[0 ..< 3]) + [0, UInt8(renamed.count)] + renamed + Array(data[(5 + nameLength)...])
        try storage.commit([Record(oid: .root, data: old, references: record.references)])
        #expect(throws: DurusError.unknownType("DocSamples.Customer")) { try database.open().root(Client.self) }
    }

    // MARK: Errors.md

    @Test func theErrorsSampleRunsAndTheObjectErrorsAreAsSaid() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try bankWithAlice(directory)
        defer { try? database.close() }

        var outcome = "committed"
        do {
            try database.transaction { connection in
                try connection.root(Bank.self).accounts["alice"]!.balance += 1
            }
        } catch let conflict as ConflictError {
            outcome = "gave up after \(conflict.giveUp!.tries) tries"
        } catch DurusError.commitNotDurable {
            outcome = "not durable"
        }
        #expect(outcome == "committed")

        // foreignObject: an object of another connection linked in.
        let a = try database.open(), b = try database.open()
        let aliceOfA = try a.root(Bank.self).accounts["alice"]!
        try b.root(Bank.self).accounts["alias"] = aliceOfA
        #expect(throws: DurusError.foreignObject(aliceOfA.oid!)) { try b.commit() }
        b.abort()
        let aliceOfB = try b.get(aliceOfA.oid!) as? Account
        try b.root(Bank.self).accounts["alias"] = aliceOfB
        try b.commit()

        // keyNotFound: nothing stored under the OID.
        #expect(throws: DurusError.keyNotFound(OID(1_000_000))) { try a.get(OID(1_000_000)) }
    }

    // MARK: DurusBerkeleyDB: Durability.md

    @Test func everyDurabilityModeCommitsAndReopens() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var configuration = BerkeleyDBStorage.Configuration()
        configuration.durability = .writeNoSync
        let storage = try BerkeleyDBStorage(path: directory.file("bank.db"), configuration: configuration)
        #expect(storage.configuration.durability == .writeNoSync)
        #expect(BerkeleyDBStorage.Configuration().durability == .full)
        #expect(BerkeleyDBStorage.Configuration().logBufferSize == 1 << 20)
        try storage.close()

        // Chosen at each open: the same store under every mode.
        for (index, durability) in Durability.allCases.enumerated() {
            var configuration = BerkeleyDBStorage.Configuration()
            configuration.durability = durability
            let database = try Database(storage: BerkeleyDBStorage(path: directory.file("bank.db"), configuration: configuration),
                                        root: Bank.self, types: [Account.self])
            try database.transaction { try $0.root(Bank.self).accounts["\(index)"] = Account(owner: "\(durability)") }
            try database.close()
        }
        let database = try Database(storage: BerkeleyDBStorage(path: directory.file("bank.db")), root: Bank.self,
                                    types: [Account.self])
        defer { try? database.close() }
        #expect(try database.open().root(Bank.self).accounts.values.map(\.owner).sorted() == ["full", "none", "writeNoSync"])
        #expect(Durability.writeNoSync.rawValue == "write-no-sync")
    }

    // MARK: DurusBerkeleyDB: GarbageCollection.md

    @Test func garbageIsCollectedAtOnceAndCyclesByTheCycleCollector() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let storage = try BerkeleyDBStorage(path: directory.file("store"))
        defer { try? storage.close() }
        let root = try storage.newOID(), child = try storage.newOID()
        try storage.commit([
            Record(oid: root, data: Array("root".utf8), references: [child]),
            Record(oid: child, data: Array("child".utf8), references: []),
        ])
        try storage.commit([Record(oid: root, data: Array("root".utf8), references: [])])
        #expect(try storage.sync() == [OID(1)])                // collected before commit returned
        #expect(try storage.pendingGarbageCount() == 0)
        #expect(try storage.lastGarbageCollection()?.collected == 1)
        #expect(throws: DurusError.keyNotFound(child)) { try storage.load(child) }

        let a = try storage.newOID(), b = try storage.newOID()
        try storage.commit([
            Record(oid: root, data: [], references: [a]),
            Record(oid: a, data: [], references: [b]),
            Record(oid: b, data: [], references: [a]),
        ])
        try storage.commit([Record(oid: root, data: [], references: [])])
        #expect(try storage.verify().leakedCount == 2)
        #expect(try storage.verify().isConsistent && !storage.verify().isClean)
        #expect(try storage.collectCycles().collected == 2)
        #expect(try storage.verify().isClean)
        #expect(try storage.lastCycleCollection()?.collected == 2)
        #expect(try storage.newOID() == OID(4), "OIDs are never reused")
    }

    @Test func aBackgroundCollectorCollectsAfterTheCommitReturns() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var configuration = BerkeleyDBStorage.Configuration()
        configuration.collectsInBackground = true
        let storage = try BerkeleyDBStorage(path: directory.file("store"), configuration: configuration)
        defer { try? storage.close() }
        let root = try storage.newOID(), child = try storage.newOID()
        try storage.commit([
            Record(oid: root, data: [], references: [child]),
            Record(oid: child, data: [], references: []),
        ])
        try storage.commit([Record(oid: root, data: [], references: [])])
        var collected: [OID] = []
        for _ in 0 ..< 500 where collected.isEmpty {
            collected += try storage.sync()
            usleep(10_000)
        }
        #expect(collected == [child])
    }

    // MARK: DurusBerkeleyDB: Migration.md

    @Test func aDurusFileMigratesIntoANewStore() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try FileManager.default.createDirectory(atPath: directory.path, withIntermediateDirectories: true)
        let file = directory.file("bank.durus")
        let written = try Database(storage: FileStorage(path: file), root: Bank.self, types: [Account.self])
        try written.transaction { connection in
            let bank = try connection.root(Bank.self)
            for name in ["alice", "bob"] { bank.accounts[name] = Account(owner: name) }
        }
        try written.transaction { try $0.root(Bank.self).accounts["bob"] = nil }    // bob is garbage in the file
        try written.close()

        var phases: [BerkeleyDBStorage.MigrationProgress.Phase] = []
        let source = try FileScan(path: file)                      // a Durus 4.x or 3.x file
        let store = try BerkeleyDBStorage(path: directory.file("bank.db"), configuration: .migration)
        try store.migrate(from: source) { progress in
            if phases.last != progress.phase { phases.append(progress.phase) }
        }
        try store.close()
        try source.close()
        #expect(phases == [.copying, .marking, .counting, .done])

        let storage = try BerkeleyDBStorage(path: directory.file("bank.db"))      // then open it as usual
        defer { try? storage.close() }
        #expect(try storage.verify().isClean)
        #expect(storage.objectCount == 2, "the root and alice; bob was unreachable")
        let reference = try FileStorage(path: file, options: .init(readOnly: true))
        var highest = OID(0)
        try reference.forEachRecord { highest = max(highest, $0.oid) }
        var migrated: [Record] = []
        try storage.forEachRecord { migrated.append($0) }
        for record in migrated {
            #expect(try reference.load(record.oid) == record, "byte-identical")
        }
        try reference.close()
        #expect(try storage.newOID() > highest)
        let database = try Database(storage: storage, root: Bank.self, types: [Account.self])
        #expect(try database.open().root(Bank.self).accounts.keys.sorted() == ["alice"])

        // A store that holds objects of its own is refused.
        let full = try BerkeleyDBStorage(path: directory.file("other.db"))
        _ = try full.newOID()
        try full.commit([Record(oid: .root, data: [], references: [])])
        try full.close()
        let again = try BerkeleyDBStorage(path: directory.file("other.db"), configuration: .migration)
        defer { try? again.close() }
        #expect { try again.migrate(from: MemoryStorage()) } throws: { error in
            if case DurusError.io = error { return true }
            return false
        }
    }

    // MARK: DurusBerkeleyDB: Backup.md

    @Test func aHotBackupOpensAndVerifiesClean() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let database = try bankWithAlice(directory)
        defer { try? database.close() }
        let storage = database.storage as! BerkeleyDBStorage
        let destination = directory.file("backups/bank-2026-12-01")

        try storage.backup(to: destination)
        let copy = try BerkeleyDBStorage(path: destination)
        #expect(try copy.verify().isClean)
        let restored = try Database(storage: copy, root: Bank.self, types: [Account.self])
        #expect(try restored.open().root(Bank.self).accounts["alice"]?.balance == 10)
        try restored.close()

        #expect { try storage.backup(to: destination) } throws: { error in
            if case DurusError.io = error { return true }
            return false
        }

        let report = try storage.verify()
        #expect(report.isClean && report.isConsistent)
        #expect(report.objects == 2 && "\(report)".hasPrefix("2 objects"))
    }
}

/// The keys of a Swift record's state, in their stored order.
private func keys(of record: Record) throws -> [String] {
    guard case .keyed(let entries) = try record.swiftState() else { return [] }
    return entries.map(\.0)
}
