//! The packet program of the NFQUEUE-based network faults (delay, reorder, duplicate,
//! corrupt): it runs in a fault sidecar, in the target node's network namespace, as
//! `faultline packets serve`, and does the fault's [`Action`] to each packet the fault's
//! iptables rules queue to it: holds it for the delay, holds a share of them back so later
//! ones overtake them, sends a share twice, or flips one bit in a share. It needs no netem:
//! this machine's kernel, like many, has NFQUEUE but no `sch_netem`.
//!
//! A duplicate is sent from a raw socket whose packets carry [`MARK`]; the rules let marked
//! packets pass, so a copy is never queued again. The kernel hands the program every packet
//! with its checksums complete (the queue does not take partial-checksum packets), so a copy
//! is a valid packet and a flipped bit is one the receiver's checksum catches.
//!
//! The rules use `--queue-bypass`: while no program is bound to the queue (before it starts,
//! after it ends), packets pass untouched rather than being dropped. On SIGTERM the program
//! lets every packet it holds go at once and exits. Its counters go to a stats file, which
//! the fault reads: the proof that the program saw the node's packets.
//!
//! `faultline packets rtt` measures a round trip from the node's namespace (TCP connects to
//! a peer; a refusal is an answer too): a fault is reported in effect only once the round
//! trip grew by the delay.

use std::collections::BinaryHeap;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::rng::Rng;

pub use crate::cluster::backend::HELPER;

/// True when the running kernel queues packets to a program: nfnetlink_queue and the iptables
/// NFQUEUE target are there (built in, loaded, or loadable).
pub fn nfqueue_available() -> bool {
    let queue = Path::new("/proc/net/netfilter/nfnetlink_queue").exists();
    let target = std::fs::read_to_string("/proc/net/ip_tables_targets")
        .is_ok_and(|t| t.lines().any(|l| l.trim() == "NFQUEUE"))
        || std::fs::read_to_string("/proc/sys/kernel/osrelease").is_ok_and(|r| {
            Path::new(&format!(
                "/lib/modules/{}/kernel/net/netfilter/xt_NFQUEUE.ko",
                r.trim()
            ))
            .exists()
        });
    queue && target
}

/// How each held packet's delay is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// delay ± jitter, every value in between equally likely.
    Uniform,
    /// Normal around delay, jitter its standard deviation (cut at 0).
    Normal,
}

impl Distribution {
    pub const NAMES: &'static [&'static str] = &["uniform", "normal"];

    pub fn name(self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Normal => "normal",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "uniform" => Some(Distribution::Uniform),
            "normal" => Some(Distribution::Normal),
            _ => None,
        }
    }
}

/// What the program does to each packet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub delay: Duration,
    pub jitter: Duration,
    pub distribution: Distribution,
}

impl Shape {
    /// Every packet held exactly `delay` (no jitter).
    pub fn fixed(delay: Duration) -> Shape {
        Shape {
            delay,
            jitter: Duration::ZERO,
            distribution: Distribution::Normal,
        }
    }

    /// How long one packet is held.
    pub fn hold(&self, rng: &mut Rng) -> Duration {
        if self.jitter.is_zero() {
            return self.delay;
        }
        let (delay, jitter) = (self.delay.as_secs_f64(), self.jitter.as_secs_f64());
        let held = match self.distribution {
            Distribution::Uniform => delay + jitter * (2.0 * unit(rng) - 1.0),
            Distribution::Normal => {
                // Box-Muller.
                let (u1, u2) = (unit(rng).max(f64::MIN_POSITIVE), unit(rng));
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                delay + jitter * z
            }
        };
        Duration::from_secs_f64(held.max(0.0))
    }

    /// The arguments of `faultline packets serve` for this shape.
    pub fn args(&self, queue: u16, seed: u64, dir: &str) -> Vec<String> {
        vec![
            "packets".into(),
            "serve".into(),
            "--queue".into(),
            queue.to_string(),
            "--delay-us".into(),
            self.delay.as_micros().to_string(),
            "--jitter-us".into(),
            self.jitter.as_micros().to_string(),
            "--distribution".into(),
            self.distribution.name().into(),
            "--seed".into(),
            seed.to_string(),
            "--dir".into(),
            dir.into(),
        ]
    }
}

/// A uniform number in [0, 1).
fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The mark of the copies the program sends (a duplicate's second packet): the fault's rules
/// let packets with it pass, so a copy is not queued again.
pub const MARK: u32 = 0xfa17;

/// What the program does to each packet queued to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Hold every packet by the shape.
    Delay(Shape),
    /// Hold `share` of the packets for `hold` and let the others go at once: the packets
    /// after a held one overtake it.
    Reorder { share: f64, hold: Duration },
    /// Send `share` of the packets twice.
    Duplicate { share: f64 },
    /// Flip one bit, at a random place after the IP header, in `share` of the packets.
    Corrupt { share: f64 },
}

impl Action {
    pub const NAMES: &'static [&'static str] = &["delay", "reorder", "duplicate", "corrupt"];

    pub fn name(&self) -> &'static str {
        match self {
            Action::Delay(_) => "delay",
            Action::Reorder { .. } => "reorder",
            Action::Duplicate { .. } => "duplicate",
            Action::Corrupt { .. } => "corrupt",
        }
    }

    /// What the program did to a packet it acted on, as in "120 packets reordered".
    pub fn done(&self) -> &'static str {
        match self {
            Action::Delay(_) => "held",
            Action::Reorder { .. } => "held back",
            Action::Duplicate { .. } => "sent twice",
            Action::Corrupt { .. } => "with a bit flipped",
        }
    }

    /// The arguments of `faultline packets serve` for this action.
    pub fn args(&self, queue: u16, seed: u64, dir: &str) -> Vec<String> {
        let (share, shape) = match *self {
            Action::Delay(shape) => (1.0, shape),
            Action::Reorder { share, hold } => (share, Shape::fixed(hold)),
            Action::Duplicate { share } | Action::Corrupt { share } => {
                (share, Shape::fixed(Duration::ZERO))
            }
        };
        let mut args = shape.args(queue, seed, dir);
        args.splice(
            2..2,
            [
                "--action".to_string(),
                self.name().to_string(),
                "--percent".to_string(),
                format!("{}", share * 100.0),
            ],
        );
        args
    }

    /// The action `faultline packets serve` was given (`percent` 0-100).
    pub fn from_args(name: &str, percent: f64, shape: Shape) -> Option<Action> {
        let share = (percent / 100.0).clamp(0.0, 1.0);
        match name {
            "delay" => Some(Action::Delay(shape)),
            "reorder" => Some(Action::Reorder {
                share,
                hold: shape.delay,
            }),
            "duplicate" => Some(Action::Duplicate { share }),
            "corrupt" => Some(Action::Corrupt { share }),
            _ => None,
        }
    }
}

/// What the program counted: packets queued to it, let go, the most it held at once, and
/// those it acted on (held back, sent twice, or flipped a bit in; every one for a delay).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub queued: u64,
    pub released: u64,
    pub max_held: u64,
    pub acted: u64,
}

impl Stats {
    pub fn line(&self) -> String {
        format!(
            "queued {} released {} max_held {} acted {}",
            self.queued, self.released, self.max_held, self.acted
        )
    }

    pub fn parse(line: &str) -> Option<Stats> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["queued", q, "released", r, "max_held", m, "acted", a] => Some(Stats {
                queued: q.parse().ok()?,
                released: r.parse().ok()?,
                max_held: m.parse().ok()?,
                acted: a.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// A raw IPv4 socket whose packets carry [`MARK`]: how a duplicate's copy is sent.
struct RawSender {
    fd: libc::c_int,
}

impl RawSender {
    fn open() -> std::io::Result<RawSender> {
        // SAFETY: plain socket calls on a descriptor this function owns; the option value is a
        // u32 that lives through the call.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mark: u32 = MARK;
            if libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_MARK,
                &mark as *const u32 as *const libc::c_void,
                std::mem::size_of::<u32>() as libc::socklen_t,
            ) != 0
            {
                let e = std::io::Error::last_os_error();
                libc::close(fd);
                return Err(e);
            }
            Ok(RawSender { fd })
        }
    }

    /// Sends `packet` (a whole IPv4 packet, header included) as it is.
    fn send(&self, packet: &[u8]) -> std::io::Result<()> {
        if packet.len() < 20 || packet[0] >> 4 != 4 {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                "not an IPv4 packet",
            ));
        }
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([packet[16], packet[17], packet[18], packet[19]]),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: the buffer and the address live through the call; their lengths are theirs.
        let sent = unsafe {
            libc::sendto(
                self.fd,
                packet.as_ptr() as *const libc::c_void,
                packet.len(),
                0,
                &to as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for RawSender {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this value's own.
        unsafe { libc::close(self.fd) };
    }
}

/// Flips one bit of `packet` at a place drawn from `rng`, after its IPv4 header (so the packet
/// still reaches its host, whose transport checksum then catches it); returns the byte offset
/// and bit, or `None` when there is nothing after the header.
pub fn flip_one_bit(packet: &mut [u8], rng: &mut Rng) -> Option<(usize, u8)> {
    let header = usize::from(packet.first()? & 0x0f) * 4;
    if packet.len() <= header {
        return None;
    }
    let at = header + rng.below(packet.len() - header);
    let bit = (rng.next_u64() % 8) as u8;
    packet[at] ^= 1 << bit;
    Some((at, bit))
}

/// A packet held until `due`; the heap's top is the earliest, ties in arrival order.
struct Held {
    due: Instant,
    seq: u64,
    msg: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// The file names the program writes in its directory.
pub const READY: &str = "ready";
pub const STATS: &str = "stats";

/// Binds NFQUEUE `queue` and does `action` to every packet queued to it, letting each go when
/// due; until SIGTERM or SIGINT, then lets go of everything it holds. Writes `dir/ready` once
/// bound and `dir/stats` every 200 ms and at the end.
pub fn serve(queue: u16, action: Action, seed: u64, dir: &Path) -> std::io::Result<Stats> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_stop as *const () as libc::sighandler_t);
    }
    let copies = match action {
        Action::Duplicate { .. } => Some(RawSender::open()?),
        _ => None,
    };
    let mut q = nfq::Queue::open()?;
    q.bind(queue)?;
    // A full queue lets packets pass rather than dropping them: the fault is not loss.
    q.set_fail_open(queue, true)?;
    q.set_queue_max_len(queue, 1 << 16)?;
    q.set_nonblocking(true);
    std::fs::write(dir.join(READY), "bound\n")?;

    let mut rng = Rng::new(seed);
    let mut held: BinaryHeap<Held> = BinaryHeap::new();
    let mut stats = Stats::default();
    let mut seq = 0u64;
    let mut last_write = Instant::now();
    while !STOP.load(Ordering::SeqCst) {
        let mut busy = false;
        loop {
            match q.recv() {
                Ok(mut msg) => {
                    busy = true;
                    stats.queued += 1;
                    msg.set_verdict(nfq::Verdict::Accept);
                    let hold = match action {
                        Action::Delay(shape) => {
                            stats.acted += 1;
                            Some(shape.hold(&mut rng))
                        }
                        Action::Reorder { share, hold } => (unit(&mut rng) < share).then(|| {
                            stats.acted += 1;
                            hold
                        }),
                        Action::Duplicate { share } => {
                            if unit(&mut rng) < share {
                                if let Some(raw) = &copies {
                                    // A copy that cannot be sent leaves the original alone.
                                    if raw.send(msg.get_payload()).is_ok() {
                                        stats.acted += 1;
                                    }
                                }
                            }
                            None
                        }
                        Action::Corrupt { share } => {
                            if unit(&mut rng) < share
                                && flip_one_bit(msg.get_payload_mut(), &mut rng).is_some()
                            {
                                stats.acted += 1;
                            }
                            None
                        }
                    };
                    match hold {
                        Some(hold) => {
                            let due = Instant::now() + hold;
                            held.push(Held { due, seq, msg });
                            seq += 1;
                            stats.max_held = stats.max_held.max(held.len() as u64);
                        }
                        None => {
                            q.verdict(msg)?;
                            stats.released += 1;
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => break,
                Err(e) => return Err(e),
            }
        }
        let now = Instant::now();
        while held.peek().is_some_and(|h| h.due <= now) {
            let h = held.pop().expect("peeked");
            q.verdict(h.msg)?;
            stats.released += 1;
            busy = true;
        }
        if last_write.elapsed() >= Duration::from_millis(200) {
            write_stats(dir, &stats)?;
            last_write = Instant::now();
        }
        if !busy {
            // Nothing came and nothing was due: wait a little (the release's precision).
            let next = held.peek().map_or(Duration::from_millis(1), |h| {
                h.due.saturating_duration_since(now)
            });
            std::thread::sleep(next.min(Duration::from_micros(500)));
        }
    }
    while let Some(h) = held.pop() {
        q.verdict(h.msg)?;
        stats.released += 1;
    }
    write_stats(dir, &stats)?;
    Ok(stats)
}

fn write_stats(dir: &Path, stats: &Stats) -> std::io::Result<()> {
    let tmp = dir.join("stats.tmp");
    std::fs::write(&tmp, stats.line() + "\n")?;
    std::fs::rename(tmp, dir.join(STATS))
}

/// Round trips to `to`, in milliseconds: the time of `count` TCP connects, each answered by an
/// accept or a refusal (a SYN-ACK or a RST both cross the link back); a connect that times out
/// is left out.
pub fn round_trips(to: SocketAddr, count: u32, timeout: Duration) -> Vec<f64> {
    let mut out = Vec::new();
    for _ in 0..count {
        let t = Instant::now();
        let answered = match TcpStream::connect_timeout(&to, timeout) {
            Ok(_) => true,
            Err(e) => e.kind() == ErrorKind::ConnectionRefused,
        };
        if answered {
            out.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    out
}

/// The median of `xs` (`None` when empty).
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_without_jitter_holds_every_packet_as_long() {
        let shape = Shape {
            delay: Duration::from_millis(100),
            jitter: Duration::ZERO,
            distribution: Distribution::Normal,
        };
        let mut rng = Rng::new(1);
        assert!((0..100).all(|_| shape.hold(&mut rng) == Duration::from_millis(100)));
    }

    #[test]
    fn jitter_spreads_around_the_delay_by_its_distribution() {
        let mut rng = Rng::new(7);
        let uniform = Shape {
            delay: Duration::from_millis(100),
            jitter: Duration::from_millis(20),
            distribution: Distribution::Uniform,
        };
        let xs: Vec<f64> = (0..10_000)
            .map(|_| uniform.hold(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        assert!(xs.iter().all(|x| (80.0..=120.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 100.0).abs() < 1.0, "mean {mean}");

        let normal = Shape {
            distribution: Distribution::Normal,
            ..uniform
        };
        let xs: Vec<f64> = (0..10_000)
            .map(|_| normal.hold(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
        assert!((mean - 100.0).abs() < 1.0, "mean {mean}");
        assert!((sd - 20.0).abs() < 1.0, "sd {sd}");
        // A wide jitter never makes a negative hold.
        let wide = Shape {
            jitter: Duration::from_millis(500),
            ..normal
        };
        assert!((0..1000).all(|_| wide.hold(&mut rng) <= Duration::from_secs(5)));
    }

    #[test]
    fn stats_lines_read_back() {
        let s = Stats {
            queued: 12,
            released: 10,
            max_held: 4,
            acted: 3,
        };
        assert_eq!(Stats::parse(&s.line()), Some(s));
        assert_eq!(Stats::parse("queued 1 released x max_held 1 acted 0"), None);
        assert_eq!(Stats::parse(""), None);
    }

    #[test]
    fn a_flipped_bit_is_after_the_ip_header_and_only_one() {
        let mut rng = Rng::new(3);
        // IPv4, header of 5 words (20 bytes), then 40 bytes of TCP header and data.
        let mut original = vec![0u8; 60];
        original[0] = 0x45;
        for _ in 0..1000 {
            let mut p = original.clone();
            let (at, bit) = flip_one_bit(&mut p, &mut rng).unwrap();
            assert!((20..60).contains(&at), "{at}");
            assert_eq!(p[at], original[at] ^ (1 << bit));
            let changed: u32 = p
                .iter()
                .zip(&original)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(changed, 1);
        }
        let mut header_only = original[..20].to_vec();
        assert_eq!(flip_one_bit(&mut header_only, &mut rng), None);
        assert_eq!(flip_one_bit(&mut [], &mut rng), None);
    }

    #[test]
    fn actions_go_to_the_program_and_back() {
        let shape = Shape {
            delay: Duration::from_millis(30),
            jitter: Duration::ZERO,
            distribution: Distribution::Normal,
        };
        for action in [
            Action::Delay(shape),
            Action::Reorder {
                share: 0.25,
                hold: Duration::from_millis(30),
            },
            Action::Duplicate { share: 0.5 },
            Action::Corrupt { share: 0.01 },
        ] {
            let args = action.args(2, 9, "/tmp/x");
            let value = |flag: &str| {
                let i = args.iter().position(|a| a == flag).unwrap();
                args[i + 1].clone()
            };
            assert_eq!(args[..2], ["packets", "serve"]);
            let percent: f64 = value("--percent").parse().unwrap();
            let back = Action::from_args(&value("--action"), percent, shape).unwrap();
            assert_eq!(back, action);
        }
        assert_eq!(Action::from_args("mangle", 1.0, shape), None);
    }

    #[test]
    fn the_median_of_round_trips() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }
}
