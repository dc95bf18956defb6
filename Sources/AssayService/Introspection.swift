/// Introspection XML of every node the daemon serves. Kept as data so that
/// `gdbus introspect` and `busctl introspect` (both tested) see exactly this.
public enum Introspection {
    static let header = """
    <!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
     "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">

    """

    static let standard = """
      <interface name="org.freedesktop.DBus.Introspectable">
        <method name="Introspect"><arg name="xml" type="s" direction="out"/></method>
      </interface>
      <interface name="org.freedesktop.DBus.Peer">
        <method name="Ping"/>
        <method name="GetMachineId"><arg name="machine_uuid" type="s" direction="out"/></method>
      </interface>
      <interface name="org.freedesktop.DBus.Properties">
        <method name="Get">
          <arg name="interface_name" type="s" direction="in"/>
          <arg name="property_name" type="s" direction="in"/>
          <arg name="value" type="v" direction="out"/>
        </method>
        <method name="GetAll">
          <arg name="interface_name" type="s" direction="in"/>
          <arg name="properties" type="a{sv}" direction="out"/>
        </method>
        <method name="Set">
          <arg name="interface_name" type="s" direction="in"/>
          <arg name="property_name" type="s" direction="in"/>
          <arg name="value" type="v" direction="in"/>
        </method>
        <signal name="PropertiesChanged">
          <arg name="interface_name" type="s"/>
          <arg name="changed_properties" type="a{sv}"/>
          <arg name="invalidated_properties" type="as"/>
        </signal>
      </interface>

    """

    /// The daemon's own interfaces, from their declarations.
    static var manager: String { AssayService.managerBus.xml + "\n" }
    static var job: String { AssayService.jobBus.xml + "\n" }

    /// `dist/io.assay.Assay1.xml`: the interfaces a client programs against (fwupd ships
    /// its interface XML the same way); a test keeps the file equal to this.
    public static var interfaceFile: String {
        header + "<node>\n" + AssayService.managerBus.xml + AssayService.jobBus.xml + "</node>\n"
    }

    static func node(interfaces: String, children: [String]) -> String {
        header + "<node>\n" + interfaces + children.map { "  <node name=\"\($0)\"/>\n" }.joined() + "</node>\n"
    }
}
