//! In-process cost of reading NFLOG messages (the flow log daemon's parser):
//! datagrams of 32 packet logs laid out as the kernel sends them for a
//! forwarded, bridged TCP packet (header, prefix, in/out devices and bridge
//! ports, hardware address and header, 64 copied bytes), parsed again and
//! again. Prints packets parsed per second on one core.
//!
//! Usage: bench_nflog [ROUNDS]

use std::hint::black_box;
use std::time::Instant;
use vpcsim::flowlog::nflog::parse_datagram;

const PER_DATAGRAM: usize = 32;

fn attr(body: &mut Vec<u8>, kind: u16, data: &[u8]) {
    body.extend_from_slice(&(4 + data.len() as u16).to_ne_bytes());
    body.extend_from_slice(&kind.to_ne_bytes());
    body.extend_from_slice(data);
    body.resize(body.len().next_multiple_of(4), 0);
}

/// One NFULNL_MSG_PACKET message of group 1, attributes in the kernel's order.
fn message(i: u8) -> Vec<u8> {
    let mut body = vec![libc::AF_INET as u8, 0, 0, 1];
    attr(&mut body, 1, &[0x08, 0x00, 2, 0]); // PACKET_HDR: IPv4, forward hook
    attr(&mut body, 10, b"vpcsim:A\0"); // PREFIX
    attr(&mut body, 4, &3u32.to_be_bytes()); // IFINDEX_INDEV: the bridge
    attr(&mut body, 5, &5u32.to_be_bytes()); // IFINDEX_OUTDEV
    attr(&mut body, 6, &12u32.to_be_bytes()); // IFINDEX_PHYSINDEV: the port
    attr(&mut body, 8, &[0, 6, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0]); // HWADDR
    attr(&mut body, 15, &1u16.to_be_bytes()); // HWTYPE: Ethernet
    attr(&mut body, 17, &14u16.to_be_bytes()); // HWLEN
    attr(&mut body, 16, &[0; 14]); // HWHEADER
    let mut ip = vec![
        0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 10, i, 10, 0, 20, 16,
    ];
    ip.extend_from_slice(&[0xc0, i, 0x1f, 0x40]);
    ip.resize(64, 0);
    attr(&mut body, 9, &ip); // PAYLOAD
    let mut msg = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
    msg.extend_from_slice(&(4u16 << 8).to_ne_bytes()); // ULOG, MSG_PACKET
    msg.extend_from_slice(&[0; 10]);
    msg.extend_from_slice(&body);
    msg
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(200_000, |s| s.parse().expect("ROUNDS"));
    let datagram: Vec<u8> = (0..PER_DATAGRAM as u8).flat_map(message).collect();
    assert_eq!(parse_datagram(&datagram).len(), PER_DATAGRAM);
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(parse_datagram(black_box(&datagram)));
    }
    let n = rounds * PER_DATAGRAM;
    let elapsed = start.elapsed();
    println!(
        "{n} packets in {:.2} s: {:.0} ns per packet, {:.0} packets/s on one core",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / n as f64,
        n as f64 / elapsed.as_secs_f64()
    );
}
