@_exported import Durus

/// Makes the stored properties of a `final` ``Durus/PersistentObject``
/// subclass its stored state, as `@Observable` does for observation.
///
/// ```swift
/// import DurusMacros
///
/// @Persistent final class Account: PersistentObject {
///     var owner: String                          // stored; "" in a ghost
///     var balance: Int = 0                       // stored
///     @Transient var lastViewed: Date? = nil     // never stored; reset when ghosted
///
///     init(owner: String) {
///         self.owner = owner
///         super.init()
///     }
/// }
///
/// @Persistent final class Bank: PersistentObject, PersistentRoot {
///     var accounts: [String: Account] = [:]
/// }
/// ```
///
/// Each stored instance `var` that is not `@Transient` becomes a computed
/// property over a private backing `_name`: reading it loads a ghost
/// (``Durus/PersistentObject/willRead()``); assigning it, or changing it in
/// place (`bank.accounts["bob"] = bob`, `list.append(1)`), marks the object
/// changed (``Durus/PersistentObject/willWrite()``), so the next commit
/// stores it. The macro also writes a nested `_DurusState` struct (a
/// ``Durus/PersistentState`` with one property per persistent property, under
/// its Swift name), `encodeState(_:)`, `decodeState(_:)`, `clearState()`,
/// and the required `init(ghost:)` and `init(from:)`; and `init()` when the
/// class declares no designated initializer of its own (declaring the
/// required ones would stop it being inherited).
///
/// Rules, each checked at compile time:
/// - The class is `final` and inherits from `PersistentObject` directly.
/// - Persistent properties are `var`s with an explicit type, one to a
///   declaration, without observers, not `lazy`, `weak` or `unowned`.
/// - Each has a default value, since a ghost is made without running an
///   initializer: the declared initial value, or else the zero value of its
///   type (`""`, `false`, `0` for the integer and floating-point types, `nil`
///   for optionals, `[]` for arrays and sets, `[:]` for dictionaries).
///   A default value is evaluated inside `_DurusState` too, so it must not
///   name `Self`.
/// - A designated initializer ends with `super.init()`: `PersistentObject`
///   has several designated initializers, so Swift inserts no implicit call.
///   A root type's own `init()` is written `override init() { super.init() }`.
///
/// Schema evolution: records written before a property was added load with
/// its default value; a stored property the class no longer has is
/// ignored; a renamed property is declared old name → new name:
///
/// ```swift
/// @Persistent(renamed: ["name": "owner"])
/// final class Account: PersistentObject {
///     var owner: String = ""      // stored as "name" by older versions
/// }
/// ```
///
/// A class shared with Python Durus programs names the Python class it maps
/// (`module.Name`): its objects are then stored as Python pickles, which a
/// Python program loads as objects of that class, and the records Python
/// writes for that class load as this type, property by attribute name.
///
/// ```swift
/// @Persistent(python: "bank.Account")
/// final class Account: PersistentObject {
///     var owner: String = ""
///     var balance: Int = 0
/// }
/// ```
///
/// - Parameters:
///   - python: the Python class this type maps (`Durus.PersistentObject.pythonClass`), or nil.
///   - renamed: stored names of properties renamed since: old
///     name → current property name (``Durus/PersistentState/renamedProperties``).
@attached(member, names: named(_DurusState), named(encodeState), named(decodeState), named(clearState), named(init),
          named(pythonClass))
@attached(memberAttribute)
public macro Persistent(python: String? = nil, renamed: [String: String] = [:]) =
    #externalMacro(module: "DurusMacrosPlugin", type: "PersistentMacro")

/// Keeps a stored property of a ``Persistent(renamed:)`` class out of the
/// stored state: it is an ordinary stored property, never stored, and reset
/// to its initial value whenever the object's state is dropped (when the
/// object becomes a ghost, after ``Durus/Connection/abort()`` or when the
/// cache sheds it).
///
/// ```swift
/// @Persistent final class Document: PersistentObject {
///     var text = ""
///     @Transient var wordCount: Int? = nil   // a cache, recomputed after a reload
/// }
/// ```
///
/// A `@Transient` property needs an initial value (an optional `var` has
/// `nil`), because a ghost is made without running an initializer. A
/// `@Transient let` is never reset.
@attached(peer)
public macro Transient() = #externalMacro(module: "DurusMacrosPlugin", type: "MarkerMacro")

/// Added by ``Persistent(renamed:)`` to each persistent property: makes it a
/// computed property over its backing `_name`. Not for use by hand.
///
/// ```swift
/// var balance: Int = 0            // as written
///
/// var balance: Int = 0 {          // as expanded
///     @storageRestrictions(initializes: _balance)
///     init(initialValue) { _balance = initialValue }
///     _read { willRead(); yield _balance }
///     set { willWrite(); _balance = newValue }
///     _modify { willWrite(); yield &_balance }
/// }
/// @_PersistentIgnored @exclusivity(unchecked) private var _balance: Int = 0
/// ```
///
/// The backing property is exempt from Swift's run-time exclusivity checks,
/// which cost a tracked read more than the read itself: overlapping
/// accesses to one persistent property (a read while a `_modify` of it is
/// under way) are not trapped at run time. The compiler's static checks
/// still apply.
@attached(accessor, names: named(init), named(_read), named(set), named(_modify))
@attached(peer, names: prefixed(_))
public macro _PersistentTracked() = #externalMacro(module: "DurusMacrosPlugin", type: "PersistentTrackedMacro")

/// Marks the backing properties that ``Persistent(renamed:)`` writes, so that
/// nothing tracks them again. Not for use by hand.
///
/// ```swift
/// @_PersistentIgnored @exclusivity(unchecked) private var _balance: Int = 0
/// ```
@attached(peer)
public macro _PersistentIgnored() = #externalMacro(module: "DurusMacrosPlugin", type: "MarkerMacro")
