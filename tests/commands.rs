//! The command table of the README, verb by verb, on one lab: `up --json`,
//! `up --network-only`, `status` workload states, `logs -f`,
//! `flow-logs --follow`, `probe --ports`, `trace --protocol udp|icmp`, live
//! `graph`, `down FILE`; and that IPv6 is off in every lab namespace.

mod common;
use common::{require_root, vpcsim_bin, TestLab};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A public subnet with `web` (user data that prints a line, waits for a
/// file `go`, prints another) and `crash` (user data that fails at once),
/// a private subnet whose NACL lets only tcp/8000 in, with `app` running
/// the built-in V1 model, an ALB over both, and a VPC flow log.
const TOPO: &str = r#"name = "x"
[vpc]
cidr = "10.0.0.0/16"

[[subnet]]
name = "public-1"
cidr = "10.0.10.0/24"
az = "us-east-1a"
route_table = "public"
map_public_ip = true

[[subnet]]
name = "public-2"
cidr = "10.0.30.0/24"
az = "us-east-1b"
route_table = "public"
map_public_ip = true

[[subnet]]
name = "private-1"
cidr = "10.0.20.0/24"
az = "us-east-1a"
nacl = "private"

[internet_gateway]
name = "igw"

[[route_table]]
name = "public"
routes = [{ destination = "0.0.0.0/0", target = "igw" }]

[[nacl]]
name = "private"
inbound = [{ rule = 100, protocol = "tcp", ports = "8000", cidr = "10.0.0.0/16", action = "allow" }]
outbound = [{ rule = 100, protocol = "tcp", ports = "1024-65535", cidr = "10.0.0.0/16", action = "allow" }]

[[security_group]]
name = "sg-open"
ingress = [{ protocol = "all", cidr = "0.0.0.0/0" }]

[[instance]]
name = "web"
subnet = "public-1"
security_groups = ["sg-open"]
user_data = "echo first line; while [ ! -e go ]; do sleep 0.1; done; echo second line; sleep 1000"

[[instance]]
name = "crash"
subnet = "public-1"
user_data = "echo crashing; exit 3"

[[instance]]
name = "app"
subnet = "private-1"
private_ip = "10.0.20.16"
security_groups = ["sg-open"]
run = "model-v1"

[[target_group]]
name = "tg-app"
port = 8000
health_check = { path = "/", interval = 5, timeout = 2, healthy_threshold = 2, unhealthy_threshold = 2, matcher = "200-499" }
targets = ["app"]

[[target_group]]
name = "tg-web"
port = 8080
health_check = { path = "/", interval = 5, timeout = 2, healthy_threshold = 2, unhealthy_threshold = 2, matcher = "200-499" }
targets = ["web"]

[[load_balancer]]
name = "alb"
subnets = ["public-1", "public-2"]
security_groups = ["sg-open"]

[[load_balancer.listener]]
port = 80
default_forward = [{ target_group = "tg-app", weight = 1 }, { target_group = "tg-web", weight = 1 }]

[[flow_log]]
resource = "vpc"
traffic_type = "ALL"
max_aggregation_interval = 1
"#;

/// Spawns a following command (`logs -f`, `flow-logs --follow`) and returns
/// it with a reader of its output.
fn follow(args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(vpcsim_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

/// Reads lines until one satisfies `want` (the follower's own output ends
/// the wait; a watchdog kills it after 60 s so a silent follower fails
/// instead of hanging).
fn read_until(
    child: &Child,
    out: &mut BufReader<std::process::ChildStdout>,
    want: impl Fn(&str) -> bool,
) -> Option<String> {
    let pid = child.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            if Instant::now() > deadline {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut line = String::new();
    let found = loop {
        line.clear();
        match out.read_line(&mut line) {
            Ok(0) | Err(_) => break None,
            Ok(_) if want(line.trim_end()) => break Some(line.trim_end().to_string()),
            Ok(_) => {}
        }
    };
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    watchdog.join().unwrap();
    found
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn node<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == name)
        .unwrap_or_else(|| panic!("no node {name}: {status:#}"))
}

fn workload_states(status: &Value, name: &str) -> Vec<(String, String)> {
    node(status, name)["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["role"].as_str().unwrap().to_string(),
                w["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_verb_of_the_command_table_on_a_running_lab() {
    if !require_root() {
        return;
    }
    let lab = TestLab::write("cli", TOPO);
    let file = lab.file.to_str().unwrap().to_string();
    // `up --json`: the summary as JSON on stdout, the same as `status --json`.
    let up: Value = serde_json::from_str(&ok(&lab.vpcsim(&["up", &file, "--json"]))).unwrap();
    assert_eq!(up["lab"], lab.name.as_str());
    assert_eq!(up["ready"], true);
    assert_eq!(node(&up, "app")["private_ip"], "10.0.20.16");

    // IPv6 is off in every namespace of the lab: by sysctl in the fabric and
    // the internet; on an ENI's node, its eth0 generates no IPv6 address
    // (no link-local address: no DAD, router solicitation or MLD report).
    for n in ["fabric", "internet"] {
        let (code, out) = lab.sh(n, "cat /proc/sys/net/ipv6/conf/all/disable_ipv6 /proc/sys/net/ipv6/conf/default/disable_ipv6");
        assert_eq!((code, out.as_str()), (0, "1\n1\n"), "{n}");
    }
    for n in ["web", "app", "alb-a", "alb-b"] {
        let (code, out) = lab.sh(n, "ip -d link show dev eth0; ip -6 -o addr show dev eth0");
        assert_eq!(code, 0, "{n}: {out}");
        assert!(out.contains("addrgenmode none"), "{n}: {out}");
        assert!(!out.contains("inet6"), "{n} has an IPv6 address: {out}");
    }

    // `logs -f` prints the console and follows it.
    let (child, mut out) = follow(&["logs", "--lab", &lab.name, "web", "-f"]);
    assert!(
        read_until(&child, &mut out, |l| l == "first line").is_some(),
        "logs -f: no first line"
    );
    std::fs::write(format!("/run/vpcsim/{}/nodes/web/go", lab.name), "").unwrap();
    assert!(
        read_until(&child, &mut out, |l| l == "second line").is_some(),
        "logs -f did not follow"
    );
    stop(child);

    // `status`: running, crashed (a server that died), exited (user data
    // that ended), stopped (`vpcsim stop`).
    let st = lab.status();
    assert_eq!(
        workload_states(&st, "app"),
        [("model-v1".to_string(), "running".to_string())]
    );
    assert_eq!(
        workload_states(&st, "crash"),
        [("user-data".to_string(), "exited".to_string())]
    );
    let pid = node(&st, "app")["workloads"][0]["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while workload_states(&lab.status(), "app")[0].1 != "crashed" {
        assert!(Instant::now() < deadline, "{:#}", lab.status());
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(&lab.vpcsim(&["stop", "--lab", &lab.name, "web"]));
    assert_eq!(workload_states(&lab.status(), "web")[0].1, "stopped");
    ok(&lab.vpcsim(&["start", "--lab", &lab.name, "app"]));
    // The crashed record stays as history; the new one runs.
    let app = workload_states(&lab.status(), "app");
    assert_eq!(app.last().unwrap().1, "running", "{app:?}");

    // `flow-logs --follow` prints records as they are written.
    let (child, mut out) = follow(&["flow-logs", "--lab", &lab.name, "--follow"]);
    lab.listen("web", &["tcp/8080"]);
    let web_public = node(&lab.status(), "web")["public_ip"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lab.tcp_eventually("internet", &web_public, 8080).is_some());
    let rec = read_until(&child, &mut out, |l| {
        l.parse::<vpcsim::flowlog::Record>().is_ok_and(|r| {
            r.dstport == 8080 && r.action == "ACCEPT" && r.srcaddr.to_string() == "203.0.113.10"
        })
    });
    assert!(rec.is_some(), "flow-logs --follow never printed the flow");
    stop(child);

    // `trace --protocol udp|icmp`: the private NACL lets only tcp/8000 in;
    // real packets agree and the same rule counts them.
    let deny = "nacl private inbound rule * deny";
    for (proto, dst) in [("tcp", "app:8000"), ("udp", "app:8000"), ("icmp", "app")] {
        let out = lab.vpcsim(&["trace", "--lab", &lab.name, "web", dst, "--protocol", proto]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if proto == "tcp" {
            assert_eq!(out.status.code(), Some(0), "{text}");
        } else {
            assert_eq!(out.status.code(), Some(1), "{proto}: {text}");
            assert!(text.contains(deny), "{proto}: {text}");
        }
    }
    lab.listen("app", &["udp/8000"]);
    let (answer, drops) = lab.dropped_by(|| lab.udp("web", "10.0.20.16", 8000));
    assert_eq!(answer, None);
    assert_eq!(drops, vec![deny.to_string()]);
    let (pinged, drops) = lab.dropped_by(|| lab.ping("web", "10.0.20.16"));
    assert!(!pinged);
    assert_eq!(drops, vec![deny.to_string()]);

    // `probe --ports`: only the ports asked for, and no disagreement.
    let out = lab.vpcsim(&["probe", "--lab", &lab.name, "--ports", "8000", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(
        report["ports"],
        serde_json::json!([{ "protocol": "tcp", "port": 8000 }])
    );
    let probes = report["probes"].as_array().unwrap();
    assert!(!probes.is_empty());
    assert!(probes
        .iter()
        .all(|p| p["port"] == 8000 && p["protocol"] == "tcp"));
    assert!(probes
        .iter()
        .any(|p| p["source"] == "web" && p["destination"] == "app" && p["actual"] == true));

    // Live `graph`: the weights of the running ALB and target health.
    ok(&lab.vpcsim(&[
        "weights", "--lab", &lab.name, "alb:80", "tg-app=7", "tg-web=0",
    ]));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let svg = ok(&lab.vpcsim(&["graph", &lab.name]));
        let live =
            svg.contains("tg-app 7, tg-web 0") && svg.contains("app 10.0.20.16:8000 · healthy");
        if live {
            assert!(
                svg.contains("web 10.0.10.4:8080 · unhealthy")
                    || svg.contains("web 10.0.10.4:8080 · initial"),
                "{svg}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "graph is not live:\n{svg}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // `down FILE`: the file names the lab.
    ok(&lab.vpcsim(&["down", &file]));
    assert!(vpcsim::fabric::netns::list(&format!("vpcsim-{}-", lab.name)).is_empty());
}

#[test]
fn up_network_only_starts_no_workloads_but_the_aws_services() {
    if !require_root() {
        return;
    }
    let lab = TestLab::write("cli-net", TOPO);
    ok(&lab.vpcsim(&["up", "--network-only", lab.file.to_str().unwrap()]));
    let st = lab.status();
    for n in ["web", "crash", "app", "alb-a"] {
        assert!(
            workload_states(&st, n).is_empty(),
            "{n}: {:?}",
            workload_states(&st, n)
        );
    }
    let fabric = workload_states(&st, "fabric");
    assert!(
        fabric.contains(&("aws-services".to_string(), "running".to_string())),
        "{fabric:?}"
    );
    // The network is all there: the DNS answers and a path works.
    assert_eq!(
        lab.sh("web", "getent hosts ip-10-0-20-16.ec2.internal").0,
        0
    );
    lab.listen("app", &["tcp/8000"]);
    assert!(lab.tcp_eventually("web", "10.0.20.16", 8000).is_some());
}
