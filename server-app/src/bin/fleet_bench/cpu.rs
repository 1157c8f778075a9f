//! CPU time by process, from `/proc/<pid>/stat`: where a batch's time went when the
//! clients, the servers and the shared components all run on the same cores.

/// Clock ticks per second of the `stat` times (`getconf CLK_TCK`; 100 on Linux).
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

/// The numeric fields of `/proc/<pid>/stat` after the command name and the state:
/// [0] the parent, [10] utime, [11] stime, [12] cutime, [13] cstime.
fn stat_fields(pid: &str) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &text[text.rfind(')')? + 1..];
    Some(
        after_name
            .split_whitespace()
            .skip(1) // the state, a letter
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

fn seconds(ticks: u64) -> f64 {
    ticks as f64 / ticks_per_second()
}

/// CPU seconds of process `pid` itself (all its threads), 0 if it is gone.
pub fn process(pid: u32) -> f64 {
    stat_fields(&pid.to_string())
        .and_then(|f| Some(f.get(10)? + f.get(11)?))
        .map_or(0.0, seconds)
}

/// CPU seconds of the children this process has waited for (`cutime + cstime`).
pub fn reaped_children() -> f64 {
    stat_fields("self")
        .and_then(|f| Some(f.get(12)? + f.get(13)?))
        .map_or(0.0, seconds)
}

/// CPU seconds of `pid`, of its children it has waited for, and of its live children
/// (with theirs): a PostgreSQL postmaster and its backends, coming and going.
pub fn tree(pid: u32) -> f64 {
    let all = |f: &[u64]| f.get(10..14).map_or(0, |t| t.iter().sum::<u64>());
    let own = stat_fields(&pid.to_string()).map_or(0, |f| all(&f));
    let parent = pid as u64;
    let children: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.bytes().all(|b| b.is_ascii_digit()).then_some(name)
        })
        .filter_map(|p| stat_fields(&p))
        .filter(|f| f.first() == Some(&parent))
        .map(|f| all(&f))
        .sum();
    seconds(own + children)
}
