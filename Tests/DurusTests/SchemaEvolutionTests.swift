@testable import Durus
import Testing

private final class EvolvedLeaf: Persistent<EvolvedLeaf.State> {
    struct State: PersistentState { var count = 0 }
}

/// A type that gained a property whose default is a new persistent object.
private final class EvolvedHolder: Persistent<EvolvedHolder.State> {
    struct State: PersistentState {
        var label = ""
        var leaf = EvolvedLeaf()
    }
}

@Suite struct SchemaEvolutionTests {
    /// Tried: a record (OID 1, not the root) written before its type gained
    /// a property whose default is a new persistent object, which loading
    /// cannot create. Survives: the load fails as `badState` naming OID 1,
    /// the object it failed on (it named the root's OID, 0, whatever failed).
    @Test func aStateThatCannotBeEvolvedNamesItsOwnOID() throws {
        let storage = try MemoryStorage.ofFormat2([
            (EvolvedHolder.persistentTypeName, StateValue.keyed([("label", .string("root"))]).bytes, []),
            (EvolvedHolder.persistentTypeName, StateValue.keyed([("label", .string("old"))]).bytes, []),
        ])
        let database = try Database(storage: storage, root: EvolvedHolder.self, types: [EvolvedLeaf.self])
        let connection = try database.open()
        #expect {
            try connection.get(OID(1))
        } throws: { error in
            guard case DurusError.badState(let oid, let reason) = error else { return false }
            return oid == OID(1) && reason.contains("'leaf'")
        }
    }
}
