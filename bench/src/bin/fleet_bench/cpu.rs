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
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The command name may hold spaces and parentheses: the fields start after its last `)`.
fn parse_stat(text: &str) -> Option<Vec<u64>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 10 0 0 0 250 30 5 6 20 0 1 0";
        let f = parse_stat(line).unwrap();
        assert_eq!(f[0], 7, "the parent");
        assert_eq!(
            (f[10], f[11], f[12], f[13]),
            (250, 30, 5, 6),
            "utime stime cutime cstime"
        );
    }
}
