import SwiftSyntax
import SwiftSyntaxBuilder
import SwiftSyntaxMacros

/// `@_PersistentTracked`, added by `@Persistent` to each persistent property:
/// makes it a computed property over a backing `_name` that loads a ghost
/// before a read and marks the object changed before a write.
public struct PersistentTrackedMacro: AccessorMacro, PeerMacro {
    public static func expansion(
        of node: AttributeSyntax,
        providingAccessorsOf declaration: some DeclSyntaxProtocol,
        in context: some MacroExpansionContext
    ) throws -> [AccessorDeclSyntax] {
        guard case .persistent(let property) = classify(declaration) else { return [] }
        let backing = property.backingName
        return [
            """
            @storageRestrictions(initializes: \(raw: backing))
            init(initialValue) {
            \(raw: backing) = initialValue
            }
            """,
            // `_read` lends the value: reading an array or a dictionary through
            // it costs no retain and release, as a stored property's read does.
            """
            _read {
            willRead()
            yield \(raw: backing)
            }
            """,
            """
            set {
            willWrite()
            \(raw: backing) = newValue
            }
            """,
            """
            _modify {
            willWrite()
            yield &\(raw: backing)
            }
            """,
        ]
    }

    public static func expansion(
        of node: AttributeSyntax,
        providingPeersOf declaration: some DeclSyntaxProtocol,
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        guard case .persistent(let property) = classify(declaration) else { return [] }
        return ["@_PersistentIgnored @exclusivity(unchecked) private var \(raw: property.backingName): \(property.type) = \(property.defaultValue)"]
    }
}

/// `@Transient` and `@_PersistentIgnored`: markers that expand to nothing.
public struct MarkerMacro: PeerMacro {
    public static func expansion(
        of node: AttributeSyntax,
        providingPeersOf declaration: some DeclSyntaxProtocol,
        in context: some MacroExpansionContext
    ) throws -> [DeclSyntax] {
        []
    }
}
