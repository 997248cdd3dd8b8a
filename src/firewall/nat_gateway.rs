//! A NAT gateway's own namespace: SNAT of VPC traffic to its address (the
//! IGW then maps that to the Elastic IP), and no inbound connections.

use super::comment;
use crate::topology::plan::{Eni, Lab};
use std::fmt::Write;

/// Port range AWS NAT gateways use for translated connections.
pub const NAT_PORTS: &str = "1024-65535";

pub fn render(lab: &Lab, eni: &Eni) -> String {
    let mut out = String::from("flush ruleset\n\ntable inet vpcsim_natgw {\n");
    writeln!(
        out,
        "    chain input {{\n        type filter hook input priority filter; policy drop;\n        ct state established,related accept\n        iifname \"lo\" accept\n        counter drop {}\n    }}",
        comment("nat gateway: accepts no connections to itself")
    )
    .unwrap();
    writeln!(
        out,
        "    chain forward {{\n        type filter hook forward priority filter; policy drop;\n        ct state established,related accept\n        ct state new ip saddr {} accept\n        counter drop {}\n    }}",
        lab.vpc_cidr,
        comment("nat gateway: no inbound connections from the internet")
    )
    .unwrap();
    writeln!(
        out,
        "    chain postrouting {{\n        type nat hook postrouting priority srcnat; policy accept;\n        meta l4proto {{ tcp, udp }} ip saddr != {ip} snat ip to {ip}:{NAT_PORTS}\n        ip saddr != {ip} snat ip to {ip}\n    }}\n}}",
        ip = eni.private_ip
    )
    .unwrap();
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn snat_to_own_address_and_no_inbound() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
        let text = std::fs::read_to_string(dir.join("canary.toml")).unwrap();
        let lab = crate::topology::parse(&text, &dir).unwrap();
        let nat = &lab.enis[lab.nat_gateways[0].eni];
        let rules = super::render(&lab, nat);
        let ip = nat.private_ip;
        assert!(rules.contains(&format!(
            "meta l4proto {{ tcp, udp }} ip saddr != {ip} snat ip to {ip}:1024-65535"
        )));
        assert!(rules.contains("ct state new ip saddr 10.0.0.0/16 accept"));
        assert!(rules.contains("type filter hook input priority filter; policy drop;"));
    }
}
