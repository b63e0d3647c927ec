/// The contract every stored object keeps: an identity (``oid``), a life
/// cycle (new, saved, ghost), an owning ``Connection``, and a state the
/// connection can encode, decode and drop.
///
/// Subclass ``Persistent`` (state in a `Codable` struct) rather than this class;
/// subclass `PersistentObject` directly only for an object that keeps its
/// state some other way (the library's collections do).
///
/// A subclass must keep the two required initializers available: declare
/// convenience initializers only, or implement `init(ghost:)` and
/// `init(from:)` too (`@Persistent` writes them). `init(ghost:)` runs no user
/// code: it is how a connection makes the stand-in for an object it has not
/// loaded yet, so every stored property needs a default value.
open class PersistentObject: Codable {
    /// Where an object is in its life.
    public enum Status: Sendable, Equatable {
        /// New, or changed since it was loaded: the state in memory is not (yet) stored.
        case unsaved
        /// The state in memory is the stored state.
        case saved
        /// The state is not in memory; the first access loads it.
        case ghost
    }

    /// The connection this object belongs to, once committed or loaded.
    public final var connection: Connection? { core?.handle }
    // The bookkeeping below is read or written at every property access, and
    // only by the library, in accesses that never overlap: exempt from the
    // run-time exclusivity checks, which cost more than the accesses.

    /// Held strongly: an object the program keeps can always load its state.
    @usableFromInline @exclusivity(unchecked) final var core: ConnectionCore?
    /// Where the object is in its life.
    public internal(set) final var status: Status {
        get { _status }
        set { _status = newValue }
    }
    /// The transaction serial of the connection when the object was last accessed.
    @usableFromInline @exclusivity(unchecked) final var serial = 0
    /// Where the connection's cache holds it (see `ResidentObjects`); -1 when it does not.
    @exclusivity(unchecked) final var residentIndex = -1
    // Stored properties are laid out in declaration order: with the OID and
    // the status last, the OID's one-byte optional tag and the status share
    // a word, so a subclass's state starts at byte 56 of the object, not 64.
    /// The object's OID: nil until the commit that first stores it.
    public internal(set) final var oid: OID?
    @usableFromInline @exclusivity(unchecked) final var _status: Status = .unsaved

    /// A new object, unsaved and unattached to any connection.
    public init() {}

    /// A stand-in for a stored object whose state is not loaded: runs no user code.
    public required init(ghost: GhostMarker) {
        status = .ghost
    }

    deinit {
        if let oid { core?.forget(oid, self) }
    }

    /// Persistent objects are coded only as references inside other objects'
    /// state, by the Durus state codec; any other decoder gets an error.
    public required init(from decoder: any Decoder) throws {
        throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                debugDescription: "persistent objects decode only through a Connection"))
    }

    /// See ``init(from:)``.
    open func encode(to encoder: any Encoder) throws {
        throw EncodingError.invalidValue(self, .init(codingPath: encoder.codingPath,
                                                     debugDescription: "persistent objects encode only through a Connection"))
    }

    /// The name stored in each record for this type, so that tools can name
    /// it and a connection can find the type again. Defaults to the
    /// module-qualified class name, with the module dropped from the
    /// standard library's, Foundation's and Durus's types (its generic
    /// arguments included), so that it is the same on every platform and
    /// toolchain: `MyApp.Account`, `BTree<Date, String>`,
    /// `PersistentList<MyApp.Account>`. Override to keep a name across renames.
    open class var persistentTypeName: String { pythonClass ?? PersistentTypes.stableName(String(reflecting: self)) }

    /// The Python class (`module.Name`) this type maps, or nil (the default)
    /// for a Swift-only type. An object of a mapped type is stored as Python
    /// Durus 4.3 stores an object of that class: its state pickled as a dict
    /// of its properties by name, which a Python program unpickles as its own
    /// object; and a record Python wrote for that class loads as this type.
    /// The name is also the type's ``PersistentObject/persistentTypeName``. `@Persistent(python:)`
    /// declares it; see the Python interoperability article for what maps to what.
    open class var pythonClass: String? { nil }

    /// The Python class this object's record names: ``pythonClass``, unless
    /// a type that maps several Python classes (Durus's B-tree nodes, one
    /// class per degree) keeps the one each object was loaded as.
    var pythonClassName: String? { Swift.type(of: self).pythonClass }

    /// Whether a record of the Python class `name` (UTF-8) loads as this type.
    class func mapsPythonClass(_ name: ArraySlice<UInt8>) -> Bool {
        guard let python = pythonClass else { return false }
        return python.utf8.elementsEqual(name)
    }

    /// Called when a record of the Python class `name` (UTF-8) was loaded into this object.
    func noteLoadedPythonClass(_ name: ArraySlice<UInt8>) {}

    // MARK: For subclasses

    /// Encodes the object's state. Persistent objects anywhere inside become references.
    open func encodeState(_ encoder: inout PersistentStateEncoder) throws {}

    /// Replaces the object's state with the decoded one.
    open func decodeState(_ decoder: PersistentStateDecoder) throws {}

    /// Drops the state when the object becomes a ghost; reset transient
    /// properties here too. Call `super`.
    open func clearState() {}

    /// Gives the object a blank state after a load failed inside an accessor,
    /// which cannot throw: the transaction is doomed (its commit throws the
    /// load's error) and the values seen are blanks. The default clears.
    open func setPlaceholderState() { clearState() }

    /// Call before reading the state: loads a ghost and notes the access.
    @inlinable public final func willRead() {
        noteAccess()
    }

    /// Call before changing the state: loads a ghost, notes the access and
    /// marks the object changed, so the next commit stores it.
    @inlinable public final func willWrite() {
        noteAccess()
        if _status != .unsaved { noteChange() }
    }

    @inlinable final func noteAccess() {
        if _status == .ghost { loadGhost() }
        // Written only when it changes: a warm read then writes no memory.
        // Read through the optional, not bound to a local: the read then
        // borrows the connection instead of retaining and releasing it.
        if let current = core?.serial, serial != current { serial = current }
    }

    /// Loads this ghost through its connection, if it has one (out of line:
    /// the rare path of an access).
    @usableFromInline final func loadGhost() {
        core?.loadFromAccessor(self)
    }

    @usableFromInline final func noteChange() {
        status = .unsaved
        core?.noteChange(self)
    }
}

/// A persistent type a store can create with no arguments: the root of a
/// new store (see ``Database/init(storage:root:types:configuration:)``).
/// Final classes conform with a plain `init()`.
public protocol PersistentRoot: PersistentObject {
    init()
}

/// The token only a connection can make, for ``PersistentObject/init(ghost:)``.
public struct GhostMarker: Sendable {
    init() {}
}

/// The state of a ``Persistent`` object: a `Codable` value with defaults.
///
/// Schema evolution: a property added later loads old records with the value
/// `init()` gives it; a stored property the type no longer has is ignored; a
/// rename is declared in ``renamedProperties`` (old stored name → new name).
///
/// A state loads as it was committed: a property that was nil is stored as
/// nil, so it loads as nil whatever its default, and an optional holding a
/// nil optional (an `Int??` holding `.some(nil)`) keeps its level. Only a
/// key the record lacks takes the default, which is also how records
/// written by state formats 1 and 2 load a nil property they left out.
public protocol PersistentState: Codable {
    /// The state of a new object, and the source of defaults for properties
    /// that older records do not have.
    init()
    /// Stored names of properties renamed since: old name → new name.
    static var renamedProperties: [String: String] { get }
}

extension PersistentState {
    public static var renamedProperties: [String: String] { [:] }
}

/// A persistent object whose state is one `Codable` struct.
///
/// ```swift
/// final class Account: Persistent<Account.State> {
///     struct State: PersistentState {
///         var owner = ""
///         var balance = 0
///     }
///     var owner: String { get { state.owner } set { state.owner = newValue } }
///     var balance: Int { get { state.balance } set { state.balance = newValue } }
///     convenience init(owner: String) {
///         self.init()
///         state.owner = owner
///     }
/// }
/// ```
/// Reading `state` loads a ghost; changing it marks the object changed
/// (mutating a value inside it, such as appending to an array property, counts).
open class Persistent<State: PersistentState>: PersistentObject, PersistentRoot {
    /// Never optional, so accessors yield it in place without copying; a
    /// ghost holds `State()`, which is cheap and keeps nothing alive.
    @usableFromInline final var storedState: State

    public required override init() {
        storedState = State()
        super.init()
    }

    public required init(ghost: GhostMarker) {
        storedState = State()
        super.init(ghost: ghost)
    }

    public required init(from decoder: any Decoder) throws {
        storedState = State()
        try super.init(from: decoder)
    }

    /// The object's state: loaded on first read, marked changed on write.
    @inlinable public final var state: State {
        _read {
            willRead()
            yield storedState
        }
        _modify {
            willWrite()
            yield &storedState
        }
    }

    open override func encodeState(_ encoder: inout PersistentStateEncoder) throws {
        try encoder.encode(storedState)
    }

    open override func decodeState(_ decoder: PersistentStateDecoder) throws {
        storedState = try decoder.decode(State.self)
    }

    open override func clearState() {
        storedState = State()
    }

}
