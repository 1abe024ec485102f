//! What `results.json` records about the run besides the numbers: the
//! source (git commit), the machine (kernel, CPU model and count), when
//! and with which command line.

use std::process::Command;

use serde::Serialize;

/// The machine and the source a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// `git rev-parse HEAD` of the checkout, or `"unknown"`.
    pub git_commit: String,
    /// Whether the checkout had uncommitted changes (`None`: unknown).
    pub git_dirty: Option<bool>,
    /// `uname -r`.
    pub kernel: String,
    /// The first `model name` of `/proc/cpuinfo`, or `"unknown"`.
    pub cpu_model: String,
    /// Online CPUs (`processor` lines of `/proc/cpuinfo`).
    pub cpus_online: usize,
    /// CPUs this process may run on.
    pub cpus_available: usize,
    /// Start of the run, UTC, RFC 3339.
    pub timestamp: String,
    /// Start of the run, seconds since the Unix epoch.
    pub unix_time: u64,
    /// The command line, as given.
    pub command: Vec<String>,
}

impl RunInfo {
    /// Collects the facts now.
    pub fn collect() -> RunInfo {
        let unix_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        RunInfo {
            git_commit: git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_owned()),
            git_dirty: git(&["status", "--porcelain", "--untracked-files=no"])
                .map(|s| !s.is_empty()),
            kernel: crate::scenarios::net::kernel_release(),
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".to_owned()),
            cpus_online: cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count(),
            cpus_available: std::thread::available_parallelism().map_or(0, |n| n.get()),
            timestamp: rfc3339(unix_time),
            unix_time,
            command: std::env::args().collect(),
        }
    }
}

/// `git <args>` in the source tree (so it names the measured checkout
/// whatever the working directory); `None` when git or the repository is
/// missing.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The `model name` field of `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn cpu_model_field() {
        let text = "processor\t: 0\nmodel name\t: Example CPU @ 3.00GHz\n";
        assert_eq!(cpu_model(text).as_deref(), Some("Example CPU @ 3.00GHz"));
        assert_eq!(cpu_model("processor: 0\n"), None);
    }
}
