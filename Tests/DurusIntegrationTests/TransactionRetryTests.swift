import Dispatch
import DurusTestSupport
@testable import Durus
import Foundation
import Synchronization
import Testing

/// `Database.transaction(retries:timeLimit:)` on a loaded machine: retries
/// wait for the commit they lost to, so a budget of conflicts is not spent
/// in a spin while that commit is being applied.
@Suite struct TransactionRetryTests {
    /// Tried: 4 threads × 150 transfers among 3 accounts with `retries: 10`,
    /// while one thread per core spins to load the machine (committers get
    /// descheduled halfway). Survives: every transfer succeeds, the bank's
    /// total is unchanged, and every retry's view holds at least one commit
    /// more than the failed try's view did (each counted): no retry is a spin.
    @Test(arguments: StorageKind.allCases)
    func transfersUnderLoadAllSucceedAndEveryRetryFollowsALandedCommit(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        let names = (0 ..< 3).map { "a\($0)" }
        try db.transaction { connection in
            let bank = try connection.root(Bank.self)
            for name in names { bank.accounts[name] = Account(owner: name, balance: 1000) }
        }
        let stop = Atomic(false)
        let cores = ProcessInfo.processInfo.activeProcessorCount
        // Threads of their own: spinning on Dispatch's pool would starve it.
        let busy = (0 ..< cores).map { _ in
            startThread {
                var x: UInt64 = 1
                while !stop.load(ordering: .relaxed) { x = x &* 6364136223846793005 &+ 1 }
                _ = x
            }
        }
        defer {
            stop.store(true, ordering: .relaxed)
            for thread in busy { thread.wait() }
        }

        struct Outcome: Sendable { var done = 0, failures: [String] = [], retries = 0, retriesWithoutACommit = 0 }
        let outcome = Mutex(Outcome())
        let threads = 4, transfers = 150
        let workers = (0 ..< threads).map { worker in startThread {
            var generator = SystemRandomNumberGenerator()
            for _ in 0 ..< transfers {
                let from = names.randomElement(using: &generator)!
                var to = names.randomElement(using: &generator)!
                while to == from { to = names.randomElement(using: &generator)! }
                var starts: [Int] = []
                do {
                    try db.transaction(retries: 10) { connection in
                        // The commits this try's view holds (counted when it synchronized).
                        starts.append(try #require(connection.core.storage as? SessionStorage).commitsSeen)
                        let accounts = try connection.root(Bank.self).accounts
                        try #require(accounts[from]).balance -= 1
                        try #require(accounts[to]).balance += 1
                    }
                    let retries = starts.count - 1
                    let unfounded = zip(starts, starts.dropFirst()).filter { $0.1 <= $0.0 }.count
                    outcome.withLock {
                        $0.done += 1
                        $0.retries += retries
                        $0.retriesWithoutACommit += unfounded
                    }
                } catch {
                    outcome.withLock { $0.failures.append("worker \(worker): \(error)") }
                }
            }
        } }
        for thread in workers { thread.wait() }
        let result = outcome.withLock { $0 }
        #expect(result.failures.isEmpty, "\(result.failures.prefix(3))")
        #expect(result.done == threads * transfers)
        #expect(result.retriesWithoutACommit == 0, "\(result.retriesWithoutACommit) of \(result.retries) retries started with no commit landed since the try before")
        let total = try db.transaction { connection in
            try connection.root(Bank.self).accounts.values.map(\.balance).reduce(0, +)
        }
        #expect(total == 1000 * names.count)
        print("\(kind): \(result.retries) retries in \(result.done) transfers, each after a landed commit")
    }

    /// Tried: a transaction that loses every try (its body commits the same
    /// account through another connection first), with `retries: 4`, then
    /// the same with a time limit of zero. Survives: the error is the last
    /// conflict and says 5 tries failed while 5 commits landed (the other
    /// connection's, made from inside the body even on the tries that hold
    /// the exchange), then 1 try and a timed-out give-up; the account holds
    /// the other connection's last value.
    @Test(arguments: StorageKind.allCases)
    func aTransactionThatGivesUpSaysHowManyTriesAndCommits(_ kind: StorageKind) throws {
        let (db, cleanup) = try makeDatabase(kind)
        defer { cleanup() }
        try db.transaction { try $0.root(Bank.self).accounts["x"] = Account(owner: "x") }
        let other = try db.open()
        var runs = 0
        let lost = #expect(throws: ConflictError.self) {
            try db.transaction(retries: 4) { connection in
                runs += 1
                try #require(try connection.root(Bank.self).accounts["x"]).balance += 1
                other.abort()
                try #require(try other.root(Bank.self).accounts["x"]).balance = runs * 100
                try other.commit()
            }
        }
        #expect(runs == 5)
        #expect(lost?.giveUp == ConflictError.GiveUp(tries: 5, commitsLanded: 5, timedOut: false))
        #expect(lost.map { "\($0)" }?.contains("5 tries failed") == true)
        #expect(try db.transaction { try $0.root(Bank.self).accounts["x"]?.balance } == 500)

        let timed = #expect(throws: ConflictError.self) {
            try db.transaction(retries: 100, timeLimit: .zero) { connection in
                try #require(try connection.root(Bank.self).accounts["x"]).balance += 1
                other.abort()
                try #require(try other.root(Bank.self).accounts["x"]).balance += 1
                try other.commit()
            }
        }
        #expect(timed?.giveUp == ConflictError.GiveUp(tries: 1, commitsLanded: 1, timedOut: true))
    }
}
