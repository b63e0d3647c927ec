import Foundation

/// A value model with a case for each common leaf of a persistent state:
/// ``StateValue`` and ``PickleValue``, whose cases are these functions.
protocol LeafValueModel {
    static func string(_ value: String) -> Self
    static func int(_ value: Int64) -> Self
    static func bool(_ value: Bool) -> Self
    static func double(_ value: Double) -> Self
    static func bytes(_ value: [UInt8]) -> Self
}

extension StateValue: LeafValueModel {}
extension PickleValue: LeafValueModel {}

extension LeafValueModel {
    /// `value` as a leaf, when its type is `String`, `Int`, `Bool`, `Double`,
    /// `Data`, `[UInt8]`, `Date` or `UUID` (written without an encoder); nil
    /// for any other type. Exact metatype checks: cheap and precise (a
    /// dynamic value cast would take an empty `[Account]` for `[UInt8]`, and
    /// costs far more).
    @inline(__always)
    static func leaf<T: Encodable>(_ value: T) -> Self? {
        if T.self == String.self { return .string(value as! String) }
        if T.self == Int.self { return .int(Int64(value as! Int)) }
        if T.self == Bool.self { return .bool(value as! Bool) }
        if T.self == Double.self { return .double(value as! Double) }
        if T.self == Data.self { return .bytes(Array(value as! Data)) }
        if T.self == [UInt8].self { return .bytes(value as! [UInt8]) }
        if T.self == Date.self { return .double((value as! Date).timeIntervalSinceReferenceDate) }
        if T.self == UUID.self { return .bytes(withUnsafeBytes(of: (value as! UUID).uuid) { Array($0) }) }
        return nil
    }
}

extension PersistentObject {
    /// `value` as the object it is, when `T` is a persistent class (check
    /// `T.self is PersistentObject.Type` first): a metatype test and this
    /// cost far less than a dynamic cast of every value.
    @inline(__always)
    static func object<T>(_ value: T) -> PersistentObject {
        withUnsafePointer(to: value) { $0.withMemoryRebound(to: PersistentObject.self, capacity: 1) { $0.pointee } }
    }
}
