//! The gateway's CPU time and memory, read from `/proc/PID` around each measured run, and the
//! machine facts a result needs to be comparable.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

/// A process's counters at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    /// utime + stime, in clock ticks.
    cpu_ticks: u64,
    hwm_kib: u64,
}

/// What the process used during one measured run.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// CPU time over wall time, in percent of one core.
    pub cpu_percent: f64,
    /// CPU time per completed request, µs.
    pub cpu_us_per_request: Option<f64>,
    /// Peak resident memory (VmHWM), KiB.
    pub peak_rss_kib: u64,
    /// `run` when the peak was reset at the start of the run, `process` when it is the
    /// process's lifetime peak (the reset needs write access to /proc/PID/clear_refs).
    pub peak_scope: &'static str,
}

pub struct Watch {
    pid: u32,
    ticks_per_sec: u64,
    start: Sample,
    peak_reset: bool,
}

impl Watch {
    /// Resets the peak RSS if allowed, then takes the starting sample.
    pub fn begin(pid: u32, ticks_per_sec: u64) -> Result<Self> {
        // Writing 5 to clear_refs sets VmHWM back to the current RSS (proc(5)), which turns
        // the lifetime peak into this run's peak.
        let peak_reset = std::fs::write(proc_path(pid, "clear_refs"), b"5").is_ok();
        Ok(Watch {
            pid,
            ticks_per_sec,
            start: sample(pid)?,
            peak_reset,
        })
    }

    pub fn end(self, requests: u64) -> Result<Usage> {
        let end = sample(self.pid)?;
        let cpu_secs =
            end.cpu_ticks.saturating_sub(self.start.cpu_ticks) as f64 / self.ticks_per_sec as f64;
        let wall = end.at.duration_since(self.start.at).as_secs_f64();
        Ok(Usage {
            cpu_percent: if wall > 0.0 {
                100.0 * cpu_secs / wall
            } else {
                0.0
            },
            cpu_us_per_request: (requests > 0).then(|| cpu_secs * 1e6 / requests as f64),
            peak_rss_kib: end.hwm_kib,
            peak_scope: if self.peak_reset { "run" } else { "process" },
        })
    }
}

fn proc_path(pid: u32, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{file}"))
}

pub fn sample(pid: u32) -> Result<Sample> {
    let stat = std::fs::read_to_string(proc_path(pid, "stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (is the gateway running?)"))?;
    let status = std::fs::read_to_string(proc_path(pid, "status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    Ok(Sample {
        at: Instant::now(),
        cpu_ticks: cpu_ticks(&stat).context("unexpected /proc/PID/stat format")?,
        hwm_kib: status_kib(&status, "VmHWM").context("no VmHWM in /proc/PID/status")?,
    })
}

/// utime + stime: fields 14 and 15 of stat. The command name (field 2) is in parentheses and
/// may hold spaces, so count from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so field n is fields[n - 3].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status_field(status, key)?
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then_some(v.trim())
    })
}

/// The CPUs a process may run on, e.g. `0` or `0-1`: shows whether pinning took effect.
pub fn cpus_allowed(pid: Option<u32>) -> Option<String> {
    let path = match pid {
        Some(p) => proc_path(p, "status"),
        None => PathBuf::from("/proc/self/status"),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status_field(&status, "Cpus_allowed_list").map(str::to_owned)
}

/// Clock ticks per second for /proc times. `getconf` saves an unsafe sysconf call; 100 is
/// the value on every Linux architecture in practice.
pub fn ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_gib: f64,
    /// CPUs the benchmark itself may run on.
    pub bench_cpus: String,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = status_kib(&meminfo, "MemTotal").unwrap_or(0) as f64 / (1024.0 * 1024.0);
    Machine {
        cpus,
        cpu_model,
        kernel,
        memory_gib,
        bench_cpus: cpus_allowed(None).unwrap_or_else(|| "unknown".to_owned()),
    }
}

/// Whole-machine CPU time from the first line of /proc/stat, in ticks.
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    busy: u64,
    steal: u64,
    total: u64,
}

pub fn cpu_times() -> Option<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_line(stat.lines().next()?)
}

/// `cpu user nice system idle iowait irq softirq steal ...`; guest time is already inside
/// user, so only the first eight count.
fn parse_cpu_line(line: &str) -> Option<CpuTimes> {
    let v: Vec<u64> = line
        .strip_prefix("cpu ")?
        .split_whitespace()
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 8 {
        return None;
    }
    let total: u64 = v.iter().sum();
    Some(CpuTimes {
        busy: total - v[3] - v[4] - v[7],
        steal: v[7],
        total,
    })
}

impl CpuTimes {
    /// Percent of all CPUs busy, less `excluded` ticks (processes of our own), and percent
    /// stolen by the hypervisor, since `earlier`.
    pub fn since(&self, earlier: &CpuTimes, excluded: u64) -> (f64, f64) {
        let total = self.total.saturating_sub(earlier.total).max(1) as f64;
        let busy = self
            .busy
            .saturating_sub(earlier.busy)
            .saturating_sub(excluded);
        (
            100.0 * busy as f64 / total,
            100.0 * self.steal.saturating_sub(earlier.steal) as f64 / total,
        )
    }
}

/// utime + stime of a process, in ticks; 0 when it cannot be read.
pub fn process_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(proc_path(pid, "stat"))
        .ok()
        .and_then(|s| cpu_ticks(&s))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat =
            "1234 (my gate way) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 2 3";
        assert_eq!(cpu_ticks(stat), Some(300));
    }

    #[test]
    fn parses_status_fields() {
        let status = "Name:\tx\nVmHWM:\t   12345 kB\nCpus_allowed_list:\t0\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(12345));
        assert_eq!(status_field(status, "Cpus_allowed_list"), Some("0"));
    }

    #[test]
    fn parses_the_cpu_line() {
        let a = parse_cpu_line("cpu  100 0 50 800 10 0 0 40 7 0").unwrap();
        let b = parse_cpu_line("cpu  200 0 100 1600 20 0 0 80 9 0").unwrap();
        assert_eq!((a.busy, a.steal, a.total), (150, 40, 1000));
        let (busy, steal) = b.since(&a, 50);
        assert!((busy - 10.0).abs() < 1e-9 && (steal - 4.0).abs() < 1e-9);
        assert!(parse_cpu_line("cpu0 1 2 3").is_none());
    }

    #[test]
    fn samples_this_process() {
        let watch = Watch::begin(std::process::id(), ticks_per_sec()).unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let usage = watch.end(10).unwrap();
        assert!(usage.peak_rss_kib > 0);
        assert!(usage.cpu_percent >= 0.0);
        assert!(machine().cpus >= 1);
    }
}
