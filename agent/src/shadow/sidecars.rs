//! The sidecar files of one recording, production's against the candidate's: the candidate's
//! caption stage runs with its own `[captions]` settings on the shadow job's source and
//! candidate MP4, into the shadow area ([`extract`]; never published), and its files are
//! compared with those production published beside its MP4 ([`compare`]): SRT and WebVTT cue
//! by cue (text, order, start times within [`super::compare::CUE_TOLERANCE`]), `.bin` byte
//! for byte.
//!
//! The extraction is the caption stage's own ([`crate::captions::extract`]: supervised
//! children, retries); its programs run at the shadow job's lowest priority
//! ([`crate::plumbing::priority`]), inside its worker permit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use h264_config::AgentConfig;
use tokio_util::sync::CancellationToken;

use super::compare::CUE_TOLERANCE;
use crate::captions::cc608::{self, Cue};
use crate::captions::Plan;

/// The sidecar formats holding cue text (`.bin` is raw caption data).
const TEXT_FORMATS: [&str; 2] = ["srt", "vtt"];

/// The sidecars a candidate would write: (format, file), the files in the shadow area.
pub type Written = Vec<(String, PathBuf)>;

/// What the caption stage runs on.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The source (or the shadow area's link to it).
    pub source: &'a Path,
    /// Its container, as ffprobe names it.
    pub format_name: &'a str,
    /// Its caption tracks.
    pub plan: &'a Plan,
    /// The candidate's MP4 in the shadow area.
    pub mp4: &'a Path,
}

/// Runs the candidate's caption stage on `inputs` (none when its `captions.formats` is empty);
/// an error says why the candidate could not write its sidecars.
pub async fn extract(
    config: &AgentConfig,
    inputs: Inputs<'_>,
    cancel: &CancellationToken,
) -> Result<Written, String> {
    let captions = &config.captions;
    if captions.formats.is_empty() {
        return Ok(Vec::new());
    }
    let t = &config.transcode;
    // The caption stage writes under hidden temporary names in the MP4's private work folder.
    let folder = inputs.mp4.parent().unwrap_or(Path::new("."));
    crate::fs_safe::ensure_work_dir(folder).map_err(|e| {
        format!("cannot prepare the shadow folder for the candidate's sidecars: {e}")
    })?;
    let (mut reading, _running) = crate::captions::read_source_beside(
        t.ffprobe.clone(),
        inputs.source.to_path_buf(),
        inputs.plan.clone(),
        Duration::from_secs(120),
        t.stall_timeout.get() + Duration::from_secs(600),
        false,
        None,
        cancel.clone(),
    );
    let job = crate::captions::Job {
        ffmpeg: &t.ffmpeg,
        source: inputs.source,
        format_name: inputs.format_name,
        plan: inputs.plan,
        output: inputs.mp4,
        mp4: Some(inputs.mp4),
    };
    let outcome = crate::captions::extract(captions, job, &mut reading, cancel)
        .await
        .map_err(|e| format!("the candidate's caption stage failed: {e}"))?;
    Ok(outcome
        .to_publish()
        .iter()
        .map(|s| (s.format.clone(), s.temp.clone()))
        .collect())
}

/// The sidecars compared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compared {
    /// Cues in production's text sidecars (the largest count of its formats).
    pub production_cues: u32,
    /// Cues in the candidate's.
    pub candidate_cues: u32,
    /// The formats either side wrote, `srt,vtt`.
    pub formats: String,
    /// The first difference; empty when the candidate's sidecars are production's.
    pub difference: String,
}

/// Compares the sidecars production published beside `output` (for its `formats`; a format
/// with no file is one production did not write, a recording without captions) with the
/// candidate's `written`.
pub fn compare(output: &Path, formats: &[String], written: &[(String, PathBuf)]) -> Compared {
    let mut all: Vec<&str> = formats.iter().map(String::as_str).collect();
    all.extend(written.iter().map(|(f, _)| f.as_str()));
    all.sort_unstable();
    all.dedup();
    let mut out = Compared::default();
    let mut differences = Vec::new();
    let mut compared = Vec::new();
    for format in all {
        let production = formats
            .iter()
            .any(|f| f == format)
            .then(|| output.with_extension(format))
            .filter(|p| p.is_file());
        let candidate = written
            .iter()
            .find(|(f, _)| f == format)
            .map(|(_, p)| p.clone())
            .filter(|p| p.is_file());
        let (production, candidate) = match (production, candidate) {
            (None, None) => continue,
            (Some(_), None) => {
                differences.push(format!(
                    ".{format}: production wrote one, the candidate none"
                ));
                compared.push(format);
                continue;
            }
            (None, Some(_)) => {
                differences.push(format!(
                    ".{format}: the candidate wrote one, production none"
                ));
                compared.push(format);
                continue;
            }
            (Some(p), Some(c)) => (p, c),
        };
        compared.push(format);
        if !TEXT_FORMATS.contains(&format) {
            if let Some(d) = same_bytes(&production, &candidate) {
                differences.push(format!(".{format}: {d}"));
            }
            continue;
        }
        let (p, c) = match (read_cues(&production), read_cues(&candidate)) {
            (Ok(p), Ok(c)) => (p, c),
            (Err(e), _) | (_, Err(e)) => {
                differences.push(format!(".{format}: {e}"));
                continue;
            }
        };
        out.production_cues = out.production_cues.max(p.len() as u32);
        out.candidate_cues = out.candidate_cues.max(c.len() as u32);
        if let Err(m) = cc608::compare(format, &p, &c, CUE_TOLERANCE) {
            let m =
                m.0.replace("the source", "production")
                    .replace("the output", "the candidate");
            differences.push(format!(".{format}: {m}"));
        }
    }
    out.formats = compared.join(",");
    out.difference = differences.join("; ");
    out
}

/// Why two binary sidecars differ, if they do.
fn same_bytes(production: &Path, candidate: &Path) -> Option<String> {
    match (std::fs::read(production), std::fs::read(candidate)) {
        (Ok(p), Ok(c)) if p == c => None,
        (Ok(p), Ok(c)) => Some(format!(
            "the files differ ({} bytes in production's, {} in the candidate's)",
            p.len(),
            c.len()
        )),
        (Err(e), _) => Some(format!("cannot read {}: {e}", production.display())),
        (_, Err(e)) => Some(format!("cannot read {}: {e}", candidate.display())),
    }
}

/// The cues of an SRT or WebVTT file.
fn read_cues(path: &Path) -> Result<Vec<Cue>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text_cues(&String::from_utf8_lossy(&text)))
}

/// The cues of SRT or WebVTT text: each block with a `-->` timing line gives one cue, its
/// start time and its text lines joined by a newline (numbers, headers and `NOTE` blocks are
/// not cues).
pub fn text_cues(text: &str) -> Vec<Cue> {
    let text = text.replace("\r\n", "\n");
    let mut cues = Vec::new();
    for block in text.split("\n\n") {
        let lines: Vec<&str> = block.lines().collect();
        let Some(at) = lines.iter().position(|l| l.contains("-->")) else {
            continue;
        };
        let Some(time) = lines[at].split("-->").next().and_then(timestamp) else {
            continue;
        };
        let body: Vec<&str> = lines[at + 1..].iter().map(|l| l.trim_end()).collect();
        cues.push(Cue {
            time,
            text: body.join("\n"),
        });
    }
    cues
}

/// `00:01:02,500` (SRT), `00:01:02.500` or `01:02.500` (WebVTT) in seconds.
fn timestamp(text: &str) -> Option<f64> {
    let text = text.trim().replace(',', ".");
    let mut secs = 0.0;
    for part in text.split(':') {
        secs = secs * 60.0 + part.parse::<f64>().ok()?;
    }
    secs.is_finite().then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srt_and_vtt_give_the_same_cues() {
        let srt = "1\r\n00:00:01,000 --> 00:00:02,000\r\nHELLO\r\nWORLD\r\n\r\n2\r\n00:01:02,500 --> 00:01:03,000\r\nBYE\r\n";
        let vtt = "WEBVTT\n\nNOTE made by FFmpeg\n\n00:01.000 --> 00:02.000\nHELLO\nWORLD\n\n01:02.500 --> 01:03.000 align:start\nBYE\n";
        let a = text_cues(srt);
        assert_eq!(a, text_cues(vtt));
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].time, a[0].text.as_str()), (1.0, "HELLO\nWORLD"));
        assert_eq!(a[1].time, 62.5);
    }

    #[test]
    fn sidecars_are_compared_cue_by_cue_and_missing_files_are_differences() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("news.mp4");
        std::fs::write(
            dir.path().join("news.srt"),
            "1\n00:00:01,000 --> 00:00:02,000\nHELLO\n\n2\n00:00:03,000 --> 00:00:04,000\nBYE\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("news.bin"), b"\xcc\xcc\xed").unwrap();
        let same = dir.path().join("same.srt");
        std::fs::copy(dir.path().join("news.srt"), &same).unwrap();
        let bin = dir.path().join("same.bin");
        std::fs::copy(dir.path().join("news.bin"), &bin).unwrap();
        let formats = ["srt".to_string(), "bin".to_string()];
        let written = vec![("srt".into(), same.clone()), ("bin".into(), bin.clone())];
        let c = compare(&output, &formats, &written);
        assert_eq!(c.difference, "", "{c:?}");
        assert_eq!((c.production_cues, c.candidate_cues), (2, 2));
        assert_eq!(c.formats, "bin,srt");

        let short = dir.path().join("short.srt");
        std::fs::write(&short, "1\n00:00:01,000 --> 00:00:02,000\nHELLO\n").unwrap();
        let c = compare(&output, &formats, &[("srt".into(), short)]);
        assert!(c.difference.contains(".bin: production wrote one"), "{c:?}");
        assert!(c.difference.contains("\"BYE\""), "{c:?}");
        assert!(c.difference.contains("the candidate says nothing"), "{c:?}");
        assert_eq!(c.candidate_cues, 1);

        let c = compare(&output, &[], &written);
        assert!(
            c.difference
                .contains(".srt: the candidate wrote one, production none"),
            "{c:?}"
        );
    }
}
