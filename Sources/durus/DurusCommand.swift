import ArgumentParser

/// `durus`: the operator's tool for swift-durus stores.
@main
struct DurusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "durus",
        abstract: "Serve and look after Durus object stores kept in Berkeley DB.",
        subcommands: [Serve.self]
    )
}
