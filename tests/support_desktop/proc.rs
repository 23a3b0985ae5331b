//! Process bookkeeping from /proc: the children a process started (WebKit's helper processes),
//! their names and memory, and ending processes this test started (by id, never by name).

use std::process::Command;

/// `(pid, parent pid, name)` of every process.
fn table() -> Vec<(u32, u32, String)> {
    let mut rows = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return rows };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // `pid (comm) state ppid …`; comm may contain spaces and parentheses: split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_string();
        let ppid =
            stat[close + 1..].split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        rows.push((pid, ppid, name));
    }
    rows
}

/// Direct children of `pid`, with their names.
pub fn children(pid: u32) -> Vec<(u32, String)> {
    table().into_iter().filter(|(_, parent, _)| *parent == pid).map(|(p, _, n)| (p, n)).collect()
}

/// Every descendant of `pid` (not `pid` itself), with its name.
pub fn descendants(pid: u32) -> Vec<(u32, String)> {
    let rows = table();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (child, parent, name) in &rows {
            if *parent == p {
                out.push((*child, name.clone()));
                frontier.push(*child);
            }
        }
    }
    out
}

/// Resident set size in KiB (`VmRSS`), `None` once the process is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// RSS of `pid` and all its descendants, in KiB.
pub fn tree_rss_kib(pid: u32) -> u64 {
    rss_kib(pid).unwrap_or(0)
        + descendants(pid).iter().filter_map(|(p, _)| rss_kib(*p)).sum::<u64>()
}

pub fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status();
}

/// SIGKILL to a whole process group this test created.
pub fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(std::process::Stdio::null())
        .status();
}

/// User + system CPU time of `pid` in clock ticks (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0 };
    let Some(close) = stat.rfind(')') else { return 0 };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the comm: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    let get = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// CPU ticks of `pid` and its descendants.
pub fn tree_cpu_ticks(pid: u32) -> u64 {
    cpu_ticks(pid) + descendants(pid).iter().map(|(p, _)| cpu_ticks(*p)).sum::<u64>()
}

/// A field of `/proc/PID/smaps_rollup` in KiB (`Pss`, `Anonymous`, …).
pub fn rollup_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
