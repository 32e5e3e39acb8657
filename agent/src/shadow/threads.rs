//! How many threads the candidate's libx264 runs: a choice of shadow work alone (production's
//! command line never changes), made once here, in [`THREADS`].
//!
//! The choice is [`EncoderThreads::AsConfigured`]: the candidate encodes exactly as it would in
//! production. What keeps it out of production's way is the idle scheduling class
//! ([`crate::plumbing::priority`]), not fewer threads: an idle-class thread only runs on a CPU
//! no normal task wants, however many there are, and on a host with idle cores (`workers`
//! below the core count, the usual case) more threads finish the shadow job sooner. One
//! thread would also skew what the comparison measures: libx264 on one thread makes another
//! stream (no frame threads) at another CPU cost, and `max_speed_ratio` judges the candidate's
//! CPU time against production's. Measured side by side (`benches/shadow.sh`, two cores): the
//! same candidate alone costs 0.974x production's CPU time with its own threads and 0.894x on
//! one thread (a candidate would look 8 % cheaper than it is), and production beside an
//! idle-class shadow worker was no slower with the worker's threads as configured than on one
//! thread (see `benches/README.md`).

use std::ffi::OsString;

/// libx264's threads in the candidate's encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderThreads {
    /// As the candidate's settings give them (FFmpeg's default: libx264 picks about 1.5 per
    /// core), as it would run in production.
    AsConfigured,
    /// One thread (`-threads 1`, last on the command line, so it wins over the settings).
    One,
}

/// The candidate's libx264 threads.
pub const THREADS: EncoderThreads = EncoderThreads::AsConfigured;

impl EncoderThreads {
    /// FFmpeg's arguments `args` (the output file last) with this choice applied; `encode`:
    /// whether the video is encoded (a remux runs no encoder).
    pub fn apply(self, mut args: Vec<OsString>, encode: bool) -> Vec<OsString> {
        if self == EncoderThreads::One && encode && !args.is_empty() {
            let output = args.len() - 1;
            args.splice(output..output, ["-threads", "1"].map(OsString::from));
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_is_the_last_output_option_of_an_encode() {
        let args: Vec<OsString> = [
            "-i",
            "file:a.ts",
            "-threads",
            "4",
            "-f",
            "mp4",
            "file:o.mp4",
        ]
        .map(OsString::from)
        .to_vec();
        let one = EncoderThreads::One.apply(args.clone(), true);
        assert_eq!(
            one[one.len() - 3..],
            ["-threads", "1", "file:o.mp4"].map(OsString::from)
        );
        assert_eq!(EncoderThreads::One.apply(args.clone(), false), args);
        assert_eq!(EncoderThreads::AsConfigured.apply(args.clone(), true), args);
    }
}
