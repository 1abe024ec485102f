//! Result tables shared by every scenario: a [`Report`] holds one row per
//! measured quantity and one cell per system (by default the first system is
//! the one under test, `insane`, and the others are baselines; a scenario
//! with several insane variants compares each of them with one baseline
//! through [`Report::ratios_against`]). This module computes the speedup
//! ratios, renders the Markdown table printed on stdout and written to
//! `DIR/<scenario>.md`, and writes the machine-readable
//! `DIR/<scenario>.json`.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// What a row measures; decides its formatting and which direction is better.
#[derive(Clone, Debug)]
pub enum Unit {
    /// Operations per second (`what` names the operation, e.g. `"tasks"`);
    /// higher is better.
    Rate {
        /// The operation counted, e.g. `"tasks"`, `"yields"`.
        what: &'static str,
    },
    /// A duration in nanoseconds (latency, cost per operation); lower is
    /// better.
    Nanos,
    /// A bit rate in bits per second, shown in Gbit/s; higher is better.
    BitsPerSec,
}

impl Unit {
    /// The unit as shown in tables and JSON, e.g. `"tasks/s"` or `"ns"`.
    pub fn label(&self) -> String {
        match self {
            Unit::Rate { what } => format!("{what}/s"),
            Unit::Nanos => "ns".to_owned(),
            Unit::BitsPerSec => "Gbit/s".to_owned(),
        }
    }

    /// Whether a larger value means a faster system.
    pub fn higher_is_better(&self) -> bool {
        matches!(self, Unit::Rate { .. } | Unit::BitsPerSec)
    }

    /// Human formatting of a value in this unit (SI prefixes for rates,
    /// ns/µs/ms/s for durations).
    pub fn format(&self, v: f64) -> String {
        match self {
            Unit::Rate { .. } => format_si(v),
            Unit::Nanos => format_nanos(v),
            Unit::BitsPerSec => format!("{:.2}", v / 1e9),
        }
    }
}

/// One system's result in one row.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cell {
    /// The reported value (median over the repetitions), if measured.
    pub value: Option<f64>,
    /// The per-repetition values the median was taken from.
    pub samples: Vec<f64>,
    /// Why there is no value (panic, hang, unsupported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Cell {
    /// A cell holding the median of `samples` (which must not be empty).
    pub fn from_samples(samples: Vec<f64>) -> Cell {
        Cell {
            value: Some(median(&samples)),
            samples,
            error: None,
        }
    }

    /// A cell for a measurement that failed.
    pub fn failed(reason: impl Into<String>) -> Cell {
        Cell {
            value: None,
            samples: Vec::new(),
            error: Some(reason.into()),
        }
    }
}

/// One measured quantity across all systems.
#[derive(Clone, Debug)]
pub struct Row {
    /// Name shown in the first column, e.g. `"spawn+join"`.
    pub benchmark: String,
    /// Unit of every cell of the row.
    pub unit: Unit,
    /// One cell per system, in [`Report::systems`] order.
    pub cells: Vec<Cell>,
}

/// A latency distribution per system, for one configuration of a
/// scenario (e.g. `"64 B"` or `"16 conn"`): plotted as a CDF and written to
/// the JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Cdf {
    /// The configuration, e.g. `"64 B"`.
    pub title: String,
    /// Per system (in [`Report::systems`] order, failed ones left out):
    /// its name and `[latency ns, cumulative fraction]` points, ascending.
    pub series: Vec<(String, Vec<[f64; 2]>)>,
}

/// A scenario's results.
#[derive(Clone, Debug)]
pub struct Report {
    /// Scenario name; also the file stem of the written files.
    pub scenario: String,
    /// Systems compared; the first is the subject, the rest are baselines.
    pub systems: Vec<String>,
    /// The ratio columns, as `(subject, baseline)` indexes into `systems`;
    /// by default `(0, i)` for every other system `i`.
    pub ratios: Vec<(usize, usize)>,
    /// Parameters of the run (counts, repetitions, flags), in display order.
    pub params: Vec<(String, String)>,
    /// The rows, in display order.
    pub rows: Vec<Row>,
    /// Free-form remarks printed under the table (method, caveats, errors).
    pub notes: Vec<String>,
    /// Latency distributions, one per configuration (latency scenarios).
    pub cdfs: Vec<Cdf>,
}

impl Report {
    /// An empty report comparing `systems` (subject first).
    pub fn new(scenario: &str, systems: &[&str]) -> Report {
        Report {
            scenario: scenario.to_owned(),
            systems: systems.iter().map(|s| (*s).to_owned()).collect(),
            ratios: (1..systems.len()).map(|i| (0, i)).collect(),
            params: Vec::new(),
            rows: Vec::new(),
            notes: Vec::new(),
            cdfs: Vec::new(),
        }
    }

    /// Records a run parameter.
    pub fn param(&mut self, name: &str, value: impl ToString) {
        self.params.push((name.to_owned(), value.to_string()));
    }

    /// Appends a row; `cells` must have one entry per system.
    pub fn row(&mut self, benchmark: &str, unit: Unit, cells: Vec<Cell>) {
        assert_eq!(cells.len(), self.systems.len(), "one cell per system");
        self.rows.push(Row {
            benchmark: benchmark.to_owned(),
            unit,
            cells,
        });
    }

    /// Replaces the ratio columns: every system whose name starts with
    /// `prefix` (the subjects) against the system named `baseline`. Does
    /// nothing when there is no such baseline.
    pub fn ratios_against(&mut self, prefix: &str, baseline: &str) {
        let Some(b) = self.systems.iter().position(|s| s == baseline) else {
            return;
        };
        self.ratios = (0..self.systems.len())
            .filter(|&i| i != b && self.systems[i].starts_with(prefix))
            .map(|i| (i, b))
            .collect();
    }

    /// Speedup of system `subject` over system `other` in `row`: `> 1`
    /// means the subject is faster, whatever the unit's direction.
    pub fn speedup(&self, row: &Row, subject: usize, other: usize) -> Option<f64> {
        speedup(
            &row.unit,
            row.cells[subject].value?,
            row.cells[other].value?,
        )
    }

    /// The best insane system in `row` (systems whose name starts with
    /// `insane`), by the unit's direction: its index and value.
    pub fn insane_best(&self, row: &Row) -> Option<(usize, f64)> {
        let mut best: Option<(usize, f64)> = None;
        for (i, cell) in row.cells.iter().enumerate() {
            let Some(v) = cell.value else { continue };
            if !self.systems[i].starts_with("insane") || !v.is_finite() {
                continue;
            }
            let better = match best {
                None => true,
                Some((_, b)) => speedup(&row.unit, v, b).is_some_and(|r| r > 1.0),
            };
            if better {
                best = Some((i, v));
            }
        }
        best
    }

    /// Every system's result in `row` relative to insane's best: the
    /// speedup of that system over insane's best (`1.0` for the best insane
    /// system itself, `< 1` for a system behind it, `> 1` for one ahead).
    pub fn relative_to_insane_best(&self, row: &Row) -> Vec<Option<f64>> {
        let best = self.insane_best(row);
        row.cells
            .iter()
            .map(|c| speedup(&row.unit, c.value?, best?.1))
            .collect()
    }

    /// The table "relative to insane's best" in Markdown: per row, which
    /// insane system was best, then every system's ratio to it.
    pub fn relative_markdown(&self) -> String {
        let mut header = vec!["benchmark".to_owned(), "insane's best".to_owned()];
        header.extend(self.systems.iter().cloned());
        let mut lines = vec![header];
        for row in &self.rows {
            let Some((b, _)) = self.insane_best(row) else {
                continue;
            };
            let mut line = vec![row.benchmark.clone(), self.systems[b].clone()];
            for r in self.relative_to_insane_best(row) {
                line.push(r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x")));
            }
            lines.push(line);
        }
        if lines.len() == 1 {
            return String::new();
        }
        let mut out = format!(
            "\n### {}: every contestant relative to insane's best\n\n",
            self.scenario
        );
        out.push_str(&markdown_table(&lines));
        out.push_str(
            "\nPer row: the speedup of each contestant over the best insane contestant of that \
             row (1.00x = insane's best; below 1 the contestant is behind insane, above 1 ahead \
             of it, whatever the row's unit).\n",
        );
        out
    }

    /// Header of the ratio column `(subject, baseline)`, e.g. `"insane/tokio-ct"`.
    fn ratio_label(&self, (subject, baseline): (usize, usize)) -> String {
        format!("{}/{}", self.systems[subject], self.systems[baseline])
    }

    /// The table as GitHub Markdown, columns aligned so it also reads well
    /// in a terminal, followed by the parameters and notes.
    pub fn to_markdown(&self) -> String {
        let mut header = vec!["benchmark".to_owned()];
        header.extend(self.systems.iter().cloned());
        for &pair in &self.ratios {
            header.push(self.ratio_label(pair));
        }
        let mut lines = vec![header];
        for row in &self.rows {
            let mut line = vec![match row.unit {
                // Durations carry their unit in every cell.
                Unit::Nanos => row.benchmark.clone(),
                Unit::Rate { .. } | Unit::BitsPerSec => {
                    format!("{} ({})", row.benchmark, row.unit.label())
                }
            }];
            for cell in &row.cells {
                line.push(match (cell.value, &cell.error) {
                    (Some(v), _) => row.unit.format(v),
                    (None, Some(_)) => "FAILED".to_owned(),
                    (None, None) => "-".to_owned(),
                });
            }
            for &(subject, other) in &self.ratios {
                line.push(match self.speedup(row, subject, other) {
                    Some(r) => format!("{r:.2}x"),
                    None => "-".to_owned(),
                });
            }
            lines.push(line);
        }

        let mut out = String::new();
        let _ = writeln!(out, "## {} scenario\n", self.scenario);
        out.push_str(&markdown_table(&lines));
        let mut subjects: Vec<&str> = Vec::new();
        for &(s, _) in &self.ratios {
            if !subjects.contains(&self.systems[s].as_str()) {
                subjects.push(&self.systems[s]);
            }
        }
        if !subjects.is_empty() {
            let subjects = subjects.join(", ");
            let _ = writeln!(
                out,
                "\nRatios a/b are speedups of {subjects} over the baseline b \
                 (>1 means a is faster, whatever the row's unit)."
            );
        }
        out.push_str(&self.relative_markdown());
        if !self.params.is_empty() {
            out.push_str("\nParameters:\n");
            for (k, v) in &self.params {
                let _ = writeln!(out, "- {k}: {v}");
            }
        }
        // One line per distinct (system, error), naming the rows it hit.
        let mut errors: Vec<(&str, &str, Vec<&str>)> = Vec::new();
        for row in &self.rows {
            for (cell, sys) in row.cells.iter().zip(&self.systems) {
                let Some(e) = &cell.error else { continue };
                match errors.iter_mut().find(|(s, m, _)| s == sys && m == e) {
                    Some((_, _, rows)) => rows.push(&row.benchmark),
                    None => errors.push((sys, e, vec![&row.benchmark])),
                }
            }
        }
        if !self.notes.is_empty() || !errors.is_empty() {
            out.push_str("\nNotes:\n");
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
            for (sys, e, rows) in errors {
                let _ = writeln!(out, "- FAILED on {sys} ({}): {e}", rows.join(", "));
            }
        }
        out
    }

    /// The report as JSON: parameters, notes, and per row the unit, the
    /// direction, every cell (median, samples, error) and the speedups.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.json()).unwrap_or_default()
    }

    /// [`Report::to_json`] as pretty-printed text, with the fields in
    /// reading order (scenario and systems first, notes last).
    pub fn to_json_string(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(&self.json())
    }

    fn json(&self) -> JsonReport<'_> {
        let rows = self
            .rows
            .iter()
            .map(|row| JsonRow {
                benchmark: &row.benchmark,
                unit: row.unit.label(),
                higher_is_better: row.unit.higher_is_better(),
                results: self
                    .systems
                    .iter()
                    .zip(&row.cells)
                    .map(|(s, c)| (s.clone(), serde_json::to_value(c).unwrap_or_default()))
                    .collect(),
                speedup: self
                    .ratios
                    .iter()
                    .map(|&(s, o)| (self.ratio_label((s, o)), self.speedup(row, s, o).into()))
                    .collect(),
                insane_best: self.insane_best(row).map(|(i, _)| self.systems[i].as_str()),
                relative_to_insane_best: self
                    .systems
                    .iter()
                    .zip(self.relative_to_insane_best(row))
                    .map(|(s, r)| (s.clone(), r.into()))
                    .collect(),
            })
            .collect();
        JsonReport {
            scenario: &self.scenario,
            subject: &self.systems[0],
            systems: &self.systems,
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            params: self
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect(),
            rows,
            notes: &self.notes,
            latency_cdfs: &self.cdfs,
        }
    }

    /// Writes `dir/<scenario>.md` and `dir/<scenario>.json`, creating `dir`;
    /// returns both paths.
    pub fn write(&self, dir: &Path) -> io::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let md = dir.join(format!("{}.md", self.scenario));
        let json = dir.join(format!("{}.json", self.scenario));
        std::fs::write(&md, self.to_markdown())?;
        let text = self.to_json_string().map_err(io::Error::other)?;
        std::fs::write(&json, text + "\n")?;
        Ok((md, json))
    }
}

/// `lines` (the first one the header) as a Markdown table with aligned
/// columns, the first left-aligned and the others right-aligned.
fn markdown_table(lines: &[Vec<String>]) -> String {
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        out.push('|');
        for (c, text) in line.iter().enumerate() {
            let pad = widths[c] - text.chars().count();
            if c == 0 {
                let _ = write!(out, " {text}{} |", " ".repeat(pad));
            } else {
                let _ = write!(out, " {}{text} |", " ".repeat(pad));
            }
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for (c, w) in widths.iter().enumerate() {
                let dashes = "-".repeat(*w);
                if c == 0 {
                    let _ = write!(out, " {dashes} |");
                } else {
                    let _ = write!(out, " {}: |", &dashes[1..]);
                }
            }
            out.push('\n');
        }
    }
    out
}

/// Serialized form of a [`Row`]; `results` is keyed by system name,
/// `speedup` by ratio column (`"subject/baseline"`).
#[derive(Serialize)]
struct JsonRow<'a> {
    benchmark: &'a str,
    unit: String,
    higher_is_better: bool,
    results: serde_json::Map<String, serde_json::Value>,
    speedup: serde_json::Map<String, serde_json::Value>,
    /// The best insane system of the row.
    insane_best: Option<&'a str>,
    /// Per system, its speedup over `insane_best` (1.0 for that system).
    relative_to_insane_best: serde_json::Map<String, serde_json::Value>,
}

/// Serialized form of a [`Report`].
#[derive(Serialize)]
struct JsonReport<'a> {
    scenario: &'a str,
    subject: &'a str,
    systems: &'a [String],
    unix_time: u64,
    params: serde_json::Map<String, serde_json::Value>,
    rows: Vec<JsonRow<'a>>,
    notes: &'a [String],
    latency_cdfs: &'a [Cdf],
}

/// Speedup of `subject` over `baseline` in `unit` (>1: subject faster).
pub fn speedup(unit: &Unit, subject: f64, baseline: f64) -> Option<f64> {
    let r = if unit.higher_is_better() {
        subject / baseline
    } else {
        baseline / subject
    };
    r.is_finite().then_some(r)
}

/// Median of `values` (mean of the two middle ones for an even count);
/// NaN for an empty slice.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `12345678.0` → `"12.35M"`.
fn format_si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.2}k", v / 1e3)
    } else {
        format!("{v:.2}")
    }
}

/// `12345.0` (ns) → `"12.35µs"`.
pub fn format_nanos(ns: f64) -> String {
    let a = ns.abs();
    if a >= 1e9 {
        format!("{:.2}s", ns / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}ms", ns / 1e6)
    } else if a >= 1e3 {
        format!("{:.2}µs", ns / 1e3)
    } else {
        format!("{ns:.1}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speedup_direction() {
        let rate = Unit::Rate { what: "tasks" };
        assert_eq!(speedup(&rate, 200.0, 100.0), Some(2.0));
        assert_eq!(speedup(&Unit::Nanos, 50.0, 100.0), Some(2.0));
        assert_eq!(speedup(&Unit::Nanos, 0.0, 100.0), None);
    }

    #[test]
    fn median_odd_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn markdown_has_ratios_and_failures() {
        let mut r = Report::new("t", &["a", "b", "c"]);
        r.row(
            "x",
            Unit::Rate { what: "ops" },
            vec![
                Cell::from_samples(vec![2e6]),
                Cell::from_samples(vec![1e6]),
                Cell::failed("panicked"),
            ],
        );
        let md = r.to_markdown();
        assert!(md.contains("2.00M"), "{md}");
        assert!(md.contains("2.00x"), "{md}");
        assert!(md.contains("FAILED"), "{md}");
        assert!(md.contains("FAILED on c (x): panicked"), "{md}");
        let json = r.to_json();
        assert_eq!(json["rows"][0]["speedup"]["a/b"], 2.0);
        assert!(json["rows"][0]["speedup"]["a/c"].is_null());
    }

    #[test]
    fn ratios_against_one_baseline() {
        let mut r = Report::new("t", &["insane-x", "insane-y", "tokio", "std"]);
        r.ratios_against("insane", "tokio");
        r.row(
            "rate",
            Unit::BitsPerSec,
            vec![
                Cell::from_samples(vec![20e9]),
                Cell::from_samples(vec![5e9]),
                Cell::from_samples(vec![10e9]),
                Cell::from_samples(vec![1e9]),
            ],
        );
        let md = r.to_markdown();
        assert!(md.contains("insane-x/tokio"), "{md}");
        assert!(md.contains("insane-y/tokio"), "{md}");
        assert!(!md.contains("insane-x/std"), "{md}");
        assert!(md.contains("20.00"), "{md}");
        let json = r.to_json();
        assert_eq!(json["rows"][0]["speedup"]["insane-x/tokio"], 2.0);
        assert_eq!(json["rows"][0]["speedup"]["insane-y/tokio"], 0.5);
    }

    #[test]
    fn relative_to_insane_best_per_row() {
        let mut r = Report::new("t", &["insane-a", "insane-b", "tokio", "std"]);
        r.row(
            "rate",
            Unit::Rate { what: "req" },
            vec![
                Cell::from_samples(vec![100.0]),
                Cell::from_samples(vec![200.0]),
                Cell::from_samples(vec![100.0]),
                Cell::failed("hung"),
            ],
        );
        r.row(
            "latency",
            Unit::Nanos,
            vec![
                Cell::from_samples(vec![10.0]),
                Cell::from_samples(vec![20.0]),
                Cell::from_samples(vec![5.0]),
                Cell::from_samples(vec![40.0]),
            ],
        );
        assert_eq!(r.insane_best(&r.rows[0]).map(|b| b.0), Some(1));
        assert_eq!(r.insane_best(&r.rows[1]).map(|b| b.0), Some(0));
        assert_eq!(
            r.relative_to_insane_best(&r.rows[0]),
            vec![Some(0.5), Some(1.0), Some(0.5), None]
        );
        assert_eq!(
            r.relative_to_insane_best(&r.rows[1]),
            vec![Some(1.0), Some(0.5), Some(2.0), Some(0.25)]
        );
        let md = r.to_markdown();
        assert!(md.contains("relative to insane's best"), "{md}");
        assert!(
            md.contains("| latency   |      insane-a |    1.00x |"),
            "{md}"
        );
        let json = r.to_json();
        assert_eq!(json["rows"][0]["insane_best"], "insane-b");
        assert_eq!(json["rows"][1]["relative_to_insane_best"]["tokio"], 2.0);
    }
}
