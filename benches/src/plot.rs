//! PNG plots of a run (plotters, bitmap backend): per latency scenario a
//! CDF with one line per contestant (`<scenario>-latency-cdf.png`, one
//! panel per configuration), and per scenario with throughput rows a bar
//! chart (`<scenario>-throughput.png`, one panel per row).
//!
//! Text is drawn with ab_glyph from the Ubuntu font that the
//! `epaint_default_fonts` crate ships, so no system font or library is
//! needed.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{Cdf, Report, Unit, format_nanos};

/// Registers the font once; plotters' text calls fail without it.
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let font = epaint_default_fonts::UBUNTU_LIGHT;
        if plotters::style::register_font("sans-serif", FontStyle::Normal, font).is_err() {
            say!("plots: the bundled font did not load; text will be missing");
        }
    });
}

/// Colour of the `i`-th system named `name`: warm colours for insane's
/// contestants, cool ones for the others.
fn color(name: &str, i: usize) -> RGBColor {
    const INSANE: [RGBColor; 4] = [
        RGBColor(214, 39, 40),
        RGBColor(255, 127, 14),
        RGBColor(188, 128, 0),
        RGBColor(227, 119, 194),
    ];
    const OTHERS: [RGBColor; 5] = [
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(127, 127, 127),
        RGBColor(148, 103, 189),
        RGBColor(23, 190, 207),
    ];
    if name.starts_with("insane") {
        INSANE[i % INSANE.len()]
    } else {
        OTHERS[i % OTHERS.len()]
    }
}

/// Colours of every system of `report`, in order.
fn colors(systems: &[String]) -> Vec<RGBColor> {
    let (mut ins, mut other) = (0, 0);
    systems
        .iter()
        .map(|s| {
            let n = if s.starts_with("insane") {
                ins += 1;
                ins - 1
            } else {
                other += 1;
                other - 1
            };
            color(s, n)
        })
        .collect()
}

/// Draws every plot of `report` into `dir`; returns the files written.
pub fn write(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, String> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    let cdfs: Vec<&Cdf> = report
        .cdfs
        .iter()
        .filter(|c| !c.series.is_empty())
        .collect();
    if !cdfs.is_empty() {
        let path = dir.join(format!("{}-latency-cdf.png", report.scenario));
        latency_cdf(report, &cdfs, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(path);
    }
    let bars: Vec<usize> = (0..report.rows.len())
        .filter(|&i| {
            let row = &report.rows[i];
            row.unit.higher_is_better() && row.cells.iter().any(|c| c.value.is_some())
        })
        .collect();
    if !bars.is_empty() {
        let path = dir.join(format!("{}-throughput.png", report.scenario));
        throughput(report, &bars, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(path);
    }
    Ok(files)
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// One CDF panel per configuration, stacked.
fn latency_cdf(report: &Report, cdfs: &[&Cdf], path: &Path) -> Result<(), String> {
    let height = 420 * cdfs.len() as u32;
    let root = BitMapBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let colors = colors(&report.systems);
    for (panel, cdf) in root.split_evenly((cdfs.len(), 1)).iter().zip(cdfs) {
        cdf_panel(report, cdf, &colors, panel)?;
    }
    root.present().map_err(err)
}

fn cdf_panel(
    report: &Report,
    cdf: &Cdf,
    colors: &[RGBColor],
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
) -> Result<(), String> {
    let values = cdf.series.iter().flat_map(|(_, p)| p.iter().map(|p| p[0]));
    let lo = values.clone().fold(f64::INFINITY, f64::min).max(1.0);
    let hi = values.fold(0.0, f64::max).max(lo * 2.0);
    let what = if report.scenario.contains("echo") {
        "request latency"
    } else {
        "round-trip time"
    };
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{} {}: {what} CDF", report.scenario, cdf.title),
            ("sans-serif", 24),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((lo * 0.9..hi * 1.1).log_scale(), 0.0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(format!("{what} (log scale)"))
        .y_desc("fraction of samples")
        .x_label_formatter(&|v| format_nanos(*v))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for (name, points) in &cdf.series {
        let i = report.systems.iter().position(|s| s == name).unwrap_or(0);
        let c = colors.get(i).copied().unwrap_or(BLACK);
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p[0].max(lo), p[1])),
                c.stroke_width(2),
            ))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// One bar panel per throughput row, stacked.
fn throughput(report: &Report, rows: &[usize], path: &Path) -> Result<(), String> {
    let height = 340 * rows.len() as u32;
    let root = BitMapBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let colors = colors(&report.systems);
    for (panel, &r) in root.split_evenly((rows.len(), 1)).iter().zip(rows) {
        bar_panel(report, r, &colors, panel)?;
    }
    root.present().map_err(err)
}

fn bar_panel(
    report: &Report,
    r: usize,
    colors: &[RGBColor],
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
) -> Result<(), String> {
    let row = &report.rows[r];
    let n = report.systems.len();
    let values: Vec<Option<f64>> = row.cells.iter().map(|c| c.value).collect();
    let max = values.iter().flatten().fold(0.0_f64, |a, &b| a.max(b));
    let top = if max > 0.0 { max * 1.18 } else { 1.0 };
    let names = &report.systems;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{}: {} ({}, higher is better)",
                report.scenario,
                row.benchmark,
                row.unit.label()
            ),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(70)
        // Integer ranges are inclusive in plotters: n segments.
        .build_cartesian_2d((0..n.saturating_sub(1)).into_segmented(), 0.0..top)
        .map_err(err)?;
    let unit = row.unit.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(1)
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| match unit {
            Unit::BitsPerSec => format!("{:.1}", v / 1e9),
            _ => unit.format(*v),
        })
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(values.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)?;
            let c = colors.get(i).copied().unwrap_or(BLACK);
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), v),
                ],
                c.filled(),
            );
            bar.set_margin(0, 0, 18, 18);
            Some(bar)
        }))
        .map_err(err)?;
    chart
        .draw_series(values.iter().enumerate().map(|(i, v)| {
            let text = match v {
                Some(v) => row.unit.format(*v),
                None => "FAILED".to_owned(),
            };
            Text::new(
                text,
                (SegmentValue::CenterOf(i), v.unwrap_or(0.0) + top * 0.02),
                ("sans-serif", 15)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))
        .map_err(err)?;
    Ok(())
}
