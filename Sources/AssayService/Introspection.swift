/// Introspection XML of every node the daemon serves. Kept as data so that
/// `gdbus introspect` and `busctl introspect` (both tested) see exactly this.
enum Introspection {
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

    static let manager = """
      <interface name="io.assay.Manager1">
        <method name="Submit">
          <arg name="prompt" type="s" direction="in"/>
          <arg name="options" type="a{sv}" direction="in"/>
          <arg name="job" type="o" direction="out"/>
        </method>
        <method name="Score">
          <arg name="prompt" type="s" direction="in"/>
          <arg name="images" type="ah" direction="in"/>
          <arg name="verifiers" type="as" direction="in"/>
          <arg name="options" type="a{sv}" direction="in"/>
          <arg name="results" type="aa{sv}" direction="out"/>
        </method>
        <method name="ListPlugins"><arg name="plugins" type="aa{sv}" direction="out"/></method>
        <method name="ListJobs"><arg name="jobs" type="ao" direction="out"/></method>
        <method name="ListStrategies"><arg name="strategies" type="aa{sv}" direction="out"/></method>
        <method name="ReloadPlugins"/>
        <signal name="PluginsChanged"/>
        <signal name="PluginLoadFailed">
          <arg name="path" type="s"/>
          <arg name="reason" type="s"/>
        </signal>
        <property name="Version" type="s" access="read"/>
        <property name="AbiVersion" type="s" access="read"/>
        <property name="PluginDirectories" type="as" access="readwrite"/>
        <property name="QueueLength" type="u" access="read"/>
        <property name="RunningJobs" type="u" access="read"/>
        <property name="Strategies" type="as" access="read"/>
        <property name="ScoreVerifierCalls" type="t" access="read"/>
      </interface>

    """

    static let job = """
      <interface name="io.assay.Job1">
        <method name="Cancel"/>
        <method name="OpenResult"><arg name="png" type="h" direction="out"/></method>
        <method name="OpenManifest"><arg name="json" type="h" direction="out"/></method>
        <method name="OpenCandidate">
          <arg name="index" type="u" direction="in"/>
          <arg name="png" type="h" direction="out"/>
        </method>
        <signal name="Finished"><arg name="state" type="s"/></signal>
        <property name="State" type="s" access="read"/>
        <property name="StopReason" type="s" access="read"/>
        <property name="Prompt" type="s" access="read"/>
        <property name="Strategy" type="s" access="read"/>
        <property name="Model" type="s" access="read"/>
        <property name="Seed" type="t" access="read"/>
        <property name="Progress" type="d" access="read"/>
        <property name="NfeUsed" type="u" access="read"/>
        <property name="NfeBudget" type="u" access="read"/>
        <property name="VerifierCalls" type="u" access="read"/>
        <property name="ReflectorCalls" type="u" access="read"/>
        <property name="FlopRatio" type="d" access="read"/>
        <property name="Candidates" type="u" access="read"/>
        <property name="BestScore" type="d" access="read"/>
        <property name="ResultPath" type="s" access="read"/>
        <property name="ManifestPath" type="s" access="read"/>
        <property name="CandidatesPath" type="s" access="read"/>
        <property name="Error" type="s" access="read"/>
      </interface>

    """

    static func node(interfaces: String, children: [String]) -> String {
        header + "<node>\n" + interfaces + children.map { "  <node name=\"\($0)\"/>\n" }.joined() + "</node>\n"
    }
}
