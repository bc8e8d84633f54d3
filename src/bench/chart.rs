//! `report.svg`: events/s of every throughput row, and p50/p99 of every latency row, as horizontal bars
//! on log scales (the figures span four orders of magnitude). Labels are drawn inside the plot, one
//! per bar, so long workload names stay readable.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::Report;
use crate::Error;

const WIDTH_PX: u32 = 1400;
const ROW_PX: u32 = 24;
/// Caption, axis and margins of one panel.
const PANEL_EXTRA_PX: u32 = 90;

/// One bar row: its label and values drawn over each other, largest first.
struct Row {
    label: String,
    values: Vec<f64>,
}

pub fn write_svg(report: &Report, path: &Path) -> Result<(), Error> {
    let throughput: Vec<Row> = report
        .throughput
        .iter()
        .map(|r| Row { label: format!("{} | {} | {}", r.workload, r.system, r.setup), values: vec![r.events_per_s] })
        .collect();
    let latency: Vec<Row> = report
        .latency
        .iter()
        .map(|r| Row {
            label: format!("{} | {} | {}", r.workload, r.system, r.operation),
            values: vec![r.latency.p99_us, r.latency.p50_us],
        })
        .collect();
    let top_px = PANEL_EXTRA_PX + ROW_PX * throughput.len().max(1) as u32;
    let bottom_px = PANEL_EXTRA_PX + ROW_PX * latency.len().max(1) as u32;
    let draw = || -> Result<(), String> {
        let root = SVGBackend::new(path, (WIDTH_PX, top_px + bottom_px)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (top, bottom) = root.split_vertically(top_px);
        let title = format!("tidelog benchmark {} (scale {}): events/s, log scale", report.date_utc, report.scale);
        panel(&top, &title, &throughput, &[RGBColor(70, 130, 180)], rate)?;
        let title = "latency in us, p99 (light) and p50 (dark), log scale";
        panel(&bottom, title, &latency, &[RGBColor(250, 200, 185), RGBColor(235, 125, 105)], micros)?;
        root.present().map_err(|e| e.to_string())
    };
    draw().map_err(|e| super::other_error(format!("draw {}", path.display()), e))
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    rows: &[Row],
    colors: &[RGBColor],
    format: fn(f64) -> String,
) -> Result<(), String> {
    let positive = || rows.iter().flat_map(|r| r.values.iter().copied()).filter(|v| *v > 0.0);
    let min = positive().fold(f64::INFINITY, f64::min);
    let max = positive().fold(0.0, f64::max);
    // Whole decades around the data, so the bars start at a round number.
    let (lo, hi) = if max > 0.0 { (10f64.powf(min.log10().floor() - 1.0), 10f64.powf(max.log10().ceil() + 0.3)) } else { (1.0, 10.0) };
    let n = rows.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n)
        .map_err(|e| e.to_string())?;
    let label_format = |v: &f64| format(*v);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_label_formatter(&label_format)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, row) in rows.iter().enumerate() {
        // Row 0 at the top.
        let y = n - 1.0 - i as f64;
        for (value, color) in row.values.iter().zip(colors.iter().cycle()) {
            let bar = Rectangle::new([(lo, y + 0.1), (value.clamp(lo, hi), y + 0.9)], color.filled());
            chart.draw_series(std::iter::once(bar)).map_err(|e| e.to_string())?;
        }
        let figures: Vec<String> = row.values.iter().map(|v| format(*v)).collect();
        let text = Text::new(format!("{}: {}", row.label, figures.join(" / ")), (lo * 1.1, y + 0.75), ("sans-serif", 12));
        chart.draw_series(std::iter::once(text)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// 1.2M, 35.0k, 900.
fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn micros(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0} us")
    } else {
        format!("{v:.2} us")
    }
}
