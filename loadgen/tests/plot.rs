//! `loadgen plot` on synthetic runs, through the real binary: the plots compare.sh embeds in
//! docs/BENCHMARKS.md must come out as files a browser and an image viewer accept, under the
//! names the doc links to. Synthetic input keeps this test free of glommio and timing; live.rs
//! plots a real echo run. The PNGs need the DejaVu font (Debian fonts-dejavu-core, which
//! .ci/run installs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("loadgen-plot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A getData latency object as `loadgen --json` writes it: p50 = `base` us, rising with the
/// nines (with or without the full "percentiles" curve: older lines lack it).
fn latency(base: f64, count: u64, with_curve: bool) -> Value {
    let at = |p: f64| base * (1.0 + 10.0 * (p / 100.0).powi(8));
    let max = base * 20.0;
    let mut v = json!({
        "count": count, "per_s": count, "mean": at(50.0),
        "p50": at(50.0), "p90": at(90.0), "p99": at(99.0), "p99.9": at(99.9),
        "p99.99": at(99.99), "max": max,
    });
    if with_curve {
        let mut pts: Vec<Value> = (0..40)
            .map(|k| 100.0 * (1.0 - 10f64.powf(-f64::from(k) / 10.0)))
            .map(|p| json!([p, at(p)]))
            .collect();
        pts.push(json!([100.0 * (1.0 - 1.0 / count as f64), max]));
        pts.push(json!([100.0, max]));
        v["percentiles"] = Value::Array(pts);
    }
    v
}

fn phase(label: &str, rate: Option<f64>, base: f64, with_curve: bool) -> Value {
    let (mode, name) = match rate {
        Some(r) => ("open", format!("getdata open {r:.0}/s 4x4")),
        None => ("closed", "getdata closed 4x4".to_string()),
    };
    json!({
        "label": label, "phase": name, "workload": "getdata", "mode": mode, "rate": rate,
        "sessions": 4, "outstanding": 4, "throughput": 1000.0, "error_total": 0,
        "latency_us": { "getData": latency(base, 20_000, with_curve) },
    })
}

/// One run's JSON lines: a closed phase (old style when `!with_curve`) and a sweep over `rates`.
fn run_file(dir: &Path, label: &str, base: f64, with_curve: bool, rates: [f64; 3]) -> PathBuf {
    let mut lines = vec![phase(label, None, base, with_curve)];
    for (i, r) in rates.into_iter().enumerate() {
        lines.push(phase(label, Some(r), base * (1.0 + i as f64), true));
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    // Lines that are not JSON (a stray log line) are skipped.
    let p = dir.join(format!("{label}.jsonl"));
    std::fs::write(&p, format!("not json\n{text}")).unwrap();
    p
}

fn plot(args: &[&str], inputs: &[PathBuf]) -> Output {
    let out = Command::new(LOADGEN)
        .arg("plot")
        .args(args)
        .args(inputs)
        .output()
        .expect("run loadgen plot");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn check_svg(p: &Path) {
    let s = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let head = s.trim_start();
    assert!(
        head.starts_with("<svg") || head.starts_with("<?xml"),
        "{}: not an SVG: {:?}",
        p.display(),
        &s[..s.len().min(80)]
    );
    assert!(
        s.trim_end().ends_with("</svg>"),
        "{}: unterminated",
        p.display()
    );
    assert!(s.contains("<text"), "{}: no text", p.display());
    assert!(s.contains("<polyline"), "{}: no curve", p.display());
}

/// PNG magic, then the IHDR chunk with the plot's size.
fn check_png(p: &Path, size: (u32, u32)) {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(b.len() > 1000, "{}: {} bytes", p.display(), b.len());
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{}: PNG magic", p.display());
    assert_eq!(&b[12..16], b"IHDR", "{}", p.display());
    let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), size, "{}: size", p.display());
}

#[test]
fn plots_overlaid_runs_as_svg_and_png() {
    let dir = temp_dir("ok");
    let inputs = [
        run_file(&dir, "corral", 50.0, true, [1000.0, 2000.0, 4000.0]),
        run_file(&dir, "zookeeper", 400.0, false, [300.0, 600.0, 900.0]),
    ];
    let out_dir = dir.join("bench");
    let out = plot(
        &[
            "--out-dir",
            out_dir.to_str().unwrap(),
            "--markdown",
            "--link-prefix",
            "bench/",
            "--width",
            "800",
            "--height",
            "500",
        ],
        &inputs,
    );
    assert!(
        out.status.success(),
        "loadgen plot failed ({}): is fonts-dejavu-core installed?",
        out.status
    );
    // The sweep's plot and the one phase both runs share (their sweeps' rates differ, as
    // --sweep's do between servers).
    let stems = ["load-getdata-4x4", "latency-getdata-closed-4x4"];
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = stems
        .iter()
        .flat_map(|s| [format!("{s}.png"), format!("{s}.svg")])
        .collect();
    want.sort();
    assert_eq!(files, want);
    for s in stems {
        check_svg(&out_dir.join(format!("{s}.svg")));
        check_png(&out_dir.join(format!("{s}.png")), (800, 500));
    }
    let md = String::from_utf8(out.stdout).unwrap();
    for s in stems {
        assert!(md.contains(&format!("](bench/{s}.svg)")), "{md}");
    }
    assert!(md.contains("corral vs zookeeper"), "{md}");
    // Both runs' curves and legend entries are in the percentile plot.
    let svg = std::fs::read_to_string(out_dir.join("latency-getdata-closed-4x4.svg")).unwrap();
    assert!(
        svg.contains("corral") && svg.contains("zookeeper"),
        "legend"
    );
    assert!(svg.matches("<polyline").count() >= 2, "two curves");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_font_fails_the_pngs_only() {
    let dir = temp_dir("nofont");
    let inputs = [run_file(
        &dir,
        "corral",
        50.0,
        true,
        [1000.0, 2000.0, 4000.0],
    )];
    let out_dir = dir.join("bench");
    let out = plot(
        &[
            "--out-dir",
            out_dir.to_str().unwrap(),
            "--font",
            dir.join("no-such-font.ttf").to_str().unwrap(),
        ],
        &inputs,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fonts-dejavu-core"), "{err}");
    // One run: every phase gets a percentile plot, plus the sweep's.
    let files: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 5, "{files:?}");
    for f in &files {
        assert_eq!(f.extension().unwrap(), "svg", "{}", f.display());
        check_svg(f);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_input_lines_is_an_error() {
    let dir = temp_dir("empty");
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let out = plot(&["--out-dir", dir.to_str().unwrap()], &[empty]);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
