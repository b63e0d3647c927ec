import Durus
import DurusClient

/// Moves money among Python `accounts.Account` records the way a Durus
/// connection would, over any storage (a ``ClientStorage`` or a session of
/// the server's hub): loads conflict when stale, a commit conflicts when the
/// server reports that another client changed what it read.
struct RecordBank {
    let storage: any Storage
    let accounts: [OID]

    /// One transfer, retried on conflicts; returns how many conflicts it met.
    @discardableResult
    func transfer(from source: OID, to target: OID, amount: Int) throws -> Int {
        var conflicts = 0
        while true {
            do {
                let balances = try storage.bulkLoad([source, target]).map { try AccountPickle.balance($0.data) }
                let records = [
                    Record(oid: source, data: AccountPickle.data(balance: balances[0] - amount), references: []),
                    Record(oid: target, data: AccountPickle.data(balance: balances[1] + amount), references: []),
                ]
                try storage.commit(records) { invalidated in
                    if let clash = invalidated.first(where: { $0 == source || $0 == target }) {
                        throw ConflictError(.write, oids: [clash])
                    }
                }
                return conflicts
            } catch let conflict as ConflictError {
                conflicts += 1
                if conflict.kind == .read { _ = try storage.sync() }
            }
        }
    }

    /// Adds 1 to the balance of each of `oids` in one commit, retried on
    /// conflicts; returns how many conflicts it met.
    @discardableResult
    func increment(_ oids: [OID]) throws -> Int {
        var conflicts = 0
        while true {
            do {
                let records = try zip(oids, storage.bulkLoad(oids)).map { oid, record in
                    Record(oid: oid, data: AccountPickle.data(balance: try AccountPickle.balance(record.data) + 1), references: [])
                }
                try storage.commit(records) { invalidated in
                    if let clash = invalidated.first(where: oids.contains) { throw ConflictError(.write, oids: [clash]) }
                }
                return conflicts
            } catch let conflict as ConflictError {
                conflicts += 1
                if conflict.kind == .read { _ = try storage.sync() }
            }
        }
    }

    /// The balances of `oids`, read consistently (retried until no load is stale).
    func balances(_ oids: [OID]) throws -> [Int] {
        while true {
            do {
                _ = try storage.sync()
                return try storage.bulkLoad(oids).map { try AccountPickle.balance($0.data) }
            } catch let conflict as ConflictError where conflict.kind == .read {
                continue
            }
        }
    }

    /// The sum of all balances, read consistently (retried until no load is stale).
    func total() throws -> Int {
        while true {
            do {
                _ = try storage.sync()
                return try storage.bulkLoad(accounts).reduce(0) { $0 + (try AccountPickle.balance($1.data)) }
            } catch let conflict as ConflictError where conflict.kind == .read {
                continue
            }
        }
    }
}
