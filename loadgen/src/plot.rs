//! `loadgen plot`: pictures of runs that tables flatten. A table row shows five percentiles of one
//! run; the curve of every percentile, several runs overlaid, shows where their tails part. The
//! latency-vs-offered-load plot of an open-loop rate sweep shows where each server's latency
//! turns up, which no single phase does.
//!
//! The input is the runs' `--json` lines (each op carries its sampled percentile curve), so one
//! file per run holds everything; lines written before that key existed still plot from their
//! p50..p99.99 and max. The percentile axis is HdrHistogram's "nines" scale, log10(1/(1-p)),
//! because a linear one crushes the tail against the edge. PNG text is drawn by ab_glyph from a
//! TTF read at run time (no fontconfig or freetype to build against); an SVG names a generic font
//! and leaves the text to its viewer, so SVGs are written even where that TTF is missing.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};
use serde_json::Value;

use crate::report::{f, headline, read_jsonl};

/// Debian's fonts-dejavu-core.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The family every text style names: the TTF is registered under it for PNGs, and SVG viewers
/// know it as their default sans-serif font.
const FAMILY: &str = "sans-serif";

/// Writes, for each phase name that several runs (labels) share, their latency-percentile curves
/// overlaid; and, for each open-loop rate sweep, latency (p50, p99, p99.9) against offered rate,
/// one series per run. Every plot as SVG and PNG, under stable names
/// (latency-PHASE.*, load-WORKLOAD-SESSIONSxOUTSTANDING.*), so a rerun overwrites them.
#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// JSON-lines files written by `loadgen --json`, one or more runs; each line's "label" names
    /// its curve (a label+phase seen twice is told apart by its file's name).
    #[arg(required = true, value_name = "JSONL")]
    pub inputs: Vec<PathBuf>,

    /// Directory the plots are written into (created if missing).
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,

    /// TrueType font for the PNGs' text (Debian package fonts-dejavu-core). SVGs need none.
    #[arg(long, default_value = DEFAULT_FONT)]
    pub font: PathBuf,

    /// Width of every plot, in pixels.
    #[arg(long, default_value_t = 960)]
    pub width: u32,

    /// Height of every plot, in pixels.
    #[arg(long, default_value_t = 600)]
    pub height: u32,

    /// Print on stdout a markdown image link to each SVG with a one-line caption (default: the
    /// paths written, one per line).
    #[arg(long)]
    pub markdown: bool,

    /// With --markdown: what the links put before each file name, e.g. `bench/` for a document
    /// in the parent of --out-dir. Default: --out-dir followed by `/`.
    #[arg(long)]
    pub link_prefix: Option<String>,
}

/// One phase of one run.
struct Entry {
    /// The curve's name: the run's label, made unique per phase.
    series: String,
    v: Value,
}

#[derive(Clone, Copy)]
enum Marker {
    None,
    Circle,
    Triangle,
    Cross,
}

struct Series {
    name: String,
    color: RGBColor,
    width: u32,
    dashed: bool,
    marker: Marker,
    points: Vec<(f64, f64)>,
}

/// A plot, independent of the backend it is drawn on.
struct Figure {
    stem: String,
    title: String,
    caption: String,
    x_desc: String,
    x_end: f64,
    /// Tick positions and their labels.
    x_ticks: Vec<(f64, String)>,
    /// Latency range in us, whole decades.
    y: (f64, f64),
    series: Vec<Series>,
}

/// Tableau's ten colours (matplotlib's default cycle): easy to tell apart on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Runs `loadgen plot`, printing the markdown or the paths written. Every SVG is written before
/// any PNG, and a missing font fails only the PNGs (the SVGs' links are still printed).
pub fn run(a: &PlotArgs) -> Result<(), String> {
    if a.width < 300 || a.height < 200 {
        return Err("--width must be >= 300 and --height >= 200".into());
    }
    let (entries, order) = load(&a.inputs)?;
    let color = |s: &str| PALETTE[order.iter().position(|o| o == s).unwrap_or(0) % PALETTE.len()];
    let mut figs = load_figures(&entries, &color);
    figs.extend(percentile_figures(&entries, order.len(), &color));
    if figs.is_empty() {
        return Err("nothing to plot: no phase with latencies in the inputs".into());
    }
    std::fs::create_dir_all(&a.out_dir)
        .map_err(|e| format!("--out-dir {}: {e}", a.out_dir.display()))?;
    let font = load_font(&a.font);
    let size = (a.width, a.height);
    let mut written = Vec::new();
    for fig in &figs {
        let p = a.out_dir.join(format!("{}.svg", fig.stem));
        write_svg(fig, &p, size)?;
        written.push(p);
    }
    if font.is_ok() {
        for fig in &figs {
            let p = a.out_dir.join(format!("{}.png", fig.stem));
            write_png(fig, &p, size)?;
            written.push(p);
        }
    }
    let out = if a.markdown {
        let prefix = a
            .link_prefix
            .clone()
            .unwrap_or_else(|| format!("{}/", a.out_dir.display()));
        let mut s = String::new();
        for fig in &figs {
            s += &format!(
                "![{}]({prefix}{}.svg)\n\n*{}*\n\n",
                fig.title, fig.stem, fig.caption
            );
        }
        s
    } else {
        written
            .iter()
            .map(|p| format!("{}\n", p.display()))
            .collect()
    };
    print!("{out}");
    font.map_err(|e| format!("SVGs written, PNGs not: {e}"))
}

/// Reads every input; returns the entries and the series names in order of first appearance.
fn load(inputs: &[PathBuf]) -> Result<(Vec<Entry>, Vec<String>), String> {
    let mut entries = Vec::new();
    let mut order: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for path in inputs {
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        for v in read_jsonl(&path.to_string_lossy())? {
            let label = v["label"].as_str().unwrap_or("run").to_string();
            let phase = v["phase"].as_str().unwrap_or("").to_string();
            let mut series = label.clone();
            if seen.contains(&(series.clone(), phase.clone())) {
                series = format!("{label} ({stem})");
            }
            let base = series.clone();
            let mut n = 2;
            while seen.contains(&(series.clone(), phase.clone())) {
                series = format!("{base} #{n}");
                n += 1;
            }
            seen.insert((series.clone(), phase));
            if !order.contains(&series) {
                order.push(series.clone());
            }
            entries.push(Entry { series, v });
        }
    }
    if entries.is_empty() {
        return Err("no loadgen JSON lines in the inputs".into());
    }
    Ok((entries, order))
}

/// The nines-axis position of percentile `p` (0..100); `end` stands for 100 (the max).
fn nines(p: f64, end: f64) -> f64 {
    if p >= 100.0 {
        end
    } else {
        (-(1.0 - p / 100.0).log10()).min(end)
    }
}

/// An op's (percentile, us) points: its "percentiles" curve, or, in lines older than that key,
/// its p50..p99.99 and max.
fn curve_points(lat: &Value) -> Vec<(f64, f64)> {
    if let Some(arr) = lat.get("percentiles").and_then(|p| p.as_array()) {
        return arr
            .iter()
            .filter_map(|pt| Some((pt.get(0)?.as_f64()?, pt.get(1)?.as_f64()?)))
            .collect();
    }
    [
        (50.0, "p50"),
        (90.0, "p90"),
        (99.0, "p99"),
        (99.9, "p99.9"),
        (99.99, "p99.99"),
        (100.0, "max"),
    ]
    .iter()
    .filter_map(|(p, k)| Some((*p, f(lat, k)?)))
    .collect()
}

/// Whole decades around `lo..hi` (us), so the log axis always has labelled ticks.
fn decades(lo: f64, hi: f64) -> (f64, f64) {
    let lo = 10f64.powf(lo.max(1e-3).log10().floor());
    let hi = 10f64.powf(hi.max(1e-3).log10().ceil());
    (lo, if hi > lo { hi } else { lo * 10.0 })
}

fn y_range(series: &[Series]) -> (f64, f64) {
    let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    decades(ys().fold(f64::INFINITY, f64::min), ys().fold(0.0, f64::max))
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// One latency-percentile plot per phase that at least two runs share (every phase, when the
/// inputs hold one run), of the phase's headline op.
fn percentile_figures(
    entries: &[Entry],
    n_series: usize,
    color: &dyn Fn(&str) -> RGBColor,
) -> Vec<Figure> {
    let need = n_series.min(2);
    let mut phases: Vec<&str> = Vec::new();
    for e in entries {
        let p = e.v["phase"].as_str().unwrap_or("");
        if !phases.contains(&p) {
            phases.push(p);
        }
    }
    let mut figs = Vec::new();
    for phase in phases {
        let es: Vec<&Entry> = entries.iter().filter(|e| e.v["phase"] == phase).collect();
        let Some((op, _)) = es.iter().find_map(|e| headline(&e.v)) else {
            continue;
        };
        let curves: Vec<(&Entry, &Value)> = es
            .iter()
            .filter_map(|e| Some((*e, e.v.get("latency_us")?.get(&op)?)))
            .filter(|(_, lat)| f(lat, "count").unwrap_or(0.0) > 0.0)
            .collect();
        if curves.len() < need {
            continue;
        }
        let most = curves
            .iter()
            .filter_map(|(_, lat)| f(lat, "count"))
            .fold(1.0, f64::max);
        let end = (most.log10().floor() + 1.0).max(2.0);
        let series: Vec<Series> = curves
            .iter()
            .map(|(e, lat)| Series {
                name: e.series.clone(),
                color: color(&e.series),
                width: 2,
                dashed: false,
                marker: Marker::None,
                points: curve_points(lat)
                    .into_iter()
                    .map(|(p, v)| (nines(p, end), v))
                    .collect(),
            })
            .collect();
        let mut x_ticks = vec![(2f64.log10(), "50%".to_string())];
        for k in 1..end as i32 {
            let digits = (k - 2).max(0) as usize;
            x_ticks.push((
                k as f64,
                format!("{:.digits$}%", 100.0 - 100.0 / 10f64.powi(k)),
            ));
        }
        x_ticks.push((end, "max".into()));
        let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        figs.push(Figure {
            stem: format!("latency-{}", slug(phase)),
            title: format!("{phase}: {op} latency by percentile"),
            caption: format!(
                "{op} latency at each percentile in phase `{phase}`, {}; percentile axis in \
                 nines (90% = 1 in 10 slower, 99.9% = 1 in 1000), log latency axis.",
                names.join(" vs ")
            ),
            x_desc: "percentile".into(),
            x_end: end,
            x_ticks,
            y: y_range(&series),
            series,
        });
    }
    figs
}

/// One latency-vs-offered-load plot per open-loop rate sweep: the open phases of one workload
/// and sessions x outstanding, where some run has at least two rates.
fn load_figures(entries: &[Entry], color: &dyn Fn(&str) -> RGBColor) -> Vec<Figure> {
    type Key = (String, u64, u64);
    let mut groups: Vec<(Key, Vec<&Entry>)> = Vec::new();
    for e in entries {
        if e.v["mode"] != "open" || f(&e.v, "rate").is_none() {
            continue;
        }
        let key = (
            e.v["workload"].as_str().unwrap_or("").to_string(),
            e.v["sessions"].as_u64().unwrap_or(0),
            e.v["outstanding"].as_u64().unwrap_or(0),
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(e),
            None => groups.push((key, vec![e])),
        }
    }
    let mut figs = Vec::new();
    for ((workload, sessions, outstanding), es) in groups {
        let Some((op, _)) = es.iter().find_map(|e| headline(&e.v)) else {
            continue;
        };
        // Per run (by label: a sweep's phases differ in name), its (rate, latencies) points.
        let mut runs: Vec<(String, Vec<(f64, &Value)>)> = Vec::new();
        for e in &es {
            let label = e.v["label"].as_str().unwrap_or(&e.series).to_string();
            let (Some(rate), Some(lat)) = (f(&e.v, "rate"), e.v["latency_us"].get(&op)) else {
                continue;
            };
            match runs.iter_mut().find(|(l, _)| *l == label) {
                Some((_, pts)) => pts.push((rate, lat)),
                None => runs.push((label, vec![(rate, lat)])),
            }
        }
        let distinct = |pts: &[(f64, &Value)]| {
            let mut r: Vec<u64> = pts.iter().map(|p| p.0.to_bits()).collect();
            r.sort_unstable();
            r.dedup();
            r.len()
        };
        if !runs.iter().any(|(_, pts)| distinct(pts) >= 2) {
            continue;
        }
        let mut series = Vec::new();
        let mut max_rate: f64 = 1.0;
        for (label, mut pts) in runs {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            max_rate = pts.iter().map(|p| p.0).fold(max_rate, f64::max);
            let styles = [
                ("p50", 1, false, Marker::Circle),
                ("p99", 2, false, Marker::Triangle),
                ("p99.9", 2, true, Marker::Cross),
            ];
            for (k, width, dashed, marker) in styles {
                series.push(Series {
                    name: format!("{label} {k}"),
                    color: color(&label),
                    width,
                    dashed,
                    marker,
                    points: pts
                        .iter()
                        .filter_map(|(r, lat)| Some((*r, f(lat, k)?)))
                        .collect(),
                });
            }
        }
        let x_end = max_rate * 1.05;
        let shape = format!("{sessions}x{outstanding}");
        let labels: Vec<&str> = series
            .iter()
            .step_by(3)
            .map(|s| s.name.trim_end_matches(" p50"))
            .collect();
        figs.push(Figure {
            stem: format!("load-{}-{shape}", slug(&workload)),
            title: format!("{workload} {shape} open loop: {op} latency vs offered load"),
            caption: format!(
                "{op} latency (p50 solid with circles, p99 triangles, p99.9 dashed with \
                 crosses) against the offered request rate, {workload} open loop on \
                 {sessions} sessions x {outstanding} outstanding, {}; latencies from each \
                 request's intended send time.",
                labels.join(" vs ")
            ),
            x_desc: "offered load (requests/s)".into(),
            x_end,
            x_ticks: rate_ticks(x_end),
            y: y_range(&series),
            series,
        });
    }
    figs
}

/// About six round ticks (1, 2 or 5 times a power of ten apart) from 0 to `end`.
fn rate_ticks(end: f64) -> Vec<(f64, String)> {
    let raw = end / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (0..)
        .map(|i| i as f64 * step)
        .take_while(|x| *x <= end)
        .map(|x| (x, fmt_rate(x)))
        .collect()
}

fn fmt_rate(x: f64) -> String {
    let trim = |v: f64, unit: &str| {
        let s = format!("{v:.1}");
        format!("{}{unit}", s.trim_end_matches(".0"))
    };
    if x >= 1e6 {
        trim(x / 1e6, "M")
    } else if x >= 1e3 {
        trim(x / 1e3, "k")
    } else {
        format!("{x:.0}")
    }
}

/// A latency tick: the axis is in microseconds, the labels in the unit that reads best.
fn fmt_us(us: f64) -> String {
    let (v, unit) = if us >= 1e6 {
        (us / 1e6, "s")
    } else if us >= 1e3 {
        (us / 1e3, "ms")
    } else if us >= 1.0 {
        (us, "µs")
    } else {
        (us * 1e3, "ns")
    };
    let s = format!("{v:.1}");
    format!("{} {unit}", s.trim_end_matches(".0"))
}

/// Loads the TTF and registers it as [`FAMILY`], once per process.
fn load_font(path: &Path) -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = std::fs::read(path).map_err(|e| {
            format!(
                "font {}: {e}; install the Debian package fonts-dejavu-core (apt-get install \
                 fonts-dejavu-core) or pass --font with another TrueType font",
                path.display()
            )
        })?;
        // plotters keeps registered fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
            .map_err(|_| format!("font {}: not a TrueType/OpenType font", path.display()))
    })
    .clone()
}

fn write_svg(fig: &Figure, path: &Path, size: (u32, u32)) -> Result<(), String> {
    let mut buf = String::new();
    {
        let root = SvgText(SVGBackend::with_string(&mut buf, size)).into_drawing_area();
        draw(root, fig).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    std::fs::write(path, buf).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_png(fig: &Figure, path: &Path, size: (u32, u32)) -> Result<(), String> {
    let root = BitMapBackend::new(path, size).into_drawing_area();
    draw(root, fig).map_err(|e| format!("{}: {e}", path.display()))
}

/// Draws `fig` on any backend: one chart, log latency axis, the legend to its right (where no
/// curve can hide under it).
fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, fig: &Figure) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let ticks: Vec<f64> = fig.x_ticks.iter().map(|t| t.0).collect();
    let text = legend_text();
    let mut legend_w = 0;
    for s in &fig.series {
        legend_w = legend_w.max(root.estimate_text_size(&s.name, &text).map_err(err)?.0 as i32);
    }
    legend_w += LEGEND_TEXT_X + 10;
    let mut chart = ChartBuilder::on(&root)
        .caption(&fig.title, (FAMILY, 20))
        .margin(16)
        .margin_right(legend_w + 32)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(
            TickedAxis {
                range: 0.0..fig.x_end,
                ticks,
            },
            (fig.y.0..fig.y.1).log_scale(),
        )
        .map_err(err)?;
    let x_label = |x: &f64| {
        fig.x_ticks
            .iter()
            .find(|t| (t.0 - x).abs() < 1e-9)
            .map(|t| t.1.clone())
            .unwrap_or_default()
    };
    let decades = (fig.y.1 / fig.y.0).log10().round().max(1.0) as usize;
    chart
        .configure_mesh()
        .x_desc(fig.x_desc.as_str())
        .y_desc("latency")
        .x_label_formatter(&x_label)
        .y_labels(decades)
        .y_label_formatter(&|y| fmt_us(*y))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(err)?;
    for s in &fig.series {
        let style = Color::stroke_width(&s.color, s.width);
        let pts = s.points.iter().copied();
        if s.dashed {
            chart.draw_series(DashedLineSeries::new(pts, 8, 5, style))
        } else {
            chart.draw_series(LineSeries::new(pts, style))
        }
        .map_err(err)?;
        for p in &s.points {
            draw_marker(chart.plotting_area(), *p, s.marker, style).map_err(err)?;
        }
    }
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    draw_legend(&root, (xs.end + 16, ys.start), legend_w, &fig.series).map_err(err)?;
    root.present().map_err(err)
}

fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    marker: Marker,
    style: ShapeStyle,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    match marker {
        Marker::None => Ok(()),
        Marker::Circle => area.draw(&Circle::new(at, 3, style.filled())),
        Marker::Triangle => area.draw(&TriangleMarker::new(at, 4, style.filled())),
        Marker::Cross => area.draw(&Cross::new(at, 4, style)),
    }
}

/// Where a legend entry's text starts, from the legend's left edge (the sample line before it).
const LEGEND_TEXT_X: i32 = 48;

fn legend_text() -> TextStyle<'static> {
    TextStyle::from((FAMILY, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center))
}

/// The legend, `w` wide, top left corner at `(x0, y0)`. plotters' own measures its text with the
/// font directly rather than through the backend, so it fails in an SVG without the TTF; this
/// one is sized by the backend.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x0, y0): (i32, i32),
    w: i32,
    series: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let text = legend_text();
    let row = 20;
    let h = row * series.len() as i32 + 8;
    let corners = [(x0, y0), (x0 + w, y0 + h)];
    area.draw(&Rectangle::new(corners, BLACK))?;
    for (i, s) in series.iter().enumerate() {
        let y = y0 + 4 + row * i as i32 + row / 2;
        let style = Color::stroke_width(&s.color, s.width);
        if s.dashed {
            for x in [x0 + 8, x0 + 22] {
                area.draw(&PathElement::new(vec![(x, y), (x + 8, y)], style))?;
            }
        } else {
            area.draw(&PathElement::new(vec![(x0 + 8, y), (x0 + 38, y)], style))?;
        }
        draw_marker(area, (x0 + 23, y), s.marker, style)?;
        area.draw_text(&s.name, &text, (x0 + LEGEND_TEXT_X, y))?;
    }
    Ok(())
}

/// A linear axis with the ticks given, where plotters would pick round numbers (the nines axis
/// needs them at 50%, 90%, 99%, ...). plotters' own `with_key_points` loses the float axis's
/// label formatting, which `configure_mesh` requires.
struct TickedAxis {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        let frac = if span > 0.0 {
            (v - self.range.start) / span
        } else {
            0.0
        };
        limit.0 + (frac * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

impl ValueFormatter<f64> for TickedAxis {
    fn format(v: &f64) -> String {
        format!("{v}")
    }
}

/// SVGBackend, but text the registered font cannot measure (none registered: the TTF is
/// missing) is measured by a rough per-character width, so the SVG is still written. Its text
/// names a generic font and its viewer draws it; the estimate only sizes the legend box.
struct SvgText<'a>(SVGBackend<'a>);

type SvgError = <SVGBackend<'static> as DrawingBackend>::ErrorType;

impl DrawingBackend for SvgText<'_> {
    type ErrorType = SvgError;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<SvgError>> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<SvgError>> {
        self.0.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<SvgError>> {
        self.0.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<SvgError>> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<SvgError>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<SvgError>> {
        self.0.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<SvgError>> {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<SvgError>> {
        self.0.fill_polygon(vert, style)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<SvgError>> {
        self.0.draw_text(text, style, pos)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<SvgError>> {
        Ok(match style.layout_box(text) {
            Ok(((x0, y0), (x1, y1))) => ((x1 - x0) as u32, (y1 - y0) as u32),
            Err(_) => {
                let w = 0.55 * style.size() * text.chars().count() as f64;
                (w as u32, style.size() as u32)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes() {
        assert_eq!(nines(0.0, 5.0), 0.0);
        assert!((nines(99.9, 5.0) - 3.0).abs() < 1e-9);
        assert_eq!(nines(100.0, 5.0), 5.0);
        assert_eq!(decades(12.0, 950.0), (10.0, 1000.0));
        assert_eq!(decades(20.0, 30.0), (10.0, 100.0));
        assert_eq!(decades(100.0, 100.0), (100.0, 1000.0));
        assert_eq!(fmt_us(1500.0), "1.5 ms");
        assert_eq!(fmt_us(10.0), "10 µs");
        assert_eq!(fmt_us(0.1), "100 ns");
        assert_eq!(fmt_rate(25_000.0), "25k");
        assert_eq!(fmt_rate(1_500_000.0), "1.5M");
        let t: Vec<f64> = rate_ticks(52_500.0).iter().map(|t| t.0).collect();
        assert_eq!(t, [0.0, 10_000.0, 20_000.0, 30_000.0, 40_000.0, 50_000.0]);
        assert_eq!(
            slug("getdata open 1200/s 64x64"),
            "getdata-open-1200-s-64x64"
        );
    }
}
