import Foundation
import Synchronization
import DurusMacros

// Models for the integration tests, written as a user of `@Persistent` would.

@Persistent final class Account: PersistentObject {
    enum Tier: String, Codable { case basic, gold }

    var owner: String
    var tier: Tier = .basic
    var balance: Int = 0
    var history: [Int]
    @Transient var lastViewed: Date? = nil
    @Transient var note: String = "fresh"

    init(owner: String, balance: Int = 0) {
        self.owner = owner
        self.balance = balance
        super.init()
    }
}

@Persistent final class Bank: PersistentObject, PersistentRoot {
    var accounts: [String: Account] = [:]
    var ledger: [Account] = []
    var name: String?
}

/// Counts how often user initializers run, to show that ghosts run none.
@Persistent final class Tally: PersistentObject {
    static let initializations = Atomic<Int>(0)
    var label: String
    var count: Int

    init(label: String, count: Int) {
        Tally.initializations.add(1, ordering: .relaxed)
        self.label = label
        self.count = count
        super.init()
    }
}

@Persistent final class TallyRoot: PersistentObject, PersistentRoot {
    static let initializations = Atomic<Int>(0)
    var tallies: [Tally] = []

    override init() {
        TallyRoot.initializations.add(1, ordering: .relaxed)
        super.init()
    }
}

/// The first version of a class whose second version is ``ProfileV2``.
@Persistent final class ProfileV1: PersistentObject, PersistentRoot {
    override class var persistentTypeName: String { "DurusMacrosTests.Profile" }
    var name: String
    var score: Int = 0
}

/// The second version: `name` renamed to `displayName`, `score` dropped,
/// three properties added.
@Persistent(renamed: ["name": "displayName"])
final class ProfileV2: PersistentObject, PersistentRoot {
    override class var persistentTypeName: String { "DurusMacrosTests.Profile" }
    var displayName: String
    var age: Int = 18
    var tags: [String] = ["new"]
    var nickname: String?
}

/// Optionals whose defaults are not nil.
@Persistent final class Annotated: PersistentObject, PersistentRoot {
    var note: String? = "x"
    var twice: Int?? = 5
}
