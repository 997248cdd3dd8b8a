//! The diagnostics context every section of the validation writes to, and
//! the checks they share: CIDRs, addresses, protocols and ports, unique
//! names and lookups by name (an unknown name's hint lists the valid ones).
//!
//! Owns: how a diagnostic is worded and addressed. Must not touch any
//! resource's own rules (those live in the file named after the resource).

use crate::topology::plan::{Lab, PortRange, Protocol};
use crate::topology::Diagnostic;
use ipnet::Ipv4Net;
use std::collections::HashMap;
use std::net::Ipv4Addr;

pub(super) const ALL_V4: Ipv4Net = match Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0) {
    Ok(n) => n,
    Err(_) => panic!("0.0.0.0/0"),
};

#[derive(Default)]
pub(super) struct Ctx {
    pub(super) diags: Vec<Diagnostic>,
    pub(super) pins: Pins,
}

/// What a running lab already allocated, which `apply` keeps: a resource
/// that stays keeps its addresses, interface names and table ids (AWS never
/// renumbers a running instance because another one was added or removed);
/// only new resources take free values.
#[derive(Default)]
pub(super) struct Pins {
    /// Node name -> (its subnet's CIDR, private IP, public IP, port name).
    pub(super) enis: HashMap<String, (Ipv4Net, Ipv4Addr, Option<Ipv4Addr>, String)>,
    /// Subnet name -> bridge name.
    pub(super) bridges: HashMap<String, String>,
    /// Route table name -> kernel table id.
    pub(super) tables: HashMap<String, u32>,
    /// Endpoint name -> its /30's number in the endpoint link range.
    pub(super) endpoint_slots: HashMap<String, u32>,
}

impl Pins {
    pub(super) fn of(lab: &Lab) -> Pins {
        Pins {
            enis: lab
                .enis
                .iter()
                .map(|e| {
                    let cidr = lab.subnets[e.subnet].cidr;
                    (
                        e.node.clone(),
                        (cidr, e.private_ip, e.public_ip, e.host_if.clone()),
                    )
                })
                .collect(),
            bridges: lab
                .subnets
                .iter()
                .map(|s| (s.name.clone(), s.bridge.clone()))
                .collect(),
            tables: lab
                .route_tables
                .iter()
                .map(|r| (r.name.clone(), r.table_id))
                .collect(),
            endpoint_slots: lab
                .vpc_endpoints
                .iter()
                .map(|e| {
                    let slot =
                        (u32::from(e.fabric_ip) - u32::from(Ipv4Addr::new(169, 254, 2, 0))) / 4;
                    (e.name.clone(), slot)
                })
                .collect(),
        }
    }
}

/// A kept resource's `pinned` value (the caller put every pinned value in
/// `taken` first), else the first of `fresh` that nothing has taken.
pub(super) fn unique<T: Clone + Eq + std::hash::Hash>(
    pinned: Option<T>,
    fresh: impl IntoIterator<Item = T>,
    taken: &mut std::collections::HashSet<T>,
) -> T {
    let pick = pinned
        .or_else(|| fresh.into_iter().find(|f| !taken.contains(f)))
        .expect("an endless list of fresh values");
    taken.insert(pick.clone());
    pick
}

/// Interface names are at most 15 bytes (IFNAMSIZ - 1).
pub(super) fn truncate15(s: String) -> String {
    s.chars().take(15).collect()
}

pub(super) fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

pub(super) fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    if v.is_empty() {
        "(none defined)".into()
    } else {
        v.join(", ")
    }
}

/// Why `name` is not a valid node/lab name (`^[a-z][a-z0-9-]{0,max-1}$`).
pub(super) fn name_problem(name: &str, max: usize) -> Option<String> {
    let first = name.chars().next()?;
    if name.len() > max {
        return Some(format!(
            "it is {} characters long, at most {max} are allowed",
            name.len()
        ));
    }
    if !first.is_ascii_lowercase() {
        return Some(format!(
            "it starts with `{first}`, it must start with a lowercase letter"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|ch| !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || *ch == '-'))
    {
        return Some(format!(
            "it contains `{bad}`; only lowercase letters, digits and `-` are allowed"
        ));
    }
    None
}

pub(super) fn parse_protocol(s: &str) -> Option<Protocol> {
    match s.trim().to_ascii_lowercase().as_str() {
        "tcp" | "6" => Some(Protocol::Tcp),
        "udp" | "17" => Some(Protocol::Udp),
        "icmp" | "1" => Some(Protocol::Icmp),
        "all" | "-1" => Some(Protocol::All),
        _ => None,
    }
}

pub(super) fn parse_ports(s: &str) -> Result<PortRange, String> {
    let s = s.trim();
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let port = |x: &str| -> Result<u16, String> {
        let x = x.trim();
        if x.is_empty() {
            return Err("a port number is missing".into());
        }
        let n: u64 = x
            .parse()
            .map_err(|_| format!("`{x}` is not a port number"))?;
        u16::try_from(n).map_err(|_| format!("port {n} is above 65535"))
    };
    let from = port(a)?;
    let to = port(b)?;
    if from > to {
        return Err(format!("the range goes backwards ({from} > {to})"));
    }
    Ok(PortRange { from, to })
}

/// Names of one kind: name -> index (the first of duplicates wins), and the
/// names an "unknown name" hint lists.
pub(super) struct Names<'t> {
    /// Singular, as in "subnet `x` does not exist"; hints list "{kind}s".
    pub(super) kind: &'static str,
    pub(super) index: HashMap<&'t str, usize>,
    pub(super) listed: Vec<&'t str>,
}

impl<'t> Names<'t> {
    /// Names checked elsewhere (instances and NAT gateways are node names).
    pub(super) fn unchecked(kind: &'static str, listed: Vec<&'t str>) -> Self {
        let mut index = HashMap::new();
        for (i, n) in listed.iter().enumerate() {
            index.entry(*n).or_insert(i);
        }
        Names {
            kind,
            index,
            listed,
        }
    }

    /// A name the file does not declare (implicit main table, default NACL
    /// or security group); `listed` says whether hints name it.
    pub(super) fn add_implicit(&mut self, name: &'static str, i: usize, listed: bool) {
        self.index.insert(name, i);
        if listed {
            self.listed.push(name);
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

impl Ctx {
    pub(super) fn err(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.diags.push(Diagnostic {
            path: path.into(),
            message: message.into(),
            hint: hint.into(),
        });
    }

    /// A field that takes one of a few keywords: its value, or an error
    /// `unknown WHAT` at `path` that lists them.
    pub(super) fn keyword<T: Clone>(
        &mut self,
        path: String,
        what: &str,
        given: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        if let Some((_, v)) = choices.iter().find(|(k, _)| *k == given) {
            return Some(v.clone());
        }
        let names: Vec<String> = choices.iter().map(|(k, _)| format!("\"{k}\"")).collect();
        let (last, rest) = names.split_last().expect("a keyword field has choices");
        let hint = if rest.is_empty() {
            format!("use {last}")
        } else {
            format!("use {} or {last}", rest.join(", "))
        };
        self.err(path, format!("unknown {what} `{given}`"), hint);
        None
    }

    /// A network in CIDR notation with its host bits zero.
    pub(super) fn cidr(&mut self, s: &str, path: &str) -> Option<Ipv4Net> {
        let s = s.trim();
        let net: Ipv4Net = match s.parse() {
            Ok(n) => n,
            Err(_) => {
                let hint = match s.parse::<Ipv4Addr>() {
                    Ok(ip) => format!("a single address is written as a /32: \"{ip}/32\""),
                    Err(_) => "write an IPv4 network like \"10.0.1.0/24\"".into(),
                };
                self.err(path, format!("`{s}` is not an IPv4 CIDR block"), hint);
                return None;
            }
        };
        if net.addr() != net.network() {
            self.err(
                path,
                format!("`{s}` has host bits set; it is not a network address"),
                format!("use the network address \"{}\"", net.trunc()),
            );
            return Some(net.trunc());
        }
        Some(net)
    }

    pub(super) fn ip(&mut self, s: &str, path: &str) -> Option<Ipv4Addr> {
        match s.trim().parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(
                    path,
                    format!("`{s}` is not an IPv4 address"),
                    "write a single address like \"10.0.1.10\" (no prefix length)",
                );
                None
            }
        }
    }

    /// Protocol and ports of a NACL or SG rule.
    pub(super) fn proto_ports(
        &mut self,
        proto: &str,
        ports: Option<&str>,
        path: &str,
    ) -> Option<(Protocol, Option<PortRange>)> {
        let p = parse_protocol(proto);
        if p.is_none() {
            self.err(
                format!("{path}.protocol"),
                format!("unknown protocol `{proto}`"),
                "use tcp, udp, icmp or all (AWS's numbers 6, 17, 1 and -1 are accepted too)",
            );
        }
        let range = match ports {
            None => None,
            Some(s) => match parse_ports(s) {
                Ok(r) => Some(r),
                Err(why) => {
                    self.err(
                        format!("{path}.ports"),
                        format!("invalid ports `{s}`: {why}"),
                        "write one port (\"80\") or an inclusive range (\"1024-65535\"), 0 to 65535",
                    );
                    return None;
                }
            },
        };
        let p = p?;
        if range.is_some() && !p.has_ports() {
            self.err(
                format!("{path}.ports"),
                format!(
                    "ports `{}` given for protocol {}, which has no ports",
                    ports.unwrap_or(""),
                    p.name()
                ),
                "ports only apply to tcp and udp; remove `ports` (or change the protocol)",
            );
            return None;
        }
        Some((p, range))
    }

    pub(super) fn port(&mut self, v: i64, path: &str) -> Option<u16> {
        if (1..=65535).contains(&v) {
            Some(v as u16)
        } else {
            self.err(
                path,
                format!("port {v} is out of range"),
                "use a port from 1 to 65535",
            );
            None
        }
    }

    /// Unique names of one kind (`key` is its TOML table); reports empty and
    /// duplicate names.
    pub(super) fn unique_names<'t>(
        &mut self,
        kind: &'static str,
        key: &str,
        names: impl Iterator<Item = &'t str>,
    ) -> Names<'t> {
        let listed: Vec<&str> = names.collect();
        let mut index = HashMap::new();
        for (i, &n) in listed.iter().enumerate() {
            let path = format!("{key}[{i}].name");
            if n.trim().is_empty() {
                self.err(
                    path,
                    format!("{kind} name is empty"),
                    format!("give every {kind} a name"),
                );
                continue;
            }
            if let Some(&j) = index.get(n) {
                self.err(
                    path,
                    format!("duplicate {kind} name `{n}` (also {key}[{j}])"),
                    format!("{kind} names must be unique; rename one of them"),
                );
            } else {
                index.insert(n, i);
            }
        }
        Names {
            kind,
            index,
            listed,
        }
    }

    /// `name`'s index; reports an unknown name at `path` with the valid ones.
    pub(super) fn lookup(
        &mut self,
        names: &Names,
        name: &str,
        path: impl Into<String>,
    ) -> Option<usize> {
        self.lookup_or(
            names,
            name,
            path,
            || format!("{} `{name}` does not exist", names.kind),
            "",
        )
    }

    /// [`Ctx::lookup`] with the caller's message, and `note` after the list.
    pub(super) fn lookup_or(
        &mut self,
        names: &Names,
        name: &str,
        path: impl Into<String>,
        message: impl FnOnce() -> String,
        note: &str,
    ) -> Option<usize> {
        let found = names.get(name);
        if found.is_none() {
            self.err(
                path,
                message(),
                format!(
                    "{}s: {}{note}",
                    names.kind,
                    quoted_list(names.listed.iter().copied())
                ),
            );
        }
        found
    }

    /// A node (namespace) name: `^[a-z][a-z0-9-]{0,max-1}$`.
    pub(super) fn node_name(
        &mut self,
        kind: &str,
        name: &str,
        max: usize,
        path: String,
        note: &str,
    ) {
        if let Some(why) = name_problem(name, max) {
            self.err(
                path,
                format!("{kind} name `{name}` is not valid: {why}"),
                format!(
                    "use 1-{max} characters: lowercase letters, digits and `-`, starting with a letter{note}"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_and_address_hints_name_the_fix() {
        let mut c = Ctx::default();
        // Host bits set: an error, but the network is still usable downstream.
        assert_eq!(
            c.cidr("10.0.1.1/24", "a"),
            Some("10.0.1.0/24".parse().unwrap())
        );
        assert_eq!(c.cidr("10.0.1.1", "b"), None);
        assert_eq!(c.ip("10.0.1.0/24", "c"), None);
        let hints: Vec<&str> = c.diags.iter().map(|d| d.hint.as_str()).collect();
        assert!(hints[0].contains("\"10.0.1.0/24\""), "{hints:?}");
        assert!(hints[1].contains("\"10.0.1.1/32\""), "{hints:?}");
        assert!(hints[2].contains("no prefix length"), "{hints:?}");
    }

    #[test]
    fn names_are_unique_and_lookups_list_the_valid_ones() {
        let mut c = Ctx::default();
        let names = c.unique_names("subnet", "subnet", ["a", "b", "a", " "].into_iter());
        assert_eq!(names.get("a"), Some(0), "the first of duplicates wins");
        let paths: Vec<&str> = c.diags.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["subnet[2].name", "subnet[3].name"]);
        assert_eq!(c.lookup(&names, "zz", "x.subnet"), None);
        let d = c.diags.last().unwrap();
        assert_eq!(d.message, "subnet `zz` does not exist");
        assert!(d.hint.starts_with("subnets: `a`, `b`"), "{}", d.hint);
    }

    #[test]
    fn protocols_and_ports() {
        let mut c = Ctx::default();
        assert_eq!(
            c.proto_ports("6", Some("80"), "r"),
            Some((Protocol::Tcp, Some(PortRange { from: 80, to: 80 })))
        );
        assert_eq!(c.proto_ports("-1", None, "r"), Some((Protocol::All, None)));
        assert!(c.diags.is_empty());
        assert_eq!(c.proto_ports("icmp", Some("80"), "r"), None);
        assert_eq!(c.proto_ports("gre", None, "s"), None);
        let paths: Vec<&str> = c.diags.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["r.ports", "s.protocol"]);
        assert_eq!(
            parse_ports("90-80"),
            Err("the range goes backwards (90 > 80)".into())
        );
        assert_eq!(
            parse_ports("70000"),
            Err("port 70000 is above 65535".into())
        );
    }
}
