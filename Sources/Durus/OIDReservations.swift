/// Which session reserved which fresh OIDs, kept as runs of consecutive
/// OIDs: a storage hands OIDs out in increasing order, so a session that
/// asks for many (a client's `M`) holds a few runs, not one entry per OID,
/// and ending a session costs one pass over the runs, however many OIDs it
/// held.
struct OIDReservations {
    /// Runs sorted by `start`, disjoint; `end` is exclusive.
    private var runs: [(start: UInt64, end: UInt64, owner: Int)] = []

    /// The number of runs (for tests).
    var runCount: Int { runs.count }

    /// The index of the first run that ends after `value`.
    private func index(after value: UInt64) -> Int {
        var low = 0, high = runs.count
        while low < high {
            let middle = (low + high) / 2
            if runs[middle].end <= value { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The session that reserved `oid`, if one did.
    func owner(of oid: OID) -> Int? {
        let i = index(after: oid.rawValue)
        guard i < runs.count, runs[i].start <= oid.rawValue else { return nil }
        return runs[i].owner
    }

    /// Reserves `oid` for `owner`; an OID next to one of its runs extends it.
    mutating func reserve(_ oid: OID, for owner: Int) {
        let value = oid.rawValue
        if let last = runs.last, last.owner == owner, last.end == value {
            runs[runs.count - 1].end = value + 1
            return
        }
        let i = index(after: value)
        if i < runs.count, runs[i].start <= value { return }     // already reserved
        if i > 0, runs[i - 1].owner == owner, runs[i - 1].end == value {
            runs[i - 1].end = value + 1
        } else {
            runs.insert((value, value + 1, owner), at: i)
        }
    }

    /// Ends the reservation of `oid` if `owner` holds it.
    mutating func release(_ oid: OID, by owner: Int) {
        let value = oid.rawValue
        let i = index(after: value)
        guard i < runs.count, runs[i].start <= value, runs[i].owner == owner else { return }
        let run = runs[i]
        switch (run.start == value, run.end == value + 1) {
        case (true, true): runs.remove(at: i)
        case (true, false): runs[i].start = value + 1
        case (false, true): runs[i].end = value
        case (false, false):
            runs[i].end = value
            runs.insert((value + 1, run.end, owner), at: i + 1)
        }
    }

    /// Ends every reservation of `owner`.
    mutating func releaseAll(of owner: Int) {
        runs.removeAll { $0.owner == owner }
    }
}
