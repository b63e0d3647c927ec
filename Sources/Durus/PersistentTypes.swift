import Synchronization

/// Stored type names and the Swift types they stand for.
///
/// A record names its object's type; a connection makes ghosts of the
/// registered type, so a reference whose static type is a superclass loads
/// as the right subclass. ``Database`` registers the types it is given.
///
/// Names are matched in their stable form (see
/// ``PersistentObject/persistentTypeName``), so a name that spells the
/// module of a standard library, Foundation or Durus type, as
/// `String(reflecting:)` does (`Durus.BTree<FoundationEssentials.Date,
/// Swift.String>` here, `Foundation.Date` on macOS), finds the type
/// registered as `BTree<Date, String>`.
public enum PersistentTypes {
    /// Types by the stable form of their names.
    private static let registry = Mutex<[String: PersistentObject.Type]>([:])

    /// Registers each type under its ``PersistentObject/persistentTypeName``.
    public static func register(_ types: [PersistentObject.Type]) {
        let named = types.map { (stableName($0.persistentTypeName), $0) }
        registry.withLock { map in
            for (name, type) in named { map[name] = type }
        }
    }

    private static let registered = Mutex<Set<ObjectIdentifier>>([])

    /// Registers `type` the first time it is asked, by identity: later calls
    /// cost one lookup and compute no name. The library's generic collections
    /// call it from their initializers, since their specializations cannot be
    /// listed up front.
    public static func registerOnce(_ type: PersistentObject.Type) {
        registered.withLock { seen in
            // Inside the lock, so no caller returns before the name is registered.
            if seen.insert(ObjectIdentifier(type)).inserted { register([type]) }
        }
    }

    /// The type registered under `name`, or under another spelling of it
    /// that names the modules of built-in types.
    public static func type(named name: String) -> PersistentObject.Type? {
        if let type = registry.withLock({ $0[name] }) { return type }
        let stable = stableName(name)
        return stable == name ? nil : registry.withLock { $0[stable] }
    }

    /// Whether a stored type name names `type`, in any spelling of it.
    static func isName(_ stored: String, of type: PersistentObject.Type) -> Bool {
        let name = name(of: type)
        return stored == name || stableName(stored) == stableName(name)
    }

    /// The modules whose types are named without their module: the standard
    /// library's, Foundation's (in each module it lives in) and Durus's.
    private static let builtInModules = ["Swift.", "Foundation.", "FoundationEssentials.", "FoundationInternationalization.", "Durus."]

    /// `name` (a type name as `String(reflecting:)` spells it) with the
    /// module dropped from each standard library, Foundation or Durus type
    /// in it: `Durus.BTree<FoundationEssentials.Date, Swift.String>` becomes
    /// `BTree<Date, String>`, and `MyApp.Account` stays as it is.
    static func stableName(_ name: String) -> String {
        var result = ""
        var rest = Substring(name)
        // At the start of a (possibly module-qualified) name, not inside one.
        var atStart = true
        while let character = rest.first {
            if atStart, let module = builtInModules.first(where: { rest.hasPrefix($0) }) {
                rest = rest.dropFirst(module.count)
                atStart = false
                continue
            }
            result.append(character)
            rest = rest.dropFirst()
            atStart = !(character.isLetter || character.isNumber || character == "_" || character == ".")
        }
        return result
    }

    private static let names = Mutex<[ObjectIdentifier: String]>([:])

    /// `type.persistentTypeName`, computed once per type (the default,
    /// `String(reflecting:)`, is slow to recompute at every reference).
    static func name(of type: PersistentObject.Type) -> String {
        let key = ObjectIdentifier(type)
        if let known = names.withLock({ $0[key] }) { return known }
        let name = type.persistentTypeName
        names.withLock { $0[key] = name }
        return name
    }
}
