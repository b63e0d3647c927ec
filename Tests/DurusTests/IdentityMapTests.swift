@testable import Durus
import Testing

@Suite struct IdentityMapTests {
    final class Thing: PersistentObject {}

    /// Random inserts, look-ups that make what is missing, replacements and removals (including removals that
    /// shift whole probe runs back, and OIDs that collide in a small table)
    /// checked after every step against a Dictionary.
    @Test func agreesWithADictionaryUnderRandomChurn() {
        let map = IdentityMap()
        var model: [OID: Thing] = [:]
        var generator = SystemRandomNumberGenerator()
        // Dense OIDs, as stores hand them out, plus a stride that shares low bits.
        let keys = (0 ..< 600).map { OID(UInt64($0)) } + (1 ... 200).map { OID(UInt64($0) << 20) }
        for step in 0 ..< 40_000 {
            let oid = keys.randomElement(using: &generator)!
            switch Int.random(in: 0 ..< 10, using: &generator) {
            case 0 ..< 4:
                let thing = Thing()
                map.insert(thing, for: oid)
                model[oid] = thing
            case 4:
                // The instance there, or a new one entered for the OID.
                let made = Thing()
                let got = map.object(for: oid) { made }
                guard got === (model[oid] ?? made) else {
                    Issue.record("object(for:orMake:) gave another instance for \(oid) at step \(step)")
                    return
                }
                model[oid] = got as? Thing
            case 5 ..< 8:
                map.remove(oid)
                model[oid] = nil
            default:
                // Removal by identity removes only the object it names.
                let stranger = Thing()
                map.remove(oid, ifItIs: ObjectIdentifier(stranger))
                if let present = model[oid], step % 2 == 0 {
                    map.remove(oid, ifItIs: ObjectIdentifier(present))
                    model[oid] = nil
                }
            }
            guard map.count == model.count else {
                Issue.record("\(map.count) entries, the model has \(model.count), after step \(step)")
                return
            }
            if step % 97 == 0 || step > 39_900 {
                let wrong = keys.filter { map[$0] !== model[$0] || map.contains($0) != (model[$0] != nil) }
                guard wrong.isEmpty else {
                    Issue.record("OIDs \(wrong.prefix(5)) disagree after step \(step)")
                    return
                }
            }
        }
    }

    @Test func growsPastItsFirstTableAndEmptiesAgain() {
        let map = IdentityMap()
        let things = (0 ..< 100_000).map { _ in Thing() }
        for (i, thing) in things.enumerated() { map.insert(thing, for: OID(UInt64(i))) }
        #expect(map.count == 100_000)
        #expect(map[OID(0)] === things[0] && map[OID(99_999)] === things[99_999])
        #expect(map[OID(100_000)] == nil)
        for i in stride(from: 0, to: 100_000, by: 2) { map.remove(OID(UInt64(i))) }
        #expect(map.count == 50_000)
        #expect((0 ..< 100_000).allSatisfy { i in (map[OID(UInt64(i))] === things[i]) == (i % 2 == 1) })
    }
}
