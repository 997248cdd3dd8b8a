//! The VPC, subnets, internet and NAT gateways, route tables, NACLs and
//! security groups.

use super::*;

impl Builder<'_> {
    pub(super) fn vpc(&mut self) {
        let lab = self.lab;
        self.used.insert("VPC".into());
        self.add(
            "VPC",
            "AWS::EC2::VPC",
            vec![
                ("CidrBlock", s(&lab.vpc_cidr.to_string())),
                ("EnableDnsSupport", Value::Bool(true)),
                ("EnableDnsHostnames", Value::Bool(true)),
                ("Tags", name_tag(&lab.name)),
            ],
        );
        self.output("VpcId", "The VPC", r("VPC"));
        if let Some(igw) = &lab.internet_gateway {
            let id = self.id("InternetGateway", igw);
            self.add(
                &id,
                "AWS::EC2::InternetGateway",
                vec![("Tags", name_tag(igw))],
            );
            let att_id = self.id(&id, "attachment");
            self.add(
                &att_id,
                "AWS::EC2::VPCGatewayAttachment",
                vec![("VpcId", r("VPC")), ("InternetGatewayId", r(&id))],
            );
            self.igw = Some((id, att_id));
        }
    }

    pub(super) fn subnets(&mut self) {
        let lab = self.lab;
        for sn in &lab.subnets {
            let id = self.id("Subnet", &sn.name);
            // AZ `us-east-1b` -> the region's second AZ, whatever the region.
            let letter = sn.az.chars().last().unwrap_or('a');
            let index = (letter as i64 - 'a' as i64).clamp(0, 25);
            let az = single(
                "Fn::Select",
                seq(vec![n(index), single("Fn::GetAZs", s(""))]),
            );
            self.add(
                &id,
                "AWS::EC2::Subnet",
                vec![
                    ("VpcId", r("VPC")),
                    ("CidrBlock", s(&sn.cidr.to_string())),
                    ("AvailabilityZone", az),
                    ("MapPublicIpOnLaunch", Value::Bool(sn.map_public_ip)),
                    ("Tags", name_tag(&sn.name)),
                ],
            );
            self.subnet_ids.push(id);
        }
    }

    pub(super) fn route_tables(&mut self) {
        let lab = self.lab;
        self.nat_ids = lab
            .nat_gateways
            .iter()
            .map(|g| self.id("NatGateway", &g.name))
            .collect();
        // NAT gateways first: routes name them.
        for (k, g) in lab.nat_gateways.iter().enumerate() {
            let id = self.nat_ids[k].clone();
            let eip = self.id(&id, "eip");
            let dep = self.depends_on_igw();
            self.add_full(
                &eip,
                "AWS::EC2::EIP",
                vec![
                    ("Domain", s("vpc")),
                    ("Tags", name_tag(&format!("{}-eip", g.name))),
                ],
                dep,
            );
            self.add(
                &id,
                "AWS::EC2::NatGateway",
                vec![
                    ("AllocationId", att(&eip, "AllocationId")),
                    ("SubnetId", r(&self.subnet_ids[g.subnet].clone())),
                    ("Tags", name_tag(&g.name)),
                ],
            );
        }
        for (k, rt) in lab.route_tables.iter().enumerate() {
            let used = lab.subnets.iter().any(|sn| sn.route_table == k);
            if !used && rt.routes.is_empty() {
                self.rt_ids.push(None);
                continue;
            }
            if rt.main {
                // CloudFormation cannot replace the main table: the template
                // associates its subnets explicitly, which routes the same.
                self.notes.push(format!(
                    "route table `{}` is the lab's main table; on AWS it is an ordinary table associated with its subnets explicitly",
                    rt.name
                ));
            }
            let id = self.id("RouteTable", &rt.name);
            self.add(
                &id,
                "AWS::EC2::RouteTable",
                vec![("VpcId", r("VPC")), ("Tags", name_tag(&rt.name))],
            );
            for (j, route) in rt.routes.iter().enumerate() {
                let rid = self.id(&id, &format!("route-{j}"));
                let mut props = vec![
                    ("RouteTableId", r(&id)),
                    ("DestinationCidrBlock", s(&route.destination.to_string())),
                ];
                let mut extra = vec![];
                match route.target {
                    RouteTarget::InternetGateway => {
                        let (igw, att) = self.igw.clone().expect("validated: the IGW exists");
                        props.push(("GatewayId", r(&igw)));
                        extra.push(("DependsOn", s(&att)));
                    }
                    RouteTarget::NatGateway(g) => {
                        props.push(("NatGatewayId", r(&self.nat_ids[g].clone())))
                    }
                    RouteTarget::Eni(e) => {
                        // Instances are declared later; their ids are known now.
                        let inst = self.instance_id_of_eni(e);
                        props.push(("InstanceId", r(&inst)));
                    }
                }
                self.add_full(&rid, "AWS::EC2::Route", props, extra);
            }
            self.rt_ids.push(Some(id));
        }
        for (k, sn) in lab.subnets.iter().enumerate() {
            let rt = self.rt_ids[sn.route_table]
                .clone()
                .expect("used tables exist");
            let sid = self.subnet_ids[k].clone();
            let aid = self.id(&sid, "route-table-association");
            self.add(
                &aid,
                "AWS::EC2::SubnetRouteTableAssociation",
                vec![("SubnetId", r(&sid)), ("RouteTableId", r(&rt))],
            );
        }
    }

    pub(super) fn nacls(&mut self) {
        let lab = self.lab;
        for (k, acl) in lab.nacls.iter().enumerate() {
            if acl.name == "default" && is_allow_all(acl) {
                continue; // the VPC's own default NACL does exactly this
            }
            let id = self.id("NetworkAcl", &acl.name);
            self.add(
                &id,
                "AWS::EC2::NetworkAcl",
                vec![("VpcId", r("VPC")), ("Tags", name_tag(&acl.name))],
            );
            for (egress, entries) in [(false, &acl.inbound), (true, &acl.outbound)] {
                for e in entries {
                    let eid = self.id(
                        &id,
                        &format!("{}-{}", if egress { "out" } else { "in" }, e.rule),
                    );
                    let mut props = vec![
                        ("NetworkAclId", r(&id)),
                        ("RuleNumber", n(e.rule)),
                        ("Protocol", n(protocol_number(e.protocol))),
                        (
                            "RuleAction",
                            s(if e.action == Action::Allow {
                                "allow"
                            } else {
                                "deny"
                            }),
                        ),
                        ("Egress", Value::Bool(egress)),
                        ("CidrBlock", s(&e.cidr.to_string())),
                    ];
                    if e.protocol.has_ports() {
                        let p = e.ports.unwrap_or(PortRange { from: 0, to: 65535 });
                        props.push(("PortRange", map(vec![("From", n(p.from)), ("To", n(p.to))])));
                    }
                    if e.protocol == Protocol::Icmp {
                        props.push(("Icmp", map(vec![("Code", n(-1)), ("Type", n(-1))])));
                    }
                    self.add(&eid, "AWS::EC2::NetworkAclEntry", props);
                }
            }
            for (j, sn) in lab.subnets.iter().enumerate() {
                if sn.nacl == k {
                    let sid = self.subnet_ids[j].clone();
                    let aid = self.id(&sid, "nacl-association");
                    self.add(
                        &aid,
                        "AWS::EC2::SubnetNetworkAclAssociation",
                        vec![("SubnetId", r(&sid)), ("NetworkAclId", r(&id))],
                    );
                }
            }
        }
    }

    pub(super) fn security_groups(&mut self) {
        let lab = self.lab;
        self.sg_ids = lab
            .security_groups
            .iter()
            .map(|g| {
                if g.name == "default" {
                    String::new()
                } else {
                    self.id("SecurityGroup", &g.name)
                }
            })
            .collect();
        for (k, g) in lab.security_groups.iter().enumerate() {
            if g.name == "default" {
                continue; // the VPC's default group: GetAtt VPC.DefaultSecurityGroup
            }
            let id = self.sg_ids[k].clone();
            let mut ingress = vec![];
            let mut egress = vec![];
            let mut separate = vec![];
            for (is_egress, rules) in [(false, &g.ingress), (true, &g.egress)] {
                for rule in rules {
                    let mut p = sg_protocol(rule);
                    match &rule.peer {
                        SgPeer::Cidr(c) => {
                            p.push(("CidrIp", s(&c.to_string())));
                            if is_egress {
                                egress.push(map(p));
                            } else {
                                ingress.push(map(p));
                            }
                        }
                        // SG-to-SG rules are resources of their own: two groups
                        // naming each other inline would be a dependency cycle.
                        SgPeer::Group(other) => separate.push((is_egress, *other, p)),
                    }
                }
            }
            let default_egress = g.egress.len() == 1
                && g.egress[0].protocol == Protocol::All
                && g.egress[0].peer == SgPeer::Cidr("0.0.0.0/0".parse().expect("cidr"));
            let mut props = vec![
                (
                    "GroupDescription",
                    s(&format!("vpcsim security group {}", g.name)),
                ),
                ("VpcId", r("VPC")),
            ];
            if !ingress.is_empty() {
                props.push(("SecurityGroupIngress", seq(ingress)));
            }
            if !default_egress {
                if egress.is_empty() {
                    // Any inline egress rule removes AWS's default allow-all;
                    // one to the loopback allows nothing that leaves the host.
                    egress.push(map(vec![
                        ("IpProtocol", s("-1")),
                        ("CidrIp", s("127.0.0.1/32")),
                        ("Description", s("no egress except the rules below")),
                    ]));
                }
                props.push(("SecurityGroupEgress", seq(egress)));
            }
            props.push(("Tags", name_tag(&g.name)));
            self.add(&id, "AWS::EC2::SecurityGroup", props);
            for (j, (is_egress, other, mut p)) in separate.into_iter().enumerate() {
                let rid = self.id(
                    &id,
                    &format!("{}-{j}", if is_egress { "egress" } else { "ingress" }),
                );
                let peer = self.sg_ref(other);
                p.insert(0, ("GroupId", att(&id, "GroupId")));
                p.push((
                    if is_egress {
                        "DestinationSecurityGroupId"
                    } else {
                        "SourceSecurityGroupId"
                    },
                    peer,
                ));
                self.add(
                    &rid,
                    if is_egress {
                        "AWS::EC2::SecurityGroupEgress"
                    } else {
                        "AWS::EC2::SecurityGroupIngress"
                    },
                    p,
                );
            }
        }
    }

    pub(super) fn sg_ref(&self, k: usize) -> Value {
        if self.lab.security_groups[k].name == "default" {
            att("VPC", "DefaultSecurityGroup")
        } else {
            att(&self.sg_ids[k], "GroupId")
        }
    }
}

fn is_allow_all(acl: &NaclPlan) -> bool {
    let all = |v: &Vec<NaclEntry>| {
        v.len() == 1
            && v[0].protocol == Protocol::All
            && v[0].action == Action::Allow
            && v[0].cidr.prefix_len() == 0
    };
    all(&acl.inbound) && all(&acl.outbound)
}

fn protocol_number(p: Protocol) -> i64 {
    p.number().map(i64::from).unwrap_or(-1)
}

fn sg_protocol(rule: &SgRulePlan) -> Vec<(&'static str, Value)> {
    match rule.protocol {
        Protocol::All => vec![("IpProtocol", s("-1"))],
        Protocol::Icmp => vec![
            ("IpProtocol", s("icmp")),
            ("FromPort", n(-1)),
            ("ToPort", n(-1)),
        ],
        p => {
            let r = rule.ports.unwrap_or(PortRange { from: 0, to: 65535 });
            vec![
                ("IpProtocol", s(p.name())),
                ("FromPort", n(r.from)),
                ("ToPort", n(r.to)),
            ]
        }
    }
}
