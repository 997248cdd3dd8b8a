//! Live changes to the load balancer (issue 11), as AWS applies ELBv2
//! changes: requests from the emulated internet to the ALB's DNS name, held
//! open by the targets across the change.

mod common;

use common::lb::*;
use common::{require_root, TestLab};
use vpcsim::lb::client::query_status;
use vpcsim::lb::status::LbStatus;

/// Two targets, each alone in a group and both in `tg-both`; listener 80
/// sends everything to `tg-a` (`tg-b` at weight 0) except `/both/*`.
/// `sg-alb` already admits 80-8080, so a new listener needs no SG change.
fn topology(dir: &str) -> String {
    let group = |name: &str, targets: &str, delay: u32| {
        format!(
            "[[target_group]]\nname = \"{name}\"\nport = 8000\ntargets = [{targets}]\nderegistration_delay = {delay}\nhealth_check = {{ path = \"/\", interval = 5, timeout = 2, healthy_threshold = 2, unhealthy_threshold = 2 }}\n"
        )
    };
    format!(
        r#"
name = "x"
[vpc]
cidr = "10.1.0.0/16"

[[subnet]]
name = "pub-a"
cidr = "10.1.10.0/24"
az = "us-east-1a"
route_table = "public"
map_public_ip = true

[[subnet]]
name = "pub-b"
cidr = "10.1.30.0/24"
az = "us-east-1b"
route_table = "public"
map_public_ip = true

[[subnet]]
name = "priv-a"
cidr = "10.1.20.0/24"
az = "us-east-1a"

[internet_gateway]
name = "igw"

[[route_table]]
name = "public"
routes = [{{ destination = "0.0.0.0/0", target = "igw" }}]

[[security_group]]
name = "sg-alb"
ingress = [{{ protocol = "tcp", ports = "80-8080", cidr = "0.0.0.0/0" }}]

[[security_group]]
name = "sg-backend"
ingress = [{{ protocol = "tcp", ports = "8000", source_sg = "sg-alb" }}]

{a}
{b}
{tg_a}
{tg_b}
{tg_both}
[[load_balancer]]
name = "alb"
subnets = ["pub-a", "pub-b"]
security_groups = ["sg-alb"]

[[load_balancer.listener]]
port = 80
default_forward = [{{ target_group = "tg-a", weight = 100 }}, {{ target_group = "tg-b", weight = 0 }}]
rules = [{{ priority = 10, path_pattern = "/both/*", forward = [{{ target_group = "tg-both", weight = 1 }}] }}]
"#,
        a = holding_server("echo-a", dir),
        b = holding_server("echo-b", dir),
        tg_a = group("tg-a", "\"echo-a\"", 30),
        tg_b = group("tg-b", "\"echo-b\"", 30),
        tg_both = group("tg-both", "\"echo-a\", \"echo-b\"", 60),
    )
}

fn all_healthy(s: &LbStatus) -> bool {
    healthy(
        s,
        &[
            ("tg-a", "echo-a"),
            ("tg-b", "echo-b"),
            ("tg-both", "echo-a"),
            ("tg-both", "echo-b"),
        ],
    )
}

#[test]
fn weights_and_targets_change_under_requests_in_flight() {
    if !require_root() {
        return;
    }
    let dir = Scratch::new("apply-lb-flight");
    let d = dir.path();
    let toml = topology(d);
    let lab = TestLab::up("apply-lb", &toml);
    let dns = dns_name(&lab);
    wait_status(&lab, "every target healthy", all_healthy);
    assert!(get(&lab, 10, &format!("http://{dns}/who"))
        .iter()
        .all(|w| w == "echo-a"));

    // (a) 100/0 -> 0/100 with a request held on echo-a: it finishes there,
    // every new one goes to tg-b.
    let before = query_status(&lab.name).unwrap();
    let held = hold(&lab, 1, &format!("http://{dns}/hold/1"));
    wait_file(
        &dir.0.join("held-echo-a-1"),
        "the held request never reached echo-a",
    );
    let weights = toml.replace(
        "{ target_group = \"tg-a\", weight = 100 }, { target_group = \"tg-b\", weight = 0 }",
        "{ target_group = \"tg-a\", weight = 0 }, { target_group = \"tg-b\", weight = 100 }",
    );
    assert_ne!(weights, toml);
    let plan = lab.apply(&weights);
    assert!(
        plan.contains("~ listener alb:80: weights tg-a 100 -> 0, tg-b 0 -> 100"),
        "{plan}"
    );
    assert!(get(&lab, 10, &format!("http://{dns}/who"))
        .iter()
        .all(|w| w == "echo-b"));
    std::fs::write(dir.0.join("release-1"), "").unwrap();
    assert_eq!(held.join().unwrap().trim(), "echo-a 200");
    // (e) The groups' metrics went on counting across the change.
    let after = query_status(&lab.name).unwrap();
    assert!(requests(&before, "tg-a") >= 10);
    assert!(requests(&after, "tg-a") > requests(&before, "tg-a"));
    assert!(requests(&after, "tg-b") >= requests(&before, "tg-b") + 10);
    assert_eq!(
        target_state(&after, "tg-a", "echo-a").as_deref(),
        Some("healthy")
    );
    let shares: Vec<u16> = after.load_balancers[0].listeners[0].rules[1]
        .forward
        .iter()
        .map(|f| f.weight)
        .collect();
    assert_eq!(shares, [0, 100]);

    // (b) echo-a leaves tg-both with requests in flight on it: it drains
    // (no new request), its requests finish, then it is gone.
    let held = hold(&lab, 4, &format!("http://{dns}/both/hold/2"));
    wait_file(
        &dir.0.join("held-echo-a-2"),
        "no held request reached echo-a",
    );
    let fewer = weights.replace(
        "targets = [\"echo-a\", \"echo-b\"]",
        "targets = [\"echo-b\"]",
    );
    assert_ne!(fewer, weights);
    let plan = lab.apply(&fewer);
    assert!(
        plan.contains("- target echo-a:8000 from tg-both (draining, 60 s)"),
        "{plan}"
    );
    let s = query_status(&lab.name).unwrap();
    assert_eq!(
        target_state(&s, "tg-both", "echo-a").as_deref(),
        Some("draining")
    );
    assert!(get(&lab, 20, &format!("http://{dns}/both/who"))
        .iter()
        .all(|w| w == "echo-b"));
    std::fs::write(dir.0.join("release-2"), "").unwrap();
    let out = held.join().unwrap();
    let answers: Vec<&str> = out.lines().collect();
    assert_eq!(answers.len(), 4, "{out}");
    assert!(answers.iter().all(|a| a.ends_with(" 200")), "{out}");
    assert!(answers.iter().any(|a| a.starts_with("echo-a ")), "{out}");
    wait_status(&lab, "echo-a gone from tg-both", |s| {
        target_state(s, "tg-both", "echo-a").is_none()
    });
    // It stays a target of tg-a, healthy all along.
    let s = query_status(&lab.name).unwrap();
    assert_eq!(
        target_state(&s, "tg-a", "echo-a").as_deref(),
        Some("healthy")
    );

    // Back in tg-both: registered again, from `initial` to healthy.
    lab.apply(&weights);
    let s = query_status(&lab.name).unwrap();
    assert_ne!(
        target_state(&s, "tg-both", "echo-a").as_deref(),
        Some("draining")
    );
    wait_status(&lab, "echo-a healthy in tg-both again", all_healthy);
    assert!(get(&lab, 20, &format!("http://{dns}/both/who"))
        .iter()
        .any(|w| w == "echo-a"));
}

#[test]
fn listeners_and_health_checks_change_live() {
    if !require_root() {
        return;
    }
    let dir = Scratch::new("apply-lb-listen");
    let toml = topology(dir.path());
    let lab = TestLab::up("apply-lb2", &toml);
    let dns = dns_name(&lab);
    wait_status(&lab, "every target healthy", all_healthy);

    // (c) A new listener answers once applied; removed, it is refused again.
    let on_8080 = || get(&lab, 1, &format!("http://{dns}:8080/who"));
    assert_eq!(on_8080(), [""]);
    let listener = "\n[[load_balancer.listener]]\nport = 8080\ndefault_forward = [{ target_group = \"tg-b\", weight = 1 }]\n";
    let more = format!("{toml}{listener}");
    let plan = lab.apply(&more);
    assert!(plan.contains("+ listener alb:8080"), "{plan}");
    assert_eq!(on_8080(), ["echo-b"]);
    let s = query_status(&lab.name).unwrap();
    let ports: Vec<u16> = s.load_balancers[0]
        .listeners
        .iter()
        .map(|l| l.port)
        .collect();
    assert_eq!(ports, [80, 8080]);
    lab.apply(&toml);
    assert_eq!(on_8080(), [""]);
    assert!(get(&lab, 5, &format!("http://{dns}/who"))
        .iter()
        .all(|w| w == "echo-a"));

    // (d) tg-b's check moves to a path echo-b answers 404: unhealthy, with
    // AWS's reason; back to `/`: healthy again. tg-both's view of the same
    // instance, with its own check, stays healthy.
    let missing = toml.replacen(
        "[[target_group]]\nname = \"tg-b\"\nport = 8000\ntargets = [\"echo-b\"]\nderegistration_delay = 30\nhealth_check = { path = \"/\"",
        "[[target_group]]\nname = \"tg-b\"\nport = 8000\ntargets = [\"echo-b\"]\nderegistration_delay = 30\nhealth_check = { path = \"/missing\"",
        1,
    );
    assert_ne!(missing, toml);
    let plan = lab.apply(&missing);
    assert!(plan.contains("~ target group tg-b"), "{plan}");
    let s = wait_status(&lab, "echo-b unhealthy in tg-b", |s| {
        target_state(s, "tg-b", "echo-b").as_deref() == Some("unhealthy")
    });
    let t = s
        .target_groups
        .iter()
        .find(|g| g.name == "tg-b")
        .unwrap()
        .targets
        .iter()
        .find(|t| t.instance == "echo-b")
        .unwrap();
    assert_eq!(t.reason.as_deref(), Some("Target.ResponseCodeMismatch"));
    assert!(
        t.detail.as_deref().unwrap_or("").contains("GET /missing"),
        "{t:?}"
    );
    assert_eq!(
        target_state(&s, "tg-both", "echo-b").as_deref(),
        Some("healthy")
    );
    lab.apply(&toml);
    wait_status(&lab, "echo-b healthy in tg-b again", |s| {
        target_state(s, "tg-b", "echo-b").as_deref() == Some("healthy")
    });

    // A web ACL associated live: its rate-based rule blocks the client
    // past its limit; an edit elsewhere in the ACL keeps the rule's
    // window (still blocked); dissociated, requests pass again.
    let acl = |more: &str| {
        format!(
            "{toml}\n[[web_acl]]\nname = \"waf\"\ndefault_action = \"allow\"\nload_balancers = [\"alb\"]\nrules = [\n  {{ name = \"rate\", priority = 30, rate_limit = 10, window = 60, aggregate = \"ip\", action = \"block\", match = {{ field = \"uri_path\", positional = \"STARTS_WITH\", value = \"/rate\" }} }},\n{more}]\n"
        )
    };
    let codes = |n: usize, path: &str| -> Vec<String> {
        let (_, out) = lab.sh(
            "internet",
            &format!("for i in $(seq {n}); do curl -s -o /dev/null -m 10 -w '%{{http_code}} ' http://{dns}{path}; done"),
        );
        out.split_whitespace().map(str::to_string).collect()
    };
    let plan = lab.apply(&acl(""));
    assert!(plan.contains("+ web acl waf"), "{plan}");
    let c = codes(12, "/rate");
    assert_eq!(c[..10], vec!["200"; 10], "{c:?}");
    assert_eq!(c[10..], ["403", "403"], "{c:?}");
    lab.apply(
        &acl("  { name = \"no-old\", priority = 40, action = \"block\", match = { field = \"uri_path\", positional = \"STARTS_WITH\", value = \"/old\" } },\n"),
    );
    assert_eq!(codes(1, "/rate"), ["403"]);
    assert_eq!(codes(1, "/old/x"), ["403"]);
    assert_eq!(codes(1, "/who"), ["200"]);
    let s = query_status(&lab.name).unwrap();
    let m = &s.web_acls[0].metrics;
    assert_eq!((m.all.blocked, m.all.allowed), (4, 11), "{s}");
    lab.apply(&toml);
    assert_eq!(codes(1, "/rate"), ["200"]);
    assert!(query_status(&lab.name).unwrap().web_acls.is_empty());
}

#[test]
fn load_balancer_nodes_come_and_go_with_its_subnets() {
    if !require_root() {
        return;
    }
    let dir = Scratch::new("apply-lb-nodes");
    // A second public subnet in us-east-1a, not yet the load balancer's.
    let toml = topology(dir.path()).replace(
        "[[subnet]]\nname = \"priv-a\"",
        "[[subnet]]\nname = \"pub-c\"\ncidr = \"10.1.40.0/24\"\naz = \"us-east-1a\"\nroute_table = \"public\"\nmap_public_ip = true\n\n[[subnet]]\nname = \"priv-a\"",
    );
    assert!(toml.contains("pub-c"));
    let lab = TestLab::up("apply-lb3", &toml);
    let dns = dns_name(&lab);
    wait_status(&lab, "every target healthy", all_healthy);
    assert!(get(&lab, 10, &format!("http://{dns}/who"))
        .iter()
        .all(|w| w == "echo-a"));
    let before = query_status(&lab.name).unwrap();
    let nodes = |s: &LbStatus| -> Vec<(String, String, Option<String>)> {
        s.load_balancers[0]
            .nodes
            .iter()
            .map(|n| (n.node.clone(), n.private_ip.clone(), n.public_ip.clone()))
            .collect()
    };

    // The load balancer moves from pub-a to pub-c in the same AZ: that
    // node is replaced by one in the new subnet, the other stays; every
    // request is served, the groups' metrics and health stay.
    let moved = toml.replace(
        "subnets = [\"pub-a\", \"pub-b\"]",
        "subnets = [\"pub-c\", \"pub-b\"]",
    );
    assert_ne!(moved, toml);
    lab.apply(&moved);
    let s = query_status(&lab.name).unwrap();
    let (old, new) = (nodes(&before), nodes(&s));
    assert_eq!(new.len(), 2, "{s}");
    assert!(
        new.contains(&old[1]),
        "pub-b's node stays: {old:?} -> {new:?}"
    );
    assert!(new[0].1.starts_with("10.1.40."), "{new:?}");
    assert!(requests(&s, "tg-a") >= requests(&before, "tg-a"));
    // The new node checks the targets from `initial` (failing open
    // meanwhile): none is unhealthy, and all become healthy.
    assert!(
        s.target_groups.iter().all(|g| g.unhealthy_host_count == 0),
        "{s}"
    );
    assert_eq!(
        get(&lab, 10, &format!("http://{dns}/who")),
        vec!["echo-a"; 10]
    );
    wait_status(&lab, "every target healthy from both nodes", all_healthy);
    let public = new[0].2.clone().expect("the new node has a public IP");
    assert_eq!(
        get(&lab, 3, &format!("http://{public}/who")),
        vec!["echo-a"; 3]
    );

    // And back.
    lab.apply(&toml);
    let s = wait_status(&lab, "every target healthy", all_healthy);
    let back = nodes(&s);
    assert!(back[0].1.starts_with("10.1.10."), "{back:?}");
    let public = back[0].2.clone().expect("public IP");
    assert_eq!(
        get(&lab, 3, &format!("http://{public}/who")),
        vec!["echo-a"; 3]
    );
}
