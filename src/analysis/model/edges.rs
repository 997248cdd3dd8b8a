//! The walk's edges beyond an ENI: the internet gateway both ways, the
//! gateway endpoint to S3, and the Amazon DNS server (VPC+2).

use super::*;

impl Model<'_> {
    /// Leaving through the internet gateway: 1:1 NAT of the source to its
    /// public IP, then the internet.
    pub(super) fn out_to_internet(
        &self,
        pkt: Packet,
        established: bool,
        hops: &mut Vec<Hop>,
    ) -> End {
        let lab = self.lab;
        let igw = lab.internet_gateway.clone().unwrap_or_default();
        let Some(public) = lab
            .enis
            .iter()
            .find(|e| e.private_ip == pkt.src)
            .and_then(|e| e.public_ip)
        else {
            hops.push(Hop::deny(
                Component::InternetGateway,
                igw,
                "igw: source has no public IP",
                format!(
                    "{} has no public or Elastic IP, so the internet gateway cannot translate it",
                    pkt.src
                ),
            ));
            return End::Blocked;
        };
        hops.push(
            Hop::pass(Component::InternetGateway, &igw, "")
                .with_detail(format!("translates source {} to {public}", pkt.src)),
        );
        let out = Packet { src: public, ..pkt };
        let s3 = lab.s3.as_ref().is_some_and(|s| s.range.contains(&pkt.dst));
        if s3 && !established {
            if let Some(deny) = self.s3_refuses(out) {
                hops.push(deny);
                return End::Blocked;
            }
        }
        if lab.internet.hosts.contains(&pkt.dst) || s3 {
            hops.push(
                Hop::pass(Component::Destination, INTERNET, "").with_detail(if s3 {
                    format!("S3 receives it on its public address {}", pkt.dst)
                } else {
                    format!("internet host {} receives it", pkt.dst)
                }),
            );
            return End::Delivered(Loc::Internet, out);
        }
        if self.eni_by_public(pkt.dst).is_some() {
            // AWS hairpins through the IGW: back in as from the internet.
            return self.walk_from_internet(out, established, hops);
        }
        hops.push(Hop::deny(
            Component::Internet,
            INTERNET,
            format!("internet: no host {}", pkt.dst),
            format!(
                "the lab's internet has only {}",
                lab.internet
                    .hosts
                    .iter()
                    .map(|h| h.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
        End::Blocked
    }

    /// Back from S3 through the endpoint: only replies (S3 never opens a
    /// connection into a VPC), into the destination subnet's NACL inbound.
    pub(super) fn walk_from_endpoint(
        &self,
        v: usize,
        pkt: Packet,
        established: bool,
        hops: &mut Vec<Hop>,
    ) -> End {
        let lab = self.lab;
        let ep = &lab.vpc_endpoints[v];
        if !established {
            hops.push(Hop::deny(
                Component::VpcEndpoint,
                &ep.name,
                "vpce: endpoints carry only connections from the VPC",
                format!("{} does not carry connections opened from S3", ep.id),
            ));
            return End::Blocked;
        }
        hops.push(
            Hop::pass(Component::VpcEndpoint, &ep.name, "")
                .with_detail(format!("{} carries the reply back", ep.id)),
        );
        let Some(j) = lab.enis.iter().position(|e| e.private_ip == pkt.dst) else {
            hops.push(Hop::deny(
                Component::Destination,
                &ep.name,
                format!("no ENI has {}", pkt.dst),
                format!("nothing in the VPC has the address {}", pkt.dst),
            ));
            return End::Blocked;
        };
        if !self.nacl(lab.enis[j].subnet, Dir::Inbound, pkt, hops) {
            return End::Blocked;
        }
        self.arrive(j, pkt, established, hops)
    }

    /// A new connection to S3's range: the lab's S3 answers HTTP on 80 and
    /// 443 (and echo) at its one address, and the AWS side's resolver DNS on
    /// udp/53 at its own; nothing else listens there. A deny hop otherwise.
    pub(super) fn s3_refuses(&self, pkt: Packet) -> Option<Hop> {
        let s3 = self.lab.s3.as_ref()?;
        let port = |p: u16| pkt.dport.from == p && pkt.dport.to == p;
        let serves = match pkt.protocol {
            Protocol::Icmp => pkt.dst == s3.address || pkt.dst == s3.public_dns,
            Protocol::Tcp => pkt.dst == s3.address && (port(80) || port(443)),
            Protocol::Udp => pkt.dst == s3.public_dns && port(53),
            Protocol::All => false,
        };
        if serves {
            return None;
        }
        let detail = if pkt.dst == s3.address {
            format!(
                "S3 at {} serves only tcp/80 and tcp/443 (HTTP): nothing answers {}/{}",
                s3.address,
                pkt.protocol.name(),
                pkt.dport
            )
        } else if pkt.dst == s3.public_dns {
            format!(
                "{} is the AWS side's resolver: it answers only udp/53",
                s3.public_dns
            )
        } else {
            format!(
                "{} is in S3's range {} but S3 answers only at {}",
                pkt.dst, s3.range, s3.address
            )
        };
        Some(Hop::deny(
            Component::Destination,
            S3,
            "s3: nothing listens there",
            detail,
        ))
    }

    /// A packet to the Amazon DNS at VPC base + 2: the Route 53 Resolver
    /// takes it at the VPC router, before security groups, route tables and
    /// NACLs (AWS: "security groups cannot block DNS requests to the Route 53
    /// Resolver"; NACLs do not filter it; it needs no route). The lab's
    /// resolver is a local address of the fabric and answers udp/53 and echo.
    pub(super) fn to_dns(&self, pkt: Packet, hops: &mut Vec<Hop>) -> End {
        let dns = Hosted {
            component: Component::AmazonDns,
            loc: Loc::AmazonDns,
            at: self.lab.dns_ip(),
            protocol: Protocol::Udp,
            port: 53,
            name: "the lab's Amazon DNS",
            aside: " (AWS also serves DNS over tcp/53)",
            label: "amazon dns at vpc base + 2",
            detail: "the Route 53 Resolver answers; security groups, NACLs and route tables do not apply",
        };
        self.to_hosted(&dns, pkt, hops)
    }

    /// A packet to the instance metadata service at 169.254.169.254: a
    /// link-local address the hypervisor answers for the ENI that sent it,
    /// before security groups, route tables and NACLs (AWS filters none of
    /// them on this path). The lab's IMDS is a local address of the fabric
    /// and answers tcp/80 (and echo, which AWS's does not); it gives
    /// metadata only to instances.
    pub(super) fn to_imds(&self, e: usize, pkt: Packet, hops: &mut Vec<Hop>) -> End {
        let imds = Hosted {
            component: Component::Imds,
            loc: Loc::Imds,
            at: IMDS_IP,
            protocol: Protocol::Tcp,
            port: 80,
            name: "the instance metadata service",
            aside: "",
            label: "instance metadata service",
            detail: if matches!(self.lab.enis[e].owner, EniOwner::Instance(_)) {
                "the hypervisor answers with this instance's metadata; security groups, NACLs and route tables do not apply"
            } else {
                "reached, but only instances have metadata: it answers 404"
            },
        };
        self.to_hosted(&imds, pkt, hops)
    }

    /// A packet to a service the hypervisor answers: delivered on its port
    /// (and echo), with nothing on the way; refused on any other.
    fn to_hosted(&self, svc: &Hosted, pkt: Packet, hops: &mut Vec<Hop>) -> End {
        let answers = pkt.protocol == Protocol::Icmp
            || (pkt.protocol == svc.protocol
                && pkt.dport.from == svc.port
                && pkt.dport.to == svc.port);
        if !answers {
            let component = svc.component;
            hops.push(Hop::deny(
                component,
                svc.at.to_string(),
                format!("{}: nothing listens there", component.name()),
                format!(
                    "{} at {} answers {}/{} (and echo) only, not {}/{}{}",
                    svc.name,
                    svc.at,
                    svc.protocol.name(),
                    svc.port,
                    pkt.protocol.name(),
                    pkt.dport,
                    svc.aside
                ),
            ));
            return End::Blocked;
        }
        hops.push(Hop::pass(svc.component, svc.at.to_string(), svc.label).with_detail(svc.detail));
        End::Delivered(svc.loc, pkt)
    }

    /// The resolver's answer, straight back to the ENI that asked.
    pub(super) fn walk_from_dns(&self, pkt: Packet, hops: &mut Vec<Hop>) -> End {
        self.unfiltered_answer(Component::AmazonDns, self.lab.dns_ip(), pkt, hops)
    }

    /// The metadata service's answer, straight back to the ENI that asked.
    pub(super) fn walk_from_imds(&self, pkt: Packet, hops: &mut Vec<Hop>) -> End {
        self.unfiltered_answer(Component::Imds, IMDS_IP, pkt, hops)
    }

    /// An answer of a service the hypervisor hosts (`component` at `at`):
    /// to the ENI of its destination, no filter on the way.
    fn unfiltered_answer(
        &self,
        component: Component,
        at: Ipv4Addr,
        pkt: Packet,
        hops: &mut Vec<Hop>,
    ) -> End {
        let Some(j) = self.lab.enis.iter().position(|e| e.private_ip == pkt.dst) else {
            hops.push(Hop::deny(
                component,
                at.to_string(),
                format!("no ENI has {}", pkt.dst),
                format!("nothing in the VPC has the address {}", pkt.dst),
            ));
            return End::Blocked;
        };
        hops.push(
            Hop::pass(component, at.to_string(), "").with_detail("the answer returns unfiltered"),
        );
        hops.push(
            Hop::pass(Component::Destination, &self.lab.enis[j].node, "")
                .with_detail(format!("arrives at {}", self.lab.enis[j].id)),
        );
        End::Delivered(Loc::Eni(j), pkt)
    }

    pub(super) fn eni_by_public(&self, ip: Ipv4Addr) -> Option<usize> {
        self.lab.enis.iter().position(|e| e.public_ip == Some(ip))
    }

    /// Entering through the internet gateway: only public IPs of the VPC are
    /// reachable; the IGW translates them to the private address.
    pub(super) fn walk_from_internet(
        &self,
        pkt: Packet,
        established: bool,
        hops: &mut Vec<Hop>,
    ) -> End {
        let lab = self.lab;
        let igw = lab.internet_gateway.clone().unwrap_or_default();
        // Between the internet's hosts and S3's public side: no VPC on the way.
        let s3 = lab.s3.as_ref().is_some_and(|s| s.range.contains(&pkt.dst));
        if s3 && !established {
            if let Some(deny) = self.s3_refuses(pkt) {
                hops.push(deny);
                return End::Blocked;
            }
        }
        if s3 || lab.internet.hosts.contains(&pkt.dst) {
            hops.push(
                Hop::pass(Component::Destination, INTERNET, "")
                    .with_detail(format!("{} receives it on the internet", pkt.dst)),
            );
            return End::Delivered(Loc::Internet, pkt);
        }
        let Some(j) = self.eni_by_public(pkt.dst) else {
            let detail = if lab.vpc_cidr.contains(&pkt.dst) {
                format!(
                    "{} is a private address: the internet has no route to it",
                    pkt.dst
                )
            } else {
                format!("{} is not an address of this VPC", pkt.dst)
            };
            hops.push(Hop::deny(
                Component::InternetGateway,
                igw,
                "igw: destination is not a public IP of this VPC",
                detail,
            ));
            return End::Blocked;
        };
        if lab.internet_gateway.is_none() {
            hops.push(Hop::deny(
                Component::InternetGateway,
                "",
                "no internet gateway",
                "the VPC has no internet gateway",
            ));
            return End::Blocked;
        }
        let eni = &lab.enis[j];
        hops.push(
            Hop::pass(Component::InternetGateway, &igw, "").with_detail(format!(
                "translates destination {} to {}",
                pkt.dst, eni.private_ip
            )),
        );
        let inside = Packet {
            dst: eni.private_ip,
            ..pkt
        };
        if !self.nacl(eni.subnet, Dir::Inbound, inside, hops) {
            return End::Blocked;
        }
        self.arrive(j, inside, established, hops)
    }
}

/// A service the hypervisor hosts in the VPC (the Amazon DNS, the IMDS), as
/// `trace` shows the way to it.
struct Hosted {
    component: Component,
    loc: Loc,
    at: Ipv4Addr,
    protocol: Protocol,
    port: u16,
    /// Who answers, in the detail of a refusal.
    name: &'static str,
    /// Said after a refusal's detail.
    aside: &'static str,
    label: &'static str,
    detail: &'static str,
}
