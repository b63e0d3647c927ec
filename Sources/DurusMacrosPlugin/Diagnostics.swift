import SwiftDiagnostics
import SwiftSyntax

/// The errors (and fix-its) the Durus macros report.
enum DurusDiagnostic: DiagnosticMessage {
    case notAClass
    case notFinal
    case inheritsPersistent
    case letProperty
    case needsDefault(String)
    case needsType(String)
    case multipleBindings
    case lazyProperty
    case referenceOwnership(String)
    case observers(String)
    case transientNeedsValue(String)
    case badRenamed
    case renamedTarget(old: String, new: String)
    case badPythonClass

    var message: String {
        switch self {
        case .notAClass:
            "@Persistent applies to classes that inherit from PersistentObject"
        case .notFinal:
            "@Persistent classes must be 'final': a subclass's properties would not be stored"
        case .inheritsPersistent:
            "@Persistent classes inherit from PersistentObject, not Persistent<State>, which keeps its own state"
        case .letProperty:
            "persistent properties must be 'var'"
        case .needsDefault(let name):
            "give '\(name)' a default value: ghosts are made without running an initializer"
        case .needsType(let name):
            "give '\(name)' an explicit type: @Persistent turns it into a computed property"
        case .multipleBindings:
            "declare each persistent property in its own 'var'"
        case .lazyProperty:
            "persistent and @Transient properties cannot be 'lazy'; use an optional @Transient property as a cache"
        case .referenceOwnership(let keyword):
            "persistent properties cannot be '\(keyword)'; mark the property @Transient to keep it out of the stored state"
        case .observers(let name):
            "property observers are not supported on persistent property '\(name)'"
        case .transientNeedsValue(let name):
            "give @Transient property '\(name)' an initial value: ghosts are made without running an initializer, and clearing the state resets it to that value"
        case .badRenamed:
            "'renamed:' takes a dictionary literal of string literals, old stored name: new property name"
        case .renamedTarget(let old, let new):
            "'renamed:' maps '\(old)' to '\(new)', which is not a persistent property of this class"
        case .badPythonClass:
            "'python:' takes a string literal naming a Python class with its module, as \"module.Name\""
        }
    }

    var diagnosticID: MessageID {
        let id: String = switch self {
        case .notAClass: "notAClass"
        case .notFinal: "notFinal"
        case .inheritsPersistent: "inheritsPersistent"
        case .letProperty: "letProperty"
        case .needsDefault: "needsDefault"
        case .needsType: "needsType"
        case .multipleBindings: "multipleBindings"
        case .lazyProperty: "lazyProperty"
        case .referenceOwnership: "referenceOwnership"
        case .observers: "observers"
        case .transientNeedsValue: "transientNeedsValue"
        case .badRenamed: "badRenamed"
        case .renamedTarget: "renamedTarget"
        case .badPythonClass: "badPythonClass"
        }
        return MessageID(domain: "DurusMacros", id: id)
    }

    var severity: DiagnosticSeverity { .error }
}

/// The fix-its offered with ``DurusDiagnostic``.
enum DurusFixIt: FixItMessage {
    case addFinal
    case useVar
    case addType(String)

    var message: String {
        switch self {
        case .addFinal: "add 'final'"
        case .useVar: "replace 'let' with 'var'"
        case .addType(let type): "add ': \(type)'"
        }
    }

    var fixItID: MessageID {
        let id: String = switch self {
        case .addFinal: "addFinal"
        case .useVar: "useVar"
        case .addType: "addType"
        }
        return MessageID(domain: "DurusMacros", id: id)
    }
}
