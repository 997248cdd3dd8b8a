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
