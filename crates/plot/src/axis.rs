//! One plotters coordinate type for every axis the figures use (linear, integer, symmetric
//! log, log), with tick placement and labels chosen for reading. plotters 0.3.7 has no
//! symlog axis, and its own labels print every float digit.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};

/// Scale of the eigenvalue axis of the density figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XScale {
    /// Linear in λ.
    #[default]
    Linear,
    /// Symmetric log, `sign(λ) log10(1 + |λ|/c)`: linear within ±c and logarithmic beyond,
    /// so the bulk near zero, small negative eigenvalues and outliers decades above all
    /// show on one axis (matplotlib's `symlog`). `c` is the options' `linthresh`.
    Symlog,
}

impl FromStr for XScale {
    type Err = String;

    /// `linear` or `symlog`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "linear" => Ok(XScale::Linear),
            "symlog" => Ok(XScale::Symlog),
            _ => Err(format!("unknown x scale {s:?}: expected linear or symlog")),
        }
    }
}

impl fmt::Display for XScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XScale::Linear => "linear",
            XScale::Symlog => "symlog",
        })
    }
}

/// How values map to pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scale {
    /// Linear, ticks at 1/2/5 × 10^k.
    Linear,
    /// Linear, ticks at integers only (class indices, epochs).
    Integer,
    /// Symmetric log with linear threshold `c > 0`.
    Symlog(f64),
    /// Logarithmic (positive values), ticks at powers of ten.
    Log,
}

/// An axis: a value range and a scale. Implements plotters' [`Ranged`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Axis {
    lo: f64,
    hi: f64,
    scale: Scale,
}

impl Axis {
    /// The axis over `[lo, hi]`; an empty or reversed range is widened around its centre
    /// (by 1 in transformed units, so a single epoch or a single value still gets an axis).
    pub(crate) fn new(lo: f64, hi: f64, scale: Scale) -> Self {
        let axis = Self { lo, hi, scale };
        let (a, b) = (axis.forward(lo), axis.forward(hi));
        if b > a {
            return axis;
        }
        let mid = (a + b) / 2.0;
        Self {
            lo: axis.inverse(mid - 0.5),
            hi: axis.inverse(mid + 0.5),
            scale,
        }
    }

    /// An eigenvalue axis over `[lo, hi]`, padded by 3% on each side. With
    /// [`XScale::Symlog`], `c` is `linthresh` or, when `None`, [`auto_linthresh`].
    pub(crate) fn eigen(lo: f64, hi: f64, scale: XScale, linthresh: Option<f64>) -> Self {
        let scale = match scale {
            XScale::Linear => Scale::Linear,
            XScale::Symlog => Scale::Symlog(linthresh.unwrap_or_else(|| auto_linthresh(lo, hi))),
        };
        Self::new(lo, hi, scale).padded(0.03)
    }

    /// The same axis extended by `fraction` of its transformed span on each side.
    pub(crate) fn padded(self, fraction: f64) -> Self {
        let (a, b) = (self.forward(self.lo), self.forward(self.hi));
        let pad = (b - a) * fraction;
        Self {
            lo: self.inverse(a - pad),
            hi: self.inverse(b + pad),
            ..self
        }
    }

    /// Lower end.
    pub(crate) fn lo(&self) -> f64 {
        self.lo
    }

    /// Upper end.
    pub(crate) fn hi(&self) -> f64 {
        self.hi
    }

    /// Position of `v` along the axis: 0 at `lo`, 1 at `hi`.
    pub(crate) fn fraction(&self, v: f64) -> f64 {
        let (a, b) = (self.forward(self.lo), self.forward(self.hi));
        (self.forward(v) - a) / (b - a)
    }

    /// A note for the axis label: `""`, or `" (symlog: linear within ±c)"`.
    pub(crate) fn note(&self) -> String {
        match self.scale {
            Scale::Symlog(c) => format!(" (symlog: linear within ±{})", format_number(c, 3)),
            _ => String::new(),
        }
    }

    fn forward(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Linear | Scale::Integer => v,
            Scale::Symlog(c) => v.signum() * (v.abs() / c).ln_1p() / std::f64::consts::LN_10,
            Scale::Log => v.max(f64::MIN_POSITIVE).log10(),
        }
    }

    fn inverse(&self, t: f64) -> f64 {
        match self.scale {
            Scale::Linear | Scale::Integer => t,
            Scale::Symlog(c) => t.signum() * c * (t.abs() * std::f64::consts::LN_10).exp_m1(),
            Scale::Log => 10f64.powf(t),
        }
    }

    /// At most `max` ticks (a few more when a range has no round values in it).
    pub(crate) fn ticks(&self, max: usize) -> Vec<f64> {
        if max == 0 {
            return Vec::new();
        }
        let decades = match self.scale {
            Scale::Linear => return nice_ticks(self.lo, self.hi, max, 0.0),
            Scale::Integer => return nice_ticks(self.lo, self.hi, max, 1.0),
            Scale::Log => decade_ticks(self.lo, self.hi, 1.0, max),
            Scale::Symlog(c) => symlog_ticks(self.lo, self.hi, c, max),
        };
        if decades.len() >= 2 {
            decades
        } else {
            nice_ticks(self.lo, self.hi, max, 0.0)
        }
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        // Clamped so that a far-out value cannot overflow the pixel type.
        let f = self.fraction(*value).clamp(-4.0, 5.0);
        limit.0 + ((limit.1 - limit.0) as f64 * f).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        self.ticks(hint.max_num_points())
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Axis {
    /// Three significant digits; powers of ten on a log axis read `1e-8` ... `0.001` ... `1`
    /// (Noto Sans has no superscript minus).
    fn format_ext(&self, value: &f64) -> String {
        format_number(*value, 3)
    }
}

/// Default symlog threshold: the power of ten at or below 1/1000 of the largest |end|, so
/// that three decades below the largest eigenvalue are logarithmic and the bulk within a
/// thousandth of it is linear (1 when both ends are zero).
pub(crate) fn auto_linthresh(lo: f64, hi: f64) -> f64 {
    let extent = lo.abs().max(hi.abs());
    if extent > 0.0 && extent.is_finite() {
        10f64.powf((extent * 1e-3).log10().floor())
    } else {
        1.0
    }
}

/// Multiples of 1, 2 or 5 × 10^k (and at least `min_step`) inside `[lo, hi]`, the finest
/// step giving at most `max` of them.
fn nice_ticks(lo: f64, hi: f64, max: usize, min_step: f64) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return Vec::new();
    }
    let raw = ((hi - lo) / max as f64).max(min_step);
    let mut decade = 10f64.powf(raw.log10().floor());
    // Terminates: once the step exceeds hi − lo at most one tick remains.
    loop {
        for step in [decade, 2.0 * decade, 5.0 * decade] {
            if step < min_step || step < raw * (1.0 - 1e-9) {
                continue;
            }
            let (first, last) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
            if last - first < max as i64 {
                return (first..=last).map(|i| i as f64 * step).collect();
            }
        }
        decade *= 10.0;
    }
}

/// `sign · base · 10^k` ticks inside `[lo, hi]` for k ≥ 0 (the symlog decades) or any k
/// (the log axis, `base` 1), keeping every s-th decade counted down from the largest, with
/// the smallest s that gives at most `max` ticks.
fn decade_ticks(lo: f64, hi: f64, base: f64, max: usize) -> Vec<f64> {
    let decade = |v: f64| (v / base).log10();
    let (k_lo, k_hi) = (
        decade(lo.max(f64::MIN_POSITIVE)).ceil() as i64,
        decade(hi).floor() as i64,
    );
    if hi <= 0.0 || k_hi < k_lo {
        return Vec::new();
    }
    let count = (k_hi - k_lo + 1) as usize;
    let stride = count.div_ceil(max.max(1)).max(1) as i64;
    (k_lo..=k_hi)
        .filter(|k| (k_hi - k) % stride == 0)
        .map(|k| base * 10f64.powi(k as i32))
        .collect()
}

/// Symlog ticks: 0 when inside, then ±c · 10^k on each side (k ≥ 1 next to 0: ±c lies only
/// log10(2) ≈ 0.3 of a decade from 0, where its label would run into 0's), thinned alike on
/// both sides until at most `max` remain.
fn symlog_ticks(lo: f64, hi: f64, c: f64, max: usize) -> Vec<f64> {
    let zero = lo <= 0.0 && hi >= 0.0;
    let nearest = if zero { 10.0 * c } else { c };
    let mut stride = 1usize;
    loop {
        let side = |from: f64, to: f64| -> Vec<f64> {
            let all = decade_ticks(from.max(nearest), to, c, usize::MAX);
            let top = all.len().saturating_sub(1);
            all.into_iter()
                .enumerate()
                .filter(|(i, _)| (top - i).is_multiple_of(stride))
                .map(|(_, v)| v)
                .collect()
        };
        let positive = side(lo, hi);
        let negative: Vec<f64> = side(-hi, -lo).into_iter().map(|v| -v).collect();
        let mut ticks: Vec<f64> = negative.into_iter().rev().collect();
        if zero {
            ticks.push(0.0);
        }
        ticks.extend(positive);
        if ticks.len() <= max || stride > 64 {
            return ticks;
        }
        stride += 1;
    }
}

/// `v` with `digits` significant digits, trailing zeros dropped; scientific (`2.5e-4`)
/// below 10⁻³ and from 10⁵ in magnitude.
pub(crate) fn format_number(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    // Rounding noise of a tick such as 3 × 0.1 stays below this.
    if a < 1e-300 {
        return "0".into();
    }
    let digits = digits.max(1);
    if !(1e-3..1e5).contains(&a) {
        let text = format!("{:.*e}", digits - 1, v);
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        return format!("{}e{exponent}", trim_zeros(mantissa));
    }
    let decimals = (digits as i32 - 1 - a.log10().floor() as i32).max(0) as usize;
    let text = trim_zeros(&format!("{v:.decimals$}"));
    if text == "-0" {
        "0".into()
    } else {
        text
    }
}

/// `"1.2500"` → `"1.25"`, `"3.000"` → `"3"`, `"40"` → `"40"`.
fn trim_zeros(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_a_person_wrote_them() {
        let cases = [
            (0.0, "0"),
            (0.30000000000000004, "0.3"),
            (-0.5, "-0.5"),
            (12.5, "12.5"),
            (1000.0, "1000"),
            (0.001, "0.001"),
            (0.00025, "2.5e-4"),
            (1.0e-4, "1e-4"),
            (250000.0, "2.5e5"),
            (-0.012345, "-0.0123"),
        ];
        for (v, text) in cases {
            assert_eq!(format_number(v, 3), text, "{v}");
        }
        assert_eq!(format_number(45.678, 4), "45.68");
        assert_eq!("SymLog".parse::<XScale>(), Ok(XScale::Symlog));
        assert_eq!(XScale::Linear.to_string(), "linear");
        assert!("log".parse::<XScale>().is_err());
    }

    #[test]
    fn linear_and_integer_ticks_are_round_and_bounded() {
        let axis = Axis::new(-0.6, 47.3, Scale::Linear);
        assert_eq!(axis.ticks(6), vec![0.0, 10.0, 20.0, 30.0, 40.0]);
        let axis = Axis::new(-0.5, 9.5, Scale::Integer);
        assert_eq!(axis.ticks(10), (0..10).map(f64::from).collect::<Vec<_>>());
        assert_eq!(axis.ticks(4), vec![0.0, 5.0]);
        // Tiny ranges still get integer ticks only.
        assert_eq!(Axis::new(0.5, 1.5, Scale::Integer).ticks(10), vec![1.0]);
    }

    #[test]
    fn log_ticks_are_powers_of_ten_thinned_from_the_top() {
        let axis = Axis::new(1e-9, 3.0, Scale::Log);
        assert_eq!(axis.ticks(20).len(), 10);
        let thinned = axis.ticks(4);
        assert_eq!(thinned, vec![1e-9, 1e-6, 1e-3, 1.0]);
    }

    #[test]
    fn symlog_maps_symmetrically_and_ticks_decades() {
        let axis = Axis::new(-0.5, 50.0, Scale::Symlog(0.01));
        // forward(±c) = ±log10(2); forward(0) = 0; inverse undoes forward.
        assert!((axis.forward(0.01) - 2f64.log10()).abs() < 1e-15);
        assert!((axis.forward(-0.01) + 2f64.log10()).abs() < 1e-15);
        for v in [-0.3, 0.0, 1e-4, 7.0] {
            assert!((axis.inverse(axis.forward(v)) - v).abs() < 1e-12 * (1.0 + v.abs()));
        }
        // Issue 16: no ±c beside 0 (their labels collided), every decade when there is room.
        assert_eq!(axis.ticks(20), vec![-0.1, 0.0, 0.1, 1.0, 10.0]);
        assert_eq!(axis.ticks(5), vec![-0.1, 0.0, 0.1, 1.0, 10.0]);
        assert_eq!(axis.ticks(4), vec![-0.1, 0.0, 0.1, 10.0]);
        let grid = Axis::new(-2.0, 25.0, Scale::Symlog(0.01));
        assert_eq!(grid.ticks(6), vec![-1.0, -0.1, 0.0, 0.1, 1.0, 10.0]);
        // Off zero, c is a tick like any other decade.
        let positive = Axis::new(0.005, 5.0, Scale::Symlog(0.01));
        assert_eq!(positive.ticks(10), vec![0.01, 0.1, 1.0]);
        assert_eq!(auto_linthresh(-0.5, 50.0), 0.01);
        assert!(axis.map(&0.0, (0, 1000)) > 0 && axis.map(&0.0, (0, 1000)) < 500);
    }
}
