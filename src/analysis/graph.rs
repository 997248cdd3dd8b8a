//! `vpcsim graph`: the lab as a picture, like the AWS console's VPC resource
//! map: the internet and its IGW on top, the VPC with one column per AZ,
//! public then private subnets with their nodes, load balancers with their
//! listeners, target groups and weights, and the target groups' members
//! (with live health and weights when the lab is running). SVG is drawn by
//! this module; Mermaid and DOT are for documentation.

use crate::topology::plan::*;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Mermaid,
    Dot,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "svg" => Ok(Format::Svg),
            "mermaid" => Ok(Format::Mermaid),
            "dot" => Ok(Format::Dot),
            _ => Err(format!("unknown format `{s}`: use svg, mermaid or dot")),
        }
    }
}

/// What a running lab's ALB daemon reports.
#[derive(Debug, Default)]
pub struct Live {
    /// (target group, instance) -> health state.
    pub health: HashMap<(String, String), String>,
    /// (load balancer, listener port, target group) -> default action weight.
    pub weights: HashMap<(String, u16, String), u16>,
}

impl Live {
    pub fn from_status(s: &crate::lb::status::LbStatus) -> Live {
        let mut live = Live::default();
        for tg in &s.target_groups {
            for t in &tg.targets {
                live.health
                    .insert((tg.name.clone(), t.instance.clone()), t.state.clone());
            }
        }
        for lb in &s.load_balancers {
            for l in &lb.listeners {
                for r in l.rules.iter().filter(|r| r.priority.is_none()) {
                    for f in &r.forward {
                        live.weights
                            .insert((lb.name.clone(), l.port, f.target_group.clone()), f.weight);
                    }
                }
            }
        }
        live
    }
}

fn is_public(lab: &Lab, s: &SubnetPlan) -> bool {
    lab.route_tables[s.route_table]
        .routes
        .iter()
        .any(|r| r.target == RouteTarget::InternetGateway)
}

/// The subnet's route table and NACL, then one line per route.
fn route_summary(lab: &Lab, s: &SubnetPlan) -> Vec<String> {
    let rt = &lab.route_tables[s.route_table];
    let mut routes: Vec<String> = rt
        .routes
        .iter()
        .map(|r| {
            let t = match r.target {
                RouteTarget::InternetGateway => lab.internet_gateway.clone().unwrap_or_default(),
                RouteTarget::NatGateway(n) => lab.nat_gateways[n].name.clone(),
                RouteTarget::Eni(e) => lab.enis[e].node.clone(),
            };
            format!("{} → {t}", r.destination)
        })
        .collect();
    if let Some(s3) = &lab.s3 {
        for v in lab
            .vpc_endpoints
            .iter()
            .filter(|v| v.route_tables.contains(&s.route_table))
        {
            routes.push(format!("{} → {}", s3.prefix_list_id, v.name));
        }
    }
    if routes.is_empty() {
        routes.push("local only".into());
    }
    let mut lines = vec![format!(
        "route table {} · nacl {}",
        rt.name, lab.nacls[s.nacl].name
    )];
    lines.extend(routes);
    lines
}

/// One line per node: name, addresses and what it is.
fn node_label(lab: &Lab, e: &Eni) -> (String, &'static str) {
    let public = e.public_ip.map(|p| format!(" · {p}")).unwrap_or_default();
    match e.owner {
        EniOwner::Instance(i) => {
            let w = lab.instances[i]
                .workload
                .map(|w| format!(" · {}", w.name()))
                .unwrap_or_default();
            (
                format!("{} {}{public}{w}", e.node, e.private_ip),
                "instance",
            )
        }
        EniOwner::NatGateway(n) => (
            format!("{} {}{public}", lab.nat_gateways[n].name, e.private_ip),
            "nat",
        ),
        EniOwner::LoadBalancerNode(l, _) => (
            format!(
                "{} node {} {}{public}",
                lab.load_balancers[l].name, e.node, e.private_ip
            ),
            "alb",
        ),
    }
}

/// Listener lines of a load balancer: `:80 default → tg-v1 90, tg-v2 10`.
fn listener_lines(lab: &Lab, lb: &LoadBalancerPlan, live: Option<&Live>) -> Vec<String> {
    let weight = |port: u16, w: &WeightedTargetGroup| {
        let tg = &lab.target_groups[w.target_group].name;
        let live_w = live.and_then(|l| l.weights.get(&(lb.name.clone(), port, tg.clone())));
        format!("{tg} {}", live_w.copied().unwrap_or(w.weight))
    };
    let mut out = Vec::new();
    for l in &lb.listeners {
        for r in &l.rules {
            let f: Vec<String> = r.forward.iter().map(|w| weight(l.port, w)).collect();
            out.push(format!(
                ":{} rule {} → {}",
                l.port,
                r.priority,
                f.join(", ")
            ));
        }
        let f: Vec<String> = l
            .default_forward
            .iter()
            .map(|w| weight(l.port, w))
            .collect();
        out.push(format!(":{} default → {}", l.port, f.join(", ")));
    }
    out
}

fn target_lines(tg: &TargetGroupPlan, live: Option<&Live>) -> Vec<String> {
    tg.targets
        .iter()
        .map(|t| {
            let health = live
                .and_then(|l| l.health.get(&(tg.name.clone(), t.instance.clone())))
                .map(|h| format!(" · {h}"))
                .unwrap_or_default();
            format!("{} {}:{}{health}", t.instance, t.ip, t.port)
        })
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COL: i32 = 340;
const GAP: i32 = 20;
const LINE: i32 = 18;
const NODE_H: i32 = 26;

struct Svg {
    body: String,
}

impl Svg {
    fn rect(&mut self, x: i32, y: i32, w: i32, h: i32, class: &str) {
        writeln!(
            self.body,
            r#"<rect class="{class}" x="{x}" y="{y}" width="{w}" height="{h}" rx="6"/>"#
        )
        .unwrap();
    }
    fn text(&mut self, x: i32, y: i32, class: &str, s: &str) {
        writeln!(
            self.body,
            r#"<text class="{class}" x="{x}" y="{y}">{}</text>"#,
            esc(s)
        )
        .unwrap();
    }
    fn line(&mut self, x1: i32, y1: i32, x2: i32, y2: i32) {
        writeln!(
            self.body,
            r#"<line class="edge" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}"/>"#
        )
        .unwrap();
    }
}

const STYLE: &str = "text{font-family:sans-serif;font-size:12px;fill:#232f3e}\
.title{font-size:15px;font-weight:bold}.head{font-weight:bold}.small{font-size:11px;fill:#545b64}\
.vpc{fill:#fafafa;stroke:#8c4fff;stroke-width:2}.az{fill:none;stroke:#879196;stroke-dasharray:6 4}\
.public{fill:#e9f3e6;stroke:#3f8624}.private{fill:#e6f2f8;stroke:#147eba}\
.instance{fill:#fff;stroke:#d86613}.nat{fill:#fff;stroke:#8c4fff}.alb{fill:#fff;stroke:#8c4fff}\
.igw{fill:#f2e8ff;stroke:#8c4fff}.inet{fill:#fff;stroke:#232f3e}.lb{fill:#f2e8ff;stroke:#8c4fff}\
.tg{fill:#fff8e6;stroke:#d86613}.edge{stroke:#8c4fff;stroke-width:1.5}";

pub fn svg(lab: &Lab, live: Option<&Live>) -> String {
    let mut azs: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in lab.subnets.iter().enumerate() {
        azs.entry(s.az.as_str()).or_default().push(i);
    }
    for subnets in azs.values_mut() {
        // Public subnets first, as in the AWS console.
        subnets.sort_by_key(|&i| (!is_public(lab, &lab.subnets[i]), i));
    }
    let columns = azs.len().max(1) as i32;
    let width = columns * (COL + GAP) + GAP + 2 * GAP;
    let vpc_x = GAP;
    let mut s = Svg {
        body: String::new(),
    };

    // The internet and the IGW.
    let hosts: Vec<String> = lab.internet.hosts.iter().map(|h| h.to_string()).collect();
    s.rect(vpc_x, 10, width - 2 * GAP, 34, "inet");
    s.text(
        vpc_x + 10,
        32,
        "head",
        &format!("internet: {}", hosts.join(", ")),
    );
    let igw_y = 58;
    let igw_x = width / 2 - 110;
    if let Some(igw) = &lab.internet_gateway {
        s.rect(igw_x, igw_y, 220, 30, "igw");
        s.text(
            igw_x + 10,
            igw_y + 20,
            "head",
            &format!("internet gateway {igw}"),
        );
    }

    // Load balancers band inside the VPC.
    let vpc_y = 104;
    let mut y = vpc_y + 34;
    let mut lb_boxes = String::new();
    let mut lb_svg = Svg {
        body: String::new(),
    };
    for lb in &lab.load_balancers {
        let lines = listener_lines(lab, lb, live);
        let h = 26 + LINE * lines.len() as i32 + 6;
        lb_svg.rect(vpc_x + GAP, y, width - 4 * GAP, h, "lb");
        lb_svg.text(
            vpc_x + GAP + 10,
            y + 18,
            "head",
            &format!("load balancer {} · {}", lb.name, lb.dns_name),
        );
        for (k, l) in lines.iter().enumerate() {
            lb_svg.text(vpc_x + GAP + 20, y + 36 + LINE * k as i32, "", l);
        }
        y += h + 12;
    }
    for v in &lab.vpc_endpoints {
        let range = lab
            .s3
            .as_ref()
            .map(|s| format!(" · S3 {} ({})", s.prefix_list_id, s.range));
        lb_svg.rect(vpc_x + GAP, y, width - 4 * GAP, 28, "lb");
        lb_svg.text(
            vpc_x + GAP + 10,
            y + 18,
            "head",
            &format!(
                "gateway endpoint {} · {}{}",
                v.name,
                v.id,
                range.unwrap_or_default()
            ),
        );
        y += 28 + 12;
    }
    lb_boxes.push_str(&lb_svg.body);

    // AZ columns with their subnets and nodes.
    let cols_y = y;
    let mut col_bottom = cols_y;
    let mut boxes = Svg {
        body: String::new(),
    };
    let mut edges = Svg {
        body: String::new(),
    };
    for (c, (az, subnets)) in azs.iter().enumerate() {
        let x = vpc_x + GAP + c as i32 * (COL + GAP);
        let mut sy = cols_y + 26;
        boxes.text(x + 8, cols_y + 17, "head", az);
        for &i in subnets {
            let sub = &lab.subnets[i];
            let public = is_public(lab, sub);
            let nodes: Vec<&Eni> = lab.enis.iter().filter(|e| e.subnet == i).collect();
            let summary = route_summary(lab, sub);
            let head = 30 + LINE * summary.len() as i32;
            let h = head + (NODE_H + 6) * nodes.len() as i32 + 4;
            boxes.rect(
                x + 8,
                sy,
                COL - 16,
                h,
                if public { "public" } else { "private" },
            );
            boxes.text(
                x + 16,
                sy + 17,
                "head",
                &format!(
                    "{} · {} · {}",
                    sub.name,
                    sub.cidr,
                    if public { "public" } else { "private" }
                ),
            );
            for (k, line) in summary.iter().enumerate() {
                let indent = if k == 0 { 16 } else { 26 };
                boxes.text(x + indent, sy + 34 + LINE * k as i32, "small", line);
            }
            if public && lab.internet_gateway.is_some() {
                edges.line(width / 2, igw_y + 30, x + COL / 2, sy);
            }
            for (k, e) in nodes.iter().enumerate() {
                let ny = sy + head + k as i32 * (NODE_H + 6);
                let (label, class) = node_label(lab, e);
                boxes.rect(x + 18, ny, COL - 36, NODE_H, class);
                boxes.text(x + 26, ny + 17, "", &label);
            }
            sy += h + 12;
        }
        col_bottom = col_bottom.max(sy);
        boxes.rect(x, cols_y, COL, sy - cols_y, "az");
    }

    // Target groups below the columns.
    let mut ty = col_bottom + 12;
    let mut tgs = Svg {
        body: String::new(),
    };
    let tg_w = COL - 16;
    let per_row = ((width - 4 * GAP) / (tg_w + GAP)).max(1);
    let mut row_h = 0;
    for (k, tg) in lab.target_groups.iter().enumerate() {
        let col = k as i32 % per_row;
        if col == 0 && k > 0 {
            ty += row_h + 12;
            row_h = 0;
        }
        let lines = target_lines(tg, live);
        let h = 26 + LINE * lines.len() as i32 + 6;
        row_h = row_h.max(h);
        let x = vpc_x + GAP + col * (tg_w + GAP);
        tgs.rect(x, ty, tg_w, h, "tg");
        tgs.text(
            x + 10,
            ty + 18,
            "head",
            &format!("target group {} · port {}", tg.name, tg.port),
        );
        for (j, l) in lines.iter().enumerate() {
            tgs.text(x + 20, ty + 36 + LINE * j as i32, "", l);
        }
    }
    let vpc_bottom = ty + row_h + 14;
    let height = vpc_bottom + GAP;

    let mut out = String::new();
    writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    )
    .unwrap();
    writeln!(
        out,
        "<title>{}</title>",
        esc(&format!("vpcsim lab {}", lab.name))
    )
    .unwrap();
    writeln!(out, "<style>{STYLE}</style>").unwrap();
    writeln!(
        out,
        r#"<rect class="vpc" x="{vpc_x}" y="{vpc_y}" width="{}" height="{}" rx="8"/>"#,
        width - 2 * GAP,
        vpc_bottom - vpc_y
    )
    .unwrap();
    writeln!(
        out,
        r#"<text class="title" x="{}" y="{}">{}</text>"#,
        vpc_x + 10,
        vpc_y + 22,
        esc(&format!(
            "VPC {} · {} · {} · lab {}",
            lab.vpc_id, lab.vpc_cidr, lab.region, lab.name
        ))
    )
    .unwrap();
    out.push_str(&edges.body);
    out.push_str(&s.body);
    out.push_str(&lb_boxes);
    out.push_str(&boxes.body);
    out.push_str(&tgs.body);
    out.push_str("</svg>\n");
    out
}

/// Mermaid and DOT identifiers: letters, digits and `_`.
fn id(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

pub fn mermaid(lab: &Lab, live: Option<&Live>) -> String {
    let mut out = String::from("flowchart TB\n");
    let q = |s: &str| s.replace('"', "'");
    writeln!(out, "  internet((\"internet\"))").unwrap();
    if let Some(igw) = &lab.internet_gateway {
        writeln!(
            out,
            "  igw[\"internet gateway {}\"]\n  internet --- igw",
            q(igw)
        )
        .unwrap();
    }
    writeln!(
        out,
        "  subgraph vpc[\"VPC {} {}\"]",
        lab.vpc_id, lab.vpc_cidr
    )
    .unwrap();
    let mut azs: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in lab.subnets.iter().enumerate() {
        azs.entry(s.az.as_str()).or_default().push(i);
    }
    for (az, subnets) in &azs {
        writeln!(out, "    subgraph az_{}[\"{az}\"]", id(az)).unwrap();
        for &i in subnets {
            let sub = &lab.subnets[i];
            writeln!(
                out,
                "      subgraph sn_{}[\"{} {} {}\"]",
                id(&sub.name),
                sub.name,
                sub.cidr,
                if is_public(lab, sub) {
                    "public"
                } else {
                    "private"
                }
            )
            .unwrap();
            for e in lab.enis.iter().filter(|e| e.subnet == i) {
                writeln!(
                    out,
                    "        n_{}[\"{}\"]",
                    id(&e.node),
                    q(&node_label(lab, e).0)
                )
                .unwrap();
            }
            out.push_str("      end\n");
        }
        out.push_str("    end\n");
    }
    for lb in &lab.load_balancers {
        writeln!(
            out,
            "    lb_{}{{{{\"{} {}\"}}}}",
            id(&lb.name),
            lb.name,
            q(&listener_lines(lab, lb, live).join("<br/>"))
        )
        .unwrap();
    }
    for tg in &lab.target_groups {
        writeln!(
            out,
            "    tg_{}[/\"target group {}<br/>{}\"/]",
            id(&tg.name),
            tg.name,
            q(&target_lines(tg, live).join("<br/>"))
        )
        .unwrap();
    }
    out.push_str("  end\n");
    edges(lab, &mut out, |a, b| format!("  {a} --> {b}\n"));
    out
}

pub fn dot(lab: &Lab, live: Option<&Live>) -> String {
    let q = |s: &str| s.replace('"', "\\\"");
    let mut out = String::from(
        "digraph vpc {\n  rankdir=TB;\n  node [shape=box, fontname=\"sans-serif\"];\n",
    );
    writeln!(out, "  internet [shape=ellipse];").unwrap();
    if let Some(igw) = &lab.internet_gateway {
        writeln!(
            out,
            "  igw [label=\"internet gateway {}\"];\n  internet -> igw;",
            q(igw)
        )
        .unwrap();
    }
    writeln!(
        out,
        "  subgraph cluster_vpc {{\n    label=\"VPC {} {}\";",
        lab.vpc_id, lab.vpc_cidr
    )
    .unwrap();
    for (i, sub) in lab.subnets.iter().enumerate() {
        writeln!(
            out,
            "    subgraph cluster_{} {{\n      label=\"{} {} {} {}\";",
            id(&sub.name),
            sub.name,
            sub.cidr,
            sub.az,
            if is_public(lab, sub) {
                "public"
            } else {
                "private"
            }
        )
        .unwrap();
        for e in lab.enis.iter().filter(|e| e.subnet == i) {
            writeln!(
                out,
                "      n_{} [label=\"{}\"];",
                id(&e.node),
                q(&node_label(lab, e).0)
            )
            .unwrap();
        }
        out.push_str("    }\n");
    }
    for lb in &lab.load_balancers {
        writeln!(
            out,
            "    lb_{} [shape=hexagon, label=\"{}\\n{}\"];",
            id(&lb.name),
            lb.name,
            q(&listener_lines(lab, lb, live).join("\\n"))
        )
        .unwrap();
    }
    for tg in &lab.target_groups {
        writeln!(
            out,
            "    tg_{} [shape=folder, label=\"target group {}\\n{}\"];",
            id(&tg.name),
            tg.name,
            q(&target_lines(tg, live).join("\\n"))
        )
        .unwrap();
    }
    out.push_str("  }\n");
    edges(lab, &mut out, |a, b| format!("  {a} -> {b};\n"));
    out.push_str("}\n");
    out
}

/// IGW -> ALB nodes and public instances; ALB -> its nodes and target
/// groups; target group -> its targets.
fn edges(lab: &Lab, out: &mut String, edge: impl Fn(&str, &str) -> String) {
    if lab.internet_gateway.is_some() {
        for e in lab.enis.iter().filter(|e| e.public_ip.is_some()) {
            out.push_str(&edge("igw", &format!("n_{}", id(&e.node))));
        }
    }
    for lb in &lab.load_balancers {
        for &n in &lb.nodes {
            out.push_str(&edge(
                &format!("n_{}", id(&lab.enis[n].node)),
                &format!("lb_{}", id(&lb.name)),
            ));
        }
        let mut groups: Vec<usize> = lb
            .listeners
            .iter()
            .flat_map(|l| {
                l.rules
                    .iter()
                    .flat_map(|r| &r.forward)
                    .chain(&l.default_forward)
            })
            .map(|w| w.target_group)
            .collect();
        groups.sort_unstable();
        groups.dedup();
        for g in groups {
            out.push_str(&edge(
                &format!("lb_{}", id(&lb.name)),
                &format!("tg_{}", id(&lab.target_groups[g].name)),
            ));
        }
    }
    for tg in &lab.target_groups {
        for t in &tg.targets {
            out.push_str(&edge(
                &format!("tg_{}", id(&tg.name)),
                &format!("n_{}", id(&t.instance)),
            ));
        }
    }
}

/// `vpcsim graph [FILE|LAB]`: live health and weights when the lab is up.
pub fn run(
    target: Option<&str>,
    format: &str,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let format: Format = format.parse().map_err(crate::commands::usage)?;
    let lab = super::load_plan(target)?;
    let running = crate::state::LabState::load(&lab.name)
        .ok()
        .flatten()
        .is_some_and(|s| s.ready);
    let live = if running && !lab.load_balancers.is_empty() {
        crate::lb::client::query_status(&lab.name)
            .ok()
            .map(|s| Live::from_status(&s))
    } else {
        None
    };
    let text = match format {
        Format::Svg => svg(&lab, live.as_ref()),
        Format::Mermaid => mermaid(&lab, live.as_ref()),
        Format::Dot => dot(&lab, live.as_ref()),
    };
    match output {
        Some(p) => std::fs::write(p, text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display())),
        None => {
            crate::out!("{text}");
            Ok(())
        }
    }
}
