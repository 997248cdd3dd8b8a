//! `trace`, `probe`, flow logs and `graph` against real labs: every verdict
//! of the model is confirmed by traffic from inside the lab's namespaces and
//! by the nft rule that counted the drop.

mod common;
use common::{require_root, vpcsim_bin, TestLab};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One lab with a mistake for every failure class: the private NACL has an
/// explicit deny (7000) and no return rule to the isolated subnet, the
/// server's group lacks port 6000, the isolated subnet has no route out,
/// `no-ip` sits in the public subnet without a public IP.
const FAILURES: &str = r#"name = "x"
[vpc]
cidr = "10.0.0.0/16"

[[subnet]]
name = "public-1"
cidr = "10.0.10.0/24"
az = "us-east-1a"
route_table = "public"
map_public_ip = true

[[subnet]]
name = "private-1"
cidr = "10.0.20.0/24"
az = "us-east-1a"
route_table = "private"
nacl = "private"

[[subnet]]
name = "isolated"
cidr = "10.0.30.0/24"
az = "us-east-1b"

[internet_gateway]
name = "igw"

[[nat_gateway]]
name = "nat-1"
subnet = "public-1"
elastic_ip = "198.51.100.20"

[[route_table]]
name = "public"
routes = [{ destination = "0.0.0.0/0", target = "igw" }]

[[route_table]]
name = "private"
routes = [{ destination = "0.0.0.0/0", target = "nat-1" }]

[[nacl]]
name = "private"
inbound = [
  { rule = 100, protocol = "tcp", ports = "8000", cidr = "10.0.0.0/16", action = "allow" },
  { rule = 110, protocol = "tcp", ports = "6000", cidr = "10.0.10.0/24", action = "allow" },
  { rule = 120, protocol = "tcp", ports = "7000", cidr = "10.0.10.0/24", action = "deny" },
  { rule = 130, protocol = "tcp", ports = "7000-7100", cidr = "10.0.0.0/16", action = "allow" },
]
outbound = [
  { rule = 100, protocol = "tcp", ports = "1024-65535", cidr = "10.0.10.0/24", action = "allow" },
]

[[security_group]]
name = "sg-open"
ingress = [{ protocol = "all", cidr = "0.0.0.0/0" }]

[[security_group]]
name = "sg-server"
ingress = [
  { protocol = "tcp", ports = "7000", cidr = "0.0.0.0/0" },
  { protocol = "tcp", ports = "8000", cidr = "0.0.0.0/0" },
]

[[instance]]
name = "web"
subnet = "public-1"
private_ip = "10.0.10.10"
security_groups = ["sg-open"]

[[instance]]
name = "no-ip"
subnet = "public-1"
private_ip = "10.0.10.11"
associate_public_ip = false
security_groups = ["sg-open"]

[[instance]]
name = "server"
subnet = "private-1"
private_ip = "10.0.20.16"
security_groups = ["sg-server"]

[[instance]]
name = "victim"
subnet = "private-1"
private_ip = "10.0.20.17"
security_groups = ["sg-open"]

[[instance]]
name = "island"
subnet = "isolated"
private_ip = "10.0.30.10"
security_groups = ["sg-open"]
"#;

/// `vpcsim trace --json`: (exit code, report).
fn trace(lab: &TestLab, src: &str, dst: &str) -> (i32, Value) {
    let out = lab.vpcsim(&["trace", "--lab", &lab.name, src, dst, "--json"]);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "trace {src} {dst}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

/// The first hop that is not `pass`: (leg, component, rule).
fn blocked(report: &Value) -> (String, String, String) {
    for leg in ["request", "reply"] {
        let Some(hops) = report[leg]["hops"].as_array() else {
            continue;
        };
        if let Some(h) = hops.iter().find(|h| h["verdict"] != "pass") {
            return (
                leg.to_string(),
                h["component"].as_str().unwrap().to_string(),
                h["rule"].as_str().unwrap().to_string(),
            );
        }
    }
    panic!("nothing blocks: {report:#}");
}

/// Packet counters of the NAT gateway's own ruleset, by comment.
fn nat_counter(lab: &TestLab, comment: &str) -> u64 {
    let (_, text) = lab.sh("nat-1", "nft list ruleset");
    text.lines()
        .find(|l| l.contains(comment))
        .and_then(|l| l.split("packets ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no rule `{comment}` in nat-1:\n{text}"))
}

#[test]
fn trace_names_each_failure_and_traffic_agrees() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up("t-an-fail", FAILURES);
    lab.listen("server", &["tcp/6000", "tcp/7000", "tcp/8000"]);
    lab.listen("victim", &["tcp/8000"]);
    lab.listen("internet", &["tcp/80", "tcp/8080"]);

    // (case, source, destination, leg, component, rule, fabric counter?)
    let cases = [
        (
            "no route",
            "island",
            "203.0.113.10:80",
            "request",
            "route-table",
            "route table main: no route to 203.0.113.10",
            false,
        ),
        (
            "sg missing ingress",
            "web",
            "server:6000",
            "request",
            "sg-ingress",
            "sg sg-server ingress: no rule allows it",
            true,
        ),
        (
            "nacl deny on request",
            "web",
            "server:7000",
            "request",
            "nacl-inbound",
            "nacl private inbound rule 120 deny",
            true,
        ),
        (
            "nacl deny on reply",
            "island",
            "server:8000",
            "reply",
            "nacl-outbound",
            "nacl private outbound rule * deny",
            true,
        ),
        (
            "no public ip",
            "no-ip",
            "internet:8080",
            "request",
            "internet-gateway",
            "igw: source has no public IP",
            true,
        ),
    ];
    for (case, src, dst, leg, component, rule, counted) in cases {
        let (code, report) = trace(&lab, src, dst);
        assert_eq!(code, 1, "{case}: trace must exit 1");
        assert_eq!(report["reachable"], false, "{case}");
        assert_eq!(
            blocked(&report),
            (leg.into(), component.into(), rule.into()),
            "{case}"
        );
        let (host, port) = dst.rsplit_once(':').unwrap();
        let addr = match host {
            "internet" => "203.0.113.10",
            "server" => "10.0.20.16",
            other => other,
        };
        let (answer, drops) = lab.dropped_by(|| lab.tcp(src, addr, port.parse().unwrap()));
        assert_eq!(
            answer, None,
            "{case}: traffic must fail like the trace says"
        );
        if counted {
            assert!(
                drops.contains(&rule.to_string()),
                "{case}: dropped by {drops:?}"
            );
        } else {
            assert!(
                drops.is_empty(),
                "{case}: no rule drops it, the route is missing: {drops:?}"
            );
        }
    }

    // A path the tables allow: trace and traffic agree it works.
    let (_, report) = trace(&lab, "web", "server:8000");
    assert_eq!(report["reachable"], true, "{report:#}");
    assert!(lab.tcp_eventually("web", "10.0.20.16", 8000).is_some());

    // NAT gateway: no inbound connections, dropped inside the NAT gateway.
    let (code, report) = trace(&lab, "internet", "198.51.100.20:22");
    assert_eq!(code, 1);
    assert_eq!(
        blocked(&report),
        (
            "request".into(),
            "nat-gateway".into(),
            "nat gateway: accepts no connections to itself".into()
        )
    );
    let before = nat_counter(&lab, "accepts no connections to itself");
    assert_eq!(lab.tcp("internet", "198.51.100.20", 22), None);
    assert!(nat_counter(&lab, "accepts no connections to itself") > before);

    // Spoofed source: `NODE@ADDRESS` traces a forged source address.
    let (code, report) = trace(&lab, "victim@10.0.20.99", "server:8000");
    assert_eq!(code, 1);
    let rule = "source/destination check: source is not the ENI's address";
    assert_eq!(
        blocked(&report),
        ("request".into(), "source-dest-check".into(), rule.into())
    );
    lab.sh("victim", "ip addr add 10.0.20.99/24 dev eth0");
    // The ENI port also refuses ARP that announces a forged address (its own
    // rule): pin the server's MAC so the forged IP packet itself is sent and
    // meets the source check.
    let (_, mac) = lab.sh("server", "cat /sys/class/net/eth0/address");
    let (code, _) = lab.sh(
        "victim",
        &format!(
            "ip neigh replace 10.0.20.16 lladdr {} dev eth0 nud permanent",
            mac.trim()
        ),
    );
    assert_eq!(code, 0, "pin the server's MAC");
    let (out, drops) = lab.dropped_by(|| {
        lab.sh(
            "victim",
            "timeout 10 python3 -c \"import socket; s=socket.socket(); s.bind(('10.0.20.99',0)); s.settimeout(3); s.connect(('10.0.20.16',8000))\"",
        )
    });
    assert_ne!(out.0, 0, "the forged connection must fail");
    // (Other rules may count meanwhile: the server still retransmits the
    // replies the NACL dropped in the reply case above.)
    assert!(drops.contains(&rule.to_string()), "dropped by {drops:?}");
}

#[test]
fn trace_through_the_alb_shows_listener_and_targets() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up_shipped("t-an-alb", "canary.toml");
    let dns = lab.status()["load_balancers"][0]["dns_name"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, report) = trace(&lab, "internet", &format!("{dns}:80"));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["kind"], "load_balancer");
    let node = &report["nodes"][0];
    assert_eq!(node["listener"]["rule"], "listener 80");
    let targets = node["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 4, "three v1 targets and one v2");
    assert!(targets.iter().all(|t| t["path"]["reachable"] == true));
    // And the text form says where each hop was decided.
    let out = lab.vpcsim(&["trace", "--lab", &lab.name, "internet", "v1-a:8000"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("igw: destination is not a public IP of this VPC"),
        "{text}"
    );
}

/// `vpcsim probe --json` on a shipped topology.
fn probe(name: &str, file: &str) -> (TestLab, i32, Value) {
    let lab = TestLab::up_shipped(name, file);
    let (code, report) = probe_json(&lab, &[]);
    (lab, code, report)
}

fn probe_json(lab: &TestLab, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["probe", "--lab", &lab.name, "--json"];
    all.extend_from_slice(args);
    let out = lab.vpcsim(&all);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("probe: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

fn find<'a>(report: &'a Value, proto: &str, src: &str, dst: &str, port: u64) -> &'a Value {
    report["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["protocol"] == proto
                && p["source"] == src
                && p["destination"] == dst
                && p["port"] == port
        })
        .unwrap_or_else(|| panic!("no probe {proto} {src} -> {dst}:{port}"))
}

#[test]
fn probe_canary_agrees_with_the_model() {
    if !require_root() {
        return;
    }
    let (_lab, code, report) = probe("t-an-probe-c", "canary.toml");
    let bad: Vec<&Value> = report["probes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["actual"] != p["model"])
        .collect();
    assert!(bad.is_empty(), "disagreements: {bad:#?}");
    assert_eq!(report["unconfirmed_rules"], serde_json::json!([]));
    assert_eq!(code, 0);
    assert_eq!(report["disagreements"], 0);
    // The working paths of the report really work…
    assert_eq!(
        find(&report, "tcp", "internet", "alb-a", 80)["actual"],
        true
    );
    assert_eq!(find(&report, "tcp", "alb-b", "v2-a", 8000)["actual"], true);
    assert_eq!(
        find(&report, "tcp", "internet", "bastion", 22)["actual"],
        true
    );
    // The report's public NACL has no outbound rule for 22: SSH from the
    // bastion to the backends cannot work on AWS either.
    let p = find(&report, "tcp", "bastion", "v1-c", 22);
    assert_eq!(p["actual"], false);
    assert_eq!(p["blocked_by"], "nacl public outbound rule * deny");
    // …and what the tables do not allow is blocked, with the rule named.
    let p = find(&report, "tcp", "internet", "v1-a", 8000);
    assert_eq!(p["actual"], false);
    assert_eq!(
        p["blocked_by"],
        "igw: destination is not a public IP of this VPC"
    );
    assert_eq!(
        find(&report, "tcp", "v1-a", "bastion", 9999)["actual"],
        false
    );
    // S3 through the gateway endpoint from the private subnets.
    assert_eq!(find(&report, "tcp", "v1-a", "s3", 443)["actual"], true);
    // UDP and ICMP were probed too: every node reaches the Amazon resolver
    // (no security group or NACL filters it), while the canary's security
    // groups, which allow only TCP, stop UDP and echo between the nodes.
    for node in ["bastion", "v1-a", "v2-a", "alb-a"] {
        assert_eq!(find(&report, "udp", node, "amazon-dns", 53)["actual"], true);
    }
    // So does the instance metadata service, though the backends' groups
    // allow no egress on 80: AWS filters neither path.
    for node in ["bastion", "v1-a", "v2-a"] {
        let p = find(&report, "tcp", node, "imds", 80);
        assert_eq!(
            (&p["actual"], &p["model"]),
            (&true.into(), &true.into()),
            "{p}"
        );
    }
    let p = find(&report, "icmp", "bastion", "v1-a", 0);
    assert_eq!(p["actual"], false);
    assert_eq!(p["blocked_by"], "sg sg-bastion egress: no rule allows it");
    assert_eq!(find(&report, "udp", "alb-a", "v1-a", 9999)["actual"], false);
}

const PROTOCOLS: &str = r#"name = "x"
[vpc]
cidr = "10.0.0.0/16"

[[subnet]]
name = "a"
cidr = "10.0.1.0/24"
az = "us-east-1a"

[[subnet]]
name = "b"
cidr = "10.0.2.0/24"
az = "us-east-1a"
nacl = "no-udp"

[[nacl]]
name = "no-udp"
inbound = [
  { rule = 100, protocol = "udp", ports = "1-65535", cidr = "0.0.0.0/0", action = "deny" },
  { rule = 200, protocol = "all", cidr = "0.0.0.0/0", action = "allow" },
]
outbound = [{ rule = 100, protocol = "all", cidr = "0.0.0.0/0", action = "allow" }]

[[security_group]]
name = "sg-all"
ingress = [{ protocol = "all", cidr = "0.0.0.0/0" }]

[[security_group]]
name = "sg-no-icmp"
ingress = [
  { protocol = "tcp", ports = "9999", cidr = "0.0.0.0/0" },
  { protocol = "udp", ports = "9999", cidr = "0.0.0.0/0" },
]

[[instance]]
name = "client"
subnet = "a"
security_groups = ["sg-all"]

[[instance]]
name = "plain"
subnet = "a"
security_groups = ["sg-no-icmp"]

[[instance]]
name = "server"
subnet = "b"
security_groups = ["sg-all"]
"#;

/// UDP and ICMP probes against the model: a NACL that denies UDP stops the
/// UDP rows (request or reply, with the rule named) while TCP passes, and a
/// security group without ICMP rules stops the echo.
#[test]
fn probe_udp_and_icmp_rows_name_the_blocking_rule() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up("t-an-probe-p", PROTOCOLS);
    let (code, report) = probe_json(&lab, &["--ports", "tcp/9999,udp/9999,icmp,udp/53"]);
    let bad: Vec<&Value> = report["probes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["actual"] != p["model"])
        .collect();
    assert!(bad.is_empty(), "disagreements: {bad:#?}");
    assert_eq!(code, 0);
    // The NACL of subnet b denies UDP in: the request dies there…
    assert_eq!(
        find(&report, "tcp", "client", "server", 9999)["actual"],
        true
    );
    let p = find(&report, "udp", "client", "server", 9999);
    assert_eq!(p["actual"], false, "{p:#}");
    assert_eq!(p["blocked_on_reply"], false);
    assert_eq!(p["blocked_by"], "nacl no-udp inbound rule 100 deny");
    // …and so does the reply to a request from b.
    let p = find(&report, "udp", "server", "client", 9999);
    assert_eq!(p["actual"], false, "{p:#}");
    assert_eq!(p["blocked_on_reply"], true);
    assert_eq!(p["blocked_by"], "nacl no-udp inbound rule 100 deny");
    // The Amazon resolver answers behind the NACL too.
    assert_eq!(
        find(&report, "udp", "server", "amazon-dns", 53)["actual"],
        true
    );
    // Echo passes where the security group allows all, not elsewhere.
    assert_eq!(find(&report, "icmp", "client", "server", 0)["actual"], true);
    assert_eq!(
        find(&report, "udp", "client", "plain", 9999)["actual"],
        true
    );
    let p = find(&report, "icmp", "client", "plain", 0);
    assert_eq!(p["actual"], false, "{p:#}");
    assert_eq!(p["blocked_by"], "sg sg-no-icmp ingress: no rule allows it");
    // `--protocol` keeps one protocol's rows.
    let (_, report) = probe_json(&lab, &["--protocol", "icmp"]);
    let protocols: std::collections::BTreeSet<&str> = report["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["protocol"].as_str().unwrap())
        .collect();
    assert_eq!(protocols, ["icmp"].into());
}

#[test]
fn probe_literal_tables_show_the_broken_replies() {
    if !require_root() {
        return;
    }
    let (_lab, code, report) = probe("t-an-probe-l", "seed-001-literal.toml");
    let bad: Vec<&Value> = report["probes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["actual"] != p["model"])
        .collect();
    assert!(bad.is_empty(), "disagreements: {bad:#?}");
    assert_eq!(report["unconfirmed_rules"], serde_json::json!([]));
    assert_eq!(code, 0);
    // ALB -> target: the request gets in, the reply dies at the public NACL.
    for target in ["v1-a", "v1-b", "v1-c"] {
        let p = find(&report, "tcp", "alb-a", target, 8000);
        assert_eq!(p["actual"], false, "{p:#}");
        assert_eq!(p["blocked_on_reply"], true, "{p:#}");
        assert_eq!(p["blocked_by"], "nacl public inbound rule * deny");
    }
    // From the second AZ's node the private NACL stops the request itself.
    let p = find(&report, "tcp", "alb-b", "v1-a", 8000);
    assert_eq!(p["blocked_on_reply"], false);
    assert_eq!(p["blocked_by"], "nacl private inbound rule * deny");
    // The internet still reaches the ALB.
    assert_eq!(
        find(&report, "tcp", "internet", "alb-a", 80)["actual"],
        true
    );
}

/// Flow logs on a subnet (public-1, ACCEPT only) and on one node (server,
/// REJECT only): each log records only its resources' ENIs and only its
/// traffic type; a drop by an inbound rule is an ACCEPT on the sender's ENI
/// and a REJECT on the receiver's.
#[test]
fn flow_logs_record_accepted_and_rejected_flows() {
    if !require_root() {
        return;
    }
    let topo = format!(
        "{FAILURES}\n[[flow_log]]\nresource = \"public-1\"\ntraffic_type = \"ACCEPT\"\nmax_aggregation_interval = 1\n\n[[flow_log]]\nresource = \"server\"\ntraffic_type = \"REJECT\"\nmax_aggregation_interval = 1\n"
    );
    let lab = TestLab::up("t-an-flow", &topo);
    lab.listen("server", &["tcp/8000"]);
    lab.listen("victim", &["tcp/8000"]);
    assert!(lab.tcp_eventually("web", "10.0.20.16", 8000).is_some());
    // Not covered by any flow log: victim's ENI must never appear.
    assert!(lab.tcp_eventually("web", "10.0.20.17", 8000).is_some());
    // Dropped by sg-server's ingress (an inbound rule).
    assert_eq!(lab.tcp("web", "10.0.20.16", 6000), None);
    let status = lab.status();
    let eni_of = |node: &str| -> String {
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == node)
            .unwrap()["eni"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (web_eni, server_eni) = (eni_of("web"), eni_of("server"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let records = loop {
        let out = lab.vpcsim(&["flow-logs", "--lab", &lab.name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let records: Vec<vpcsim::flowlog::Record> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let has = |eni: &str, action: &str, dst: &str, dport: u16| {
            records.iter().any(|r| {
                r.interface_id == eni
                    && r.action == action
                    && r.srcaddr.to_string() == "10.0.10.10"
                    && r.dstaddr.to_string() == dst
                    && r.dstport == dport
                    && r.protocol == 6
            })
        };
        if has(&server_eni, "REJECT", "10.0.20.16", 6000)
            && has(&web_eni, "ACCEPT", "10.0.20.16", 6000)
            && has(&web_eni, "ACCEPT", "10.0.20.16", 8000)
            && has(&web_eni, "ACCEPT", "10.0.20.17", 8000)
        {
            break records;
        }
        assert!(Instant::now() < deadline, "records so far:\n{records:#?}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let public_enis = [eni_of("web"), eni_of("no-ip"), eni_of("nat-1")];
    for r in &records {
        assert!(
            public_enis.contains(&r.interface_id) || r.interface_id == server_eni,
            "an ENI no flow log covers: {r:?}"
        );
        if r.interface_id == server_eni {
            assert_eq!(r.action, "REJECT", "the server's log is REJECT only: {r:?}");
        } else {
            assert_eq!(r.action, "ACCEPT", "public-1's log is ACCEPT only: {r:?}");
        }
        // Aggregated over at most max_aggregation_interval (1 s).
        assert!(r.end - r.start <= 1, "{r:?}");
    }
    let reject = records
        .iter()
        .find(|r| r.action == "REJECT" && r.dstport == 6000)
        .unwrap();
    assert!(
        reject.srcport >= 32768 && reject.srcport <= 60999,
        "{reject:?}"
    );
    assert!(reject.packets >= 1 && reject.bytes >= 40);
    assert_eq!(reject.account_id, "123456789012");
    assert_eq!(reject.log_status, "OK");
    // The reply of the accepted flow is its own record (server -> web), on
    // the receiving ENI.
    assert!(records.iter().any(|r| r.action == "ACCEPT"
        && r.interface_id == web_eni
        && r.srcport == 8000
        && r.srcaddr.to_string() == "10.0.20.16"));
}

#[test]
fn graph_svg_is_valid_for_every_shipped_topology() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let mut checked = 0;
    for path in common::shipped_topologies() {
        let lab = vpcsim::topology::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let svg = vpcsim::analysis::graph::svg(&lab, None);
        let doc = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{}: invalid SVG: {e}", path.display()));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let text: String = doc
            .descendants()
            .filter(|n| n.is_text())
            .map(|n| n.text().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for s in &lab.subnets {
            assert!(
                text.contains(&s.name) && text.contains(&s.cidr.to_string()),
                "{}: subnet {}",
                path.display(),
                s.name
            );
        }
        for i in &lab.instances {
            let node = &lab.enis[i.eni];
            assert!(
                text.contains(&node.node) && text.contains(&node.private_ip.to_string()),
                "{}: {}",
                path.display(),
                node.node
            );
        }
        for tg in &lab.target_groups {
            assert!(text.contains(&format!("target group {}", tg.name)));
        }
        checked += 1;
    }
    assert!(checked >= 2);
    // The CLI writes the other formats from a file, no lab needed.
    for format in ["mermaid", "dot"] {
        let out = std::process::Command::new(vpcsim_bin())
            .args([
                "graph",
                dir.join("canary.toml").to_str().unwrap(),
                "--format",
                format,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("public-1"));
    }
}
