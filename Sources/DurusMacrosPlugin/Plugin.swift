import SwiftCompilerPlugin
import SwiftSyntaxMacros

@main
struct DurusMacrosPlugin: CompilerPlugin {
    let providingMacros: [any Macro.Type] = [
        PersistentMacro.self,
        PersistentTrackedMacro.self,
        MarkerMacro.self,
    ]
}
