import Durus

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
