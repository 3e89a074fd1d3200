//! The dashboard's charts as inline SVG, drawn with plotters' SVG backend:
//! messages per day stacked by outcome, and the daily success rate. Text is
//! left to the browser (`<text>` elements, escaped by plotters); the
//! `<svg>` keeps its `viewBox` and drops its fixed size, so a page's CSS
//! can scale it to a phone's width.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One day's finished messages, in the dashboard's zone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Day {
    /// As shown under its bar (`11-28`).
    pub label: String,
    pub sent: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl Day {
    /// Failed among sent and failed, in percent; `None` when neither.
    pub fn success_rate(&self) -> Option<f64> {
        let finished = self.sent + self.failed;
        (finished > 0).then(|| 100.0 * self.sent as f64 / finished as f64)
    }
}

/// The colours of sent, failed and cancelled, as the page's legend uses them.
pub const SENT: &str = "#2e7d32";
pub const FAILED: &str = "#c62828";
pub const CANCELLED: &str = "#9e9e9e";

const WIDTH: u32 = 720;
const HEIGHT: u32 = 240;
/// Axis labels' size in the SVG's own pixels: large enough to stay
/// readable when a phone shrinks the chart to half its width.
const LABEL_PX: u32 = 21;

fn color(hex: &str) -> RGBColor {
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0);
    RGBColor(byte(1), byte(3), byte(5))
}

/// Which label of `days` goes under position `x`: every day's when they
/// are few, else about ten spread evenly from the first.
fn label_at(days: &[Day], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 1e-6 || i < 0.0 {
        return String::new();
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a small non-negative index"
    )]
    let i = i as usize;
    let step = days.len().div_ceil(10).max(1);
    match days.get(i) {
        Some(d) if i.is_multiple_of(step) => d.label.clone(),
        _ => String::new(),
    }
}

/// A chart of `days` along x, `y` up the side (labelled by `y_label`),
/// `height` pixels high in the SVG's own units, drawn by `plot`; returns the
/// `<svg>` element named `title` (`fluid`).
fn chart(
    days: &[Day],
    height: u32,
    y: std::ops::Range<f64>,
    y_label: &dyn Fn(&f64) -> String,
    title: &str,
    plot: impl FnOnce(&mut Frame<'_, '_>) -> Result<(), String>,
) -> Result<String, String> {
    let n = days.len().max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        let mut frame = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5..n - 0.5, y)
            .map_err(|e| e.to_string())?;
        frame
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(days.len().clamp(2, 32))
            .x_label_formatter(&|x| label_at(days, *x))
            .y_labels(5)
            .y_label_formatter(y_label)
            .light_line_style(WHITE)
            .label_style(("sans-serif", LABEL_PX))
            .draw()
            .map_err(|e| e.to_string())?;
        plot(&mut frame)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(fluid(&svg, title))
}

/// A chart's drawing area, in days (x) and its values (y).
type Frame<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Sent, failed and cancelled per day, one stacked bar a day (sent at the
/// bottom). Returns the `<svg>` element; `title` is its accessible name.
///
/// Errors: plotters' drawing errors (none are expected when writing to a
/// string), as text.
pub fn daily_outcomes(days: &[Day], title: &str) -> Result<String, String> {
    let top = days
        .iter()
        .map(|d| d.sent + d.failed + d.cancelled)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    // Whole numbers only: a short axis (0 to 3) has key points between them.
    let whole = |y: &f64| {
        if y.fract() == 0.0 {
            format!("{y:.0}")
        } else {
            String::new()
        }
    };
    chart(days, HEIGHT, 0.0..(top * 1.1).ceil(), &whole, title, |frame| {
        for (i, d) in days.iter().enumerate() {
            let x = i as f64;
            let mut base = 0.0;
            for (count, hex) in [(d.sent, SENT), (d.failed, FAILED), (d.cancelled, CANCELLED)] {
                if count == 0 {
                    continue;
                }
                let count = count as f64;
                frame
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x - 0.38, base), (x + 0.38, base + count)],
                        color(hex).filled(),
                    )))
                    .map_err(|e| e.to_string())?;
                base += count;
            }
        }
        Ok(())
    })
}

/// The daily success rate (sent among sent and failed, 0 to 100 %), a line
/// through the days that finished something. Returns the `<svg>` element.
///
/// Errors: as [`daily_outcomes`].
pub fn success_rate(days: &[Day], title: &str) -> Result<String, String> {
    let points: Vec<(f64, f64)> = days
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.success_rate().map(|r| (i as f64, r)))
        .collect();
    let percent = |y: &f64| format!("{y:.0} %");
    chart(days, HEIGHT * 2 / 3, floor(&points)..100.0, &percent, title, |frame| {
        let line = color(SENT);
        // One line per run of days in a row: a day with nothing finished
        // breaks it, rather than a slope drawn across it.
        for run in points.chunk_by(|a, b| (b.0 - a.0 - 1.0).abs() < 1e-9) {
            frame
                .draw_series(LineSeries::new(run.iter().copied(), line.stroke_width(2)))
                .map_err(|e| e.to_string())?;
        }
        frame
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, line.filled())))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Where the success-rate axis starts: 10 points below the lowest rate,
/// down to a multiple of 10 (0 at the lowest), so that a rate moving
/// between 97 and 99 % is seen to move.
fn floor(points: &[(f64, f64)]) -> f64 {
    let lowest = points.iter().map(|p| p.1).fold(100.0, f64::min);
    (((lowest - 10.0) / 10.0).floor() * 10.0).clamp(0.0, 90.0)
}

/// `svg` without its fixed width and height (its `viewBox` stays: the page
/// sizes it) and named for screen readers by `title` (escaped).
fn fluid(svg: &str, title: &str) -> String {
    let mut out = svg.to_string();
    if let Some(start) = out.find("<svg")
        && let Some(end) = out[start..].find('>')
    {
        let open = &out[start..start + end];
        let mut tag = String::from("<svg");
        for attr in split_attributes(&open[4..]) {
            if !(attr.starts_with("width=") || attr.starts_with("height=")) {
                tag.push(' ');
                tag.push_str(attr);
            }
        }
        tag.push_str(&format!(r#" role="img" aria-label="{}""#, escape(title)));
        out.replace_range(start..start + end, &tag);
    }
    out
}

/// The attributes of a start tag's inside (`a="1" b="2"`), each whole.
fn split_attributes(inside: &str) -> Vec<&str> {
    let mut attrs = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in inside.char_indices() {
        match (c, start) {
            ('"', _) => {
                quoted = !quoted;
                if !quoted && let Some(s) = start {
                    attrs.push(&inside[s..=i]);
                    start = None;
                }
            }
            (c, None) if !c.is_whitespace() => start = Some(i),
            _ => {}
        }
    }
    attrs
}

/// `text` escaped for an XML attribute or text node.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days() -> Vec<Day> {
        vec![
            Day {
                label: "11-27".into(),
                sent: 8,
                failed: 2,
                cancelled: 1,
            },
            Day {
                label: "11-28".into(),
                ..Day::default()
            },
            Day {
                label: "11-29".into(),
                sent: 3,
                failed: 0,
                cancelled: 0,
            },
        ]
    }

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).expect("well-formed SVG")
    }

    fn rects_of<'a>(doc: &'a roxmltree::Document<'a>, fill: &str) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("fill").is_some_and(|f| f.eq_ignore_ascii_case(fill)))
            .collect()
    }

    #[test]
    fn each_outcome_is_one_bar_segment_as_high_as_its_count() {
        let svg = daily_outcomes(&days(), "Messages per day").unwrap();
        let doc = parse(&svg);
        let sent = rects_of(&doc, SENT);
        let failed = rects_of(&doc, FAILED);
        let cancelled = rects_of(&doc, CANCELLED);
        assert_eq!((sent.len(), failed.len(), cancelled.len()), (2, 1, 1), "{svg}");
        let height = |n: &roxmltree::Node<'_, '_>| n.attribute("height").unwrap().parse::<f64>().unwrap();
        // 8 sent against 2 failed: four times as high (to a pixel).
        let ratio = height(&sent[0]) / height(&failed[0]);
        assert!((ratio - 4.0).abs() < 0.3, "{ratio}");
        // Stacked: the failed segment sits right on top of the sent one.
        let y = |n: &roxmltree::Node<'_, '_>| n.attribute("y").unwrap().parse::<f64>().unwrap();
        assert!((y(&failed[0]) + height(&failed[0]) - y(&sent[0])).abs() <= 1.0);
        let texts: Vec<&str> = doc
            .descendants()
            .filter_map(|n| n.has_tag_name("text").then(|| n.text()).flatten())
            .collect();
        assert!(texts.iter().any(|t| t.trim() == "11-27"), "{texts:?}");
    }

    #[test]
    fn the_svg_scales_with_the_page_and_is_named() {
        let svg = daily_outcomes(&days(), "Sent & <failed>").unwrap();
        let doc = parse(&svg);
        let root = doc.root_element();
        assert_eq!(root.attribute("width"), None);
        assert_eq!(root.attribute("height"), None);
        assert!(root.attribute("viewBox").is_some());
        assert_eq!(root.attribute("aria-label"), Some("Sent & <failed>"));
    }

    #[test]
    fn the_success_line_skips_days_that_finished_nothing() {
        let svg = success_rate(&days(), "Success").unwrap();
        let doc = parse(&svg);
        let circles = doc.descendants().filter(|n| n.has_tag_name("circle")).count();
        assert_eq!(circles, 2, "{svg}");
        // The 27th and the 29th are not joined across the empty 28th.
        let points = |doc: &roxmltree::Document<'_>| -> Vec<usize> {
            doc.descendants()
                .filter(|n| {
                    n.has_tag_name("polyline") && n.attribute("stroke").is_some_and(|c| c.eq_ignore_ascii_case(SENT))
                })
                .map(|n| n.attribute("points").unwrap().split_whitespace().count())
                .collect()
        };
        assert_eq!(points(&doc), [1, 1], "two runs of one day: {svg}");
        let mut more = days();
        more.push(Day {
            label: "11-30".into(),
            sent: 1,
            ..Day::default()
        });
        let svg = success_rate(&more, "Success").unwrap();
        let doc = parse(&svg);
        assert_eq!(
            points(&doc),
            [1, 2],
            "the 29th and the 30th joined, nothing else: {svg}"
        );
        assert_eq!(days()[0].success_rate(), Some(80.0));
        assert_eq!(days()[1].success_rate(), None);
    }

    #[test]
    fn the_success_axis_starts_below_the_lowest_rate() {
        assert_eq!(floor(&[(0.0, 97.5), (1.0, 99.0)]), 80.0);
        assert_eq!(floor(&[(0.0, 100.0)]), 90.0);
        assert_eq!(floor(&[(0.0, 3.0)]), 0.0);
        assert_eq!(floor(&[]), 90.0);
    }

    #[test]
    fn no_days_is_an_empty_chart_not_an_error() {
        let svg = daily_outcomes(&[], "empty").unwrap();
        assert!(
            parse(&svg)
                .descendants()
                .all(|n| !n.has_tag_name("rect") || n.attribute("fill").is_none_or(|f| f != SENT))
        );
        success_rate(&[], "empty").unwrap();
    }

    #[test]
    fn labels_thin_out_over_long_periods() {
        let many: Vec<Day> = (0..90)
            .map(|i| Day {
                label: format!("d{i}"),
                ..Day::default()
            })
            .collect();
        let shown = (0..90).filter(|i| !label_at(&many, f64::from(*i)).is_empty()).count();
        assert!((9..=12).contains(&shown), "{shown}");
        assert_eq!(label_at(&many, 81.0), "d81");
        assert_eq!(label_at(&many, 89.0), "", "not crowding the one before");
        assert_eq!(label_at(&many, 0.5), "");
    }
}
