import CDBus
import Glibc

/// Which bus to connect to.
public enum BusAddress: Sendable, Equatable {
    case session
    case system
    /// An explicit address, e.g. `unix:path=/tmp/bus` (private test buses).
    case address(String)
}

/// A private, registered connection to a message bus.
///
/// Not thread-safe by design: the daemon touches a connection only from its
/// `DBusEventLoop` thread, and clients use it from one thread. That keeps libdbus'
/// internal locking (and its cross-thread signal delays) out of the picture.
public final class DBusConnection: @unchecked Sendable {
    public let raw: OpaquePointer
    public let uniqueName: String
    private var handler: ((DBusMessage) -> Bool)?

    private static let threadsInitialised: Bool = {
        dbus_threads_init_default()
        return true
    }()

    public init(_ address: BusAddress) throws {
        _ = DBusConnection.threadsInitialised
        let err = DBusErrorBox()
        let conn: OpaquePointer?
        switch address {
        case .session: conn = dbus_bus_get_private(DBUS_BUS_SESSION, &err.raw)
        case .system: conn = dbus_bus_get_private(DBUS_BUS_SYSTEM, &err.raw)
        case .address(let a):
            conn = dbus_connection_open_private(a, &err.raw)
            if let conn, err.isSet == false, dbus_bus_register(conn, &err.raw) == 0 {
                dbus_connection_close(conn)
                dbus_connection_unref(conn)
                throw err.error ?? DBusError.failed("could not register on bus \(a)")
            }
        }
        guard let conn, !err.isSet else {
            throw err.error ?? DBusError.failed("could not connect to the bus")
        }
        raw = conn
        dbus_connection_set_exit_on_disconnect(conn, 0)
        uniqueName = dbus_bus_get_unique_name(conn).map { String(cString: $0) } ?? ""
    }

    deinit {
        dbus_connection_close(raw)
        dbus_connection_unref(raw)
    }

    public var isConnected: Bool { dbus_connection_get_is_connected(raw) != 0 }

    /// The socket, for polling.
    public var fileDescriptor: Int32 {
        var fd: Int32 = -1
        dbus_connection_get_unix_fd(raw, &fd)
        return fd
    }

    public var hasMessagesToSend: Bool { dbus_connection_has_messages_to_send(raw) != 0 }

    /// Takes the well-known name, failing if someone else owns it.
    public func requestName(_ name: String) throws {
        let err = DBusErrorBox()
        let r = dbus_bus_request_name(raw, name, UInt32(DBUS_NAME_FLAG_DO_NOT_QUEUE), &err.raw)
        if let e = err.error { throw e }
        guard r == DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER || r == DBUS_REQUEST_NAME_REPLY_ALREADY_OWNER else {
            throw DBusError(name: "io.assay.Error.NameTaken",
                            message: "the bus name \(name) is already owned: is another assayd running on this bus?")
        }
    }

    /// Asks the bus to route signals matching `rule` to us.
    public func addMatch(_ rule: String) throws {
        let err = DBusErrorBox()
        dbus_bus_add_match(raw, rule, &err.raw)
        if let e = err.error { throw e }
    }

    /// Queues a message; it is written by the next `readWrite` / `flush`.
    /// Sends `message`. A message whose building failed (`appendFailure`: out of memory or
    /// of descriptors) is not sent: the call it answers gets that error instead, so the
    /// caller hears why and the daemon goes on.
    public func send(_ message: DBusMessage) {
        if let failure = message.appendFailure {
            guard let call = message.replyTo,
                  let error = dbus_message_new_error(call.raw, failure.name, failure.message) else { return }
            dbus_connection_send(raw, error, nil)
            dbus_message_unref(error)
            return
        }
        dbus_connection_send(raw, message.raw, nil)
    }

    public func flush() { dbus_connection_flush(raw) }

    /// Sends a method call and waits for its reply; an error reply is thrown.
    /// Messages that arrive meanwhile are queued for dispatch, not lost.
    public func call(_ message: DBusMessage, timeoutMs: Int32 = 25_000) throws -> DBusMessage {
        let err = DBusErrorBox()
        let reply = dbus_connection_send_with_reply_and_block(raw, message.raw, timeoutMs, &err.raw)
        if let e = err.error { throw e }
        guard let reply else { throw DBusError.failed("no reply") }
        return DBusMessage(taking: reply)
    }

    /// Convenience: a method call with arguments, returning the reply's arguments.
    public func call(destination: String, path: String, interface: String, member: String,
                     _ args: [DBusValue] = [], timeoutMs: Int32 = 25_000) throws -> [DBusValue] {
        let msg = DBusMessage.methodCall(destination: destination, path: path, interface: interface, member: member)
        msg.append(contentsOf: args)
        return try call(msg, timeoutMs: timeoutMs).arguments()
    }

    /// Installs the one handler that sees every incoming message (method calls and
    /// signals). Return true when the message was handled.
    public func setHandler(_ handler: @escaping (DBusMessage) -> Bool) {
        let first = self.handler == nil
        self.handler = handler
        guard first else { return }
        let me = Unmanaged.passUnretained(self).toOpaque()
        dbus_connection_add_filter(raw, { _, msg, user in
            guard let msg, let user else { return DBUS_HANDLER_RESULT_NOT_YET_HANDLED }
            let conn = Unmanaged<DBusConnection>.fromOpaque(user).takeUnretainedValue()
            let handled = conn.handler?(DBusMessage(retaining: msg)) ?? false
            return handled ? DBUS_HANDLER_RESULT_HANDLED : DBUS_HANDLER_RESULT_NOT_YET_HANDLED
        }, me, nil)
    }

    /// Non-blocking I/O: writes what it can, reads what is there.
    @discardableResult
    public func readWrite(timeoutMs: Int32 = 0) -> Bool {
        dbus_connection_read_write(raw, timeoutMs) != 0
    }

    /// Dispatches every complete message already read.
    public func dispatchAll() {
        while dbus_connection_dispatch(raw) == DBUS_DISPATCH_DATA_REMAINS {}
    }

    /// Blocks up to `timeoutMs` for I/O, then dispatches: the simple client loop.
    @discardableResult
    public func readWriteDispatch(timeoutMs: Int32) -> Bool {
        dbus_connection_read_write_dispatch(raw, timeoutMs) != 0
    }

    /// The Unix user id of a peer on the bus (for access checks).
    public func unixUser(of busName: String) throws -> UInt32 {
        let reply = try call(destination: "org.freedesktop.DBus", path: "/org/freedesktop/DBus",
                             interface: "org.freedesktop.DBus", member: "GetConnectionUnixUser",
                             [.string(busName)], timeoutMs: 5_000)
        guard case .uint32(let uid)? = reply.first else { throw DBusError.failed("bad GetConnectionUnixUser reply") }
        return uid
    }
}

/// Owns a libdbus `DBusError` and frees it.
final class DBusErrorBox {
    var raw = CDBus.DBusError()
    init() { dbus_error_init(&raw) }
    deinit { dbus_error_free(&raw) }
    var isSet: Bool { dbus_error_is_set(&raw) != 0 }
    var error: DBusError? {
        get {
            guard dbus_error_is_set(&raw) != 0 else { return nil }
            return DBusError(name: raw.name.map { String(cString: $0) } ?? "org.freedesktop.DBus.Error.Failed",
                             message: raw.message.map { String(cString: $0) } ?? "")
        }
    }
}
