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
    /// Node or container -> `running`, `stopped` or `crashed`.
    pub nodes: HashMap<String, String>,
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
                format!("{} {}{public}{w}", lab.node_label(&e.node), e.private_ip),
                "instance",
            )
        }
        EniOwner::NatGateway(n) => (
            format!(
                "{} {}{public}",
                lab.node_label(&lab.nat_gateways[n].name),
                e.private_ip
            ),
            "nat",
        ),
        EniOwner::LoadBalancerNode(l, _) => (
            format!(
                "{} node {} {}{public}",
                lab.node_label(&lab.load_balancers[l].name),
                e.node,
                e.private_ip
            ),
            "alb",
        ),
    }
}

/// Listener lines of a load balancer: `:80 default → tg-v1 90, tg-v2 10`.
/// The web ACL in front of a load balancer: every request meets it before
/// the listener rules.
fn web_acl_line(lab: &Lab, lb: &LoadBalancerPlan) -> Option<String> {
    let i = lab.load_balancers.iter().position(|x| x.name == lb.name)?;
    let w = lab
        .web_acls
        .iter()
        .find(|w| w.load_balancers.contains(&i))?;
    let rules: Vec<&str> = w.rules.iter().map(|r| r.name.as_str()).collect();
    Some(format!(
        "WAF web ACL {} → {} (default {})",
        w.name,
        rules.join(", "),
        w.default_action.log_name().to_lowercase()
    ))
}

fn listener_lines(lab: &Lab, lb: &LoadBalancerPlan, live: Option<&Live>) -> Vec<String> {
    let weight = |port: u16, w: &WeightedTargetGroup| {
        let tg = &lab.target_groups[w.target_group].name;
        let live_w = live.and_then(|l| l.weights.get(&(lb.name.clone(), port, tg.clone())));
        format!("{tg} {}", live_w.copied().unwrap_or(w.weight))
    };
    let mut out: Vec<String> = web_acl_line(lab, lb).into_iter().collect();
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
/// A node box: its label, then its security groups.
const NODE_H: i32 = 40;
/// One container line inside its host's box.
const CONTAINER_H: i32 = 22;
/// The side panel for gateway endpoints (inside the VPC) and S3 (outside).
const SIDE: i32 = 250;

struct Svg {
    body: String,
}

impl Svg {
    fn new() -> Svg {
        Svg {
            body: String::new(),
        }
    }
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
    fn line(&mut self, x1: i32, y1: i32, x2: i32, y2: i32, class: &str) {
        writeln!(
            self.body,
            r#"<line class="{class}" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}"/>"#
        )
        .unwrap();
    }
    fn dot(&mut self, x: i32, y: i32, class: &str) {
        writeln!(
            self.body,
            r#"<circle class="{class}" cx="{x}" cy="{y}" r="5"/>"#
        )
        .unwrap();
    }
}

/// Colours after AWS's architecture icons: VPC purple, public subnet green,
/// private subnet blue, compute orange, networking purple, security groups
/// red dashed; states green / red / orange / grey.
const STYLE: &str = "text{font-family:sans-serif;font-size:12px;fill:#232f3e}\
.title{font-size:15px;font-weight:bold}.head{font-weight:bold}.small{font-size:11px;fill:#545b64}\
.sgtext{font-size:11px;fill:#d13212}\
.vpc{fill:#fafafa;stroke:#8c4fff;stroke-width:2}.az{fill:none;stroke:#879196;stroke-dasharray:6 4}\
.cloud{fill:none;stroke:#232f3e;stroke-dasharray:2 3}\
.public{fill:#e9f3e6;stroke:#3f8624}.private{fill:#e6f2f8;stroke:#147eba}\
.instance{fill:#fff;stroke:#d86613}.nat{fill:#fff;stroke:#8c4fff}.alb{fill:#fff;stroke:#8c4fff}\
.container{fill:#fff3e0;stroke:#d86613}\
.stopped{fill:#eaeded;stroke:#879196;stroke-dasharray:4 2}.crashed{fill:#fde8e8;stroke:#d13212;stroke-width:2}\
.sg{fill:none;stroke:#d13212;stroke-dasharray:5 3}\
.igw{fill:#f2e8ff;stroke:#8c4fff}.inet{fill:#fff;stroke:#232f3e}.lb{fill:#f2e8ff;stroke:#8c4fff}\
.vpce{fill:#f2e8ff;stroke:#8c4fff}.s3{fill:#e9f3e6;stroke:#3f8624}\
.tg{fill:#fff8e6;stroke:#d86613}.edge{stroke:#8c4fff;stroke-width:1.5;fill:none}\
.healthy{fill:#3f8624}.unhealthy{fill:#d13212}.initial,.draining{fill:#ff9900}.unused,.unknown{fill:#879196}\
.legend{fill:#fff;stroke:#879196}";

/// A node's state on a running lab: `running`, `stopped` or `crashed`.
fn node_state<'a>(live: Option<&'a Live>, node: &str) -> Option<&'a str> {
    live.and_then(|l| l.nodes.get(node)).map(String::as_str)
}

/// Height of a node's box: label and groups, plus its containers.
fn node_height(lab: &Lab, e: &Eni) -> i32 {
    NODE_H + CONTAINER_H * lab.containers.iter().filter(|c| c.host == e.node).count() as i32
}

/// A subnet's box: header, route summary, then its nodes.
fn subnet_height(lab: &Lab, i: usize) -> i32 {
    let summary = route_summary(lab, &lab.subnets[i]).len() as i32;
    let nodes: i32 = lab
        .enis
        .iter()
        .filter(|e| e.subnet == i)
        .map(|e| node_height(lab, e) + 10)
        .sum();
    30 + LINE * summary + nodes + 4
}

pub fn svg(lab: &Lab, live: Option<&Live>) -> String {
    let mut azs: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in lab.subnets.iter().enumerate() {
        azs.entry(s.az.as_str()).or_default().push(i);
    }
    let columns = azs.len().max(1) as i32;
    let side = if lab.vpc_endpoints.is_empty() && lab.s3.is_none() {
        0
    } else {
        SIDE + GAP
    };
    // The VPC: AZ columns, then the endpoints' panel on its right edge;
    // S3 outside it, further right.
    let vpc_x = GAP;
    let cols_w = columns * (COL + GAP) + GAP;
    let vpc_w = cols_w
        + if lab.vpc_endpoints.is_empty() {
            0
        } else {
            SIDE
        };
    let width = vpc_x + vpc_w + side.max(GAP) + GAP;
    let mut s = Svg::new();

    // The internet and the IGW on the VPC's top edge.
    let hosts: Vec<String> = lab.internet.hosts.iter().map(|h| h.to_string()).collect();
    s.rect(vpc_x, 10, vpc_w, 34, "inet");
    s.text(
        vpc_x + 10,
        32,
        "head",
        &format!("internet: {}", hosts.join(", ")),
    );
    // The IGW sits on the VPC's top-left border, the VPC's title to its
    // right: the IGW's lines cross neither.
    let vpc_y = 104;
    let igw_y = vpc_y - 15;
    let igw_cx = vpc_x + GAP + 110;
    if let Some(igw) = &lab.internet_gateway {
        s.line(igw_cx, 44, igw_cx, igw_y, "edge igw-edge");
        s.rect(igw_cx - 110, igw_y, 220, 30, "igw");
        s.text(
            igw_cx - 100,
            igw_y + 20,
            "head",
            &format!("internet gateway {igw}"),
        );
    }

    // Tier rows across the AZ columns: public subnets, the load balancers
    // (between the tiers, where their traffic goes), then private subnets.
    // The IGW's lines drop from a bus above the first row: they cross no box.
    let bus_y = vpc_y + 32;
    let cols_y = vpc_y + 40;
    let row0 = cols_y + 26;
    let col_x = |c: i32| vpc_x + GAP + c * (COL + GAP);
    let mut boxes = Svg::new();
    let mut edges = Svg::new();
    let tier = |public: bool| -> Vec<Vec<usize>> {
        azs.values()
            .map(|subnets| {
                subnets
                    .iter()
                    .copied()
                    .filter(|&i| is_public(lab, &lab.subnets[i]) == public)
                    .collect()
            })
            .collect()
    };
    let (public_tier, private_tier) = (tier(true), tier(false));
    let row_height = |t: &[Vec<usize>]| {
        t.iter()
            .map(|col| col.iter().map(|&i| subnet_height(lab, i) + 12).sum::<i32>())
            .max()
            .unwrap_or(0)
    };
    let draw_tier = |t: &[Vec<usize>], y0: i32, boxes: &mut Svg, edges: &mut Svg| {
        for (c, col) in t.iter().enumerate() {
            let x = col_x(c as i32);
            let mut sy = y0;
            for (k, &i) in col.iter().enumerate() {
                let sub = &lab.subnets[i];
                let public = is_public(lab, sub);
                if public && k == 0 && lab.internet_gateway.is_some() {
                    edges.line(x + COL / 2, bus_y, x + COL / 2, sy, "edge igw-edge");
                }
                draw_subnet(lab, live, boxes, x, sy, i);
                sy += subnet_height(lab, i) + 12;
            }
        }
    };
    let public_h = row_height(&public_tier);
    draw_tier(&public_tier, row0, &mut boxes, &mut edges);
    if lab.internet_gateway.is_some() {
        let centers: Vec<i32> = public_tier
            .iter()
            .enumerate()
            .filter(|(_, col)| !col.is_empty())
            .map(|(c, _)| col_x(c as i32) + COL / 2)
            .collect();
        if let (Some(&a), Some(&b)) = (centers.iter().min(), centers.iter().max()) {
            edges.line(igw_cx, igw_y + 30, igw_cx, bus_y, "edge igw-edge");
            edges.line(a.min(igw_cx), bus_y, b.max(igw_cx), bus_y, "edge igw-edge");
        }
    }
    let mut y = row0 + public_h;
    let lbs_x = vpc_x + GAP;
    let lbs_w = cols_w - 2 * GAP;
    for lb in &lab.load_balancers {
        let lines = listener_lines(lab, lb, live);
        let h = 26 + LINE * lines.len() as i32 + 6;
        boxes.rect(lbs_x, y, lbs_w, h, "lb");
        let nodes: Vec<&str> = lb
            .nodes
            .iter()
            .map(|&n| lab.enis[n].node.as_str())
            .collect();
        boxes.text(
            lbs_x + 10,
            y + 18,
            "head",
            &format!(
                "load balancer {} · {} · nodes {}",
                lb.name,
                lb.dns_name,
                nodes.join(", ")
            ),
        );
        for (k, l) in lines.iter().enumerate() {
            boxes.text(lbs_x + 20, y + 36 + LINE * k as i32, "", l);
        }
        y += h + 12;
    }
    let private_y = y;
    draw_tier(&private_tier, private_y, &mut boxes, &mut edges);
    let col_bottom = private_y + row_height(&private_tier);
    for (c, az) in azs.keys().enumerate() {
        let x = col_x(c as i32);
        boxes.text(x + 8, cols_y + 17, "head", az);
        boxes.rect(x, cols_y, COL, col_bottom - cols_y, "az");
    }

    // Gateway endpoints on the VPC's right edge, S3 outside the VPC.
    let side_x = vpc_x + cols_w;
    let mut ey = row0;
    for v in &lab.vpc_endpoints {
        let tables: Vec<&str> = v
            .route_tables
            .iter()
            .map(|&t| lab.route_tables[t].name.as_str())
            .collect();
        boxes.rect(side_x, ey, SIDE - GAP, 74, "vpce");
        boxes.text(side_x + 8, ey + 18, "head", "gateway endpoint");
        boxes.text(side_x + 8, ey + 36, "", &v.name);
        boxes.text(side_x + 8, ey + 52, "small", &v.id);
        boxes.text(
            side_x + 8,
            ey + 68,
            "small",
            &format!("tables {}", tables.join(", ")),
        );
        if lab.s3.is_some() {
            edges.line(
                side_x + SIDE - GAP,
                ey + 37,
                vpc_x + vpc_w + GAP,
                row0 + 37,
                "edge",
            );
        }
        ey += 74 + 12;
    }

    // Target groups below the columns, with each target's live health.
    let mut ty = col_bottom + 12;
    let mut tgs = Svg::new();
    let tg_w = COL - 16;
    let per_row = ((cols_w - 2 * GAP) / (tg_w + GAP)).max(1);
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
        for (j, (l, t)) in lines.iter().zip(&tg.targets).enumerate() {
            let ly = ty + 36 + LINE * j as i32;
            let health = live
                .and_then(|lv| lv.health.get(&(tg.name.clone(), t.instance.clone())))
                .map_or("unknown", String::as_str);
            let class = match health {
                "healthy" | "unhealthy" | "initial" | "draining" | "unused" => health,
                _ => "unknown",
            };
            tgs.dot(x + 16, ly - 4, class);
            tgs.text(x + 26, ly, "", l);
        }
    }
    let vpc_bottom = ty + row_h + 26;

    // S3, outside the VPC ("AWS Cloud" side).
    let mut outside = Svg::new();
    if let Some(s3) = &lab.s3 {
        let x = vpc_x + vpc_w + GAP;
        let buckets: Vec<&str> = s3.buckets.iter().map(|b| b.name.as_str()).collect();
        let lines = 3 + buckets.len() as i32;
        outside.rect(x, row0, SIDE - GAP, 26 + LINE * lines, "s3");
        outside.text(x + 8, row0 + 18, "head", "Amazon S3 (AWS side)");
        outside.text(
            x + 8,
            row0 + 36,
            "",
            &format!("{} · {}", s3.address, s3.prefix_list_id),
        );
        outside.text(
            x + 8,
            row0 + 54,
            "small",
            &format!("range {}, HTTP 80/443", s3.range),
        );
        outside.text(x + 8, row0 + 72, "small", "via endpoint, or the internet");
        for (k, b) in buckets.iter().enumerate() {
            outside.text(
                x + 8,
                row0 + 90 + LINE * k as i32,
                "",
                &format!("bucket {b}"),
            );
        }
    }

    // The legend.
    let ly = vpc_bottom + GAP;
    let mut legend = Svg::new();
    let items: [(&str, &str, &str); 11] = [
        ("rect", "public", "public subnet (route to the IGW)"),
        ("rect", "private", "private subnet"),
        ("rect", "sg", "security group (around its ENIs)"),
        ("rect", "instance", "instance"),
        ("rect", "container", "Docker container (on its host)"),
        ("rect", "stopped", "stopped (vpcsim stop)"),
        ("rect", "crashed", "workload crashed"),
        ("dot", "healthy", "target healthy"),
        ("dot", "unhealthy", "target unhealthy"),
        ("dot", "initial", "initial / draining"),
        ("dot", "unknown", "health not known (lab not up)"),
    ];
    let per_line = ((width - 2 * GAP - 80) / 230).max(1) as usize;
    let legend_rows = items.len().div_ceil(per_line) as i32;
    legend.rect(vpc_x, ly, width - 2 * GAP, 30 + 20 * legend_rows, "legend");
    legend.text(vpc_x + 10, ly + 20, "head", "legend");
    for (k, (shape, class, label)) in items.iter().enumerate() {
        let x = vpc_x + 80 + (k % per_line) as i32 * 230;
        let y = ly + 12 + (k / per_line) as i32 * 20;
        if *shape == "rect" {
            legend.rect(x, y, 22, 14, class);
        } else {
            legend.dot(x + 11, y + 7, class);
        }
        legend.text(x + 30, y + 11, "small", label);
    }
    let height = ly + 30 + 20 * legend_rows + GAP;

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
        r##"<rect width="{width}" height="{height}" fill="#ffffff"/>"##
    )
    .unwrap();
    writeln!(
        out,
        r#"<rect class="vpc" x="{vpc_x}" y="{vpc_y}" width="{vpc_w}" height="{}" rx="8"/>"#,
        vpc_bottom - vpc_y
    )
    .unwrap();
    let title_x = if lab.internet_gateway.is_some() {
        igw_cx + 130
    } else {
        vpc_x + 10
    };
    writeln!(
        out,
        r#"<text class="title" x="{title_x}" y="{}">{}</text>"#,
        vpc_y + 22,
        esc(&format!("VPC {} · {}", lab.vpc_cidr, lab.region))
    )
    .unwrap();
    writeln!(
        out,
        r#"<text class="small" x="{}" y="{}">{}</text>"#,
        vpc_x + 10,
        vpc_bottom - 6,
        esc(&format!("{} · lab {}", lab.vpc_id, lab.name))
    )
    .unwrap();
    out.push_str(&edges.body);
    out.push_str(&s.body);
    out.push_str(&boxes.body);
    out.push_str(&tgs.body);
    out.push_str(&outside.body);
    out.push_str(&legend.body);
    out.push_str("</svg>\n");
    out
}

/// One subnet box at (x, y): header, route table and NACL, then its nodes,
/// each in its security groups (red dashed), containers inside their host.
fn draw_subnet(lab: &Lab, live: Option<&Live>, b: &mut Svg, x: i32, y: i32, i: usize) {
    let sub = &lab.subnets[i];
    let public = is_public(lab, sub);
    let summary = route_summary(lab, sub);
    let head = 30 + LINE * summary.len() as i32;
    b.rect(
        x + 8,
        y,
        COL - 16,
        subnet_height(lab, i),
        if public { "public" } else { "private" },
    );
    b.text(
        x + 16,
        y + 17,
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
        b.text(x + indent, y + 34 + LINE * k as i32, "small", line);
    }
    let mut ny = y + head + 4;
    for e in lab.enis.iter().filter(|e| e.subnet == i) {
        let h = node_height(lab, e);
        let (label, kind) = node_label(lab, e);
        let state = node_state(live, &e.node);
        let class = match state {
            Some("stopped") => format!("{kind} stopped"),
            Some("crashed") => format!("{kind} crashed"),
            _ => kind.to_string(),
        };
        if !e.security_groups.is_empty() {
            b.rect(x + 15, ny - 3, COL - 30, h + 6, "sg");
        }
        b.rect(x + 18, ny, COL - 36, h, &class);
        let label = match state {
            Some(s @ ("stopped" | "crashed")) => format!("{label} · {s}"),
            _ => label,
        };
        b.text(x + 26, ny + 16, "", &label);
        let groups: Vec<&str> = e
            .security_groups
            .iter()
            .map(|&g| lab.security_groups[g].name.as_str())
            .collect();
        if !groups.is_empty() {
            b.text(
                x + 26,
                ny + 32,
                "sgtext",
                &format!("security groups: {}", groups.join(", ")),
            );
        }
        for (k, c) in lab
            .containers
            .iter()
            .filter(|c| c.host == e.node)
            .enumerate()
        {
            let cy = ny + NODE_H + CONTAINER_H * k as i32 - 4;
            let cclass = match node_state(live, &c.name) {
                Some("stopped") => "container stopped",
                Some("crashed") => "container crashed",
                _ => "container",
            };
            b.rect(x + 30, cy, COL - 60, CONTAINER_H - 4, cclass);
            let ports: Vec<String> = c.ports.iter().map(|p| p.to_string()).collect();
            b.text(
                x + 38,
                cy + 13,
                "small",
                &format!("{} · {} · {}", c.name, c.image, ports.join(", ")),
            );
        }
        ny += h + 10;
    }
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

/// Each node's state from its current workloads (the newest record of each
/// role), and each container's from Docker.
pub fn node_states(state: &crate::state::LabState) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    let procs = &state.processes;
    for (i, p) in procs.iter().enumerate() {
        if procs[i + 1..]
            .iter()
            .any(|q| q.node == p.node && q.role == p.role)
        {
            continue;
        }
        let s = if p.stopped {
            "stopped"
        } else if p.is_alive() || p.role == "user-data" {
            "running"
        } else {
            "crashed"
        };
        let e = out
            .entry(p.node.clone())
            .or_insert_with(|| "running".into());
        if s != "running" {
            *e = s.into();
        }
    }
    for c in crate::containers::status(&state.plan) {
        let s = if c.state == "running" {
            "running"
        } else {
            "stopped"
        };
        out.insert(c.name, s.into());
    }
    out
}
