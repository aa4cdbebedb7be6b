//! The address clients reach stateless brokers through (the topology's `x-faultline.gateways`):
//! a TCP balancer on loopback that hands each new client connection to one of the brokers,
//! in turn, skipping one that just refused or did not answer.
//!
//! It stands in for the load balancer or shared DNS name such brokers are deployed behind.
//! The brokers advertise its address, so a client that loses its broker reconnects through
//! it and lands on a live one. It adds at most `CONNECT_TIMEOUT` to a reconnection that first
//! tries a broker which died since it was last used; the result's notes say so.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// Bound on one connection attempt to a broker.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// A broker that refused or timed out is not tried again for this long, unless every one has.
const SKIP_FOR: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Target {
    name: String,
    addr: SocketAddr,
    skip_until: Option<Instant>,
    connections: u64,
    failed_attempts: u64,
    /// Connections the broker's side ended first (it closed or died under the client).
    closed_by_broker: u64,
}

#[derive(Debug, Default)]
struct State {
    targets: Vec<Target>,
    next: usize,
    /// Client connections no broker accepted.
    refused: u64,
    /// Open connections: id -> (target index, the client.id of its first request, bytes
    /// carried both ways so far).
    open: std::collections::BTreeMap<u64, (usize, String, Arc<AtomicU64>)>,
    last_id: u64,
}

/// Bound on reading a connection's first request (its header names the client).
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Larger first requests are not Kafka clients talking: the connection is closed.
const FIRST_REQUEST_MAX: usize = 1 << 20;

/// Reads a client's first Kafka request whole and returns it with the client.id in its header
/// (request header v1+: api_key i16, api_version i16, correlation_id i32, client_id nullable
/// string), or None when it is not one.
async fn first_request(client: &mut TcpStream) -> Option<(Vec<u8>, String)> {
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut size = [0u8; 4];
        client.read_exact(&mut size).await.ok()?;
        let n = i32::from_be_bytes(size);
        if n < 10 || n as usize > FIRST_REQUEST_MAX {
            return None;
        }
        let mut buf = size.to_vec();
        buf.resize(4 + n as usize, 0);
        client.read_exact(&mut buf[4..]).await.ok()?;
        let len = i16::from_be_bytes([buf[12], buf[13]]);
        let id = if len > 0 && 14 + len as usize <= buf.len() {
            String::from_utf8_lossy(&buf[14..14 + len as usize]).into_owned()
        } else {
            String::new()
        };
        Some((buf, id))
    };
    tokio::time::timeout(FIRST_REQUEST_TIMEOUT, read)
        .await
        .ok()
        .flatten()
}

pub struct Gateway {
    pub listen: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Ends the gateway's thread (its runtime drops every connection task, which closes them).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Gateway {
    /// Listens on `listen` and forwards to `targets` (node name, address), on a thread of its
    /// own (a single-threaded runtime): it stands in for a load balancer outside the harness,
    /// so its CPU is kept apart from the load generator's and can be measured
    /// ([`Gateway::cpu_seconds`]).
    pub async fn start(
        listen: SocketAddr,
        targets: Vec<(String, SocketAddr)>,
    ) -> Result<Gateway, String> {
        let taken = |e: std::io::Error| {
            format!("the client gateway cannot listen on {listen}: {e} (another faultline Kafka run on this machine, or another program, holds that port; x-faultline.gateways in the topology names it)")
        };
        let listener = std::net::TcpListener::bind(listen).map_err(taken)?;
        listener.set_nonblocking(true).map_err(taken)?;
        let listen = listener.local_addr().unwrap_or(listen);
        let state = Arc::new(Mutex::new(State {
            targets: targets
                .into_iter()
                .map(|(name, addr)| Target {
                    name,
                    addr,
                    skip_until: None,
                    connections: 0,
                    failed_attempts: 0,
                    closed_by_broker: 0,
                })
                .collect(),
            ..Default::default()
        }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("the client gateway {listen}: no runtime: {e}"))?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, is_ready) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("faultline-gateway".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => {
                            let _ = ready.send(Ok(()));
                            l
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let mut conns = tokio::task::JoinSet::new();
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            accepted = listener.accept() => {
                                if let Ok((client, _)) = accepted {
                                    conns.spawn(forward(client, shared.clone()));
                                }
                            }
                            Some(_) = conns.join_next(), if !conns.is_empty() => {}
                        }
                    }
                    // Dropping the set ends every connection task, which closes them.
                    drop(conns);
                })
            })
            .map_err(|e| format!("the client gateway {listen}: no thread: {e}"))?;
        let gateway = Gateway {
            listen,
            state,
            stop: Some(stop),
            thread: Some(thread),
        };
        match is_ready.await {
            Ok(Ok(())) => Ok(gateway),
            Ok(Err(e)) => Err(format!("the client gateway {listen}: {e}")),
            Err(_) => Err(format!(
                "the client gateway {listen}: its thread ended at start"
            )),
        }
    }

    /// CPU seconds (user and system) the gateway's thread has used since it started.
    pub fn cpu_seconds(&self) -> Option<f64> {
        use std::os::unix::thread::JoinHandleExt;
        let thread = self.thread.as_ref()?;
        let mut clock: libc::clockid_t = 0;
        // SAFETY: the thread is alive (it is joined only in drop), so its pthread_t is valid;
        // both calls only write the value they are given.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        unsafe {
            if libc::pthread_getcpuclockid(thread.as_pthread_t(), &mut clock) != 0
                || libc::clock_gettime(clock, &mut ts) != 0
            {
                return None;
            }
        }
        Some(ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
    }

    /// The brokers that `client_id` has an open connection to through this gateway, with the
    /// bytes each connection has carried, the busiest first: the connection that produces
    /// (or fetches) carries the records, while librdkafka's bootstrap and metadata
    /// connections carry little. Which connection is newest says nothing: a client that knows
    /// brokers by several addresses keeps connections to each.
    pub fn brokers_of(&self, client_id: &str) -> Vec<(u64, String)> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut found: Vec<(u64, String)> = s
            .open
            .values()
            .filter(|(_, c, _)| c == client_id)
            .map(|(i, _, bytes)| (bytes.load(Ordering::Relaxed), s.targets[*i].name.clone()))
            .collect();
        found.sort_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        found
    }

    /// What the gateway did, for the result's notes.
    pub fn summary(&self) -> String {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let per: Vec<String> = s
            .targets
            .iter()
            .map(|t| {
                format!(
                    "{} {} connection(s) ({} ended by the broker's side), {} failed attempt(s)",
                    t.name, t.connections, t.closed_by_broker, t.failed_attempts
                )
            })
            .collect();
        format!(
            "client gateway {} (round robin, {} ms connect timeout, a broker that failed is skipped for {} s): {}; {} client connection(s) found no broker",
            self.listen,
            CONNECT_TIMEOUT.as_millis(),
            SKIP_FOR.as_secs(),
            per.join(", "),
            s.refused
        )
    }
}

/// The order to try the brokers in for one connection: round robin, those recently failed last.
fn candidates(state: &Mutex<State>) -> Vec<(usize, SocketAddr)> {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let n = s.targets.len();
    if n == 0 {
        return Vec::new();
    }
    let start = s.next % n;
    s.next = (start + 1) % n;
    let now = Instant::now();
    let (mut fresh, mut skipped): (Vec<_>, Vec<_>) = (0..n)
        .map(|i| (start + i) % n)
        .map(|i| (i, s.targets[i].addr, s.targets[i].skip_until))
        .partition(|(_, _, until)| until.is_none_or(|u| u <= now));
    fresh.append(&mut skipped);
    fresh.into_iter().map(|(i, a, _)| (i, a)).collect()
}

async fn forward(mut client: TcpStream, state: Arc<Mutex<State>>) {
    use tokio::io::AsyncWriteExt;
    let _ = client.set_nodelay(true);
    let Some((first, client_id)) = first_request(&mut client).await else {
        return;
    };
    for (i, addr) in candidates(&state) {
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await;
        let mut broker = match attempt {
            Ok(Ok(b)) => b,
            _ => {
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                s.targets[i].failed_attempts += 1;
                s.targets[i].skip_until = Some(Instant::now() + SKIP_FOR);
                continue;
            }
        };
        let _ = broker.set_nodelay(true);
        if broker.write_all(&first).await.is_err() {
            continue;
        }
        let carried = Arc::new(AtomicU64::new(first.len() as u64));
        let id = {
            let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
            s.targets[i].connections += 1;
            s.targets[i].skip_until = None;
            s.last_id += 1;
            let id = s.last_id;
            s.open.insert(id, (i, client_id.clone(), carried.clone()));
            id
        };
        let by_broker = splice(client, broker, &carried).await;
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.open.remove(&id);
        if by_broker {
            s.targets[i].closed_by_broker += 1;
        }
        return;
    }
    state.lock().unwrap_or_else(|e| e.into_inner()).refused += 1;
}

/// Copies `from` to `to` until `from` ends, counting the bytes into `carried`; then shuts
/// `to` down.
async fn copy_counting(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    carried: &AtomicU64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        carried.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}

/// Copies both ways until both sides are done; says whether the broker's side ended first.
async fn splice(client: TcpStream, broker: TcpStream, carried: &AtomicU64) -> bool {
    let (cr, cw) = client.into_split();
    let (br, bw) = broker.into_split();
    let up = copy_counting(cr, bw, carried);
    let down = copy_counting(br, cw, carried);
    tokio::pin!(up, down);
    // Once one side is done, the other gets a bounded time to finish what it was sending.
    let linger = Duration::from_secs(5);
    tokio::select! {
        _ = &mut up => {
            let _ = tokio::time::timeout(linger, down).await;
            false
        }
        _ = &mut down => {
            let _ = tokio::time::timeout(linger, up).await;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An echo server on loopback that prefixes what it sends back with its name.
    async fn echo(name: &'static str) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 16];
                    let n = s.read(&mut buf).await.unwrap();
                    s.write_all(name.as_bytes()).await.unwrap();
                    s.write_all(&buf[..n]).await.unwrap();
                });
            }
        });
        addr
    }

    /// A broker that keeps every connection open until its client closes it, and swallows
    /// what it reads.
    async fn swallowing_broker() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    /// A Kafka-framed request from `client`: the header and nothing else.
    fn request(client: &str) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&18i16.to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&7i32.to_be_bytes());
        body.extend_from_slice(&(client.len() as i16).to_be_bytes());
        body.extend_from_slice(client.as_bytes());
        let mut framed = (body.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        framed
    }

    /// Sends one request and returns what came back: the server's name, then the echo of the
    /// request's first bytes.
    async fn ask(gw: SocketAddr) -> String {
        let mut s = TcpStream::connect(gw).await.unwrap();
        s.write_all(&request("c")).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out[..1]).into_owned()
    }

    #[tokio::test]
    async fn spreads_connections_and_skips_a_dead_broker() {
        let a = echo("a").await;
        let b = echo("b").await;
        // A port nothing listens on: connections are refused at once.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let gw = Gateway::start(
            "127.0.0.1:0".parse().unwrap(),
            vec![("a".into(), a), ("dead".into(), dead), ("b".into(), b)],
        )
        .await
        .unwrap();
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(ask(gw.listen).await);
        }
        assert!(seen.iter().all(|s| s == "a" || s == "b"), "{seen:?}");
        assert!(seen.contains(&"a".to_string()) && seen.contains(&"b".to_string()));
        let summary = gw.summary();
        assert!(
            summary.contains(
                "dead 0 connection(s) (0 ended by the broker's side), 1 failed attempt(s)"
            ),
            "{summary}"
        );
        // The echo servers close after answering: every connection ended on their side (the
        // last one is counted just after its client saw the end).
        let ended = || -> u64 {
            let s = gw.state.lock().unwrap();
            s.targets.iter().map(|t| t.closed_by_broker).sum()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while ended() < 6 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(ended(), 6, "{}", gw.summary());
        assert!(
            summary.contains("0 client connection(s) found no broker"),
            "{summary}"
        );
    }

    #[tokio::test]
    async fn knows_which_broker_a_client_is_connected_to() {
        let addr = swallowing_broker().await;
        let gw = Gateway::start("127.0.0.1:0".parse().unwrap(), vec![("x".into(), addr)])
            .await
            .unwrap();
        let mut c = TcpStream::connect(gw.listen).await.unwrap();
        c.write_all(&request("faultline-producer-0")).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while gw.brokers_of("faultline-producer-0").is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let first = request("faultline-producer-0").len() as u64;
        assert_eq!(
            gw.brokers_of("faultline-producer-0"),
            vec![(first, "x".to_string())]
        );
        // The busier connection comes first, whichever is newer.
        c.write_all(&[0u8; 4096]).await.unwrap();
        let mut c2 = TcpStream::connect(gw.listen).await.unwrap();
        c2.write_all(&request("faultline-producer-0"))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while gw.brokers_of("faultline-producer-0").len() < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen = gw.brokers_of("faultline-producer-0");
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].0, first + 4096, "{seen:?}");
        drop(c2);
        assert!(gw.brokers_of("faultline-producer-1").is_empty());
        drop(c);
    }

    #[tokio::test]
    async fn its_thread_cpu_is_measured_and_dropping_it_closes_the_connections() {
        let addr = swallowing_broker().await;
        let gw = Gateway::start("127.0.0.1:0".parse().unwrap(), vec![("x".into(), addr)])
            .await
            .unwrap();
        let before = gw
            .cpu_seconds()
            .expect("the gateway's thread has a CPU clock");
        let mut c = TcpStream::connect(gw.listen).await.unwrap();
        c.write_all(&request("c")).await.unwrap();
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..64 {
            c.write_all(&chunk).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while gw.brokers_of("c").first().map_or(0, |b| b.0) < 64 << 20 && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let after = gw.cpu_seconds().unwrap();
        assert!(
            after > before,
            "64 MiB forwarded on {before} -> {after} CPU-s"
        );
        drop(gw);
        // The connection is closed from the gateway's side: the client reads its end.
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("the connection was not closed when the gateway was dropped");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    }

    #[tokio::test]
    async fn a_taken_port_is_reported_with_its_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = match Gateway::start(addr, vec![]).await {
            Ok(_) => panic!("bound a taken port"),
            Err(e) => e,
        };
        assert!(
            e.contains(&addr.to_string()) && e.contains("x-faultline.gateways"),
            "{e}"
        );
    }
}
