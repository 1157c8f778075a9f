//! CPU time by thread, from `/proc/<pid>/task/<tid>/stat` (user and system time)
//! and `.../schedstat` (time spent runnable but waiting for a core), sampled while
//! a transfer runs: a thread that ends between two samples keeps its last sample.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One thread's times, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Times {
    pub user: f64,
    pub system: f64,
    /// Runnable, waiting for a core (schedstat's second field).
    pub waiting: f64,
}

impl Times {
    fn minus(self, o: Times) -> Times {
        Times {
            user: self.user - o.user,
            system: self.system - o.system,
            waiting: self.waiting - o.waiting,
        }
    }
}

/// `(process label, thread name, tid)`.
pub type ThreadKey = (String, String, u32);

fn ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The times of one thread (`task` is `/proc/<pid>/task/<tid>` or `/proc/thread-self`).
pub fn read_task(task: &str) -> Option<(String, Times)> {
    let stat = std::fs::read_to_string(format!("{task}/stat")).ok()?;
    let name = stat[stat.find('(')? + 1..stat.rfind(')')?].to_string();
    let fields: Vec<u64> = stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let tps = ticks_per_second();
    let waiting = std::fs::read_to_string(format!("{task}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9);
    Some((
        name,
        Times {
            user: *fields.get(10)? as f64 / tps,
            system: *fields.get(11)? as f64 / tps,
            waiting,
        },
    ))
}

fn sample(pid: u32) -> Vec<(u32, String, Times)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let (name, t) = read_task(&format!("/proc/{pid}/task/{tid}"))?;
            Some((tid, name, t))
        })
        .collect()
}

/// Samples the threads of some processes every 20 ms until [`Sampler::finish`].
pub struct Sampler {
    procs: Procs,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeMap<ThreadKey, Times>>>,
    before: BTreeMap<ThreadKey, Times>,
    handle: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling `procs` (label, pid); `pids` may grow later with [`Sampler::add`].
    pub fn start(procs: Vec<(String, u32)>) -> Sampler {
        let mut before = BTreeMap::new();
        for (label, pid) in &procs {
            for (tid, name, t) in sample(*pid) {
                before.insert((label.clone(), name, tid), t);
            }
        }
        let procs = Arc::new(Mutex::new(procs));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(before.clone()));
        let handle = {
            let (stop, seen) = (stop.clone(), seen.clone());
            let procs = procs.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let list = procs.lock().map(|p| p.clone()).unwrap_or_default();
                    for (label, pid) in list {
                        for (tid, name, t) in sample(pid) {
                            if let Ok(mut s) = seen.lock() {
                                s.insert((label.clone(), name, tid), t);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Sampler {
            procs,
            stop,
            seen,
            before,
            handle: Some(handle),
        }
    }

    /// Samples `pid` too from now on (a process started after the sampler).
    pub fn add(&self, label: &str, pid: u32) {
        if let Ok(mut l) = self.procs.lock() {
            l.push((label.to_string(), pid));
        }
    }

    /// Takes a last sample of the processes still alive, stops, and gives each
    /// thread's time during the sampling (threads that did nothing left out).
    pub fn finish(mut self, last: &[(String, u32)]) -> Vec<(ThreadKey, Times)> {
        for (label, pid) in last {
            for (tid, name, t) in sample(*pid) {
                if let Ok(mut s) = self.seen.lock() {
                    s.insert((label.clone(), name, tid), t);
                }
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        seen.into_iter()
            .map(|(k, t)| {
                let b = self.before.get(&k).copied().unwrap_or_default();
                (k, t.minus(b))
            })
            .filter(|(_, t)| t.user + t.system > 0.0)
            .collect()
    }
}

type Procs = Arc<Mutex<Vec<(String, u32)>>>;
