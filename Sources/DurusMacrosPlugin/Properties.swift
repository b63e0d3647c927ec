import SwiftDiagnostics
import SwiftSyntax

/// A stored property whose value is part of the object's stored state.
struct PersistentProperty {
    /// The name as written (backticks kept), for use in generated code.
    var name: String
    /// The name without backticks: the stored key.
    var rawName: String
    var type: TypeSyntax
    /// The declared initial value, or the zero value of the type.
    var defaultValue: ExprSyntax

    /// The backing stored property.
    var backingName: String { "_" + rawName }
}

/// A `@Transient` stored property: reset to `resetValue` when the state is dropped.
struct TransientProperty {
    var name: String
    /// nil for a `let`, which is never reset.
    var resetValue: ExprSyntax?
}

/// What `@Persistent` does with one member declaration.
enum MemberKind {
    case persistent(PersistentProperty)
    case transient([TransientProperty])
    /// Not a stored instance property of the user's (computed, static, a
    /// backing property, not a property at all).
    case ignored
    case invalid([Diagnostic])
}

enum AttributeNames {
    static let transient: Set<String> = ["Transient", "DurusMacros.Transient"]
    static let tracked: Set<String> = ["_PersistentTracked", "DurusMacros._PersistentTracked"]
    static let ignored: Set<String> = ["_PersistentIgnored", "DurusMacros._PersistentIgnored"]
}

extension VariableDeclSyntax {
    func hasAttribute(in names: Set<String>) -> Bool {
        attributes.contains { element in
            guard case .attribute(let attribute) = element else { return false }
            return names.contains(attribute.attributeName.trimmedDescription)
        }
    }

    func hasModifier(_ keyword: Keyword) -> Bool {
        modifiers.contains { $0.name.tokenKind == .keyword(keyword) }
    }

    var isLet: Bool { bindingSpecifier.tokenKind == .keyword(.let) }
}

extension PatternBindingSyntax {
    /// True when the binding declares a computed property (a getter), as
    /// opposed to a stored one, with or without observers.
    var isComputed: Bool {
        guard let accessorBlock else { return false }
        switch accessorBlock.accessors {
        case .getter:
            return true
        case .accessors(let accessors):
            return accessors.contains { accessor in
                switch accessor.accessorSpecifier.tokenKind {
                case .keyword(.willSet), .keyword(.didSet): false
                default: true
                }
            }
        }
    }

    var hasObservers: Bool { accessorBlock != nil && !isComputed }
}

func stripBackticks(_ name: String) -> String {
    name.hasPrefix("`") && name.hasSuffix("`") && name.count >= 2 ? String(name.dropFirst().dropLast()) : name
}

/// Classifies a member of a `@Persistent` class. Pure: the member macro reports
/// the diagnostics, the member-attribute and accessor macros only look.
func classify(_ member: some DeclSyntaxProtocol) -> MemberKind {
    guard let variable = member.as(VariableDeclSyntax.self) else { return .ignored }
    if variable.hasModifier(.static) || variable.hasModifier(.class) { return .ignored }
    if variable.hasAttribute(in: AttributeNames.ignored) { return .ignored }
    // Computed properties are the user's own business.
    if variable.bindings.allSatisfy(\.isComputed) { return .ignored }

    if variable.hasAttribute(in: AttributeNames.transient) {
        return classifyTransient(variable)
    }

    var diagnostics: [Diagnostic] = []
    if variable.hasModifier(.lazy) {
        diagnostics.append(Diagnostic(node: variable.bindingSpecifier, message: DurusDiagnostic.lazyProperty))
    }
    for keyword in [Keyword.weak, .unowned] {
        if let modifier = variable.modifiers.first(where: { $0.name.tokenKind == .keyword(keyword) }) {
            diagnostics.append(Diagnostic(node: modifier, message: DurusDiagnostic.referenceOwnership(modifier.name.text)))
        }
    }
    if variable.isLet {
        let fixIt = FixIt.replace(message: DurusFixIt.useVar, oldNode: variable.bindingSpecifier,
                                  newNode: variable.bindingSpecifier.with(\.tokenKind, .keyword(.var)))
        diagnostics.append(Diagnostic(node: variable.bindingSpecifier, message: DurusDiagnostic.letProperty, fixIts: [fixIt]))
    }
    guard variable.bindings.count == 1, let binding = variable.bindings.first,
          let identifier = binding.pattern.as(IdentifierPatternSyntax.self)?.identifier
    else {
        diagnostics.append(Diagnostic(node: variable.bindings, message: DurusDiagnostic.multipleBindings))
        return .invalid(diagnostics)
    }
    let name = identifier.text
    let rawName = stripBackticks(name)
    if binding.hasObservers, let accessorBlock = binding.accessorBlock {
        diagnostics.append(Diagnostic(node: accessorBlock, message: DurusDiagnostic.observers(rawName)))
    }
    let initializer = binding.initializer?.value.trimmed
    guard let type = binding.typeAnnotation?.type.trimmed else {
        var fixIts: [FixIt] = []
        if let initializer, let inferred = literalType(initializer) {
            let annotated = binding
                .with(\.pattern, binding.pattern.trimmed)
                .with(\.typeAnnotation, TypeAnnotationSyntax(
                    colon: .colonToken(trailingTrivia: .space),
                    type: TypeSyntax(IdentifierTypeSyntax(name: .identifier(inferred)))
                        .with(\.trailingTrivia, .space)))
            fixIts.append(FixIt.replace(message: DurusFixIt.addType(inferred), oldNode: binding, newNode: annotated))
        }
        diagnostics.append(Diagnostic(node: binding.pattern, message: DurusDiagnostic.needsType(rawName), fixIts: fixIts))
        return .invalid(diagnostics)
    }
    guard let defaultValue = initializer ?? zeroValue(of: type) else {
        diagnostics.append(Diagnostic(node: binding.pattern, message: DurusDiagnostic.needsDefault(rawName)))
        return .invalid(diagnostics)
    }
    guard diagnostics.isEmpty else { return .invalid(diagnostics) }
    return .persistent(PersistentProperty(name: name, rawName: rawName, type: type, defaultValue: defaultValue))
}

private func classifyTransient(_ variable: VariableDeclSyntax) -> MemberKind {
    var diagnostics: [Diagnostic] = []
    if variable.hasModifier(.lazy) {
        diagnostics.append(Diagnostic(node: variable.bindingSpecifier, message: DurusDiagnostic.lazyProperty))
    }
    var properties: [TransientProperty] = []
    for binding in variable.bindings where !binding.isComputed {
        guard let identifier = binding.pattern.as(IdentifierPatternSyntax.self)?.identifier else {
            diagnostics.append(Diagnostic(node: binding.pattern, message: DurusDiagnostic.multipleBindings))
            continue
        }
        let name = identifier.text
        if let initializer = binding.initializer?.value.trimmed {
            properties.append(TransientProperty(name: name, resetValue: variable.isLet ? nil : initializer))
        } else if !variable.isLet, let type = binding.typeAnnotation?.type, isOptional(type) {
            // Swift gives an optional `var` without an initializer the value nil.
            properties.append(TransientProperty(name: name, resetValue: ExprSyntax(NilLiteralExprSyntax())))
        } else {
            diagnostics.append(Diagnostic(node: binding.pattern, message: DurusDiagnostic.transientNeedsValue(stripBackticks(name))))
        }
    }
    return diagnostics.isEmpty ? .transient(properties) : .invalid(diagnostics)
}

/// The name of a type with its `Swift.` (or other module) prefix dropped.
private func simpleName(_ type: TypeSyntax) -> (name: String, arguments: GenericArgumentClauseSyntax?)? {
    if let identifier = type.as(IdentifierTypeSyntax.self) {
        return (identifier.name.text, identifier.genericArgumentClause)
    }
    if let member = type.as(MemberTypeSyntax.self),
       ["Swift", "Foundation", "CoreGraphics"].contains(member.baseType.trimmedDescription) {
        return (member.name.text, member.genericArgumentClause)
    }
    return nil
}

func isOptional(_ type: TypeSyntax) -> Bool {
    if type.is(OptionalTypeSyntax.self) || type.is(ImplicitlyUnwrappedOptionalTypeSyntax.self) { return true }
    return simpleName(type).map { $0.name == "Optional" && $0.arguments != nil } ?? false
}

private let zeroTypes: Set<String> = [
    "Int", "Int8", "Int16", "Int32", "Int64", "UInt", "UInt8", "UInt16", "UInt32", "UInt64",
    "Double", "Float", "CGFloat",
]

/// The value a property of `type` has in a new object when it declares none.
func zeroValue(of type: TypeSyntax) -> ExprSyntax? {
    if isOptional(type) { return "nil" }
    if type.is(ArrayTypeSyntax.self) { return "[]" }
    if type.is(DictionaryTypeSyntax.self) { return "[:]" }
    guard let (name, arguments) = simpleName(type) else { return nil }
    switch name {
    case "String" where arguments == nil: return "\"\""
    case "Bool" where arguments == nil: return "false"
    case _ where zeroTypes.contains(name) && arguments == nil: return "0"
    case "Array" where arguments != nil, "ContiguousArray" where arguments != nil, "Set" where arguments != nil:
        return "[]"
    case "Dictionary" where arguments != nil: return "[:]"
    default: return nil
    }
}

/// The type of a literal initial value, for the "add a type" fix-it.
private func literalType(_ expression: ExprSyntax) -> String? {
    if expression.is(IntegerLiteralExprSyntax.self) { return "Int" }
    if expression.is(FloatLiteralExprSyntax.self) { return "Double" }
    if expression.is(StringLiteralExprSyntax.self) { return "String" }
    if expression.is(BooleanLiteralExprSyntax.self) { return "Bool" }
    if let prefix = expression.as(PrefixOperatorExprSyntax.self), prefix.operator.text == "-" {
        return literalType(prefix.expression).flatMap { $0 == "Int" || $0 == "Double" ? $0 : nil }
    }
    return nil
}
