//! Where a process's CPU went, thread by thread: `faultline bench peers` samples the peer's
//! process and its own while each side runs, so a gap between the two tools can be placed
//! (the client library's threads, the generator, the runtime) instead of guessed at.
//!
//! Linux's /proc/<pid>/task/<tid>/stat gives each live thread's user and system time. A
//! thread that ends between two samples loses what it used since the last one, so the
//! figures are sampled every [`INTERVAL`] and are a lower bound per thread; the process's
//! total comes from the kernel's own accounting, not from these.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::procstat;

/// How often the threads are read.
pub const INTERVAL: Duration = Duration::from_millis(200);

/// Live threads of a process: tid → (name, CPU seconds so far).
type Reading = HashMap<u64, (String, f64)>;

/// Every live thread of `pid` ("self" for this process): tid → (name, CPU seconds).
fn read(pid: &str) -> Reading {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        if let Some(s) = std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|s| procstat::parse(&s))
        {
            out.insert(tid, s);
        }
    }
    out
}

/// The CPU each thread name used between `first` and `last`, highest first. Threads that
/// share a name are summed; a thread seen only in `last` started since and counts whole.
fn used(first: &Reading, last: &Reading) -> Vec<(String, f64)> {
    let mut by_name: BTreeMap<String, f64> = BTreeMap::new();
    for (tid, (name, cpu)) in last {
        let before = first.get(tid).map_or(0.0, |(_, c)| *c);
        *by_name.entry(name.clone()).or_default() += (cpu - before).max(0.0);
    }
    let mut v: Vec<(String, f64)> = by_name.into_iter().filter(|(_, c)| *c > 0.0).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Samples one process's threads on a thread of its own until [`Sampler::finish`].
pub struct Sampler {
    stop: Arc<AtomicBool>,
    /// The first reading, and the last of every thread seen since.
    seen: Arc<Mutex<(Reading, Reading)>>,
    /// Returns the CPU seconds the sampling thread used.
    thread: Option<std::thread::JoinHandle<f64>>,
}

/// CPU this thread has used so far, from its own clock.
fn own_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// What [`Sampler::finish`] found.
pub struct Sampled {
    /// CPU seconds per thread name since the start, highest first; the sampler's thread is
    /// not among them.
    pub threads: Vec<(String, f64)>,
    /// CPU seconds the sampler's own thread used (in this process, whichever it sampled).
    pub sampler_cpu_s: f64,
}

impl Sampler {
    /// Starts sampling `pid` ("self" for this process) now: what its threads used before is
    /// not counted.
    pub fn start(pid: &str) -> Sampler {
        let pid = pid.to_string();
        let first = read(&pid);
        let seen = Arc::new(Mutex::new((first.clone(), first)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::Builder::new()
                .name("faultline-sampler".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(INTERVAL);
                        let now = read(&pid);
                        if let Ok(mut s) = seen.lock() {
                            // A thread keeps its last reading once it is gone.
                            s.1.extend(now);
                        }
                    }
                    own_cpu().as_secs_f64()
                })
                .ok()
        };
        Sampler { stop, seen, thread }
    }

    /// Takes a last sample (when the process is still there) and stops.
    pub fn finish(mut self, pid: &str) -> Sampled {
        self.stop.store(true, Ordering::Relaxed);
        let mut sampler_cpu_s = 0.0;
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            sampler_cpu_s = t.join().unwrap_or(0.0);
        }
        let now = read(pid);
        let Ok(mut s) = self.seen.lock() else {
            return Sampled {
                threads: Vec::new(),
                sampler_cpu_s,
            };
        };
        s.1.extend(now);
        Sampled {
            threads: used(&s.0, &s.1)
                .into_iter()
                .filter(|(name, _)| name != "faultline-sampl")
                .collect(),
            sampler_cpu_s,
        }
    }
}

/// "rdk:broker111 2.31, tokio-runtime-w 0.40, rdk:main 0.05": the names that used at least
/// a hundredth of a second, at most `max` of them, and what the rest used.
pub fn summary(threads: &[(String, f64)], max: usize) -> String {
    let shown: Vec<String> = threads
        .iter()
        .filter(|(_, c)| *c >= 0.01)
        .take(max)
        .map(|(n, c)| format!("{n} {c:.2}"))
        .collect();
    let rest: f64 = threads.iter().skip(shown.len()).map(|(_, c)| c).sum();
    let mut s = shown.join(", ");
    if rest >= 0.01 {
        s.push_str(&format!(", other threads {rest:.2}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_summed_by_name_and_new_ones_count_whole() {
        let first = HashMap::from([(1, ("w".to_string(), 1.0)), (2, ("w".to_string(), 2.0))]);
        let last = HashMap::from([
            (1, ("w".to_string(), 1.5)),
            (2, ("w".to_string(), 2.5)),
            (3, ("rdk:main".to_string(), 3.0)),
        ]);
        assert_eq!(
            used(&first, &last),
            vec![("rdk:main".to_string(), 3.0), ("w".to_string(), 1.0)]
        );
        assert_eq!(
            summary(&used(&first, &last), 1),
            "rdk:main 3.00, other threads 1.00"
        );
    }

    #[test]
    fn a_busy_thread_of_this_process_is_seen() {
        let sampler = Sampler::start("self");
        let (used_enough, wait) = std::sync::mpsc::channel();
        let (end, ended) = std::sync::mpsc::channel::<()>();
        // Spins until its own clock says 200 ms of CPU, then waits, still alive, to be told
        // to end: the last sample reads it however slowly the machine gave it the CPU.
        let busy = std::thread::Builder::new()
            .name("busy-for-test".into())
            .spawn(move || {
                let mut x = 0u64;
                while own_cpu() < Duration::from_millis(200) {
                    x = x.wrapping_add(std::hint::black_box(1));
                }
                used_enough.send(()).unwrap();
                ended.recv().unwrap();
                x
            })
            .unwrap();
        wait.recv().unwrap();
        let threads = sampler.finish("self").threads;
        end.send(()).unwrap();
        busy.join().unwrap();
        let cpu = threads
            .iter()
            .find(|(n, _)| n == "busy-for-test")
            .map(|(_, c)| *c);
        // The kernel counts in ticks of 10 ms.
        assert!(
            cpu.is_some_and(|c| c >= 0.18),
            "a thread that used 200 ms of CPU shows in the sample: {threads:?}"
        );
    }
}
