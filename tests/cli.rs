//! The command line as a student meets it: help, completions, `list`, a
//! closed stdout, `logs` of every node and service, hostnames, `status` after
//! stop/start and deregistration, partial weights, and the next step shown
//! for an unhealthy target. Each runs the real binary and checks what it
//! prints and its exit code.

mod common;
use common::{require_root, shipped_text, vpcsim_bin, TestLab};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> Output {
    Command::new(vpcsim_bin()).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(lab: &TestLab, args: &[&str]) -> String {
    let o = lab.vpcsim(args);
    assert!(
        o.status.success(),
        "vpcsim {args:?}: {}{}",
        text(&o),
        err(&o)
    );
    text(&o)
}

const VERBS: [&str; 19] = [
    "up",
    "export",
    "down",
    "list",
    "status",
    "exec",
    "logs",
    "stop",
    "start",
    "weights",
    "trace",
    "probe",
    "graph",
    "flow-logs",
    "deregister",
    "register",
    "completions",
    "waf-logs",
    "waf-explain",
];

/// Every argument and option in `--help` has a description, every verb has
/// examples, and `--format` lists its values.
#[test]
fn help_describes_every_argument_and_option() {
    for verb in VERBS {
        let o = run(&[verb, "--help"]);
        assert!(o.status.success(), "{verb}: {}", err(&o));
        let help = text(&o);
        assert!(
            help.contains("Examples:\n  "),
            "{verb} has no examples:\n{help}"
        );
        let mut section = "";
        let lines: Vec<&str> = help.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if !l.starts_with(' ') && l.ends_with(':') {
                section = l;
                continue;
            }
            if section != "Arguments:" && section != "Options:" {
                continue;
            }
            // An entry is `  <FILE>` or `  -f, --follow`; its description is
            // the next line, indented further (long help).
            let entry = l.trim_start();
            let indent = l.len() - entry.len();
            if indent <= 6 && (entry.starts_with('<') || entry.starts_with('-')) {
                // Short help: `--json  Print …` on one line.
                let inline = entry
                    .split_once("  ")
                    .is_some_and(|(_, d)| !d.trim().is_empty());
                let next = lines.get(i + 1).copied().unwrap_or("");
                let described = inline
                    || (next.len() - next.trim_start().len() > indent + 2
                        && !next.trim().is_empty()
                        && !next.trim_start().starts_with('['));
                assert!(described, "{verb}: `{entry}` has no description:\n{help}");
            }
        }
    }
    let graph = text(&run(&["graph", "--help"]));
    for v in ["svg", "mermaid", "dot"] {
        assert!(
            graph.contains(&format!("- {v}:")),
            "--format must list {v}:\n{graph}"
        );
    }
    let top = text(&run(&["--help"]));
    assert!(top.contains("Examples:") && top.contains("list"), "{top}");
}

#[test]
fn shell_completions() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef vpcsim"),
        ("fish", "complete -c vpcsim"),
    ] {
        let o = run(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", err(&o));
        let script = text(&o);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("flow-logs") && script.contains("lab"),
            "{shell}"
        );
    }
    assert_eq!(run(&["completions", "tcsh"]).status.code(), Some(2));
}

/// `vpcsim up … | true`: the reader is gone before `up` prints anything. The
/// lab is still built completely, nothing panics and the exit code is 0.
/// `status … | head -1` likewise.
#[test]
fn closed_stdout_is_no_panic_and_the_lab_is_up() {
    if !require_root() {
        return;
    }
    let lab = TestLab::write("cli-pipe", &shipped_text("canary.toml"));
    let sh = |cmd: String| {
        Command::new("bash")
            .args(["-c", &format!("set -o pipefail; {cmd}")])
            .output()
            .unwrap()
    };
    let bin = vpcsim_bin().display().to_string();
    let o = sh(format!("{bin} up {} | true", lab.file.display()));
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(!err(&o).contains("panicked"), "{}", err(&o));
    let s = lab.status();
    assert_eq!(s["ready"], true);
    let running = |node: &str| {
        s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == node)
            .unwrap()["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["state"] == "running")
    };
    for node in ["v1-a", "v1-b", "v1-c", "v2-a"] {
        assert!(running(node), "{node} has no running workload: {s}");
    }
    for cmd in [
        format!("{bin} status {} | head -1", lab.name),
        format!("{bin} list | head -1"),
        format!("{bin} trace --lab {} internet v1-a:22 | head -1", lab.name),
        format!("{bin} completions bash | head -1"),
        format!("{bin} logs --lab {} dns | true", lab.name),
    ] {
        let o = sh(cmd.clone());
        assert!(!err(&o).contains("panicked"), "{cmd}: {}", err(&o));
        // head exits 0; vpcsim must not fail because its reader left
        // (trace's own verdict, 1, is the exception: it is the answer).
        assert!(
            matches!(o.status.code(), Some(0) | Some(1)),
            "{cmd}: {:?} {}",
            o.status,
            err(&o)
        );
    }
}

/// `list` names the labs that are up; `status` with several labs up points
/// at it.
#[test]
fn list_shows_labs_that_are_up() {
    if !require_root() {
        return;
    }
    let host_before = Command::new("hostname").output().unwrap().stdout;
    let lab = TestLab::up(
        "cli-list",
        "name = \"x\"\n[vpc]\ncidr = \"10.9.0.0/16\"\n[[subnet]]\nname = \"a\"\ncidr = \"10.9.1.0/24\"\naz = \"us-east-1a\"\n[[instance]]\nname = \"box\"\nsubnet = \"a\"\nprivate_ip = \"10.9.1.16\"\n",
    );
    let o = run(&["list"]);
    assert!(o.status.success(), "{}", err(&o));
    let line = text(&o)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(lab.name.as_str()))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{} not listed:\n{}", lab.name, text(&o)));
    assert!(
        line.contains("10.9.0.0/16") && line.contains(" up "),
        "{line}"
    );
    let v: serde_json::Value = serde_json::from_slice(&run(&["list", "--json"]).stdout).unwrap();
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["lab"] == lab.name.as_str() && l["ready"] == true));
    // Its hostname is EC2's, from its private IP; fabric's is its name.
    assert_eq!(lab.sh("box", "hostname").1.trim(), "ip-10-9-1-16");
    // `--` is only needed before a command that starts with `-`; the lab
    // given where the node goes is named as such.
    let o = lab.vpcsim(&["exec", "--lab", &lab.name, "box", "hostname"]);
    assert_eq!(text(&o).trim(), "ip-10-9-1-16", "{}", err(&o));
    let o = lab.vpcsim(&["exec", &lab.name, "box", "true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains(&format!(
            "is a lab, not a node: `vpcsim exec --lab {} NODE -- CMD`",
            lab.name
        )),
        "{}",
        err(&o)
    );
    assert_eq!(lab.sh("fabric", "hostname").1.trim(), "fabric");
    // The machine's own hostname is untouched (a UTS namespace per command).
    assert_eq!(
        Command::new("hostname").output().unwrap().stdout,
        host_before
    );
}

fn node_line(table: &str, node: &str) -> String {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(node))
        .unwrap_or_else(|| panic!("no line for {node}:\n{table}"))
        .to_string()
}

/// One session on the canary, as a student would go: logs of every node and
/// service, weights naming one group, stop/start, deregister twice, probe.
#[test]
fn canary_session_logs_weights_stop_start_deregister() {
    if !require_root() {
        return;
    }
    let topo = format!(
        "{}\n[[flow_log]]\nresource = \"vpc\"\ntraffic_type = \"ALL\"\nmax_aggregation_interval = 1\n",
        shipped_text("canary.toml")
    );
    let lab = TestLab::up("cli-canary", &topo);
    let l = lab.name.as_str();
    let dns = lab.status()["load_balancers"][0]["dns_name"]
        .as_str()
        .unwrap()
        .to_string();
    // Traffic for every log: a request through the ALB, a DNS query, an S3 GET.
    let (code, out) = lab.sh(
        "internet",
        &format!("curl -s -o /dev/null -w '%{{http_code}}' -X POST -H 'Content-Type: application/json' -d '{{\"user_id\": \"1\"}}' http://{dns}/api/v1/recommendation"),
    );
    assert_eq!((code, out.as_str()), (0, "200"));
    let (code, out) = lab.sh("v1-a", "getent hosts s3.amazonaws.com");
    assert_eq!(code, 0, "{out}");
    let (code, out) = lab.sh(
        "v1-a",
        "curl -s -o /dev/null -w '%{http_code}' http://s3.amazonaws.com:443/",
    );
    assert_eq!(code, 0, "{out}");

    // Every node has a log source; the services have theirs.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (source, expect) in [
        ("alb-access", "POST http://"),
        ("dns", "s3.amazonaws.com."),
        ("s3-access", "REST.GET.SERVICE"),
        ("flow-logs", " ACCEPT OK"),
        ("v1-a", ""),
        ("fabric", ""),
        ("alb-a", ""),
        ("nat-1", ""),
        ("internet", ""),
    ] {
        loop {
            let o = lab.vpcsim(&["logs", "--lab", l, source]);
            assert!(o.status.success(), "logs {source}: {}", err(&o));
            let all = format!("{}{}", text(&o), err(&o));
            // Never silence: either lines, or a note saying why there are none.
            assert!(!all.trim().is_empty(), "logs {source} printed nothing");
            if text(&o).contains(expect) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "logs {source}: no {expect:?}:\n{all}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let o = lab.vpcsim(&["logs", "--lab", l, "dns", "--json"]);
    for line in text(&o).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["source"], "dns");
        let q: serde_json::Value = serde_json::from_str(v["line"].as_str().unwrap()).unwrap();
        assert!(
            q["query_name"].is_string() && q["srcaddr"].is_string(),
            "{q}"
        );
    }
    let o = lab.vpcsim(&["flow-logs", "--lab", l, "--json"]);
    let first: serde_json::Value =
        serde_json::from_str(text(&o).lines().next().expect("a flow record")).unwrap();
    assert!(
        first["interface-id"].as_str().unwrap().starts_with("eni-"),
        "{first}"
    );
    let o = lab.vpcsim(&["logs", "--lab", l, "nope"]);
    assert_eq!(o.status.code(), Some(2));
    for name in [
        "fabric",
        "alb-access",
        "s3-access",
        "dns",
        "flow-logs",
        "v1-a",
    ] {
        assert!(err(&o).contains(name), "{}", err(&o));
    }

    // Naming one group: the others get 0, and the command says so.
    let o = lab.vpcsim(&["weights", "--lab", l, "alb:80", "tg-v1=100"]);
    assert!(o.status.success(), "{}", err(&o));
    let said = text(&o);
    assert!(
        said.contains("tg-v2=0 (0.0%)") && said.contains("not named"),
        "{said}"
    );
    let v: serde_json::Value = serde_json::from_slice(
        &lab.vpcsim(&[
            "weights", "--lab", l, "alb:80", "tg-v1=9", "tg-v2=1", "--json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(v["forward"][1]["target_group"], "tg-v2");
    assert_eq!(v["forward"][1]["weight"], 1);

    // stop/start: only the current workloads are shown.
    ok(&lab, &["stop", "--lab", l, "v2-a"]);
    let table = ok(&lab, &["status", l]);
    assert!(
        node_line(&table, "v2-a").contains("model-v2(stopped)"),
        "{table}"
    );
    ok(&lab, &["start", "--lab", l, "v2-a"]);
    let table = ok(&lab, &["status", l]);
    let line = node_line(&table, "v2-a");
    assert_eq!(line.matches("model-v2(").count(), 1, "{line}");
    assert_eq!(line.matches("user-data(").count(), 1, "{line}");
    assert!(!line.contains("stopped"), "{line}");

    // Deregistered: said truthfully, shown in status; twice is one clear error.
    let said = ok(&lab, &["deregister", "--lab", l, "tg-v1", "v1-a"]);
    assert!(said.contains("v1-a"), "{said}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let table = ok(&lab, &["status", l]);
        if table.contains("tg-v1 v1-a: deregistered") {
            break;
        }
        assert!(
            table.contains("draining") && Instant::now() < deadline,
            "v1-a neither draining nor deregistered:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = lab.vpcsim(&["deregister", "--lab", l, "tg-v1", "v1-a"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert_eq!(
        err(&o).matches("load balancer daemon").count(),
        0,
        "{}",
        err(&o)
    );
    assert!(
        err(&o).contains("v1-a is not registered with tg-v1"),
        "{}",
        err(&o)
    );

    // The probe table says which way it reads.
    let probe = text(&lab.vpcsim(&["probe", "--lab", l, "--ports", "8000"]));
    assert!(
        probe.contains("rows: source") && probe.contains("columns: destination"),
        "{probe}"
    );
    assert!(probe.contains("from \\ to"), "{probe}");
}

/// On a terminal a DENY stands out; in a pipe there is no escape code.
#[test]
fn trace_colours_deny_on_a_terminal_only() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/canary.toml");
    let piped = run(&["trace", "--lab", file, "bastion", "v1-a:22"]);
    assert_eq!(piped.status.code(), Some(1));
    assert!(text(&piped).contains("DENY") && !text(&piped).contains('\x1b'));
    let bin = vpcsim_bin().display().to_string();
    let tty = Command::new("script")
        .args([
            "-qec",
            &format!("{bin} trace --lab {file} bastion v1-a:22"),
            "/dev/null",
        ])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(
        text(&tty).contains("\x1b[1;31mDENY\x1b[0m"),
        "{}",
        text(&tty)
    );
    let plain = Command::new("script")
        .args([
            "-qec",
            &format!("{bin} trace --lab {file} bastion v1-a:22"),
            "/dev/null",
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!text(&plain).contains('\x1b'), "NO_COLOR is honoured");
}

/// The seed's literal tables: the ALB's health checks die at the public
/// NACL. `status` says so, with the rule and the trace command.
#[test]
fn unhealthy_target_status_names_the_blocking_rule() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up("cli-unh", &shipped_text("seed-001-literal.toml"));
    let deadline = Instant::now() + Duration::from_secs(90);
    let table = loop {
        let table = ok(&lab, &["status", &lab.name]);
        if table.contains("unhealthy targets, from the AWS rules") {
            break table;
        }
        assert!(
            Instant::now() < deadline,
            "no unhealthy explanation:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        table.contains("dropped on the reply by `nacl public inbound rule * deny`"),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "`vpcsim trace --lab {} alb-a v1-a:8000`",
            lab.name
        )),
        "{table}"
    );
    let s = lab.status();
    let p = s["unhealthy_paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["from"] == "alb-a" && p["target"] == "v1-a")
        .expect("alb-a -> v1-a explained");
    assert_eq!(p["blocked_on"], "reply");
    assert_eq!(p["reachable"], false);
}

fn trace_file(file: &str, args: &[&str]) -> (Option<i32>, String) {
    let path = format!("{}/topologies/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut a = vec!["trace", "--lab", path.as_str()];
    a.extend_from_slice(args);
    let o = run(&a);
    (o.status.code(), format!("{}{}", text(&o), err(&o)))
}

/// The Amazon DNS at VPC+2 answers whatever the security group's egress and
/// the route table say (sg-backend allows no UDP out, and no subnet holds
/// 10.0.0.2): AWS's SGs and NACLs do not filter Route 53 Resolver traffic.
#[test]
fn trace_amazon_dns_is_not_filtered() {
    let (code, out) = trace_file("canary.toml", &["v1-a", "10.0.0.2:53", "--protocol", "udp"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("amazon dns") && out.contains("REACHABLE"),
        "{out}"
    );
    assert!(!out.contains("sg egress"), "no SG on the way: {out}");
    // Nothing else listens there (the lab's resolver is UDP only).
    let (code, out) = trace_file("canary.toml", &["v1-a", "10.0.0.2:80"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("answers udp/53"), "{out}");
}

/// S3 serves 80 and 443 at its one address; nothing answers elsewhere.
#[test]
fn trace_s3_only_on_its_ports_and_address() {
    for (src, dst, code, says) in [
        ("v1-a", "s3:443", 0, "REACHABLE"),
        ("internet", "s3:8080", 1, "serves only tcp/80 and tcp/443"),
        (
            "internet",
            "192.0.2.11:443",
            1,
            "S3 answers only at 192.0.2.10",
        ),
        ("internet", "192.0.2.10:80", 0, "REACHABLE"),
    ] {
        let (c, out) = trace_file("canary.toml", &[src, dst]);
        assert_eq!(c, Some(code), "{src} -> {dst}: {out}");
        assert!(out.contains(says), "{src} -> {dst}: {out}");
    }
}

/// The IGW's lines reach the public subnets without running through the
/// load balancer, the endpoint or S3; security groups, containers and a
/// legend are drawn.
#[test]
fn graph_igw_lines_cross_no_box_and_everything_is_drawn() {
    for file in ["canary.toml", "canary-docker.toml", "seed-001-literal.toml"] {
        let path = format!("{}/topologies/{file}", env!("CARGO_MANIFEST_DIR"));
        let o = run(&["graph", &path]);
        assert!(o.status.success(), "{}", err(&o));
        let svg = text(&o);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let num = |n: &roxmltree::Node, a: &str| n.attribute(a).unwrap().parse::<f64>().unwrap();
        let boxes: Vec<(f64, f64, f64, f64)> = doc
            .descendants()
            .filter(|n| {
                n.has_tag_name("rect") && matches!(n.attribute("class"), Some("lb" | "vpce" | "s3"))
            })
            .map(|n| {
                (
                    num(&n, "x"),
                    num(&n, "y"),
                    num(&n, "width"),
                    num(&n, "height"),
                )
            })
            .collect();
        assert!(!boxes.is_empty(), "{file}: no load balancer box");
        let lines: Vec<_> = doc
            .descendants()
            .filter(|n| {
                n.has_tag_name("line") && n.attribute("class").unwrap_or("").contains("igw-edge")
            })
            .collect();
        assert!(!lines.is_empty(), "{file}: no IGW line");
        for l in &lines {
            let (x1, y1, x2, y2) = (num(l, "x1"), num(l, "y1"), num(l, "x2"), num(l, "y2"));
            // Lines are horizontal or vertical: a box is crossed when the
            // segment's extent overlaps the box's interior on both axes.
            for &(x, y, w, h) in &boxes {
                let overlaps =
                    x1.min(x2) < x + w && x1.max(x2) > x && y1.min(y2) < y + h && y1.max(y2) > y;
                assert!(
                    !overlaps,
                    "{file}: IGW line {x1},{y1}-{x2},{y2} crosses box at {x},{y} {w}x{h}"
                );
            }
        }
        let all: String = doc
            .descendants()
            .filter(|n| n.is_text())
            .map(|n| n.text().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            all.contains("legend") && all.contains("target unhealthy"),
            "{file}"
        );
        assert!(all.contains("security groups: sg-backend"), "{file}");
        assert!(
            doc.descendants()
                .any(|n| n.attribute("class") == Some("sg")),
            "{file}"
        );
        if file == "canary-docker.toml" {
            assert!(
                all.contains("v2-docker · vpcsim/model-v2"),
                "{file}: container not drawn"
            );
        }
    }
}
