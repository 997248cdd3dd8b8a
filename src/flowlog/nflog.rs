//! The NFLOG (nfnetlink_log) client of the flow log daemon: binds one log
//! group of the current network namespace and yields the packets nftables
//! `log group N` statements send to it, with their prefix and interfaces.
//! Messages are built and parsed by `netlink-packet-netfilter` (the
//! `rtnetlink` family) over a `netlink-sys` socket; this file owns only what
//! a flow log needs of a packet. It must not aggregate or write records
//! (`daemon.rs` does).

use netlink_packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload, NETLINK_HEADER_LEN};
use netlink_packet_netfilter::constants::{
    NFNL_SUBSYS_ULOG, NFULA_IFINDEX_INDEV, NFULA_IFINDEX_PHYSINDEV, NFULA_PAYLOAD, NFULA_PREFIX,
    NFULNL_MSG_PACKET,
};
use netlink_packet_netfilter::nflog::config_request;
use netlink_packet_netfilter::nflog::nlas::config::{ConfigCmd, ConfigMode, ConfigNla, Timeout};
use netlink_packet_netfilter::NetfilterMessage;
use netlink_packet_utils::nla::NlasIterator;
use netlink_packet_utils::parsers::parse_u32_be;
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

/// IPv4 header plus the first bytes of TCP/UDP: enough for the ports.
const COPY_RANGE: u32 = 64;
/// A datagram of log messages fits in this (the kernel's default
/// nfnetlink_log buffer is one page, at most 128 KiB when configured).
const RECV_BUFFER: usize = 1 << 16;
/// Packets the kernel gathers into one datagram before sending it...
const BATCH: u32 = 64;
/// ...within this many bytes (a 64-byte copy makes a message of about 200)...
const KERNEL_BUFFER: u32 = 1 << 15;
/// ...or after this long, whichever comes first.
const FLUSH: Duration = Duration::from_millis(50);

/// A logged IPv4 packet, its prefix borrowed from the datagram (no
/// allocation per packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged<'a> {
    pub prefix: &'a str,
    /// Interface index the packet came in on, the bridge port for bridged
    /// packets (0 if none).
    pub indev: u32,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub sport: u16,
    pub dport: u16,
    /// Length of the whole IP packet (from its header, not the copy).
    pub bytes: u16,
}

pub struct NflogSocket {
    socket: Socket,
    buf: Vec<u8>,
}

impl NflogSocket {
    /// Binds `group` in the calling thread's network namespace, copying
    /// the start of each packet; `timeout` bounds each `recv`.
    pub fn bind(group: u16, timeout: Duration) -> io::Result<NflogSocket> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        setsockopt(
            &socket,
            sockopt::ReceiveTimeout,
            &TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _),
        )?;
        // Bursts of probes must not overflow the default buffer.
        setsockopt(&socket, sockopt::RcvBufForce, &(4 << 20))?;
        let mut s = NflogSocket {
            socket,
            buf: Vec::with_capacity(RECV_BUFFER),
        };
        let family = libc::AF_UNSPEC as u8;
        s.request(config_request(
            family,
            group,
            vec![ConfigNla::Cmd(ConfigCmd::Bind)],
        ))?;
        s.request(config_request(
            family,
            group,
            vec![
                ConfigNla::Mode(ConfigMode::new_packet(COPY_RANGE)),
                // The kernel's default sends every packet in a datagram of
                // its own: one wake-up and `recv` per packet. Batched, a
                // busy lab costs a syscall per batch; a lone packet waits
                // at most FLUSH, far inside a flow log's interval.
                ConfigNla::QThresh(BATCH),
                ConfigNla::NlBufSiz(KERNEL_BUFFER),
                ConfigNla::Timeout(Timeout::from(FLUSH)),
            ],
        ))?;
        Ok(s)
    }

    /// Sends a config message and reads its acknowledgement.
    fn request(&mut self, msg: NetlinkMessage<NetfilterMessage>) -> io::Result<()> {
        let mut out = vec![0; msg.buffer_len()];
        msg.serialize(&mut out);
        self.socket.send(&out, 0)?;
        self.buf.clear();
        self.socket.recv(&mut self.buf, 0)?;
        let ack = NetlinkMessage::<NetfilterMessage>::deserialize(&self.buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        match ack.payload {
            NetlinkPayload::Error(e) => match e.code {
                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Packets received within the timeout (empty when none came).
    /// ENOBUFS (the kernel dropped log messages) is not fatal.
    pub fn recv(&mut self) -> io::Result<Vec<Logged<'_>>> {
        self.buf.clear();
        match self.socket.recv(&mut self.buf, 0) {
            Ok(_) => Ok(parse_datagram(&self.buf)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) || e.raw_os_error() == Some(libc::ENOBUFS)
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                Ok(vec![])
            }
            Err(e) => Err(e),
        }
    }
}

/// The IPv4 packets logged in one datagram from the kernel; other
/// messages are skipped. Read in place with the family's buffer types and
/// the crate's constants: the crate's typed `PacketNla`s copy every
/// attribute (payload, prefix, hardware header) into the heap, ten times
/// the cost of this loop per packet (README, "Dependencies").
pub fn parse_datagram(mut buf: &[u8]) -> Vec<Logged<'_>> {
    const PACKET: u16 = (NFNL_SUBSYS_ULOG as u16) << 8 | NFULNL_MSG_PACKET as u16;
    let mut out = Vec::new();
    // Checked for a header first: the crate's error for a short buffer
    // captures a backtrace, which would cost more than the whole datagram.
    while buf.len() >= NETLINK_HEADER_LEN {
        let Ok(msg) = NetlinkBuffer::new_checked(buf) else {
            break;
        };
        if msg.message_type() == PACKET {
            out.extend(logged(msg.payload()));
        }
        buf = &buf[(msg.length() as usize).next_multiple_of(4).min(buf.len())..];
    }
    out
}

/// What a flow log needs of one NFULNL_MSG_PACKET: nfgenmsg, then
/// attributes (up to the first malformed one).
fn logged(body: &[u8]) -> Option<Logged<'_>> {
    let (mut prefix, mut indev, mut physindev, mut payload) = ("", 0u32, 0u32, None);
    for nla in NlasIterator::new(body.get(4..)?).map_while(Result::ok) {
        let (kind, len) = (nla.kind(), nla.value_length());
        // The value borrowed from the datagram, not from `nla`.
        let data = &nla.into_inner()[4..4 + len];
        match kind {
            NFULA_PREFIX => {
                // Our own ASCII prefixes; anything else is not ours.
                prefix =
                    std::str::from_utf8(data.split(|&b| b == 0).next().unwrap_or(&[])).unwrap_or("")
            }
            NFULA_IFINDEX_INDEV => indev = parse_u32_be(data).ok()?,
            // Bridged packets: INDEV is the bridge, PHYSINDEV the port.
            NFULA_IFINDEX_PHYSINDEV => physindev = parse_u32_be(data).ok()?,
            NFULA_PAYLOAD => payload = Some(data),
            _ => {}
        }
    }
    let ip = payload?;
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    let protocol = ip[9];
    let ports = match protocol {
        6 | 17 if ip.len() >= ihl + 4 => (
            u16::from_be_bytes([ip[ihl], ip[ihl + 1]]),
            u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]),
        ),
        _ => (0, 0),
    };
    Some(Logged {
        prefix,
        indev: if physindev != 0 { physindev } else { indev },
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        protocol,
        sport: ports.0,
        dport: ports.1,
        bytes: u16::from_be_bytes([ip[2], ip[3]]),
    })
}

/// Name of interface `index` in the calling thread's namespace.
pub fn if_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKET: u16 = 4 << 8; // NFNL_SUBSYS_ULOG, NFULNL_MSG_PACKET (0)
    const NFULA_IFINDEX_INDEV: u16 = 4;
    const NFULA_IFINDEX_PHYSINDEV: u16 = 6;
    const NFULA_PAYLOAD: u16 = 9;
    const NFULA_PREFIX: u16 = 10;

    /// A packet log message as the kernel sends it, byte by byte.
    fn nlmsg(kind: u16, group: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = vec![libc::AF_INET as u8, 0];
        body.extend_from_slice(&group.to_be_bytes());
        for (t, data) in attrs {
            body.extend_from_slice(&(4 + data.len() as u16).to_ne_bytes());
            body.extend_from_slice(&t.to_ne_bytes());
            body.extend_from_slice(data);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        let mut msg = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&[0; 10]); // flags, seq, port id
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn parses_a_logged_tcp_packet() {
        let mut ip = vec![
            0x45, 0, 0, 60, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 10, 4, 10, 0, 20, 16,
        ];
        ip.extend_from_slice(&[0xc0, 0x00, 0x1f, 0x40]); // 49152 -> 8000
        let mut prefix = b"vpcsim:A".to_vec();
        prefix.push(0);
        let msg = nlmsg(
            PACKET,
            1,
            &[
                (NFULA_PREFIX, &prefix),
                (NFULA_IFINDEX_INDEV, &7u32.to_be_bytes()),
                (NFULA_PAYLOAD, &ip),
            ],
        );
        let p = parse_datagram(&msg).pop().unwrap();
        assert_eq!(p.prefix, "vpcsim:A");
        assert_eq!(p.indev, 7);
        assert_eq!((p.sport, p.dport, p.bytes), (49152, 8000, 60));
        assert_eq!(p.dst, Ipv4Addr::new(10, 0, 20, 16));
    }

    #[test]
    fn a_bridged_packet_names_its_port_not_the_bridge() {
        let ip = [
            0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 10, 99, 10, 0, 10, 17,
        ];
        let msg = nlmsg(
            PACKET,
            1,
            &[
                (NFULA_IFINDEX_INDEV, &3u32.to_be_bytes()),
                (NFULA_IFINDEX_PHYSINDEV, &12u32.to_be_bytes()),
                (NFULA_PAYLOAD, &ip),
            ],
        );
        assert_eq!(parse_datagram(&msg).pop().unwrap().indev, 12);
    }
}
