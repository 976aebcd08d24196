//! The held-out loss of a run as an SVG line chart, from a validator's report: what
//! docs/training.md shows, and `mycel train plot` writes.

use super::validator::RoundReport;

const WIDTH: f32 = 640.0;
const HEIGHT: f32 = 360.0;
const LEFT: f32 = 64.0;
const RIGHT: f32 = 24.0;
const TOP: f32 = 40.0;
const BOTTOM: f32 = 48.0;

/// The held-out loss before round 0 and after every round, in round order.
pub fn held_out_losses(reports: &[RoundReport]) -> Vec<(u64, f32)> {
    let mut sorted: Vec<&RoundReport> = reports.iter().collect();
    sorted.sort_by_key(|r| r.round);
    sorted.dedup_by_key(|r| r.round);
    let mut points = Vec::new();
    if let Some(first) = sorted.first() {
        points.push((first.round, first.held_out_before));
    }
    points.extend(sorted.iter().map(|r| (r.round + 1, r.held_out_after)));
    points
}

/// An SVG chart of [`held_out_losses`] titled `title`; `None` with fewer than two points.
pub fn loss_curve_svg(reports: &[RoundReport], title: &str) -> Option<String> {
    let points = held_out_losses(reports);
    if points.len() < 2 {
        return None;
    }
    let (r0, r1) = (points[0].0 as f32, points[points.len() - 1].0 as f32);
    let lo = points.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
    let hi = points.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let (lo, hi) = (lo - pad, hi + pad);
    let x = |round: f32| LEFT + (round - r0) / (r1 - r0) * (WIDTH - LEFT - RIGHT);
    let y = |loss: f32| TOP + (hi - loss) / (hi - lo) * (HEIGHT - TOP - BOTTOM);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
        WIDTH / 2.0,
        escape(title)
    );
    // axes
    svg += &format!(
        "<path d=\"M{LEFT} {TOP} V{} H{}\" stroke=\"#444\" fill=\"none\"/>\n",
        HEIGHT - BOTTOM,
        WIDTH - RIGHT
    );
    for k in 0..=4 {
        let loss = lo + (hi - lo) * k as f32 / 4.0;
        svg += &format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{loss:.3}</text>\n\
             <path d=\"M{LEFT} {:.1} H{}\" stroke=\"#ddd\"/>\n",
            LEFT - 6.0,
            y(loss) + 4.0,
            y(loss),
            WIDTH - RIGHT
        );
    }
    for (round, _) in &points {
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{round}</text>\n",
            x(*round as f32),
            HEIGHT - BOTTOM + 16.0
        );
    }
    svg += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">round</text>\n\
         <text x=\"14\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">held-out loss (nats/token)</text>\n",
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 10.0,
        (TOP + HEIGHT - BOTTOM) / 2.0,
        (TOP + HEIGHT - BOTTOM) / 2.0
    );
    let line: Vec<String> = points
        .iter()
        .map(|(r, l)| format!("{:.1},{:.1}", x(*r as f32), y(*l)))
        .collect();
    svg += &format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"2\"/>\n",
        line.join(" ")
    );
    for (r, l) in &points {
        svg += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1f6feb\"><title>round {r}: {l:.4}</title></circle>\n",
            x(*r as f32),
            y(*l)
        );
    }
    svg += "</svg>\n";
    Some(svg)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
