//! SVG plots of benchmark curves and Pareto fronts (plotters' SVG backend).

use std::path::Path;

use hwnas_core::bench::Curve;
use plotters::prelude::*;

use crate::error::{Error, Result};

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Mean test accuracy of the selected architecture vs queries, one line per strategy with a
/// band of one standard deviation, and an optional horizontal reference line.
pub fn curves_svg(
    path: &Path,
    title: &str,
    curves: &[Curve],
    reference: Option<(&str, f64)>,
) -> Result<()> {
    let queries = curves
        .iter()
        .map(|c| c.mean.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let skip = (queries / 20).max(1);
    let mut low = f64::INFINITY;
    let mut high = f64::NEG_INFINITY;
    for curve in curves {
        for q in skip..curve.mean.len() {
            let (m, s) = (curve.mean[q], curve.std[q]);
            if m.is_finite() {
                low = low.min(m - s);
                high = high.max(m + s);
            }
        }
    }
    if let Some((_, y)) = reference {
        high = high.max(y);
    }
    if !low.is_finite() {
        low = 0.0;
        high = 100.0;
    }
    let pad = ((high - low) * 0.05).max(0.05);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    let draw = |e: &dyn std::fmt::Display| Error::Plot {
        path: path.to_path_buf(),
        problem: e.to_string(),
    };
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(1f64..queries as f64, (low - pad)..(high + pad))
        .map_err(|e| draw(&e))?;
    chart
        .configure_mesh()
        .x_desc("queries (distinct architectures evaluated)")
        .y_desc("test accuracy of the selected architecture (%)")
        .draw()
        .map_err(|e| draw(&e))?;
    for (i, curve) in curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points = |sign: f64| -> Vec<(f64, f64)> {
            curve
                .mean
                .iter()
                .zip(&curve.std)
                .enumerate()
                .filter(|(_, (m, _))| m.is_finite())
                .map(|(q, (m, s))| ((q + 1) as f64, m + sign * s))
                .collect()
        };
        let mut band = points(1.0);
        band.extend(points(-1.0).into_iter().rev());
        chart
            .draw_series(std::iter::once(Polygon::new(
                band,
                color.mix(0.15).filled(),
            )))
            .map_err(|e| draw(&e))?;
        chart
            .draw_series(LineSeries::new(points(0.0), color.stroke_width(2)))
            .map_err(|e| draw(&e))?
            .label(curve.strategy.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    if let Some((label, y)) = reference {
        chart
            .draw_series(LineSeries::new(
                vec![(1.0, y), (queries as f64, y)],
                BLACK.mix(0.6).stroke_width(1),
            ))
            .map_err(|e| draw(&e))?
            .label(label.to_string())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.6)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| draw(&e))?;
    root.present().map_err(|e| draw(&e))?;
    Ok(())
}

/// Accuracy vs latency of every evaluated architecture, the Pareto front, the latency
/// budget as a vertical line and the chosen point marked.
pub fn pareto_svg(
    path: &Path,
    title: &str,
    points: &[(f64, f64)],
    front: &[(f64, f64)],
    chosen: (f64, f64),
    budget_ms: f64,
) -> Result<()> {
    let finite = |v: &f64| v.is_finite();
    let xs = points.iter().map(|p| p.0).chain([budget_ms]).filter(finite);
    let (x_low, x_high) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
        (l.min(x), h.max(x))
    });
    let ys = points.iter().map(|p| p.1).filter(finite);
    let (y_low, y_high) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), y| {
        (l.min(y), h.max(y))
    });
    if !x_low.is_finite() || !y_low.is_finite() {
        return Err(Error::Plot {
            path: path.to_path_buf(),
            problem: "no points to plot".into(),
        });
    }
    let x_pad = ((x_high - x_low) * 0.05).max(1e-3);
    let y_pad = ((y_high - y_low) * 0.05).max(1e-3);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    let draw = |e: &dyn std::fmt::Display| Error::Plot {
        path: path.to_path_buf(),
        problem: e.to_string(),
    };
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (x_low - x_pad)..(x_high + x_pad),
            (y_low - y_pad)..(y_high + y_pad),
        )
        .map_err(|e| draw(&e))?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("accuracy estimate")
        .draw()
        .map_err(|e| draw(&e))?;
    chart
        .draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 2, PALETTE[7].mix(0.5).filled())),
        )
        .map_err(|e| draw(&e))?
        .label("evaluated")
        .legend(|(x, y)| Circle::new((x + 9, y), 3, PALETTE[7].filled()));
    chart
        .draw_series(LineSeries::new(
            front.iter().copied(),
            PALETTE[0].stroke_width(2),
        ))
        .map_err(|e| draw(&e))?
        .label("Pareto front")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], PALETTE[0].stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            vec![(budget_ms, y_low - y_pad), (budget_ms, y_high + y_pad)],
            PALETTE[3].stroke_width(2),
        ))
        .map_err(|e| draw(&e))?
        .label(format!("budget {budget_ms:.2} ms"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], PALETTE[3].stroke_width(2)));
    if chosen.0.is_finite() {
        chart
            .draw_series(std::iter::once(TriangleMarker::new(
                chosen,
                9,
                PALETTE[2].filled(),
            )))
            .map_err(|e| draw(&e))?
            .label("chosen")
            .legend(|(x, y)| TriangleMarker::new((x + 9, y), 6, PALETTE[2].filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| draw(&e))?;
    root.present().map_err(|e| draw(&e))?;
    Ok(())
}
