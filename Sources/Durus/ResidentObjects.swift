/// The objects a connection's cache holds strongly: loaded or saved, not
/// ghosts. An array in which each object knows its own index, so adding and
/// removing hash nothing (a cold read adds every object it loads; as a
/// `Dictionary` keyed by OID, the table's growth alone was 7% of loading).
struct ResidentObjects {
    private(set) var objects: [PersistentObject] = []

    var count: Int { objects.count }

    mutating func insert(_ object: PersistentObject) {
        guard object.residentIndex < 0 else { return }
        object.residentIndex = objects.count
        objects.append(object)
    }

    /// Swaps the last object into `object`'s place.
    mutating func remove(_ object: PersistentObject) {
        let index = object.residentIndex
        guard index >= 0 else { return }
        object.residentIndex = -1
        let last = objects.removeLast()
        guard index < objects.count else { return }
        objects[index] = last
        last.residentIndex = index
    }

    mutating func removeAll() {
        for object in objects { object.residentIndex = -1 }
        objects.removeAll()
    }
}
