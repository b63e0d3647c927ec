/// A connection's identity map: OID → the one live instance for it, not
/// retained (an object removes itself when it is freed; see
/// `ConnectionCore.forget`).
///
/// An open-addressing table with linear probing and a multiplicative hash
/// of each run of 8 consecutive OIDs: OIDs are handed out in sequence, so
/// the runs spread evenly under it, and a lookup costs a multiply instead
/// of the SipHash that `Dictionary` pays (a cold load makes a ghost, and so
/// an insertion, for every reference of every state it decodes; this table
/// was a fifth of that time as a `Dictionary`). Removal shifts the entries after it back, so no tombstones
/// build up as objects come and go.
final class IdentityMap {
    private struct Slot {
        var key: UInt64
        /// nil: the slot is empty.
        var object: UnsafeMutableRawPointer?
    }

    private var slots: UnsafeMutablePointer<Slot>
    private var mask: Int
    private var shift: UInt64
    private(set) var count = 0

    init() {
        let capacity = 64
        slots = Self.allocate(capacity)
        mask = capacity - 1
        shift = UInt64(64 - capacity.trailingZeroBitCount)
    }

    deinit {
        UnsafeMutableRawPointer(slots).deallocate()
    }

    /// Empty slots on a 64-byte boundary, so a run of 8 is two cache lines.
    private static func allocate(_ capacity: Int) -> UnsafeMutablePointer<Slot> {
        let slots = UnsafeMutableRawPointer.allocate(byteCount: capacity * MemoryLayout<Slot>.stride, alignment: 64)
            .bindMemory(to: Slot.self, capacity: capacity)
        slots.initialize(repeating: Slot(key: 0, object: nil), count: capacity)
        return slots
    }

    /// Runs of 8 consecutive OIDs share one spread-out home run of 8 slots
    /// (two cache lines), so the ghosts of a decoded state, whose references
    /// are mostly consecutive OIDs, fill the table a few lines at a time
    /// rather than a line each; larger strides still spread evenly.
    @inline(__always) private func home(_ key: UInt64) -> Int {
        let run = ((key >> 3) &* 0x9E37_79B9_7F4A_7C15) >> (shift + 3)
        return Int(truncatingIfNeeded: run << 3 | key & 7)
    }

    /// The slot holding `key`, or the empty slot where it would go.
    @inline(__always) private func find(_ key: UInt64) -> Int {
        var index = home(key)
        while let _ = slots[index].object, slots[index].key != key { index = (index + 1) & mask }
        return index
    }

    /// The live instance for `oid`, retained for the caller.
    subscript(oid: OID) -> PersistentObject? {
        let slot = slots[find(oid.rawValue)]
        guard let pointer = slot.object else { return nil }
        return Unmanaged<PersistentObject>.fromOpaque(pointer).takeUnretainedValue()
    }

    func contains(_ oid: OID) -> Bool {
        slots[find(oid.rawValue)].object != nil
    }

    /// Makes `object` the instance for `oid` (replacing any other).
    func insert(_ object: PersistentObject, for oid: OID) {
        let index = find(oid.rawValue)
        if slots[index].object != nil {
            slots[index].object = Unmanaged.passUnretained(object).toOpaque()
        } else {
            fill(index, oid, object)
        }
    }

    /// The instance for `oid`, or else the one `make` returns (which must
    /// not change this map), entered for it: one search either way.
    func object(for oid: OID, orMake make: () throws -> PersistentObject) rethrows -> PersistentObject {
        let index = find(oid.rawValue)
        if let pointer = slots[index].object { return Unmanaged<PersistentObject>.fromOpaque(pointer).takeUnretainedValue() }
        let object = try make()
        fill(index, oid, object)
        return object
    }

    /// Enters `object` in the empty slot `index`, where `find` put `oid`.
    private func fill(_ index: Int, _ oid: OID, _ object: PersistentObject) {
        var index = index
        if (count + 1) * 4 > (mask + 1) * 3 {
            grow()
            index = find(oid.rawValue)
        }
        slots[index] = Slot(key: oid.rawValue, object: Unmanaged.passUnretained(object).toOpaque())
        count += 1
    }

    /// Removes the entry for `oid`, but only while it is `object`: compared
    /// by address, so an object in its deinit can call this without being
    /// retained.
    func remove(_ oid: OID, ifItIs object: ObjectIdentifier) {
        let index = find(oid.rawValue)
        guard let pointer = slots[index].object, UInt(bitPattern: pointer) == UInt(bitPattern: object) else { return }
        removeSlot(index)
    }

    /// Removes the entry for `oid`, whatever it is.
    func remove(_ oid: OID) {
        let index = find(oid.rawValue)
        if slots[index].object != nil { removeSlot(index) }
    }

    private func removeSlot(_ removed: Int) {
        var hole = removed
        var next = (hole + 1) & mask
        // Moves back each later entry of the run whose probe passes the hole.
        while slots[next].object != nil {
            let start = home(slots[next].key)
            if (next &- start) & mask >= (next &- hole) & mask {
                slots[hole] = slots[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole].object = nil
        count -= 1
    }

    private func grow() {
        let oldSlots = slots
        let oldCapacity = mask + 1
        let capacity = oldCapacity * 2
        slots = Self.allocate(capacity)
        mask = capacity - 1
        shift = UInt64(64 - capacity.trailingZeroBitCount)
        for index in 0 ..< oldCapacity where oldSlots[index].object != nil {
            slots[find(oldSlots[index].key)] = oldSlots[index]
        }
        UnsafeMutableRawPointer(oldSlots).deallocate()
    }
}
