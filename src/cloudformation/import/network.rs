//! VPCs, subnets, gateways, route tables, NACLs and security groups.

use super::*;

impl<'a> Importer<'a> {
    pub(super) fn network(&mut self, t: &mut Topology) {
        let res = self.resources;
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::InternetGateway") {
            if t.internet_gateway.is_some() {
                self.error(
                    r,
                    "Type",
                    "a second internet gateway".into(),
                    "a VPC has at most one internet gateway".into(),
                );
            }
            t.internet_gateway = Some(InternetGateway {
                name: r.name.clone(),
            });
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::Subnet") {
            let az = get_str(&r.props, "AvailabilityZone")
                .unwrap_or_else(|| format!("{}a", self.region));
            t.subnets.push(Subnet {
                name: r.name.clone(),
                cidr: get_str(&r.props, "CidrBlock").unwrap_or_default(),
                az,
                route_table: None,
                nacl: None,
                map_public_ip: get_bool(&r.props, "MapPublicIpOnLaunch").unwrap_or(false),
            });
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::NatGateway") {
            let Some(subnet) = self.name_of(
                r,
                "SubnetId",
                &get_str(&r.props, "SubnetId").unwrap_or_default(),
                &["AWS::EC2::Subnet"],
            ) else {
                continue;
            };
            if get_str(&r.props, "ConnectivityType").as_deref() == Some("private") {
                self.warnings.push(format!(
                    "{}: a private NAT gateway is built as a public one",
                    r.logical
                ));
            }
            origin(t, &r.name, r);
            t.nat_gateways.push(NatGateway {
                name: r.name.clone(),
                subnet,
                elastic_ip: None,
            });
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::RouteTable") {
            t.route_tables.push(RouteTable {
                name: r.name.clone(),
                main: false,
                routes: vec![],
            });
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::Route") {
            let Some(rt) = self.name_of(
                r,
                "RouteTableId",
                &get_str(&r.props, "RouteTableId").unwrap_or_default(),
                &["AWS::EC2::RouteTable"],
            ) else {
                continue;
            };
            let Some(dest) = get_str(&r.props, "DestinationCidrBlock") else {
                self.warnings.push(format!(
                    "{}: only IPv4 routes (DestinationCidrBlock) are emulated; route skipped",
                    r.logical
                ));
                continue;
            };
            let target = if let Some(g) = get_str(&r.props, "GatewayId") {
                self.name_of(r, "GatewayId", &g, &["AWS::EC2::InternetGateway"])
            } else if let Some(n) = get_str(&r.props, "NatGatewayId") {
                self.name_of(r, "NatGatewayId", &n, &["AWS::EC2::NatGateway"])
            } else if let Some(i) = get_str(&r.props, "InstanceId") {
                self.name_of(r, "InstanceId", &i, &["AWS::EC2::Instance"])
            } else {
                self.warnings.push(format!("{}: route target not emulated (only GatewayId, NatGatewayId, InstanceId); route skipped", r.logical));
                None
            };
            if let (Some(target), Some(table)) =
                (target, t.route_tables.iter_mut().find(|x| x.name == rt))
            {
                table.routes.push(Route {
                    destination: dest,
                    target,
                });
            }
        }
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::EC2::SubnetRouteTableAssociation")
        {
            let sn = self.name_of(
                r,
                "SubnetId",
                &get_str(&r.props, "SubnetId").unwrap_or_default(),
                &["AWS::EC2::Subnet"],
            );
            let rt = self.name_of(
                r,
                "RouteTableId",
                &get_str(&r.props, "RouteTableId").unwrap_or_default(),
                &["AWS::EC2::RouteTable"],
            );
            if let (Some(sn), Some(rt)) = (sn, rt) {
                if let Some(s) = t.subnets.iter_mut().find(|s| s.name == sn) {
                    if s.route_table.is_some() {
                        self.error(
                            r,
                            "SubnetId",
                            format!("subnet {sn} is associated with a second route table"),
                            "a subnet has one route table association".into(),
                        );
                    }
                    s.route_table = Some(rt);
                }
            }
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::NetworkAcl") {
            t.nacls.push(Nacl {
                name: r.name.clone(),
                inbound: vec![],
                outbound: vec![],
            });
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::NetworkAclEntry") {
            let Some(acl) = self.name_of(
                r,
                "NetworkAclId",
                &get_str(&r.props, "NetworkAclId").unwrap_or_default(),
                &["AWS::EC2::NetworkAcl"],
            ) else {
                continue;
            };
            let Some(cidr) = get_str(&r.props, "CidrBlock") else {
                self.error(
                    r,
                    "CidrBlock",
                    "no CidrBlock (IPv6 entries are not emulated)".into(),
                    "give the entry an IPv4 CidrBlock".into(),
                );
                continue;
            };
            let protocol = get_str(&r.props, "Protocol").unwrap_or_default();
            let ports = get(&r.props, "PortRange").map(|p| {
                let (a, b) = (
                    get_int(p, "From").unwrap_or(0),
                    get_int(p, "To").unwrap_or(65535),
                );
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            });
            let rule = NaclRule {
                rule: get_int(&r.props, "RuleNumber").unwrap_or(0),
                protocol: protocol.clone(),
                ports: if matches!(protocol.as_str(), "6" | "17" | "tcp" | "udp") {
                    ports
                } else {
                    None
                },
                cidr,
                action: get_str(&r.props, "RuleAction").unwrap_or_default(),
            };
            let egress = get_bool(&r.props, "Egress").unwrap_or(false);
            if let Some(n) = t.nacls.iter_mut().find(|n| n.name == acl) {
                if egress {
                    n.outbound.push(rule)
                } else {
                    n.inbound.push(rule)
                }
            }
        }
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::EC2::SubnetNetworkAclAssociation")
        {
            let sn = self.name_of(
                r,
                "SubnetId",
                &get_str(&r.props, "SubnetId").unwrap_or_default(),
                &["AWS::EC2::Subnet"],
            );
            let acl = self.name_of(
                r,
                "NetworkAclId",
                &get_str(&r.props, "NetworkAclId").unwrap_or_default(),
                &["AWS::EC2::NetworkAcl"],
            );
            if let (Some(sn), Some(acl)) = (sn, acl) {
                if let Some(s) = t.subnets.iter_mut().find(|s| s.name == sn) {
                    s.nacl = Some(acl);
                }
            }
        }
    }

    fn sg_rule(&mut self, r: &Resource, prop: &str, x: &Value, egress: bool) -> Option<SgRule> {
        let proto = get_str(x, "IpProtocol").unwrap_or_default();
        let (from, to) = (get_int(x, "FromPort"), get_int(x, "ToPort"));
        let ports = match (proto.as_str(), from, to) {
            ("tcp" | "udp" | "6" | "17", Some(a), Some(b)) if a == b => Some(a.to_string()),
            ("tcp" | "udp" | "6" | "17", Some(a), Some(b)) => Some(format!("{a}-{b}")),
            _ => None,
        };
        let peer_key = if egress {
            "DestinationSecurityGroupId"
        } else {
            "SourceSecurityGroupId"
        };
        let sg = match get_str(x, peer_key) {
            Some(id) => Some(self.name_of(
                r,
                &format!("{prop}.{peer_key}"),
                &id,
                &["AWS::EC2::SecurityGroup"],
            )?),
            None => None,
        };
        let cidr = get_str(x, "CidrIp");
        if sg.is_none() && cidr.is_none() {
            self.warnings.push(format!("{}: {prop}: only CidrIp and security group peers are emulated (IPv6, prefix lists are not); rule skipped", r.logical));
            return None;
        }
        Some(SgRule {
            protocol: proto,
            ports,
            cidr,
            source_sg: if egress { None } else { sg.clone() },
            destination_sg: if egress { sg } else { None },
            description: get_str(x, "Description"),
        })
    }

    pub(super) fn security_groups(&mut self, t: &mut Topology) {
        let res = self.resources;
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::SecurityGroup") {
            let mut g = SecurityGroup {
                name: r.name.clone(),
                description: get_str(&r.props, "GroupDescription"),
                ingress: vec![],
                egress: None,
            };
            if let Some(Value::Sequence(rules)) = get(&r.props, "SecurityGroupIngress") {
                for (k, x) in rules.iter().enumerate() {
                    if let Some(rule) =
                        self.sg_rule(r, &format!("SecurityGroupIngress[{k}]"), x, false)
                    {
                        g.ingress.push(rule);
                    }
                }
            }
            if let Some(Value::Sequence(rules)) = get(&r.props, "SecurityGroupEgress") {
                let mut out = vec![];
                for (k, x) in rules.iter().enumerate() {
                    if let Some(rule) =
                        self.sg_rule(r, &format!("SecurityGroupEgress[{k}]"), x, true)
                    {
                        out.push(rule);
                    }
                }
                g.egress = Some(out);
            }
            t.security_groups.push(g);
        }
        for r in res.iter().filter(|r| {
            r.ty == "AWS::EC2::SecurityGroupIngress" || r.ty == "AWS::EC2::SecurityGroupEgress"
        }) {
            let egress = r.ty.ends_with("Egress");
            let Some(gid) = get_str(&r.props, "GroupId") else {
                self.error(r, "GroupId", "no GroupId".into(), "name the group the rule belongs to: GroupId: !GetAtt Sg.GroupId (GroupName is for default VPCs)".into());
                continue;
            };
            let Some(group) = self.name_of(r, "GroupId", &gid, &["AWS::EC2::SecurityGroup"]) else {
                continue;
            };
            let Some(rule) = self.sg_rule(r, "", &r.props, egress) else {
                continue;
            };
            let Some(g) = t.security_groups.iter_mut().find(|g| g.name == group) else {
                // The VPC's default group: rules added to it extend the implicit one.
                self.warnings.push(format!(
                    "{}: rules on the VPC's default security group are not emulated; skipped",
                    r.logical
                ));
                continue;
            };
            if egress {
                // AWS adds the default allow-all only to a group created
                // without egress rules, and CloudFormation strips it once an
                // egress rule is added (aws-semantics.md): the group's
                // egress is then its listed rules only.
                let e = g.egress.get_or_insert_with(Vec::new);
                e.push(rule);
            } else {
                g.ingress.push(rule);
            }
        }
    }
}
