//! The Amazon-provided DNS (VPC base + 2) and the public resolver the
//! internet's hosts use: a UDP responder for the names a lab has, NXDOMAIN
//! for everything else (the lab is offline). The wire format is
//! `hickory-proto`'s; this file owns only which names exist and how they are
//! answered. It must not touch sockets or the query log (the daemon in
//! `services/mod.rs` does).

use crate::topology::plan::{private_domain, Lab};
use hickory_proto::op::{Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use std::net::Ipv4Addr;

/// Which names a resolver knows.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Exact names (lowercase, no trailing dot) -> addresses.
    names: Vec<(String, Vec<Ipv4Addr>)>,
    /// S3's address: `s3.amazonaws.com`, `s3.<region>.amazonaws.com` and any
    /// `<bucket>.` under them.
    s3: Option<(Vec<String>, Ipv4Addr)>,
    /// `ip-10-0-20-16.ec2.internal` for addresses inside the VPC (only the
    /// VPC's own resolver answers these, as on AWS).
    private: Option<(String, ipnet::Ipv4Net)>,
}

impl Zone {
    /// `vpc`: the Amazon-provided DNS (private names too); otherwise the
    /// internet's view.
    pub fn for_lab(lab: &Lab, vpc: bool) -> Zone {
        let names = lab
            .load_balancers
            .iter()
            .map(|lb| {
                let ips = lb
                    .nodes
                    .iter()
                    .filter_map(|&n| lab.enis[n].public_ip)
                    .collect();
                (lb.dns_name.to_ascii_lowercase(), ips)
            })
            .collect();
        let s3 = lab.s3.as_ref().map(|s| {
            let suffixes = vec![
                "s3.amazonaws.com".to_string(),
                format!("s3.{}.amazonaws.com", lab.region),
            ];
            (suffixes, s.address)
        });
        Zone {
            names,
            s3,
            private: vpc.then(|| (private_domain(&lab.region), lab.vpc_cidr)),
        }
    }

    /// Addresses of `name`; None: the name does not exist.
    pub fn lookup(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some((_, ips)) = self.names.iter().find(|(n, _)| *n == name) {
            return Some(ips.clone());
        }
        if let Some((suffixes, ip)) = &self.s3 {
            let hit = suffixes.iter().any(|s| {
                name == *s
                    || name
                        .strip_suffix(s.as_str())
                        .is_some_and(|b| b.ends_with('.'))
            });
            if hit {
                return Some(vec![*ip]);
            }
        }
        let (domain, cidr) = self.private.as_ref()?;
        let host = name
            .strip_suffix(domain.as_str())?
            .strip_suffix('.')?
            .strip_prefix("ip-")?;
        let ip: Ipv4Addr = host.replace('-', ".").parse().ok()?;
        cidr.contains(&ip).then(|| vec![ip])
    }

    /// Answers one query datagram; None for what is not a query (too short
    /// for a header, or a response). Only the header and the question are
    /// read: the answer depends on nothing else, and the reply carries no
    /// EDNS record (as a resolver without EDNS answers).
    pub fn answer(&self, query: &[u8]) -> Option<Reply> {
        let mut decoder = BinDecoder::new(query);
        let header = Header::read(&mut decoder).ok()?;
        if header.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut reply = Message::response(header.metadata.id, header.metadata.op_code);
        reply.metadata = Metadata::response_from_request(&header.metadata);
        reply.metadata.authoritative = true;
        reply.metadata.recursion_available = true;
        let mut question = None;
        reply.metadata.response_code =
            if header.counts.queries != 1 || header.metadata.op_code != OpCode::Query {
                ResponseCode::NotImp
            } else {
                // A malformed question (a label over 63 octets, a name over
                // 255, cut short) is a format error, as RFC 1035 resolvers
                // answer.
                match Query::read(&mut decoder) {
                    Err(_) => ResponseCode::FormErr,
                    Ok(q) => {
                        let rcode = match self.lookup(&q.name().to_ascii()) {
                            None => ResponseCode::NXDomain,
                            Some(ips)
                                if q.query_type() == RecordType::A
                                    && q.query_class() == DNSClass::IN =>
                            {
                                reply.add_answers(ips.into_iter().map(|ip| {
                                    Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip)))
                                }));
                                ResponseCode::NoError
                            }
                            Some(_) => ResponseCode::NoError, // the name exists without that type: NODATA
                        };
                        reply.add_query(q.clone());
                        question = Some(q);
                        rcode
                    }
                }
            };
        let wire = reply.to_vec().ok()?;
        Some(Reply {
            wire,
            rcode: reply.metadata.response_code,
            answers: reply.answers.len(),
            question,
        })
    }
}

/// TTL of every answer, in seconds.
const TTL: u32 = 60;

/// A reply on the wire and what the query log says of it.
#[derive(Debug)]
pub struct Reply {
    pub wire: Vec<u8>,
    pub rcode: ResponseCode,
    pub answers: usize,
    /// None when there was no readable question.
    pub question: Option<Query>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        Zone {
            names: vec![(
                "alb-1.us-east-1.elb.amazonaws.com".into(),
                vec![Ipv4Addr::new(198, 51, 100, 5)],
            )],
            s3: Some((
                vec![
                    "s3.amazonaws.com".into(),
                    "s3.us-east-1.amazonaws.com".into(),
                ],
                Ipv4Addr::new(192, 0, 2, 10),
            )),
            private: Some(("ec2.internal".into(), "10.0.0.0/16".parse().unwrap())),
        }
    }

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn names_of_the_lab() {
        let z = zone();
        let s3 = Some(vec![Ipv4Addr::new(192, 0, 2, 10)]);
        assert_eq!(z.lookup("s3.us-east-1.amazonaws.com"), s3);
        assert_eq!(z.lookup("p4-buquet.s3.us-east-1.amazonaws.com."), s3);
        assert_eq!(z.lookup("P4-Buquet.S3.amazonaws.com"), s3);
        assert_eq!(z.lookup("xs3.amazonaws.com"), None);
        assert_eq!(
            z.lookup("ip-10-0-20-16.ec2.internal"),
            Some(vec![Ipv4Addr::new(10, 0, 20, 16)])
        );
        assert_eq!(z.lookup("ip-192-168-0-1.ec2.internal"), None);
        assert_eq!(
            z.lookup("alb-1.us-east-1.elb.amazonaws.com"),
            Some(vec![Ipv4Addr::new(198, 51, 100, 5)])
        );
        assert_eq!(z.lookup("example.com"), None);
    }

    #[test]
    fn wire_format() {
        let z = zone();
        let r = z.answer(&query("s3.amazonaws.com", 1)).unwrap().wire;
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "one answer");
        assert_eq!(&r[r.len() - 4..], &[192, 0, 2, 10]);
        let r = z.answer(&query("example.com", 1)).unwrap().wire;
        assert_eq!(r[3] & 0x0f, 3, "NXDOMAIN");
        let r = z.answer(&query("s3.amazonaws.com", 28)).unwrap().wire;
        assert_eq!((r[3] & 0x0f, r[7]), (0, 0), "AAAA: NODATA");
        assert!(z.answer(&[1, 2, 3]).is_none());
        // 4 labels of 63 octets: 257 octets on the wire, over 255.
        let long = vec!["a".repeat(63); 4].join(".");
        let r = z.answer(&query(&long, 1)).unwrap().wire;
        assert_eq!((r[3] & 0x0f, r[7]), (1, 0), "FORMERR");
        let ok = [
            "a".repeat(63),
            "a".repeat(63),
            "a".repeat(63),
            "a".repeat(61),
        ]
        .join(".");
        let r = z.answer(&query(&ok, 1)).unwrap().wire;
        assert_eq!(r[3] & 0x0f, 3, "255 octets is a name: NXDOMAIN");
    }
}
