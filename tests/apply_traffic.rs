//! What `vpcsim apply` does to traffic already flowing, as AWS documents it
//! ("Security group connection tracking", "Network ACLs"): connections held
//! open across a live change of the lab's file.
//! - removing the security group rule that admitted a *tracked* connection
//!   does not cut it, while a new connection is refused at once;
//! - an *untracked* flow (TCP/UDP allowed from 0.0.0.0/0, every response
//!   allowed back on all ports) is cut at once;
//! - ICMP is always tracked;
//! - a connection through a NAT gateway is always tracked;
//! - a new NACL deny drops the very next packet of an established one.
//!
//! Each check names the rule that dropped the packets (fabric counters).

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

/// Server `srv` in subnet `a` (NACL `edge`, all allowed), client `cli` in
/// subnet `b`. The server's group lets in tcp/5000 and udp/5002 from
/// anywhere, tcp/5001 and udp/5003 from the VPC and ICMP from anywhere, and
/// lets everything out: 5000 and 5002 are untracked at the server, 5001,
/// 5003 and ICMP are tracked.
const LAB: &str = r#"name = "x"
[vpc]
cidr = "10.0.0.0/16"
[[subnet]]
name = "a"
cidr = "10.0.1.0/24"
az = "us-east-1a"
nacl = "edge"
[[subnet]]
name = "b"
cidr = "10.0.2.0/24"
az = "us-east-1a"
[[nacl]]
name = "edge"
inbound = [
  { rule = 100, protocol = "all", cidr = "0.0.0.0/0", action = "allow" },
]
outbound = [{ rule = 100, protocol = "all", cidr = "0.0.0.0/0", action = "allow" }]
[[security_group]]
name = "server"
ingress = [
  { protocol = "tcp", ports = "5000", cidr = "0.0.0.0/0" },
  { protocol = "tcp", ports = "5001", cidr = "10.0.0.0/16" },
  { protocol = "udp", ports = "5002", cidr = "0.0.0.0/0" },
  { protocol = "udp", ports = "5003", cidr = "10.0.0.0/16" },
  { protocol = "icmp", cidr = "0.0.0.0/0" },
]
egress = [{ protocol = "all", cidr = "0.0.0.0/0" }]
[[security_group]]
name = "client"
ingress = []
egress = [{ protocol = "all", cidr = "0.0.0.0/0" }]
[[instance]]
name = "srv"
subnet = "a"
private_ip = "10.0.1.10"
security_groups = ["server"]
[[instance]]
name = "cli"
subnet = "b"
private_ip = "10.0.2.10"
security_groups = ["client"]
"#;

const SERVER: &str = "10.0.1.10";

/// Echo server on every port given (`5000` TCP, `udp/5002`); prints
/// `ready` once listening.
const ECHO: &str = r#"
import socket, sys, threading
def datagrams(s):
    while True:
        d, a = s.recvfrom(4096); s.sendto(d, a)
def serve(s):
    while True:
        c, _ = s.accept()
        def echo(c=c):
            try:
                while (d := c.recv(4096)): c.sendall(d)
            except OSError: pass
        threading.Thread(target=echo, daemon=True).start()
for p in sys.argv[1:]:
    if p.startswith("udp/"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(p[4:])))
        threading.Thread(target=datagrams, args=(s,), daemon=True).start()
        continue
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(p))); s.listen(16)
    threading.Thread(target=serve, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

/// One TCP connection (or UDP flow: one socket, `udp` third) held open:
/// each line on stdin is sent and answered `ok` when it comes back within
/// 5 s, `fail` when it does not.
const STREAM: &str = r#"
import socket, sys
addr = (sys.argv[1], int(sys.argv[2]))
if sys.argv[3:] == ["udp"]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(addr); s.settimeout(5)
else:
    s = socket.create_connection(addr, timeout=5)
print("connected", flush=True)
for line in sys.stdin:
    try:
        s.sendall(line.encode())
        print("ok" if s.recv(4096) else "closed", flush=True)
    except OSError as e:
        print("fail", type(e).__name__, flush=True)
"#;

/// A process started in a lab node with `vpcsim exec`, read line by line.
struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Process {
    fn start(lab: &TestLab, node: &str, cmd: &[&str]) -> Process {
        let mut args = vec!["exec", "--lab", &lab.name, node, "--"];
        args.extend_from_slice(cmd);
        let mut child = Command::new(vpcsim_bin())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// The next line, or None if the process says nothing for 30 s.
    fn line(&self) -> Option<String> {
        self.lines.recv_timeout(Duration::from_secs(30)).ok()
    }

    /// Lines already printed and not read yet.
    fn drain(&self) {
        while self.lines.try_recv().is_ok() {}
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // The stream ends at end of input; ping by being killed (its
        // `vpcsim exec`, by pid); `down` ends whatever is left in the lab.
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn echo_server(lab: &TestLab, ports: &[&str]) -> Process {
    let mut cmd = vec!["python3", "-u", "-c", ECHO];
    cmd.extend_from_slice(ports);
    let server = Process::start(lab, "srv", &cmd);
    assert_eq!(server.line().as_deref(), Some("ready"));
    server
}

/// A held connection from `node` to `addr:port` (`udp/5002` for UDP).
fn stream(lab: &TestLab, node: &str, addr: &str, port: &str) -> Process {
    let (port, proto) = match port.strip_prefix("udp/") {
        Some(p) => (p, "udp"),
        None => (port, "tcp"),
    };
    let s = Process::start(
        lab,
        node,
        &["python3", "-u", "-c", STREAM, addr, port, proto],
    );
    assert_eq!(
        s.line().as_deref(),
        Some("connected"),
        "{node} -> {addr}:{port}"
    );
    s
}

/// Sends one message over the held connection: whether it came back.
fn echo(s: &mut Process) -> bool {
    writeln!(s.stdin.as_mut().unwrap(), "hello").unwrap();
    let answer = s.line().expect("the stream answers within its 5 s");
    answer == "ok"
}

fn without(text: &str, line: &str) -> String {
    assert!(text.contains(line), "no `{line}` to remove");
    text.replace(line, "")
}

#[test]
fn removing_sg_rules_spares_tracked_connections_and_cuts_untracked_ones() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up_with("aptsg", LAB, &["--network-only"]);
    let _server = echo_server(&lab, &["5000", "5001", "udp/5002", "udp/5003"]);
    let mut untracked = stream(&lab, "cli", SERVER, "5000");
    let mut tracked = stream(&lab, "cli", SERVER, "5001");
    let mut untracked_udp = stream(&lab, "cli", SERVER, "udp/5002");
    let mut tracked_udp = stream(&lab, "cli", SERVER, "udp/5003");
    assert!(echo(&mut untracked_udp) && echo(&mut tracked_udp));
    let ping = Process::start(&lab, "cli", &["ping", "-O", "-i", "0.2", SERVER]);
    assert!(echo(&mut untracked) && echo(&mut tracked));
    assert!(ping.line().is_some_and(|l| l.starts_with("PING")));
    assert!(ping.line().is_some_and(|l| l.contains("bytes from")));
    // The fabric marked the 5000 connection untracked (no rule marks 5001).
    let marked =
        "untracked: sg server ingress tcp/5000 from 0.0.0.0/0, egress allows all tcp responses";
    assert!(lab.counters().get(marked).is_some_and(|&n| n >= 1));

    // The rules that admitted the connections go.
    let mut edited = LAB.to_string();
    for rule in [
        "  { protocol = \"tcp\", ports = \"5000\", cidr = \"0.0.0.0/0\" },\n",
        "  { protocol = \"tcp\", ports = \"5001\", cidr = \"10.0.0.0/16\" },\n",
        "  { protocol = \"udp\", ports = \"5002\", cidr = \"0.0.0.0/0\" },\n",
        "  { protocol = \"udp\", ports = \"5003\", cidr = \"10.0.0.0/16\" },\n",
        "  { protocol = \"icmp\", cidr = \"0.0.0.0/0\" },\n",
    ] {
        edited = without(&edited, rule);
    }
    let plan = lab.apply(&edited);
    assert!(plan.contains("server"), "the plan names the group:\n{plan}");
    let no_rule = "sg server ingress: no rule allows it";

    // (b) Untracked: the very next message is dropped by the group.
    let (came_back, dropped) = lab.dropped_by(|| echo(&mut untracked));
    assert!(!came_back, "an untracked connection outlived its rule");
    assert_eq!(dropped, [no_rule]);

    let (came_back, dropped) = lab.dropped_by(|| echo(&mut untracked_udp));
    assert!(!came_back, "an untracked UDP flow outlived its rule");
    assert_eq!(dropped, [no_rule]);

    // (a) Tracked: the established connection goes on...
    for _ in 0..3 {
        assert!(echo(&mut tracked), "a tracked connection was cut");
        assert!(echo(&mut tracked_udp), "a tracked UDP flow was cut");
    }
    // ...and a new one is refused at once, by the same group.
    let (connected, dropped) = lab.dropped_by(|| lab.tcp_ok("cli", SERVER, 5001));
    assert!(!connected);
    assert_eq!(dropped, [no_rule]);

    // (c) ICMP is always tracked: the running ping keeps its replies, a new
    // one gets none.
    ping.drain();
    let _in_flight = ping.line();
    for _ in 0..5 {
        let l = ping.line().expect("ping prints a line per echo");
        assert!(
            l.contains("bytes from"),
            "the running ping lost a reply: {l}"
        );
    }
    let (answered, dropped) = lab.dropped_by(|| lab.ping("cli", SERVER));
    assert!(!answered);
    assert_eq!(dropped, [no_rule]);
}

#[test]
fn a_new_nacl_deny_drops_the_next_packet_of_an_established_connection() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up_with("aptnacl", LAB, &["--network-only"]);
    let _server = echo_server(&lab, &["5001"]);
    let mut tracked = stream(&lab, "cli", SERVER, "5001");
    assert!(echo(&mut tracked));

    let deny = "  { rule = 50, protocol = \"tcp\", ports = \"5001\", cidr = \"10.0.2.0/24\", action = \"deny\" },\n";
    let edited = LAB.replacen("inbound = [\n", &format!("inbound = [\n{deny}"), 1);
    let admitted = "sg server ingress tcp/5001 from 10.0.0.0/16";
    let before = lab.counters()[admitted];
    assert!(before >= 1);
    let plan = lab.apply(&edited);
    assert!(plan.contains("rule 50"), "the plan names the rule:\n{plan}");
    // Only the NACL's chain was reloaded: the group's counters go on.
    assert_eq!(lab.counters()[admitted], before);
    // Stateless: the established connection's next packet meets the rule.
    let (came_back, dropped) = lab.dropped_by(|| echo(&mut tracked));
    assert!(
        !came_back,
        "a NACL deny let an established connection through"
    );
    assert_eq!(dropped, ["nacl edge inbound rule 50 deny"]);
}

/// A private instance behind a NAT gateway and a public one, both in a
/// group that allows all traffic both ways (untracked, on AWS's rules),
/// each holding a connection to a host on the internet.
const NAT_LAB: &str = r#"name = "x"
[vpc]
cidr = "10.0.0.0/16"
[internet_gateway]
name = "igw"
[[subnet]]
name = "pub"
cidr = "10.0.1.0/24"
az = "us-east-1a"
route_table = "pub"
map_public_ip = true
[[subnet]]
name = "priv"
cidr = "10.0.2.0/24"
az = "us-east-1a"
route_table = "priv"
[[route_table]]
name = "pub"
routes = [{ destination = "0.0.0.0/0", target = "igw" }]
[[route_table]]
name = "priv"
routes = [{ destination = "0.0.0.0/0", target = "nat" }]
[[nat_gateway]]
name = "nat"
subnet = "pub"
[[security_group]]
name = "open"
ingress = [{ protocol = "all", cidr = "0.0.0.0/0" }]
egress = [
  { protocol = "all", cidr = "0.0.0.0/0" },
]
[[instance]]
name = "private"
subnet = "priv"
security_groups = ["open"]
[[instance]]
name = "public"
subnet = "pub"
security_groups = ["open"]
"#;

#[test]
fn connections_through_a_nat_gateway_are_always_tracked() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up_with("aptnat", NAT_LAB, &["--network-only"]);
    // The internet's first host (docs/topology.md: `[internet] hosts`).
    let host = "203.0.113.10";
    let server = Process::start(&lab, "internet", &["python3", "-u", "-c", ECHO, "7000"]);
    assert_eq!(server.line().as_deref(), Some("ready"));
    let mut via_nat = stream(&lab, "private", host, "7000");
    let mut direct = stream(&lab, "public", host, "7000");
    assert!(echo(&mut via_nat) && echo(&mut direct));

    lab.apply(&without(
        NAT_LAB,
        "  { protocol = \"all\", cidr = \"0.0.0.0/0\" },\n",
    ));
    // Through the IGW the flow was untracked: cut by the group at once.
    let (came_back, dropped) = lab.dropped_by(|| echo(&mut direct));
    assert!(!came_back, "an untracked connection outlived its rule");
    assert_eq!(dropped, ["sg open egress: no rule allows it"]);
    // Through the NAT gateway it was tracked: it goes on.
    for _ in 0..3 {
        assert!(
            echo(&mut via_nat),
            "a connection through the NAT gateway was cut"
        );
    }
}

/// Routes are looked up on every packet: a route added, changed or removed
/// decides the very next packet of a connection already flowing.
#[test]
fn a_route_change_decides_the_next_packet_of_an_established_connection() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up_with("aptrt", NAT_LAB, &["--network-only"]);
    let host = "203.0.113.10";
    let server = Process::start(&lab, "internet", &["python3", "-u", "-c", ECHO, "7000"]);
    assert_eq!(server.line().as_deref(), Some("ready"));
    let mut via_nat = stream(&lab, "private", host, "7000");
    assert!(echo(&mut via_nat));

    // A more specific route to the IGW: the private instance has no public
    // IP, so the IGW drops its next packet.
    let direct = NAT_LAB.replace(
        r#"routes = [{ destination = "0.0.0.0/0", target = "nat" }]"#,
        r#"routes = [{ destination = "0.0.0.0/0", target = "nat" }, { destination = "203.0.113.0/24", target = "igw" }]"#,
    );
    let plan = lab.apply(&direct);
    assert!(
        plan.contains("~ route table priv: + route 203.0.113.0/24 -> igw"),
        "{plan}"
    );
    let (came_back, dropped) = lab.dropped_by(|| echo(&mut via_nat));
    assert!(!came_back, "the old route still carried the connection");
    assert_eq!(dropped, ["igw: source has no public IP"]);

    // Back through the NAT gateway, whose translation is still there.
    lab.apply(NAT_LAB);
    via_nat.drain();
    assert!(echo(&mut via_nat), "the connection did not resume");

    // A connection with nothing in flight (the first one's dropped message
    // is retransmitted and answered late, which would shift its answers).
    let mut via_nat = stream(&lab, "private", host, "7000");
    assert!(echo(&mut via_nat));

    // No route to the NAT gateway: the VPC router drops the next packet.
    let plan = lab.apply(&NAT_LAB.replace(
        r#"routes = [{ destination = "0.0.0.0/0", target = "nat" }]"#,
        "routes = []",
    ));
    assert!(
        plan.contains("~ route table priv: - route 0.0.0.0/0 -> nat"),
        "{plan}"
    );
    assert!(
        !echo(&mut via_nat),
        "an established connection outlived its route"
    );
    let out = lab.vpcsim(&[
        "trace",
        "--lab",
        &lab.name,
        "private",
        &format!("{host}:7000"),
    ]);
    let trace = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{trace}");
    assert!(trace.contains("no route"), "{trace}");
}
