//! `apply` leaves a lab as `up` of the final file would have built it:
//! random edit sequences on the shipped topologies are applied one by one
//! to a running lab, then its kernel state (addresses, routes, rules and
//! nftables rulesets of every namespace) and its probe truth table are
//! compared with a fresh `up` of the final file under the same lab name.
//!
//! What `apply` deliberately keeps differs from a fresh `up`: an instance
//! that stays keeps its allocated addresses and port name (AWS never
//! renumbers a running instance), where a fresh `up` allocates in file
//! order. So both dumps name allocated values by what they belong to
//! (`ip:v1-a`, `port:v1-a`, `table:private-1`), read from each lab's own
//! recorded plan; everything else must be identical.
//!
//! Every edit that the file's validation refuses is applied too: it must
//! exit 2 and change nothing.

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use toml_edit::{value, Array, DocumentMut, InlineTable};

/// Edits per sequence; sequences per test (several tests run in parallel).
const EDITS: usize = 6;
const SEQUENCES: u64 = 10;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(cmd: &mut Command) -> Value {
    serde_json::from_str(&run(cmd)).unwrap()
}

fn plan_of(lab: &str) -> Value {
    let text = std::fs::read_to_string(format!("/run/vpcsim/{lab}/state.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["plan"].clone()
}

/// Allocated value -> what it belongs to, from a recorded plan.
fn names(plan: &Value) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut strings = BTreeMap::new();
    let mut tables = BTreeMap::new();
    for e in plan["enis"].as_array().unwrap() {
        let node = e["node"].as_str().unwrap();
        strings.insert(
            e["private_ip"].as_str().unwrap().to_string(),
            format!("ip:{node}"),
        );
        if let Some(p) = e["public_ip"].as_str() {
            strings.insert(p.to_string(), format!("public:{node}"));
        }
        strings.insert(
            e["host_if"].as_str().unwrap().to_string(),
            format!("port:{node}"),
        );
    }
    for s in plan["subnets"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        strings.insert(
            s["bridge"].as_str().unwrap().to_string(),
            format!("bridge:{name}"),
        );
    }
    for e in plan["vpc_endpoints"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        strings.insert(
            e["fabric_ip"].as_str().unwrap().to_string(),
            format!("vpce-fabric:{name}"),
        );
        strings.insert(
            e["service_ip"].as_str().unwrap().to_string(),
            format!("vpce-s3:{name}"),
        );
    }
    for r in plan["route_tables"].as_array().unwrap() {
        tables.insert(
            r["table_id"].to_string(),
            format!("table:{}", r["name"].as_str().unwrap()),
        );
    }
    (strings, tables)
}

/// Replaces allocated values in every string (`10.0.20.4/32` too) and
/// drops what only says when or in which order something was made.
fn canonical(v: &mut Value, strings: &BTreeMap<String, String>, tables: &BTreeMap<String, String>) {
    match v {
        Value::String(s) => {
            let (head, tail) = match s.split_once('/') {
                Some((h, t)) => (h.to_string(), format!("/{t}")),
                None => (s.clone(), String::new()),
            };
            if let Some(n) = strings.get(&head) {
                *s = format!("{n}{tail}");
            }
        }
        Value::Array(items) => {
            for i in items.iter_mut() {
                canonical(i, strings, tables);
            }
        }
        Value::Object(map) => {
            for key in [
                "handle",
                "ifindex",
                "link_index",
                "link",
                "packets",
                "bytes",
                "valid_life_time",
                "preferred_life_time",
                "txqlen",
                "operstate",
                "linkinfo",
                "link_netnsid",
            ] {
                map.remove(key);
            }
            if let Some(t) = map.get_mut("table") {
                let key = match &*t {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if let Some(n) = tables.get(&key) {
                    *t = Value::String(n.clone());
                }
            }
            for (k, item) in map.iter_mut() {
                canonical(item, strings, tables);
                // Set elements and anonymous sets have no order.
                if k == "elem" || k == "set" {
                    if let Value::Array(items) = item {
                        items.sort_by_key(|x| x.to_string());
                    }
                }
            }
        }
        _ => {}
    }
}

/// Every namespace's addresses, routes, rules and ruleset, canonical.
fn dump(lab: &str) -> BTreeMap<String, Value> {
    let plan = plan_of(lab);
    let (strings, tables) = names(&plan);
    let mut nodes = vec!["fabric".to_string(), "internet".to_string()];
    if !plan["s3"].is_null() {
        nodes.push("s3".into());
    }
    nodes.extend(
        plan["enis"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"].as_str().unwrap().to_string()),
    );
    let mut out = BTreeMap::new();
    for node in nodes {
        let ns = format!("vpcsim-{lab}--{node}");
        let ip = |args: &[&str]| json(Command::new("ip").args(["-j", "-n", &ns]).args(args));
        let mut addrs = ip(&["addr"]);
        let mut routes = ip(&["route", "show", "table", "all"]);
        let mut rules = ip(&["rule"]);
        let mut nft =
            json(Command::new("ip").args(["netns", "exec", &ns, "nft", "-j", "list", "ruleset"]));
        for v in [&mut addrs, &mut routes, &mut rules, &mut nft] {
            canonical(v, &strings, &tables);
        }
        // Only an ENI's MAC is chosen (from its id); the kernel picks the
        // others at random, and a bridge takes one of its ports'. A bridge
        // that lost its last port has no carrier where a new one without
        // ports has: the same to every packet (no port, nowhere to go).
        if let Value::Array(links) = &mut addrs {
            for l in links.iter_mut() {
                if l["ifname"] != "eth0" || ["fabric", "internet", "s3"].contains(&node.as_str()) {
                    l.as_object_mut().unwrap().remove("address");
                }
                if let Some(Value::Array(flags)) = l.get_mut("flags") {
                    flags.retain(|f| f != "NO-CARRIER" && f != "LOWER_UP");
                }
            }
        }
        if let Value::Array(items) = &mut routes {
            for r in items.iter_mut() {
                if let Some(Value::Array(flags)) = r.get_mut("flags") {
                    flags.retain(|f| f != "linkdown");
                }
            }
        }
        // The kernel lists objects in creation order, which a change
        // alters; a chain's rules keep their own order (stable sort).
        for v in [&mut addrs, &mut routes] {
            if let Value::Array(items) = v {
                items.sort_by_key(|x| x.to_string());
            }
        }
        if let Some(Value::Array(items)) = nft.get_mut("nftables") {
            items.retain(|x| x.get("metainfo").is_none());
            items.sort_by_key(|x| {
                let (kind, body) = x.as_object().unwrap().iter().next().unwrap();
                let place = match kind.as_str() {
                    "rule" => format!("{}/{}", body["table"], body["chain"]),
                    _ => format!("{}/{}", body["table"], body["name"]),
                };
                let rank = ["table", "set", "map", "chain", "rule"]
                    .iter()
                    .position(|k| k == kind)
                    .unwrap_or(9);
                (rank, place)
            });
        }
        out.insert(
            node,
            serde_json::json!({"addr": addrs, "route": routes, "rule": rules, "nft": nft}),
        );
    }
    out
}

/// The entries of each part only one side has (applied `<`, fresh `>`).
fn difference(a: &Value, b: &Value) -> String {
    let mut out = String::new();
    for part in ["addr", "route", "rule", "nft"] {
        let items = |v: &Value| -> Vec<String> {
            let v = if part == "nft" {
                &v[part]["nftables"]
            } else {
                &v[part]
            };
            v.as_array()
                .map(|a| a.iter().map(|x| x.to_string()).collect())
                .unwrap_or_default()
        };
        let (ia, ib) = (items(a), items(b));
        for x in ia.iter().filter(|x| !ib.contains(x)) {
            out.push_str(&format!("{part} < {x}\n"));
        }
        for x in ib.iter().filter(|x| !ia.contains(x)) {
            out.push_str(&format!("{part} > {x}\n"));
        }
    }
    out
}

fn probe(lab: &TestLab) -> Value {
    let out = lab.vpcsim(&["probe", "--lab", &lab.name, "--protocol", "tcp", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        out.status.success(),
        "probe of {} disagrees with the model: {v}",
        lab.name
    );
    v["results"].clone()
}

/// One random edit of the topology, or None when the dice picked something
/// this topology does not have.
fn edit(doc: &mut DocumentMut, rng: &mut StdRng, serial: usize) -> Option<String> {
    let names = |doc: &DocumentMut, key: &str| -> Vec<String> {
        doc.get(key)
            .and_then(|i| i.as_array_of_tables())
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.get("name")?.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let sgs = names(doc, "security_group");
    let nacls = names(doc, "nacl");
    let tables = names(doc, "route_table");
    let subnets = names(doc, "subnet");
    let cidrs = [
        "0.0.0.0/0",
        "10.0.0.0/16",
        "203.0.113.0/24",
        "10.0.20.0/24",
        "192.0.2.0/24",
    ];
    match rng.gen_range(0..13) {
        0 | 1 => {
            // A NACL entry added, with a rule number that may be new or not.
            let nacl = nacls.choose(rng)?.clone();
            let dir = *["inbound", "outbound"].choose(rng)?;
            let mut e = InlineTable::new();
            e.insert("rule", rng.gen_range(1..400i64).into());
            let proto = *["tcp", "udp", "icmp", "all"].choose(rng)?;
            e.insert("protocol", proto.into());
            if proto == "tcp" || proto == "udp" {
                e.insert("ports", port(rng).into());
            }
            e.insert("cidr", (*cidrs.choose(rng)?).into());
            e.insert("action", (*["allow", "deny"].choose(rng)?).into());
            let t = table_named(doc, "nacl", &nacl)?;
            let arr = t.entry(dir).or_insert(value(Array::new())).as_array_mut()?;
            arr.push(e);
            Some(format!("nacl {nacl} {dir}: + entry"))
        }
        2 => {
            let nacl = nacls.choose(rng)?.clone();
            let dir = *["inbound", "outbound"].choose(rng)?;
            let arr = table_named(doc, "nacl", &nacl)?
                .get_mut(dir)?
                .as_array_mut()?;
            if arr.is_empty() {
                return None;
            }
            arr.remove(rng.gen_range(0..arr.len()));
            Some(format!("nacl {nacl} {dir}: - entry"))
        }
        3 => {
            let sg = sgs.choose(rng)?.clone();
            let dir = *["ingress", "egress"].choose(rng)?;
            let mut r = InlineTable::new();
            r.insert(
                "protocol",
                (*["tcp", "udp", "icmp", "all"].choose(rng)?).into(),
            );
            let proto = r.get("protocol")?.as_str()?.to_string();
            if proto == "tcp" || proto == "udp" {
                r.insert("ports", port(rng).into());
            }
            if rng.gen_bool(0.5) {
                r.insert("cidr", (*cidrs.choose(rng)?).into());
            } else {
                let peer = if dir == "ingress" {
                    "source_sg"
                } else {
                    "destination_sg"
                };
                r.insert(peer, sgs.choose(rng)?.as_str().into());
            }
            let arr = table_named(doc, "security_group", &sg)?
                .entry(dir)
                .or_insert(value(Array::new()))
                .as_array_mut()?;
            arr.push(r);
            Some(format!("sg {sg} {dir}: + rule"))
        }
        4 => {
            let sg = sgs.choose(rng)?.clone();
            let dir = *["ingress", "egress"].choose(rng)?;
            let arr = table_named(doc, "security_group", &sg)?
                .get_mut(dir)?
                .as_array_mut()?;
            if arr.is_empty() {
                return None;
            }
            arr.remove(rng.gen_range(0..arr.len()));
            Some(format!("sg {sg} {dir}: - rule"))
        }
        5 => {
            // A route to a documentation range through the IGW, or one removed.
            let rt = tables.choose(rng)?.clone();
            let t = table_named(doc, "route_table", &rt)?;
            let arr = t
                .entry("routes")
                .or_insert(value(Array::new()))
                .as_array_mut()?;
            if rng.gen_bool(0.5) && !arr.is_empty() {
                arr.remove(rng.gen_range(0..arr.len()));
                Some(format!("route table {rt}: - route"))
            } else {
                let mut r = InlineTable::new();
                r.insert(
                    "destination",
                    format!("198.18.{}.0/24", rng.gen_range(0..50)).into(),
                );
                r.insert("target", "igw".into());
                arr.push(r);
                Some(format!("route table {rt}: + route"))
            }
        }
        6 => {
            let subnet = subnets.choose(rng)?.clone();
            let (key, choices) = if rng.gen_bool(0.5) {
                ("route_table", &tables)
            } else {
                ("nacl", &nacls)
            };
            let pick = choices.choose(rng)?.clone();
            table_named(doc, "subnet", &subnet)?.insert(key, value(pick.as_str()));
            Some(format!("subnet {subnet}: {key} = {pick}"))
        }
        7 => {
            // A new instance, appended: its address is the first free one.
            let subnet = subnets.choose(rng)?.clone();
            let mut t = toml_edit::Table::new();
            t.insert("name", value(format!("x{serial}")));
            t.insert("subnet", value(subnet.as_str()));
            let mut groups = Array::new();
            groups.push(sgs.choose(rng)?.as_str());
            t.insert("security_groups", value(groups));
            doc.get_mut("instance")?.as_array_of_tables_mut()?.push(t);
            Some(format!("+ instance x{serial} in {subnet}"))
        }
        8 => {
            // An instance removed, with its place in target groups.
            let instances = names(doc, "instance");
            let victim = instances.choose(rng)?.clone();
            let arr = doc.get_mut("instance")?.as_array_of_tables_mut()?;
            let i = arr
                .iter()
                .position(|t| t.get("name").and_then(|n| n.as_str()) == Some(victim.as_str()))?;
            arr.remove(i);
            if let Some(tgs) = doc
                .get_mut("target_group")
                .and_then(|t| t.as_array_of_tables_mut())
            {
                for tg in tgs.iter_mut() {
                    if let Some(targets) = tg.get_mut("targets").and_then(|t| t.as_array_mut()) {
                        targets.retain(|t| t.as_str() != Some(victim.as_str()));
                    }
                }
            }
            Some(format!("- instance {victim}"))
        }
        9 => {
            let instances = names(doc, "instance");
            let inst = instances.choose(rng)?.clone();
            let mut groups = Array::new();
            let n = rng.gen_range(1..=sgs.len().max(1));
            for g in sgs.choose_multiple(rng, n) {
                groups.push(g.as_str());
            }
            table_named(doc, "instance", &inst)?.insert("security_groups", value(groups));
            Some(format!("instance {inst}: security groups"))
        }
        11 => {
            // New weights for the first listener's groups.
            let lb = doc
                .get_mut("load_balancer")?
                .as_array_of_tables_mut()?
                .get_mut(0)?;
            let listener = lb
                .get_mut("listener")?
                .as_array_of_tables_mut()?
                .get_mut(0)?;
            let forward = listener.get_mut("default_forward")?.as_array_mut()?;
            for w in forward.iter_mut() {
                w.as_inline_table_mut()?
                    .insert("weight", rng.gen_range(0..100i64).into());
            }
            Some("listener: weights".into())
        }
        12 => {
            // A target group gains an instance or loses one.
            let instances = names(doc, "instance");
            let tgs = names(doc, "target_group");
            let tg = tgs.choose(rng)?.clone();
            let pick = instances.choose(rng)?.clone();
            let targets = table_named(doc, "target_group", &tg)?
                .entry("targets")
                .or_insert(value(Array::new()))
                .as_array_mut()?;
            let found = targets
                .iter()
                .position(|t| t.as_str() == Some(pick.as_str()));
            match found {
                Some(i) => {
                    targets.remove(i);
                    Some(format!("target group {tg}: - {pick}"))
                }
                None => {
                    targets.push(pick.as_str());
                    Some(format!("target group {tg}: + {pick}"))
                }
            }
        }
        _ => {
            let instances = names(doc, "instance");
            let inst = instances.choose(rng)?.clone();
            let t = table_named(doc, "instance", &inst)?;
            let now = t
                .get("associate_public_ip")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            t.insert("associate_public_ip", value(!now));
            Some(format!("instance {inst}: associate_public_ip = {}", !now))
        }
    }
}

fn port(rng: &mut StdRng) -> String {
    ["22", "80", "443", "8000", "5432", "9999"]
        .choose(rng)
        .unwrap()
        .to_string()
}

fn table_named<'a>(
    doc: &'a mut DocumentMut,
    key: &str,
    name: &str,
) -> Option<&'a mut toml_edit::Table> {
    doc.get_mut(key)?
        .as_array_of_tables_mut()?
        .iter_mut()
        .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
}

fn down(lab: &TestLab) {
    let out = lab.vpcsim(&["down", &lab.name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The load balancers' configuration as the ALB daemon serves it
/// (`status --json`), without what only time decides (health, metrics) and
/// without targets still draining (a fresh `up` never had them).
fn alb_config(lab: &TestLab) -> Value {
    let status = lab.status();
    let (strings, tables) = names(&plan_of(&lab.name));
    let mut alb = status["alb"].clone();
    assert!(!alb.is_null(), "no ALB daemon: {}", status["alb_error"]);
    for lb in alb["load_balancers"].as_array_mut().unwrap() {
        lb.as_object_mut().unwrap().remove("nodes");
    }
    let mut groups = Vec::new();
    for tg in alb["target_groups"].as_array().unwrap() {
        let mut targets: Vec<Value> = tg["targets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["state"] != "draining")
            .map(|t| serde_json::json!([t["instance"], t["address"]]))
            .collect();
        targets.sort_by_key(|t| t.to_string());
        groups.push(serde_json::json!({
            "name": tg["name"], "port": tg["port"], "algorithm": tg["algorithm"],
            "stickiness_s": tg["stickiness_s"], "targets": targets,
        }));
    }
    let mut out =
        serde_json::json!({"load_balancers": alb["load_balancers"], "target_groups": groups});
    canonical(&mut out, &strings, &tables);
    out
}

/// `sequences` random sequences of `EDITS` edits on `file`, each applied
/// to a running lab and compared with a fresh `up` of the final file.
fn sequences(base: &str, file: &str, seeds: std::ops::Range<u64>) {
    sequences_of(base, file, seeds, &["--network-only"]);
}

/// `sequences`, brought up with `up_args` (none: workloads and the ALB
/// run, and the ALB's configuration is compared too).
fn sequences_of(base: &str, file: &str, seeds: std::ops::Range<u64>, up_args: &[&str]) {
    let full = up_args.is_empty();
    if !require_root() {
        return;
    }
    let original = shipped_text(file);
    for seed in seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let lab = TestLab::write(base, &original);
        let mut up = vec!["up", lab.file.to_str().unwrap()];
        up.extend_from_slice(up_args);
        let out = lab.vpcsim(&up);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut doc: DocumentMut = std::fs::read_to_string(&lab.file).unwrap().parse().unwrap();
        let mut done = Vec::new();
        let mut serial = 0;
        while done.len() < EDITS {
            serial += 1;
            let mut next = doc.clone();
            let Some(what) = edit(&mut next, &mut rng, serial) else {
                continue;
            };
            std::fs::write(&lab.file, next.to_string()).unwrap();
            let before = dump(&lab.name);
            let out = lab.apply_file();
            match out.status.code() {
                Some(0) => {
                    doc = next;
                    done.push(what);
                }
                Some(2) => {
                    // Refused by validation: nothing changed.
                    assert_eq!(
                        before,
                        dump(&lab.name),
                        "seed {seed}: refused `{what}` changed the lab"
                    );
                    std::fs::write(&lab.file, doc.to_string()).unwrap();
                }
                _ => panic!(
                    "seed {seed}: apply of `{what}` failed after {done:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
        }
        let applied = dump(&lab.name);
        let applied_probe = (full || seed % 5 == 0).then(|| probe(&lab));
        let applied_alb = full.then(|| alb_config(&lab));
        down(&lab);
        let out = lab.vpcsim(&up);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fresh = dump(&lab.name);
        for (node, state) in &applied {
            let other = fresh.get(node).unwrap_or(&Value::Null);
            assert!(
                state == other,
                "seed {seed}: node {node} differs from a fresh up after {done:?}:\n{}",
                difference(state, other)
            );
        }
        assert_eq!(applied.len(), fresh.len(), "seed {seed}: {done:?}");
        if let Some(p) = applied_probe {
            assert_eq!(
                p,
                probe(&lab),
                "seed {seed}: probe truth table after {done:?}"
            );
        }
        if let Some(a) = applied_alb {
            assert_eq!(
                a,
                alb_config(&lab),
                "seed {seed}: ALB configuration after {done:?}"
            );
        }
    }
}

#[test]
fn random_edits_of_the_canary_equal_a_fresh_up() {
    sequences("eqc", "canary.toml", 0..SEQUENCES);
}

#[test]
fn more_random_edits_of_the_canary_equal_a_fresh_up() {
    sequences("eqd", "canary.toml", SEQUENCES..2 * SEQUENCES);
}

#[test]
fn random_edits_of_the_literal_seed_equal_a_fresh_up() {
    sequences("eql", "seed-001-literal.toml", 100..100 + SEQUENCES);
}

#[test]
fn more_random_edits_of_the_literal_seed_equal_a_fresh_up() {
    sequences("eqm", "seed-001-literal.toml", 200..200 + SEQUENCES);
}

#[test]
fn random_edits_of_the_docker_canary_equal_a_fresh_up() {
    sequences("eqk", "canary-docker.toml", 300..300 + SEQUENCES);
}

/// With workloads and the ALB: its configuration (listeners, weights,
/// target groups and their targets) equals a fresh `up`'s too.
#[test]
fn random_edits_of_the_running_canary_equal_a_fresh_up_alb_included() {
    sequences_of("eqf", "canary.toml", 400..403, &[]);
}
