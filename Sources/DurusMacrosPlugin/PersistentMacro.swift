import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxBuilder
import SwiftSyntaxMacros

/// `@Persistent`: makes the stored properties of a final `PersistentObject`
/// subclass its stored state.
///
/// - member: `_DurusState`, `encodeState(_:)`, `decodeState(_:)`,
///   `clearState()`, `init(ghost:)`, `init(from:)`, and `init()` when the
///   class declares no designated initializer of its own.
/// - member attribute: `@_PersistentTracked` on each persistent property,
///   which turns it into a computed property over a backing `_name`.
public struct PersistentMacro: MemberMacro, MemberAttributeMacro {
    // MARK: Member

    public static func expansion(
        of node: AttributeSyntax,
        providingMembersOf declaration: some DeclGroupSyntax,
        conformingTo protocols: [TypeSyntax],
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        guard let classDecl = checkedClass(node, declaration, context: context) else { return [] }

        var persistent: [PersistentProperty] = []
        var transient: [TransientProperty] = []
        var hasDesignatedInit = false
        for item in classDecl.memberBlock.members {
            if let initializer = item.decl.as(InitializerDeclSyntax.self),
               !initializer.modifiers.contains(where: { $0.name.tokenKind == .keyword(.convenience) }) {
                hasDesignatedInit = true
            }
            switch classify(item.decl) {
            case .persistent(let property): persistent.append(property)
            case .transient(let properties): transient.append(contentsOf: properties)
            case .ignored: break
            case .invalid(let diagnostics): diagnostics.forEach(context.diagnose)
            }
        }
        let renamed = renamedProperties(node, persistent: persistent, context: context)
        let access = accessPrefix(classDecl.modifiers)

        var stateMembers = persistent.map { "var \($0.name): \($0.type) = \($0.defaultValue)" }
        if let renamed {
            stateMembers.append("static var renamedProperties: [String: String] { \(renamed) }")
        }
        let state: DeclSyntax = """
            struct _DurusState: Durus.PersistentState {
            \(raw: stateMembers.joined(separator: "\n"))
            }
            """

        // The direct path: each property written by name, no `Encoder`;
        // the same bytes `_DurusState`'s `Codable` conformance writes.
        let encodeBody = ["encoder.beginProperties(count: \(persistent.count))"]
            + persistent.map { "try encoder.encode(\($0.backingName), forKey: \(quoted($0.rawName)))" }
        let encode: DeclSyntax = """
            \(raw: access)override func encodeState(_ encoder: inout Durus.PersistentStateEncoder) throws {
            \(raw: encodeBody.joined(separator: "\n"))
            }
            """

        // The direct path reads a record that has every property (one this
        // type wrote); any other goes through `_DurusState`, whose decoding
        // applies schema evolution (defaults, renamed properties).
        let evolving = (["let state = try decoder.decode(_DurusState.self)"]
            + persistent.map { "\($0.backingName) = state.\($0.name)" }).joined(separator: "\n")
        let decodeBody: String
        if persistent.isEmpty {
            decodeBody = "_ = try decoder.decode(_DurusState.self)"
        } else if renamed != nil {
            decodeBody = evolving
        } else {
            let bindings = persistent.enumerated().map { index, property in
                "let \(property.backingName) = try decoder.property((\(directType(property.type))).self, forKey: \(quoted(property.rawName)), index: \(index))"
            }
            decodeBody = """
                if \(bindings.joined(separator: ",\n")) {
                \(persistent.map { "self.\($0.backingName) = \($0.backingName)" }.joined(separator: "\n"))
                } else {
                \(evolving)
                }
                """
        }
        let decode: DeclSyntax = """
            \(raw: access)override func decodeState(_ decoder: Durus.PersistentStateDecoder) throws {
            \(raw: decodeBody)
            }
            """

        let resets = persistent.map { "\($0.backingName) = \($0.defaultValue)" }
            + transient.compactMap { property in property.resetValue.map { "\(property.name) = \($0)" } }
        let clear: DeclSyntax = """
            \(raw: access)override func clearState() {
            super.clearState()
            \(raw: resets.joined(separator: "\n"))
            }
            """

        var members = [state, encode, decode, clear]
        if let python = pythonClass(node, context: context) {
            members.append("""
                \(raw: access)override class var pythonClass: String? { \(raw: quoted(python)) }
                """)
        }
        members.append("""
            \(raw: access)required init(ghost: Durus.GhostMarker) {
            super.init(ghost: ghost)
            }
            """)
        members.append("""
            \(raw: access)required init(from decoder: any Decoder) throws {
            try super.init(from: decoder)
            }
            """)
        if !hasDesignatedInit {
            // Declaring the required initializers stops `init()` being
            // inherited; keep it, as a class without initializers would have it.
            members.append("""
                \(raw: access)override init() {
                super.init()
                }
                """)
        }
        return members
    }

    // MARK: Member attribute

    public static func expansion(
        of node: AttributeSyntax,
        attachedTo declaration: some DeclGroupSyntax,
        providingAttributesFor member: some DeclSyntaxProtocol,
        in context: some MacroExpansionContext
    ) throws -> [AttributeSyntax] {
        // The member macro reports what is wrong; here only valid classes
        // and valid properties get tracked.
        guard let classDecl = declaration.as(ClassDeclSyntax.self), isValidClass(classDecl) else { return [] }
        guard case .persistent = classify(member),
              let variable = member.as(VariableDeclSyntax.self),
              !variable.hasAttribute(in: AttributeNames.tracked)
        else { return [] }
        return ["@_PersistentTracked"]
    }

    // MARK: Checks

    private static func isValidClass(_ classDecl: ClassDeclSyntax) -> Bool {
        classDecl.modifiers.contains { $0.name.tokenKind == .keyword(.final) }
            && classDecl.inheritanceClause != nil
            && inheritedPersistentState(classDecl) == nil
    }

    /// `Persistent<State>` named as the superclass, if it is.
    private static func inheritedPersistentState(_ classDecl: ClassDeclSyntax) -> InheritedTypeSyntax? {
        guard let first = classDecl.inheritanceClause?.inheritedTypes.first else { return nil }
        let type = first.type
        if let identifier = type.as(IdentifierTypeSyntax.self), identifier.name.text == "Persistent",
           identifier.genericArgumentClause != nil { return first }
        if let member = type.as(MemberTypeSyntax.self), member.baseType.trimmedDescription == "Durus",
           member.name.text == "Persistent", member.genericArgumentClause != nil { return first }
        return nil
    }

    /// The class, when `@Persistent` may expand on it; otherwise reports why not.
    private static func checkedClass(_ node: AttributeSyntax, _ declaration: some DeclGroupSyntax,
                                     context: some MacroExpansionContext) -> ClassDeclSyntax? {
        guard let classDecl = declaration.as(ClassDeclSyntax.self) else {
            context.diagnose(Diagnostic(node: node, message: DurusDiagnostic.notAClass))
            return nil
        }
        guard classDecl.inheritanceClause != nil else {
            context.diagnose(Diagnostic(node: node, message: DurusDiagnostic.notAClass))
            return nil
        }
        if let inherited = inheritedPersistentState(classDecl) {
            context.diagnose(Diagnostic(node: inherited, message: DurusDiagnostic.inheritsPersistent))
            return nil
        }
        guard classDecl.modifiers.contains(where: { $0.name.tokenKind == .keyword(.final) }) else {
            let finalModifier = DeclModifierSyntax(name: .keyword(.final, trailingTrivia: .space))
            let fixed = classDecl.with(\.modifiers, classDecl.modifiers + [finalModifier])
            context.diagnose(Diagnostic(
                node: classDecl.classKeyword, message: DurusDiagnostic.notFinal,
                fixIts: [FixIt.replace(message: DurusFixIt.addFinal, oldNode: classDecl.modifiers,
                                       newNode: fixed.modifiers)]))
            return nil
        }
        return classDecl
    }

    /// The body of `renamedProperties` from `@Persistent(renamed: [...])`, or nil.
    private static func renamedProperties(_ node: AttributeSyntax, persistent: [PersistentProperty],
                                          context: some MacroExpansionContext) -> String? {
        guard case .argumentList(let arguments) = node.arguments,
              let argument = arguments.first(where: { $0.label?.text == "renamed" })
        else { return nil }
        let expression = argument.expression
        var pairs: [(old: String, new: String)] = []
        if let dictionary = expression.as(DictionaryExprSyntax.self) {
            if case .elements(let elements) = dictionary.content {
                for element in elements {
                    guard let old = stringLiteral(element.key), let new = stringLiteral(element.value) else {
                        context.diagnose(Diagnostic(node: element, message: DurusDiagnostic.badRenamed))
                        return nil
                    }
                    if !persistent.contains(where: { $0.rawName == new }) {
                        context.diagnose(Diagnostic(node: element.value,
                                                    message: DurusDiagnostic.renamedTarget(old: old, new: new)))
                    }
                    pairs.append((old, new))
                }
            }
        } else {
            context.diagnose(Diagnostic(node: expression, message: DurusDiagnostic.badRenamed))
            return nil
        }
        guard !pairs.isEmpty else { return nil }
        return "[" + pairs.map { "\(quoted($0.old)): \(quoted($0.new))" }.joined(separator: ", ") + "]"
    }

    /// The Python class of `@Persistent(python: "module.Name")`, or nil.
    private static func pythonClass(_ node: AttributeSyntax, context: some MacroExpansionContext) -> String? {
        guard case .argumentList(let arguments) = node.arguments,
              let argument = arguments.first(where: { $0.label?.text == "python" })
        else { return nil }
        if argument.expression.is(NilLiteralExprSyntax.self) { return nil }
        guard let name = stringLiteral(argument.expression), name.contains("."),
              !name.hasPrefix("."), !name.hasSuffix("."), !name.contains(" ")
        else {
            context.diagnose(Diagnostic(node: argument.expression, message: DurusDiagnostic.badPythonClass))
            return nil
        }
        return name
    }

    private static func stringLiteral(_ expression: ExprSyntax) -> String? {
        guard let literal = expression.as(StringLiteralExprSyntax.self), literal.segments.count == 1,
              case .stringSegment(let segment) = literal.segments.first
        else { return nil }
        return segment.content.text
    }

    /// The literal as written between its quotes (its escapes kept).
    private static func quoted(_ content: String) -> String { "\"" + content + "\"" }

    /// The property's type as a metatype can name it: an implicitly
    /// unwrapped optional as the optional it is.
    private static func directType(_ type: TypeSyntax) -> String {
        if let unwrapped = type.as(ImplicitlyUnwrappedOptionalTypeSyntax.self) {
            return unwrapped.wrappedType.trimmedDescription + "?"
        }
        return type.trimmedDescription
    }

    /// The access modifier the generated overrides and required initializers
    /// need: as accessible as the class, up to `public`.
    private static func accessPrefix(_ modifiers: DeclModifierListSyntax) -> String {
        for modifier in modifiers {
            switch modifier.name.tokenKind {
            case .keyword(.public), .keyword(.open): return "public "
            case .keyword(.package): return "package "
            default: continue
            }
        }
        return ""
    }
}
