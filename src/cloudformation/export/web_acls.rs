//! Web ACLs, their IP sets, logging and associations.

use super::*;
use crate::cloudformation::wafv2;

impl Builder<'_> {
    /// Web ACLs, their IP sets and one association per load balancer.
    pub(super) fn web_acls(&mut self) {
        let lab = self.lab;
        for acl in &lab.web_acls {
            let id = self.id("WebAcl", &acl.name);
            let mut sets: Vec<(String, Vec<(&str, Value)>)> = vec![];
            let props = wafv2::export_web_acl(acl, &mut |rule, addresses, version| {
                let sid = self.id("IpSet", rule);
                sets.push((
                    sid.clone(),
                    vec![
                        ("Name", s(&format!("{}-{sid}", acl.name))),
                        ("Scope", s("REGIONAL")),
                        ("IPAddressVersion", s(version)),
                        (
                            "Addresses",
                            seq(addresses.iter().map(|a| s(&a.to_string())).collect()),
                        ),
                    ],
                ));
                att(&sid, "Arn")
            });
            for (sid, p) in sets {
                self.add(&sid, "AWS::WAFv2::IPSet", p);
            }
            self.resources.insert(
                s(&id),
                map(vec![
                    ("Type", s("AWS::WAFv2::WebACL")),
                    ("Properties", props),
                ]),
            );
            if let Some(logging) = &acl.logging {
                // WAF takes a log group's ARN without the `:*` that its
                // GetAtt Arn ends with; AWS requires the aws-waf-logs- prefix.
                let group = format!("aws-waf-logs-${{AWS::StackName}}-{}", acl.name);
                let gid = self.id(&id, "log-group");
                self.add(
                    &gid,
                    "AWS::Logs::LogGroup",
                    vec![("LogGroupName", single("Fn::Sub", s(&group)))],
                );
                let mut props = vec![
                    ("ResourceArn", att(&id, "Arn")),
                    (
                        "LogDestinationConfigs",
                        seq(vec![single(
                            "Fn::Sub",
                            s(&format!(
                                "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{group}"
                            )),
                        )]),
                    ),
                ];
                props.extend(wafv2::export_logging(logging));
                let lid = self.id(&id, "logging");
                self.add_full(
                    &lid,
                    "AWS::WAFv2::LoggingConfiguration",
                    props,
                    vec![("DependsOn", s(&gid))],
                );
            }
            for &k in &acl.load_balancers {
                let lb = self.lb_ids[k].clone();
                let aid = self.id(&id, &format!("association-{}", lab.load_balancers[k].name));
                self.add(
                    &aid,
                    "AWS::WAFv2::WebACLAssociation",
                    vec![("ResourceArn", r(&lb)), ("WebACLArn", att(&id, "Arn"))],
                );
            }
            self.output(
                &format!("{id}Arn"),
                &format!("ARN of web ACL {}", acl.name),
                att(&id, "Arn"),
            );
        }
    }
}
