//! A track's first sample description (`stsd`): its four-character code, a picture's size, the
//! AVC parameter set (`avcC`), the field layout (`fiel`), and an MPEG-4 audio track's object
//! types (`esds`, also inside QuickTime's `wave`). Everything is read from the bounded body of
//! `stsd`, through bounds checks.

use super::avc::Sps;
use super::boxes::{array, u32_at, Header};
use super::{Mp4Error, MAX_DEPTH};

/// A sample description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleEntry {
    /// Its four-character code (`avc1`, `mp4a`, `c608`...).
    pub fourcc: [u8; 4],
    /// A picture's width in pixels (video).
    pub width: u16,
    /// A picture's height in pixels (video).
    pub height: u16,
    /// The first sequence parameter set of `avcC` (H.264).
    pub sps: Option<Sps>,
    /// The bytes of the length before each NAL unit of a sample (`avcC`: 1, 2 or 4).
    pub nal_length_size: Option<u8>,
    /// `fiel`: the number of fields (1 progressive, 2 interlaced) and their order.
    pub fields: Option<(u8, u8)>,
    /// `esds`: what an MPEG-4 audio track carries.
    pub audio: Option<AudioConfig>,
}

/// The object types of an MPEG-4 audio track (`esds`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AudioConfig {
    /// `objectTypeIndication` (0x40: MPEG-4 audio; 0x66-0x68: MPEG-2 AAC; 0x69, 0x6B: MP3).
    pub object_type_indication: u8,
    /// The MPEG-4 audio object type of the `AudioSpecificConfig` (2: AAC LC, 5: SBR...).
    pub audio_object_type: Option<u8>,
}

const VISUAL: [&[u8; 4]; 6] = [b"avc1", b"avc3", b"hvc1", b"hev1", b"mp4v", b"encv"];
const SOUND: [&[u8; 4]; 6] = [b"mp4a", b"ac-3", b"ec-3", b"enca", b".mp3", b"Opus"];

/// MPEG-4 audio object types FFmpeg decodes as AAC.
const AAC_OBJECT_TYPES: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 17, 19, 20, 23, 29];

impl SampleEntry {
    /// The codec's name as ffprobe gives it (`h264`, `aac`, `ac3`...), else the code itself.
    pub fn codec_name(&self) -> String {
        let name = match &self.fourcc {
            b"avc1" | b"avc3" => "h264",
            b"hvc1" | b"hev1" => "hevc",
            b"mp4v" => "mpeg4",
            b"ac-3" => "ac3",
            b"ec-3" => "eac3",
            b".mp3" => "mp3",
            b"Opus" => "opus",
            b"c608" => "eia_608",
            b"mp4a" => match self.audio {
                None => "aac",
                Some(c) => match c.object_type_indication {
                    0x40 if c
                        .audio_object_type
                        .is_none_or(|t| AAC_OBJECT_TYPES.contains(&t)) =>
                    {
                        "aac"
                    }
                    0x66..=0x68 => "aac",
                    0x69 | 0x6B => "mp3",
                    _ => "mp4a",
                },
            },
            other => return String::from_utf8_lossy(other).trim().to_owned(),
        };
        name.to_owned()
    }

    /// The field order as ffprobe names it: `progressive`, or `tt`, `bb`, `tb`, `bt`; empty when
    /// nothing says. Without `fiel`, an H.264 parameter set that allows field coding (no
    /// `frame_mbs_only_flag`: field pictures or MBAFF frames) is taken as interlaced, top field
    /// first.
    pub fn field_order(&self) -> String {
        let order = match (self.fields, &self.sps) {
            (Some((2, 6)), _) => "bb",
            (Some((2, 9)), _) => "tb",
            (Some((2, 14)), _) => "bt",
            (Some((2, _)), _) => "tt",
            (Some(_), _) => "progressive",
            (None, Some(sps)) if sps.frame_mbs_only => "progressive",
            (None, Some(_)) => "tt",
            (None, None) => "",
        };
        order.to_owned()
    }
}

/// The first entry of an `stsd` body (`h`: the `stsd` box, `depth`: its children's depth).
pub fn first(body: &[u8], h: &Header, depth: usize) -> Result<Option<SampleEntry>, Mp4Error> {
    let count = u32_at(body, 4, h)?;
    if count == 0 {
        return Ok(None);
    }
    let Some((fourcc, entry)) = children(body.get(8..).unwrap_or_default(), h)?.next() else {
        return Err(h.malformed("announces a sample description but holds none"));
    };
    let mut e = SampleEntry {
        fourcc,
        ..SampleEntry::default()
    };
    let at = |what: &str| {
        h.malformed(format!(
            "{} entry: {what}",
            String::from_utf8_lossy(&fourcc)
        ))
    };
    let inner = if VISUAL.contains(&&fourcc) {
        e.width = u16::from_be_bytes(array::<2>(entry, 24, h).map_err(|_| at("too short"))?);
        e.height = u16::from_be_bytes(array::<2>(entry, 26, h).map_err(|_| at("too short"))?);
        entry.get(78..)
    } else if SOUND.contains(&&fourcc) {
        // QuickTime sound descriptions of version 1 and 2 carry more fields before their boxes.
        let version = u16::from_be_bytes(array::<2>(entry, 8, h).map_err(|_| at("too short"))?);
        entry.get(
            match version {
                1 => 44,
                2 => 64,
                _ => 28,
            }..,
        )
    } else {
        None
    };
    if let Some(inner) = inner {
        read_children(inner, h, depth + 1, &mut e)?;
    }
    Ok(Some(e))
}

/// The boxes inside a sample description that say what it is.
fn read_children(
    bytes: &[u8],
    h: &Header,
    depth: usize,
    e: &mut SampleEntry,
) -> Result<(), Mp4Error> {
    if depth > MAX_DEPTH {
        return Err(h.malformed(format!("nested more than {MAX_DEPTH} boxes deep")));
    }
    for (kind, body) in children(bytes, h)? {
        match &kind {
            b"avcC" => {
                e.sps = Sps::from_avcc(body);
                // `lengthSizeMinusOne`: 1, 2 or 4 bytes before each NAL unit of a sample.
                e.nal_length_size = body.get(4).map(|b| (b & 0x03) + 1).filter(|n| *n != 3);
            }
            b"fiel" => {
                if let [fields, detail, ..] = body {
                    e.fields = Some((*fields, *detail));
                }
            }
            b"esds" => e.audio = esds(body),
            b"wave" => read_children(body, h, depth + 1, e)?,
            _ => {}
        }
    }
    Ok(())
}

/// The boxes laid one after the other in `bytes` (type, body), each size checked. A truncated
/// last box is malformed; fewer than 8 bytes left over (padding) end the list.
fn children<'a>(
    bytes: &'a [u8],
    h: &Header,
) -> Result<impl Iterator<Item = ([u8; 4], &'a [u8])>, Mp4Error> {
    let mut found = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = [rest[4], rest[5], rest[6], rest[7]];
        let size = if size == 0 { rest.len() } else { size };
        if size < 8 || size > rest.len() {
            return Err(h.malformed(format!(
                "a {} box inside it has size {size} with {} bytes left",
                String::from_utf8_lossy(&kind),
                rest.len()
            )));
        }
        found.push((kind, &rest[8..size]));
        rest = &rest[size..];
    }
    Ok(found.into_iter())
}

/// The object types of an `esds` body, if it holds a decoder configuration.
fn esds(body: &[u8]) -> Option<AudioConfig> {
    let mut d = Descriptors(body.get(4..)?);
    let (tag, es) = d.next()?;
    let mut es = match tag {
        0x03 => {
            // ES_ID, then flags that announce optional fields.
            let flags = *es.get(2)?;
            let mut skip = 3;
            if flags & 0x80 != 0 {
                skip += 2;
            }
            if flags & 0x40 != 0 {
                skip += 1 + usize::from(*es.get(skip)?);
            }
            if flags & 0x20 != 0 {
                skip += 2;
            }
            Descriptors(es.get(skip..)?)
        }
        _ => return None,
    };
    let (tag, config) = es.next()?;
    if tag != 0x04 {
        return None;
    }
    let object_type_indication = *config.first()?;
    let audio_object_type = Descriptors(config.get(13..).unwrap_or_default())
        .find(|(tag, _)| *tag == 0x05)
        .and_then(|(_, asc)| {
            let first = *asc.first()?;
            match first >> 3 {
                31 => {
                    let second = *asc.get(1)?;
                    Some(32 + (((first & 0x07) << 3) | (second >> 5)))
                }
                t => Some(t),
            }
        });
    Some(AudioConfig {
        object_type_indication,
        audio_object_type,
    })
}

/// MPEG-4 descriptors laid one after the other: a tag, a size in up to four bytes of seven
/// bits, the body. Iteration stops at the first that does not fit.
struct Descriptors<'a>(&'a [u8]);

impl<'a> Iterator for Descriptors<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&tag, mut rest) = self.0.split_first()?;
        let mut size = 0usize;
        for _ in 0..4 {
            let (&b, r) = rest.split_first()?;
            rest = r;
            size = (size << 7) | usize::from(b & 0x7F);
            if b & 0x80 == 0 {
                break;
            }
        }
        let body = rest.get(..size)?;
        self.0 = &rest[size..];
        Some((tag, body))
    }
}
