//! The hard floor under every published output, and so under every delete or move of a source:
//! the output's video must cover the source's video to within [`allowed_shortfall`]: a tenth of
//! the source, at least half a second and never more than two seconds. It is fixed in the agent,
//! not a setting: no revision and no local file can widen it, whatever
//! `transcode.duration_tolerance` says (that setting is itself capped, see
//! `h264_config::encoder::MAX_DURATION_TOLERANCE`).

/// The most an output's video may fall short of its source's, whatever the source's length.
pub const MAX_SHORTFALL: f64 = 2.0;
/// The shortfall always allowed (timestamps round differently in every container).
pub const MIN_SHORTFALL: f64 = 0.5;

/// How much shorter than a source's video of `source_secs` an output's video may be.
pub fn allowed_shortfall(source_secs: f64) -> f64 {
    (source_secs / 10.0).clamp(MIN_SHORTFALL, MAX_SHORTFALL)
}

/// `Err(why)` when an output's video (`output_secs`) falls short of its source's
/// (`source_secs`) by more than [`allowed_shortfall`]. A source whose video length is unknown (0)
/// is not judged here.
pub fn check_coverage(output_secs: f64, source_secs: f64) -> Result<(), String> {
    let allowed = allowed_shortfall(source_secs);
    if source_secs > 0.0 && output_secs + allowed < source_secs {
        return Err(format!(
            "the video lasts {output_secs:.3}s but the source's video {source_secs:.3}s: it falls short \
             by more than the agent's fixed floor of {allowed:.3}s, so it is not published and the \
             source is neither deleted nor moved"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_outputs_fail_whatever_the_tolerance() {
        assert!(check_coverage(1.7, 2.0).is_ok());
        assert!(check_coverage(0.2, 2.01).is_err());
        assert!(check_coverage(3598.5, 3600.0).is_ok());
        assert!(check_coverage(3500.0, 3600.0).is_err());
        assert!(check_coverage(0.0, 0.0).is_ok());
    }
}
