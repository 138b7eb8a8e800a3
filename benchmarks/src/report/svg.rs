//! Line charts as inline SVG strings. A charting crate would bring a font and raster stack for
//! what is a few polylines, axes and labels; writing them directly keeps the report one file
//! with no scripts, and keeps the build small.

use std::fmt::Write as _;

const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 30.0;

pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// `bands` shade x ranges (burst phases), labelled at the top.
pub fn line_chart(
    title: &str,
    unit: &str,
    series: &[Series],
    bands: &[(f64, f64, String)],
) -> String {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let x_max = xs
        .chain(bands.iter().map(|b| b.1))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let y_max = nice_ceiling(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0_f64, f64::max),
    );
    let px = |x: f64| LEFT + x / x_max * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y_max * (H - TOP - BOTTOM);

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = escape(title)
    );
    for (i, (from, to, label)) in bands.iter().enumerate() {
        let fill = if i % 2 == 1 { "#fde8e8" } else { "#f4f6f8" };
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="{fill}"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#666">{}</text>"##,
            px(*from),
            (px(*to) - px(*from)).max(0.0),
            H - TOP - BOTTOM,
            px(*from) + 3.0,
            TOP + 11.0,
            escape(label)
        );
    }
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let y = py(v);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end" fill="#444">{}</text>"##,
            W - RIGHT,
            LEFT - 4.0,
            y + 3.0,
            short(v)
        );
    }
    for i in 0..=5 {
        let v = x_max * f64::from(i) / 5.0;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#444">{}s</text>"##,
            px(v),
            H - BOTTOM + 14.0,
            short(v)
        );
    }
    let _ = write!(
        s,
        r##"<text x="{LEFT}" y="14" font-size="12" font-weight="bold">{}</text><text x="6" y="{:.1}" font-size="10" fill="#444">{}</text>"##,
        escape(title),
        TOP - 4.0,
        escape(unit)
    );
    let mut legend_x = W - RIGHT;
    for ser in series.iter().rev() {
        legend_x -= 12.0 + 6.5 * ser.name.len() as f64;
        let _ = write!(
            s,
            r#"<rect x="{legend_x:.1}" y="6" width="8" height="8" fill="{c}"/><text x="{:.1}" y="14" font-size="10">{}</text>"#,
            legend_x + 10.0,
            escape(&ser.name),
            c = ser.color
        );
    }
    let mut drew = false;
    for ser in series.iter().filter(|s| !s.points.is_empty()) {
        drew = true;
        let pts: Vec<String> = ser
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            ser.color,
            pts.join(" ")
        );
    }
    if !drew {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" fill="#999" text-anchor="middle">no data</text>"##,
            W / 2.0,
            H / 2.0
        );
    }
    s.push_str("</svg>");
    s
}

/// The next 1, 2 or 5 × 10ⁿ at or above `v`, so axis labels are round numbers.
pub fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|c| *c >= v * 0.999_999)
        .unwrap_or(10.0 * mag)
}

fn short(v: f64) -> String {
    match v.abs() {
        a if a >= 1e6 => format!("{:.1}M", v / 1e6),
        a if a >= 1e4 => format!("{:.0}k", v / 1e3),
        a if a >= 100.0 || v == v.round() => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(1_234.0), 2_000.0);
        assert_eq!(nice_ceiling(2_000.0), 2_000.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
    }

    #[test]
    fn draws_one_polyline_per_series_and_escapes_labels() {
        let series = vec![
            Series {
                name: "p50".into(),
                color: "#1f77b4",
                points: vec![(0.0, 1.0), (1.0, 2.0)],
            },
            Series {
                name: "p<99>".into(),
                color: "#d62728",
                points: vec![(0.0, 3.0), (1.0, 9.0)],
            },
        ];
        let svg = line_chart(
            "latency & more",
            "ms",
            &series,
            &[(0.0, 0.5, "spike".into())],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("latency &amp; more") && svg.contains("p&lt;99&gt;"));
        assert!(svg.contains(">spike<"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn empty_chart_says_so() {
        let svg = line_chart(
            "t",
            "",
            &[Series {
                name: "a".into(),
                color: "#000",
                points: vec![],
            }],
            &[],
        );
        assert!(svg.contains("no data"));
        assert!(!svg.contains("<polyline"));
    }
}
