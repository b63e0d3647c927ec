import Durus
import DurusBerkeleyDB
import DurusTestSupport
import Testing

/// The object layer on a Berkeley DB store whose disk fills up (a tmpfs,
/// filled by a ballast file).
@Suite(.serialized, .enabled(if: SmallDisk.isAvailable, "mounting a tmpfs needs root with CAP_SYS_ADMIN"))
struct ConnectionFullDiskTests {
    /// Connections with durability full wait for the disk after the commit
    /// exchange is released (group commit), so on a full disk a commit fails
    /// in one of two ways: before it is applied (`diskFull`: nothing stored,
    /// its new objects detached and reusable) or after (`commitNotDurable`:
    /// stored, its objects saved, other connections see it). Which one
    /// depends on whether the commit needs a new page and on how much of the
    /// log file's last page is free. Tried: on the full disk, changes in
    /// place until one cannot flush, then 300 commits of a new account each,
    /// from a connection that a second one watches. Survives: every commit that returned or
    /// was reported not durable, after space is freed and the store is
    /// closed and reopened; nothing of a refused one.
    @Test func connectionCommitsOnAFullDiskAreRefusedOrStoredAndSayWhich() throws {
        let disk = try SmallDisk(megabytes: 64)
        defer { disk.remove() }
        let path = disk.path + "/store"
        let configure = { (configuration: inout BerkeleyDBStorage.Configuration) in
            configuration.durability = .full
            configuration.cacheSize = 2 << 20
            configuration.maxLocks = 20_000
            configuration.logFileSize = 2 << 20
        }
        var stored: [String: Int] = [:]
        var outcomes = (committed: 0, refused: 0, notDurable: 0)
        var lastRefused: Account?
        do {
            let storage = try openStore(path, configure)
            let database = try Database(storage: storage, root: Bank.self, types: [Account.self])
            let connection = try database.open()
            let watcher = try database.open()
            func attempt(_ round: Int) throws {
                let owner = "owner-\(round)"
                let account = Account(owner: owner, balance: round)
                account.history = Array(repeating: round, count: 400)
                try connection.root(Bank.self).accounts[owner] = account
                do {
                    try connection.commit()
                    outcomes.committed += 1
                } catch DurusError.diskFull {
                    outcomes.refused += 1
                    #expect(account.oid == nil, "a refused commit's new object is detached")
                    lastRefused = account
                    connection.abort()
                    return
                } catch DurusError.commitNotDurable(let reason) {
                    outcomes.notDurable += 1
                    #expect(reason.contains("No space left on device"), "\(reason)")
                    #expect(account.oid != nil, "a stored commit's new object keeps its OID")
                }
                stored[owner] = round
                watcher.abort()
                #expect(try watcher.root(Bank.self).accounts[owner]?.balance == round)
            }
            for round in 0 ..< 20 { try attempt(round) }
            #expect(outcomes.committed == 20)
            try disk.fill()
            // Changes that fit the pages they change are applied in the
            // cache, and return while the log still fits the file's last
            // page; the first whose log does not is applied and cannot flush.
            let first = try #require(try connection.root(Bank.self).accounts["owner-0"])
            for balance in 1 ... 200 where outcomes.notDurable == 0 {
                first.balance = balance
                do {
                    try connection.commit()
                    outcomes.committed += 1
                } catch DurusError.commitNotDurable(let reason) {
                    outcomes.notDurable += 1
                    #expect(reason.contains("No space left on device"), "\(reason)")
                }
                stored["owner-0"] = balance
            }
            for round in 20 ..< 320 { try attempt(round) }
            #expect(outcomes.refused > 100, "\(outcomes)")
            #expect(outcomes.notDurable >= 1, "\(outcomes)")
            // Space again: the same connection commits.
            disk.freeSpace()
            connection.abort()
            for round in 320 ..< 330 { try attempt(round) }
            #expect(outcomes.committed >= 30, "\(outcomes)")
            // A refused commit's new object, linked again, is stored like any new one.
            let reused = try #require(lastRefused)
            reused.owner = "reused"
            try connection.root(Bank.self).accounts["reused"] = reused
            try connection.commit()
            #expect(reused.oid != nil)
            stored["reused"] = reused.balance
            try storage.close()
        }
        let reopened = try openStore(path, configure)
        defer { try? reopened.close() }
        let database = try Database(storage: reopened, root: Bank.self, types: [Account.self])
        let accounts = try database.open().root(Bank.self).accounts
        #expect(accounts.mapValues(\.balance) == stored, "\(outcomes)")
        let report = try reopened.verify()
        #expect(report.isClean, "\(report)")
    }
}
