//! In-process cost of the Amazon DNS's wire format (`scripts/bench-dns`):
//! parsing a query and building its answer with the canary lab's zone, no
//! sockets. The query mix is the one `scripts/bench-dns` sends with dnsperf.
//!
//! Usage: bench_dns [TOPOLOGY] [ROUNDS]

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;
use vpcsim::services::dns::Zone;

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(name).expect("a valid name"),
        rtype,
    ));
    m.to_vec().expect("a query encodes")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let file = PathBuf::from(args.get(1).map_or("topologies/canary.toml", |s| s));
    let rounds: usize = args.get(2).map_or(200_000, |s| s.parse().expect("ROUNDS"));
    let lab = vpcsim::topology::load(&file).expect("the topology loads");
    let zone = Zone::for_lab(&lab, true);
    let queries = [
        query(&lab.load_balancers[0].dns_name, RecordType::A),
        query("s3.us-east-1.amazonaws.com", RecordType::A),
        query("p4-buquet.s3.us-east-1.amazonaws.com", RecordType::A),
        query("ip-10-0-20-16.ec2.internal", RecordType::A),
        query("s3.amazonaws.com", RecordType::AAAA),
        query("www.example.com", RecordType::A),
    ];
    let start = Instant::now();
    for _ in 0..rounds {
        for q in &queries {
            black_box(zone.answer(black_box(q)));
        }
    }
    let n = rounds * queries.len();
    let elapsed = start.elapsed();
    println!(
        "{n} queries in {:.2} s: {:.0} ns per query, {:.0} queries/s on one core",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / n as f64,
        n as f64 / elapsed.as_secs_f64()
    );
}
