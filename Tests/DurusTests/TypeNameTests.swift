@testable import Durus
import Foundation
import Testing

/// A root that refers to a collection of Foundation values.
final class Keeper: Persistent<Keeper.State> {
    struct State: PersistentState {
        var map: PersistentDictionary<UUID, Double>?
    }
}

/// The type names records hold: the same on every platform and toolchain
/// for the standard library's, Foundation's and this library's types, and
/// the names written before (which name the module these types live in
/// here, or on another platform) still resolve.
@Suite struct TypeNameTests {
    static let id = UUID(uuid: (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16))

    @Test func builtInTypesHaveStableNames() {
        #expect(PersistentTypes.name(of: BTree<Date, String>.self) == "BTree<Date, String>")
        #expect(PersistentTypes.name(of: BTreeNode<Date, String>.self) == "BTreeNode<Date, String>")
        #expect(PersistentTypes.name(of: PersistentDictionary<UUID, Double>.self) == "PersistentDictionary<UUID, Double>")
        #expect(PersistentTypes.name(of: PersistentList<Data>.self) == "PersistentList<Data>")
        #expect(PersistentTypes.name(of: PersistentSet<Int>.self) == "PersistentSet<Int>")
        #expect(PersistentTypes.name(of: ComputedAttribute<Int8>.self) == "ComputedAttribute<Int8>")
        #expect(PersistentTypes.name(of: PersistentDictionary<String, [UInt64: Bool?]>.self)
                == "PersistentDictionary<String, Dictionary<UInt64, Optional<Bool>>>")
        // The program's own types keep their module.
        #expect(PersistentTypes.name(of: Keeper.self) == "DurusTests.Keeper")
        #expect(PersistentTypes.name(of: PersistentList<Keeper>.self) == "PersistentList<DurusTests.Keeper>")
    }

    /// A store whose records name Foundation's types in module `Foundation`,
    /// as `String(reflecting:)` spells them on macOS, loads here.
    @Test func aStoreWrittenWhereFoundationIsAnotherModuleLoads() throws {
        _ = BTree<Date, String>()
        #expect(PersistentTypes.type(named: "Durus.BTree<Foundation.Date, Swift.String>") == BTree<Date, String>.self)
        let name = "Durus.PersistentDictionary<Foundation.UUID, Swift.Double>"
        let storage = try MemoryStorage.ofFormat2([(name, try StateCodecTests.encode([Self.id: 2.5]), [])])
        let database = try Database(storage: storage, root: PersistentDictionary<UUID, Double>.self)
        #expect(try database.open().root(PersistentDictionary<UUID, Double>.self).contents == [Self.id: 2.5])
    }

    /// Names as `String(reflecting:)` spells them here, in record headers
    /// and in references, find their types: registered, declared by the
    /// reference, or the type of the ghost whose record is loaded.
    @Test func namesWrittenBeforeStillResolve() throws {
        _ = BTree<Date, String>()
        // As this toolchain spells it: `Durus.BTree<FoundationEssentials.Date, Swift.String>`.
        #expect(PersistentTypes.type(named: String(reflecting: BTree<Date, String>.self)) == BTree<Date, String>.self)

        let before = String(reflecting: PersistentDictionary<UUID, Double>.self)
        let map = try StateCodecTests.encode([Self.id: 2.5])
        for reference in [before, PersistentTypes.name(of: PersistentDictionary<UUID, Double>.self)] {
            let root = StateValue.keyed([("map", .reference(OID(1), typeName: reference))]).bytes
            let storage = try MemoryStorage.ofFormat2([(Keeper.persistentTypeName, root, [OID(1)]), (before, map, [])])
            let keeper = try Database(storage: storage, root: Keeper.self).open().root(Keeper.self)
            #expect(keeper.state.map?.contents == [Self.id: 2.5], "the reference names \(reference)")
        }
    }
}
