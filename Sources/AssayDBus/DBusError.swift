/// A D-Bus error: a reply of type ERROR, or a local failure described the same way.
public struct DBusError: Error, CustomStringConvertible, Sendable {
    /// The error name, e.g. `io.assay.Error.InvalidArgument`.
    public let name: String
    public let message: String

    public init(name: String, message: String) {
        self.name = name
        self.message = message
    }

    public var description: String { "\(name): \(message)" }

    static func failed(_ message: String) -> DBusError {
        DBusError(name: "org.freedesktop.DBus.Error.Failed", message: message)
    }
}
