//! A minimal NFLOG (nfnetlink_log) client: binds one log group of the
//! current network namespace and yields the packets nftables `log group N`
//! statements send to it, with their prefix and interfaces.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_PHYSINDEV: u16 = 6;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
/// IPv4 header plus the first bytes of TCP/UDP: enough for the ports.
const COPY_RANGE: u32 = 64;
const NLMSG_ERROR: u16 = 2;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// A logged IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub prefix: String,
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
    fd: OwnedFd,
}

fn nlmsg(kind: u16, flags: u16, group: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = vec![libc::AF_UNSPEC as u8, 0];
    body.extend_from_slice(&group.to_be_bytes());
    for (t, data) in attrs {
        let len = 4 + data.len();
        body.extend_from_slice(&(len as u16).to_ne_bytes());
        body.extend_from_slice(&t.to_ne_bytes());
        body.extend_from_slice(data);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    msg.extend_from_slice(&body);
    msg
}

impl NflogSocket {
    /// Binds `group` in the calling thread's network namespace, copying
    /// the start of each packet; `timeout` bounds each `recv`.
    pub fn bind(group: u16, timeout: Duration) -> io::Result<NflogSocket> {
        // SAFETY: plain socket syscalls on a descriptor we own.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: addr is a valid sockaddr_nl.
        let rc = unsafe {
            libc::bind(
                raw,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: setsockopt with a timeval.
        unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
            // Bursts of probes must not overflow the default buffer.
            let size: libc::c_int = 4 << 20;
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &size as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
        }
        let s = NflogSocket { fd };
        let config = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        s.request(&nlmsg(
            config,
            flags,
            group,
            &[(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND])],
        ))?;
        let mut mode = COPY_RANGE.to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
        s.request(&nlmsg(config, flags, group, &[(NFULA_CFG_MODE, &mode)]))?;
        Ok(s)
    }

    /// Sends a config message and reads its acknowledgement.
    fn request(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: sending our buffer on our socket.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr() as *const _, msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 8192];
        let n = self.recv_raw(&mut buf)?;
        for (kind, body) in messages(&buf[..n]) {
            if kind == NLMSG_ERROR && body.len() >= 4 {
                let code = i32::from_ne_bytes(body[..4].try_into().expect("4 bytes"));
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
            }
        }
        Ok(())
    }

    fn recv_raw(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: receiving into our buffer.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut _,
                buf.len(),
                0,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Packets received within the timeout (empty when none came).
    /// ENOBUFS (the kernel dropped log messages) is not fatal.
    pub fn recv(&self) -> io::Result<Vec<Logged>> {
        let mut buf = vec![0u8; 1 << 16];
        let n = match self.recv_raw(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) || e.raw_os_error() == Some(libc::ENOBUFS)
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return Ok(vec![])
            }
            Err(e) => return Err(e),
        };
        let packet = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
        Ok(messages(&buf[..n])
            .filter(|(kind, _)| *kind == packet)
            .filter_map(|(_, body)| parse_packet(body))
            .collect())
    }
}

/// (type, payload) of each netlink message in a datagram.
fn messages(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes(buf[..4].try_into().ok()?) as usize;
        if len < 16 || len > buf.len() {
            return None;
        }
        let kind = u16::from_ne_bytes(buf[4..6].try_into().ok()?);
        let body = &buf[16..len];
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
        Some((kind, body))
    })
}

/// An NFULNL_MSG_PACKET body: nfgenmsg, then attributes.
fn parse_packet(body: &[u8]) -> Option<Logged> {
    let mut attrs = body.get(4..)?;
    let (mut prefix, mut indev, mut physindev, mut payload) = (String::new(), 0u32, 0u32, None);
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes(attrs[..2].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(attrs[2..4].try_into().ok()?) & NLA_TYPE_MASK;
        if len < 4 || len > attrs.len() {
            break;
        }
        let data = &attrs[4..len];
        match kind {
            NFULA_PREFIX => {
                prefix = String::from_utf8_lossy(data.split(|&b| b == 0).next().unwrap_or(&[]))
                    .into_owned()
            }
            NFULA_IFINDEX_INDEV if data.len() >= 4 => {
                indev = u32::from_be_bytes(data[..4].try_into().ok()?)
            }
            // Bridged packets: INDEV is the bridge, PHYSINDEV the port.
            NFULA_IFINDEX_PHYSINDEV if data.len() >= 4 => {
                physindev = u32::from_be_bytes(data[..4].try_into().ok()?)
            }
            NFULA_PAYLOAD => payload = Some(data),
            _ => {}
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
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

    #[test]
    fn parses_a_logged_tcp_packet() {
        let mut ip = vec![
            0x45, 0, 0, 60, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 10, 4, 10, 0, 20, 16,
        ];
        ip.extend_from_slice(&[0xc0, 0x00, 0x1f, 0x40]); // 49152 -> 8000
        let mut prefix = b"vpcsim:A".to_vec();
        prefix.push(0);
        let msg = nlmsg(
            (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET,
            0,
            1,
            &[
                (NFULA_PREFIX, &prefix),
                (NFULA_IFINDEX_INDEV, &7u32.to_be_bytes()),
                (NFULA_PAYLOAD, &ip),
            ],
        );
        let (kind, body) = messages(&msg).next().unwrap();
        assert_eq!(kind, (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET);
        let p = parse_packet(body).unwrap();
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
            (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET,
            0,
            1,
            &[
                (NFULA_IFINDEX_INDEV, &3u32.to_be_bytes()),
                (NFULA_IFINDEX_PHYSINDEV, &12u32.to_be_bytes()),
                (NFULA_PAYLOAD, &ip),
            ],
        );
        let (_, body) = messages(&msg).next().unwrap();
        assert_eq!(parse_packet(body).unwrap().indev, 12);
    }
}
