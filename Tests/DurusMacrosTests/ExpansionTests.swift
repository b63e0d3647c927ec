import SwiftSyntaxMacros
import SwiftSyntaxMacrosTestSupport
import XCTest
import DurusMacrosPlugin

let testMacros: [String: any Macro.Type] = [
    "Persistent": PersistentMacro.self,
    "Transient": MarkerMacro.self,
    "_PersistentTracked": PersistentTrackedMacro.self,
    "_PersistentIgnored": MarkerMacro.self,
]

/// The accessors and backing property `@Persistent` gives a property.
func tracked(_ name: String, _ type: String, _ defaultValue: String, indent: String = "    ") -> String {
    """
    \(indent)var \(name): \(type) {
    \(indent)    @storageRestrictions(initializes: _\(name))
    \(indent)    init(initialValue) {
    \(indent)        _\(name) = initialValue
    \(indent)    }
    \(indent)    _read {
    \(indent)        willRead()
    \(indent)        yield _\(name)
    \(indent)    }
    \(indent)    set {
    \(indent)        willWrite()
    \(indent)        _\(name) = newValue
    \(indent)    }
    \(indent)    _modify {
    \(indent)        willWrite()
    \(indent)        yield &_\(name)
    \(indent)    }
    \(indent)}

    \(indent)@exclusivity(unchecked) private var _\(name): \(type) = \(defaultValue)
    """
}

final class PersistentExpansionTests: XCTestCase {
    /// Every attribute the library declares maps to an implementation here,
    /// so the expansion tests below exercise the macros users get.
    func testEveryDeclaredMacroIsTested() {
        XCTAssertEqual(Set(testMacros.keys), ["Persistent", "Transient", "_PersistentTracked", "_PersistentIgnored"])
        XCTAssertTrue(testMacros["Persistent"] == PersistentMacro.self)
    }

    func testAccount() {
        assertMacroExpansion(
            """
            @Persistent final class Account: PersistentObject {
                var owner: String
                var balance: Int = 0
                @Transient var lastViewed: Date? = nil
                init(owner: String) { self.owner = owner }
            }
            """,
            expandedSource: """
            final class Account: PersistentObject {
            \(tracked("owner", "String", "\"\""))
            \(tracked("balance", "Int", "0"))
                var lastViewed: Date? = nil
                init(owner: String) { self.owner = owner }

                struct _DurusState: Durus.PersistentState {
                    var owner: String = ""
                    var balance: Int = 0
                }

                override func encodeState(_ encoder: inout Durus.PersistentStateEncoder) throws {
                    encoder.beginProperties(count: 2)
                    try encoder.encode(_owner, forKey: "owner")
                    try encoder.encode(_balance, forKey: "balance")
                }

                override func decodeState(_ decoder: Durus.PersistentStateDecoder) throws {
                    if let _owner = try decoder.property((String).self, forKey: "owner", index: 0),
                    let _balance = try decoder.property((Int).self, forKey: "balance", index: 1) {
                        self._owner = _owner
                        self._balance = _balance
                    } else {
                        let state = try decoder.decode(_DurusState.self)
                        _owner = state.owner
                        _balance = state.balance
                    }
                }

                override func clearState() {
                    super.clearState()
                    _owner = ""
                    _balance = 0
                    lastViewed = nil
                }

                required init(ghost: Durus.GhostMarker) {
                    super.init(ghost: ghost)
                }

                required init(from decoder: any Decoder) throws {
                    try super.init(from: decoder)
                }
            }
            """,
            macros: testMacros)
    }

    /// `renamed:`, a public class (public overrides), no designated
    /// initializer (`init()` kept), and computed and static properties left alone.
    func testRenamedPublicWithoutInitializer() {
        assertMacroExpansion(
            """
            @Persistent(renamed: ["name": "owner", "amount": "balance"])
            public final class Account: PersistentObject, PersistentRoot {
                public var owner: String = "nobody"
                public private(set) var balance: Double
                static let limit = 10
                var summary: String { "\\(owner): \\(balance)" }
                override class var persistentTypeName: String { "Account" }
                convenience init(owner: String) {
                    self.init()
                    self.owner = owner
                }
            }
            """,
            expandedSource: """
            public final class Account: PersistentObject, PersistentRoot {
                public var owner: String {
                    @storageRestrictions(initializes: _owner)
                    init(initialValue) {
                        _owner = initialValue
                    }
                    _read {
                        willRead()
                        yield _owner
                    }
                    set {
                        willWrite()
                        _owner = newValue
                    }
                    _modify {
                        willWrite()
                        yield &_owner
                    }
                }

                @exclusivity(unchecked) private var _owner: String = "nobody"
                public private(set) var balance: Double {
                    @storageRestrictions(initializes: _balance)
                    init(initialValue) {
                        _balance = initialValue
                    }
                    _read {
                        willRead()
                        yield _balance
                    }
                    set {
                        willWrite()
                        _balance = newValue
                    }
                    _modify {
                        willWrite()
                        yield &_balance
                    }
                }

                @exclusivity(unchecked) private var _balance: Double = 0
                static let limit = 10
                var summary: String { "\\(owner): \\(balance)" }
                override class var persistentTypeName: String { "Account" }
                convenience init(owner: String) {
                    self.init()
                    self.owner = owner
                }

                struct _DurusState: Durus.PersistentState {
                    var owner: String = "nobody"
                    var balance: Double = 0
                    static var renamedProperties: [String: String] {
                        ["name": "owner", "amount": "balance"]
                    }
                }

                public override func encodeState(_ encoder: inout Durus.PersistentStateEncoder) throws {
                    encoder.beginProperties(count: 2)
                    try encoder.encode(_owner, forKey: "owner")
                    try encoder.encode(_balance, forKey: "balance")
                }

                public override func decodeState(_ decoder: Durus.PersistentStateDecoder) throws {
                    let state = try decoder.decode(_DurusState.self)
                    _owner = state.owner
                    _balance = state.balance
                }

                public override func clearState() {
                    super.clearState()
                    _owner = "nobody"
                    _balance = 0
                }

                public required init(ghost: Durus.GhostMarker) {
                    super.init(ghost: ghost)
                }

                public required init(from decoder: any Decoder) throws {
                    try super.init(from: decoder)
                }

                public override init() {
                    super.init()
                }
            }
            """,
            macros: testMacros)
    }

    /// The zero value of each type that has one.
    func testZeroDefaults() {
        assertMacroExpansion(
            """
            @Persistent final class Zeros: PersistentObject {
                var a: Bool
                var b: UInt8
                var c: Swift.Float
                var d: [String]
                var e: [String: [Int]]
                var f: Set<Int>
                var g: Account?
                var h: Optional<Int>
                var i: Array<Int>
                var j: Dictionary<String, Int>
            }
            """,
            expandedSource: """
            final class Zeros: PersistentObject {
            \(tracked("a", "Bool", "false"))
            \(tracked("b", "UInt8", "0"))
            \(tracked("c", "Swift.Float", "0"))
            \(tracked("d", "[String]", "[]"))
            \(tracked("e", "[String: [Int]]", "[:]"))
            \(tracked("f", "Set<Int>", "[]"))
            \(tracked("g", "Account?", "nil"))
            \(tracked("h", "Optional<Int>", "nil"))
            \(tracked("i", "Array<Int>", "[]"))
            \(tracked("j", "Dictionary<String, Int>", "[:]"))

                struct _DurusState: Durus.PersistentState {
                    var a: Bool = false
                    var b: UInt8 = 0
                    var c: Swift.Float = 0
                    var d: [String] = []
                    var e: [String: [Int]] = [:]
                    var f: Set<Int> = []
                    var g: Account? = nil
                    var h: Optional<Int> = nil
                    var i: Array<Int> = []
                    var j: Dictionary<String, Int> = [:]
                }

                override func encodeState(_ encoder: inout Durus.PersistentStateEncoder) throws {
                    encoder.beginProperties(count: 10)
                    try encoder.encode(_a, forKey: "a")
                    try encoder.encode(_b, forKey: "b")
                    try encoder.encode(_c, forKey: "c")
                    try encoder.encode(_d, forKey: "d")
                    try encoder.encode(_e, forKey: "e")
                    try encoder.encode(_f, forKey: "f")
                    try encoder.encode(_g, forKey: "g")
                    try encoder.encode(_h, forKey: "h")
                    try encoder.encode(_i, forKey: "i")
                    try encoder.encode(_j, forKey: "j")
                }

                override func decodeState(_ decoder: Durus.PersistentStateDecoder) throws {
                    if let _a = try decoder.property((Bool).self, forKey: "a", index: 0),
                    let _b = try decoder.property((UInt8).self, forKey: "b", index: 1),
                    let _c = try decoder.property((Swift.Float).self, forKey: "c", index: 2),
                    let _d = try decoder.property(([String]).self, forKey: "d", index: 3),
                    let _e = try decoder.property(([String: [Int]]).self, forKey: "e", index: 4),
                    let _f = try decoder.property((Set<Int>).self, forKey: "f", index: 5),
                    let _g = try decoder.property((Account?).self, forKey: "g", index: 6),
                    let _h = try decoder.property((Optional<Int>).self, forKey: "h", index: 7),
                    let _i = try decoder.property((Array<Int>).self, forKey: "i", index: 8),
                    let _j = try decoder.property((Dictionary<String, Int>).self, forKey: "j", index: 9) {
                        self._a = _a
                        self._b = _b
                        self._c = _c
                        self._d = _d
                        self._e = _e
                        self._f = _f
                        self._g = _g
                        self._h = _h
                        self._i = _i
                        self._j = _j
                    } else {
                        let state = try decoder.decode(_DurusState.self)
                        _a = state.a
                        _b = state.b
                        _c = state.c
                        _d = state.d
                        _e = state.e
                        _f = state.f
                        _g = state.g
                        _h = state.h
                        _i = state.i
                        _j = state.j
                    }
                }

                override func clearState() {
                    super.clearState()
                    _a = false
                    _b = 0
                    _c = 0
                    _d = []
                    _e = [:]
                    _f = []
                    _g = nil
                    _h = nil
                    _i = []
                    _j = [:]
                }

                required init(ghost: Durus.GhostMarker) {
                    super.init(ghost: ghost)
                }

                required init(from decoder: any Decoder) throws {
                    try super.init(from: decoder)
                }

                override init() {
                    super.init()
                }
            }
            """,
            macros: testMacros)
    }

    /// Transient properties: reset to their initial values (nil for an
    /// optional without one); a `let` never.
    func testTransients() {
        assertMacroExpansion(
            """
            @Persistent final class Cache: PersistentObject {
                @Transient var hits = 0
                @Transient var misses: Int = 0
                @Transient var last: String?
                @Transient let created = Date()
            }
            """,
            expandedSource: """
            final class Cache: PersistentObject {
                var hits = 0
                var misses: Int = 0
                var last: String?
                let created = Date()

                struct _DurusState: Durus.PersistentState {

                }

                override func encodeState(_ encoder: inout Durus.PersistentStateEncoder) throws {
                    encoder.beginProperties(count: 0)
                }

                override func decodeState(_ decoder: Durus.PersistentStateDecoder) throws {
                    _ = try decoder.decode(_DurusState.self)
                }

                override func clearState() {
                    super.clearState()
                    hits = 0
                    misses = 0
                    last = nil
                }

                required init(ghost: Durus.GhostMarker) {
                    super.init(ghost: ghost)
                }

                required init(from decoder: any Decoder) throws {
                    try super.init(from: decoder)
                }

                override init() {
                    super.init()
                }
            }
            """,
            macros: testMacros)
    }

    // MARK: Diagnostics

    func testNotAClass() {
        for (keyword, body) in [("struct", "var x = 0"), ("enum", "case a"), ("actor", "var x = 0"),
                                ("protocol", "var x: Int { get }")] {
            assertMacroExpansion(
                """
                @Persistent \(keyword) Thing {
                    \(body)
                }
                """,
                expandedSource: """
                \(keyword) Thing {
                    \(body)
                }
                """,
                diagnostics: [
                    DiagnosticSpec(message: "@Persistent applies to classes that inherit from PersistentObject",
                                   line: 1, column: 1),
                ],
                macros: testMacros)
        }
    }

    func testClassWithoutSuperclass() {
        assertMacroExpansion(
            """
            @Persistent final class Thing {
                var x: Int = 0
            }
            """,
            expandedSource: """
            final class Thing {
                var x: Int = 0
            }
            """,
            diagnostics: [
                DiagnosticSpec(message: "@Persistent applies to classes that inherit from PersistentObject",
                               line: 1, column: 1),
            ],
            macros: testMacros)
    }

    func testInheritingPersistentState() {
        assertMacroExpansion(
            """
            @Persistent final class Thing: Persistent<Thing.State> {
                var x: Int = 0
            }
            """,
            expandedSource: """
            final class Thing: Persistent<Thing.State> {
                var x: Int = 0
            }
            """,
            diagnostics: [
                DiagnosticSpec(message: "@Persistent classes inherit from PersistentObject, not Persistent<State>, which keeps its own state",
                               line: 1, column: 32),
            ],
            macros: testMacros)
    }

    func testNonFinalClass() {
        assertMacroExpansion(
            """
            @Persistent class Thing: PersistentObject {
                var x: Int = 0
            }
            """,
            expandedSource: """
            class Thing: PersistentObject {
                var x: Int = 0
            }
            """,
            diagnostics: [
                DiagnosticSpec(message: "@Persistent classes must be 'final': a subclass's properties would not be stored",
                               line: 1, column: 13, fixIts: [FixItSpec(message: "add 'final'")]),
            ],
            macros: testMacros,
            applyFixIts: ["add 'final'"],
            fixedSource: """
            @Persistent final class Thing: PersistentObject {
                var x: Int = 0
            }
            """)
    }

    func testLetProperty() {
        assertMacroExpansion(
            """
            @Persistent final class Thing: PersistentObject {
                let id: Int = 1
                var x: Int = 0
            }
            """,
            expandedSource: """
            final class Thing: PersistentObject {
                let id: Int = 1
            \(tracked("x", "Int", "0"))

                struct _DurusState: Durus.PersistentState {
                    var x: Int = 0
                }

                override func encodeState(_ encoder: inout Durus.PersistentStateEncoder) throws {
                    encoder.beginProperties(count: 1)
                    try encoder.encode(_x, forKey: "x")
                }

                override func decodeState(_ decoder: Durus.PersistentStateDecoder) throws {
                    if let _x = try decoder.property((Int).self, forKey: "x", index: 0) {
                        self._x = _x
                    } else {
                        let state = try decoder.decode(_DurusState.self)
                        _x = state.x
                    }
                }

                override func clearState() {
                    super.clearState()
                    _x = 0
                }

                required init(ghost: Durus.GhostMarker) {
                    super.init(ghost: ghost)
                }

                required init(from decoder: any Decoder) throws {
                    try super.init(from: decoder)
                }

                override init() {
                    super.init()
                }
            }
            """,
            diagnostics: [
                DiagnosticSpec(message: "persistent properties must be 'var'", line: 2, column: 5,
                               fixIts: [FixItSpec(message: "replace 'let' with 'var'")]),
            ],
            macros: testMacros,
            applyFixIts: ["replace 'let' with 'var'"],
            fixedSource: """
            @Persistent final class Thing: PersistentObject {
                var id: Int = 1
                var x: Int = 0
            }
            """)
    }

    /// The property diagnostics; the class expands without the invalid properties.
    func testPropertyDiagnostics() {
        assertMacroExpansion(
            """
            @Persistent final class Thing: PersistentObject {
                var date: Date
                var count = 0
                var a: Int = 0, b: Int = 0
                lazy var c: Int = 0
                weak var d: Thing?
                var e: Int = 0 { didSet { } }
                @Transient var f: Int
                init() { super.init() }
            }
            """,
            expandedSource: """
            final class Thing: PersistentObject {
                var date: Date
                var count = 0
                var a: Int = 0, b: Int = 0
                lazy var c: Int = 0
                weak var d: Thing?
                var e: Int = 0 { didSet { } }
                var f: Int
                init() { super.init() }

                struct _DurusState: Durus.PersistentState {

                }

                override func encodeState(_ encoder: inout Durus.PersistentStateEncoder) throws {
                    encoder.beginProperties(count: 0)
                }

                override func decodeState(_ decoder: Durus.PersistentStateDecoder) throws {
                    _ = try decoder.decode(_DurusState.self)
                }

                override func clearState() {
                    super.clearState()

                }

                required init(ghost: Durus.GhostMarker) {
                    super.init(ghost: ghost)
                }

                required init(from decoder: any Decoder) throws {
                    try super.init(from: decoder)
                }
            }
            """,
            diagnostics: [
                DiagnosticSpec(message: "give 'date' a default value: ghosts are made without running an initializer",
                               line: 2, column: 9),
                DiagnosticSpec(message: "give 'count' an explicit type: @Persistent turns it into a computed property",
                               line: 3, column: 9, fixIts: [FixItSpec(message: "add ': Int'")]),
                DiagnosticSpec(message: "declare each persistent property in its own 'var'", line: 4, column: 9),
                DiagnosticSpec(message: "persistent and @Transient properties cannot be 'lazy'; use an optional @Transient property as a cache",
                               line: 5, column: 10),
                DiagnosticSpec(message: "persistent properties cannot be 'weak'; mark the property @Transient to keep it out of the stored state",
                               line: 6, column: 5),
                DiagnosticSpec(message: "property observers are not supported on persistent property 'e'",
                               line: 7, column: 20),
                DiagnosticSpec(message: "give @Transient property 'f' an initial value: ghosts are made without running an initializer, and clearing the state resets it to that value",
                               line: 8, column: 20),
            ],
            macros: testMacros)
    }

    /// `python:` maps the class to a Python class: `pythonClass` says which.
    func testPythonClass() {
        assertMacroExpansion(
            """
            @Persistent(python: "bank.Account")
            public final class Account: PersistentObject {
                var balance: Int = 0
            }
            """,
            expandedSource: """
            public final class Account: PersistentObject {
            \(tracked("balance", "Int", "0"))

                struct _DurusState: Durus.PersistentState {
                    var balance: Int = 0
                }

                public override func encodeState(_ encoder: inout Durus.PersistentStateEncoder) throws {
                    encoder.beginProperties(count: 1)
                    try encoder.encode(_balance, forKey: "balance")
                }

                public override func decodeState(_ decoder: Durus.PersistentStateDecoder) throws {
                    if let _balance = try decoder.property((Int).self, forKey: "balance", index: 0) {
                        self._balance = _balance
                    } else {
                        let state = try decoder.decode(_DurusState.self)
                        _balance = state.balance
                    }
                }

                public override func clearState() {
                    super.clearState()
                    _balance = 0
                }

                public override class var pythonClass: String? {
                    "bank.Account"
                }

                public required init(ghost: Durus.GhostMarker) {
                    super.init(ghost: ghost)
                }

                public required init(from decoder: any Decoder) throws {
                    try super.init(from: decoder)
                }

                public override init() {
                    super.init()
                }
            }
            """,
            macros: testMacros)
    }

    /// A `python:` that names no module, or is no string literal: an error, and no mapping.
    func testBadPythonClass() {
        assertMacroExpansion(
            """
            @Persistent(python: "Account")
            final class Account: PersistentObject {
            }
            """,
            expandedSource: """
            final class Account: PersistentObject {

                struct _DurusState: Durus.PersistentState {

                }

                override func encodeState(_ encoder: inout Durus.PersistentStateEncoder) throws {
                    encoder.beginProperties(count: 0)
                }

                override func decodeState(_ decoder: Durus.PersistentStateDecoder) throws {
                    _ = try decoder.decode(_DurusState.self)
                }

                override func clearState() {
                    super.clearState()

                }

                required init(ghost: Durus.GhostMarker) {
                    super.init(ghost: ghost)
                }

                required init(from decoder: any Decoder) throws {
                    try super.init(from: decoder)
                }

                override init() {
                    super.init()
                }
            }
            """,
            diagnostics: [
                DiagnosticSpec(message: "'python:' takes a string literal naming a Python class with its module, as \"module.Name\"",
                               line: 1, column: 21),
            ],
            macros: testMacros)
    }

    func testTypeFixIt() {
        assertMacroExpansion(
            """
            @Persistent final class Thing: PersistentObject {
                var count = 0
            }
            """,
            expandedSource: """
            final class Thing: PersistentObject {
                var count = 0

                struct _DurusState: Durus.PersistentState {

                }

                override func encodeState(_ encoder: inout Durus.PersistentStateEncoder) throws {
                    encoder.beginProperties(count: 0)
                }

                override func decodeState(_ decoder: Durus.PersistentStateDecoder) throws {
                    _ = try decoder.decode(_DurusState.self)
                }

                override func clearState() {
                    super.clearState()

                }

                required init(ghost: Durus.GhostMarker) {
                    super.init(ghost: ghost)
                }

                required init(from decoder: any Decoder) throws {
                    try super.init(from: decoder)
                }

                override init() {
                    super.init()
                }
            }
            """,
            diagnostics: [
                DiagnosticSpec(message: "give 'count' an explicit type: @Persistent turns it into a computed property",
                               line: 2, column: 9, fixIts: [FixItSpec(message: "add ': Int'")]),
            ],
            macros: testMacros,
            applyFixIts: ["add ': Int'"],
            fixedSource: """
            @Persistent final class Thing: PersistentObject {
                var count: Int = 0
            }
            """)
    }

    func testBadRenamed() {
        assertMacroExpansion(
            """
            @Persistent(renamed: ["old": "missing", "x": name])
            final class Thing: PersistentObject {
                var owner: String = ""
            }
            """,
            expandedSource: """
            final class Thing: PersistentObject {
            \(tracked("owner", "String", "\"\""))

                struct _DurusState: Durus.PersistentState {
                    var owner: String = ""
                }

                override func encodeState(_ encoder: inout Durus.PersistentStateEncoder) throws {
                    encoder.beginProperties(count: 1)
                    try encoder.encode(_owner, forKey: "owner")
                }

                override func decodeState(_ decoder: Durus.PersistentStateDecoder) throws {
                    if let _owner = try decoder.property((String).self, forKey: "owner", index: 0) {
                        self._owner = _owner
                    } else {
                        let state = try decoder.decode(_DurusState.self)
                        _owner = state.owner
                    }
                }

                override func clearState() {
                    super.clearState()
                    _owner = ""
                }

                required init(ghost: Durus.GhostMarker) {
                    super.init(ghost: ghost)
                }

                required init(from decoder: any Decoder) throws {
                    try super.init(from: decoder)
                }

                override init() {
                    super.init()
                }
            }
            """,
            diagnostics: [
                DiagnosticSpec(message: "'renamed:' maps 'old' to 'missing', which is not a persistent property of this class",
                               line: 1, column: 30),
                DiagnosticSpec(message: "'renamed:' takes a dictionary literal of string literals, old stored name: new property name",
                               line: 1, column: 41),
            ],
            macros: testMacros)
    }
}
