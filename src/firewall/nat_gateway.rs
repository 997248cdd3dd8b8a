//! A NAT gateway's own namespace: SNAT of VPC traffic to its address (the
//! IGW then maps that to the Elastic IP), and no inbound connections.

use super::comment;
use super::ruleset::{Family, Hook, Ruleset, Table};
use crate::topology::plan::{Eni, Lab};

/// Port range AWS NAT gateways use for translated connections.
pub const NAT_PORTS: &str = "1024-65535";

pub fn render(lab: &Lab, eni: &Eni) -> Ruleset {
    let mut t = Table::new(Family::Inet, "vpcsim_natgw");
    let filter = |hook| Hook {
        kind: "filter",
        hook,
        priority: "filter",
        policy: "drop",
    };
    t.chain("input", Some(filter("input")))
        .rule("ct state established,related accept")
        .rule("iifname \"lo\" accept")
        .rule(format!(
            "counter drop {}",
            comment("nat gateway: accepts no connections to itself")
        ));
    t.chain("forward", Some(filter("forward")))
        .rule("ct state established,related accept")
        .rule(format!("ct state new ip saddr {} accept", lab.vpc_cidr))
        .rule(format!(
            "counter drop {}",
            comment("nat gateway: no inbound connections from the internet")
        ));
    let snat = Hook {
        kind: "nat",
        hook: "postrouting",
        priority: "srcnat",
        policy: "accept",
    };
    let ip = eni.private_ip;
    t.chain("postrouting", Some(snat))
        .rule(format!(
            "meta l4proto {{ tcp, udp }} ip saddr != {ip} snat ip to {ip}:{NAT_PORTS}"
        ))
        .rule(format!("ip saddr != {ip} snat ip to {ip}"));
    Ruleset { tables: vec![t] }
}

#[cfg(test)]
mod tests {
    #[test]
    fn snat_to_own_address_and_no_inbound() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
        let text = std::fs::read_to_string(dir.join("canary.toml")).unwrap();
        let lab = crate::topology::parse(&text, &dir).unwrap();
        let nat = &lab.enis[lab.nat_gateways[0].eni];
        let rules = super::render(&lab, nat).to_nft();
        let ip = nat.private_ip;
        assert!(rules.contains(&format!(
            "meta l4proto {{ tcp, udp }} ip saddr != {ip} snat ip to {ip}:1024-65535"
        )));
        assert!(rules.contains("ct state new ip saddr 10.0.0.0/16 accept"));
        assert!(rules.contains("type filter hook input priority filter; policy drop;"));
    }
}
