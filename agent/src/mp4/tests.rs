//! The box reader on MP4s built here byte by byte: a whole movie as FFmpeg writes one, and the
//! damaged and hostile shapes (cut short, sizes that lie, boxes nested without end, tables that
//! announce more than they hold). Agreement with ffprobe on real FFmpeg outputs is tested in the
//! agent's integration tests (`mp4_facts`).

use super::*;

fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

fn full(version: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![version, 0, 0, 0];
    v.extend_from_slice(rest);
    v
}

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// `mvhd` or `mdhd` version 0 with a timescale and a duration.
fn header_box(kind: &[u8; 4], timescale: u32, duration: u32) -> Vec<u8> {
    let mut rest = vec![0u8; 8];
    rest.extend_from_slice(&be32(timescale));
    rest.extend_from_slice(&be32(duration));
    rest.extend_from_slice(&[0u8; 80]);
    boxed(kind, &full(0, &rest))
}

fn elst(edits: &[(u32, i32)]) -> Vec<u8> {
    let mut rest = be32(edits.len() as u32).to_vec();
    for (d, t) in edits {
        rest.extend_from_slice(&be32(*d));
        rest.extend_from_slice(&t.to_be_bytes());
        rest.extend_from_slice(&[0, 1, 0, 0]);
    }
    boxed(b"edts", &boxed(b"elst", &full(0, &rest)))
}

fn stts(runs: &[(u32, u32)]) -> Vec<u8> {
    let mut rest = be32(runs.len() as u32).to_vec();
    for (n, d) in runs {
        rest.extend_from_slice(&be32(*n));
        rest.extend_from_slice(&be32(*d));
    }
    boxed(b"stts", &full(0, &rest))
}

/// The SPS of x264's High profile, 640x360, progressive (from an FFmpeg output).
const HIGH_SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x03,
    0xe9, 0x00, 0x00, 0xea, 0x60, 0x0f, 0x16, 0x2d, 0x96,
];

fn avc1(sps: &[u8]) -> Vec<u8> {
    let mut avcc = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    avcc.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    avcc.extend_from_slice(sps);
    avcc.push(0); // no PPS
    let mut entry = vec![0u8; 78];
    entry[24..26].copy_from_slice(&640u16.to_be_bytes());
    entry[26..28].copy_from_slice(&360u16.to_be_bytes());
    entry.extend(boxed(b"avcC", &avcc));
    stsd(&boxed(b"avc1", &entry))
}

fn mp4a(oti: u8, asc: &[u8]) -> Vec<u8> {
    let mut config = vec![oti, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    config.push(0x05);
    config.push(asc.len() as u8);
    config.extend_from_slice(asc);
    let mut es = vec![0, 1, 0, 0x04, config.len() as u8];
    es.extend(config);
    let mut esds = vec![0x03, es.len() as u8];
    esds.extend(es);
    let mut entry = vec![0u8; 28];
    entry.extend(boxed(b"esds", &full(0, &esds)));
    stsd(&boxed(b"mp4a", &entry))
}

fn stsd(entry: &[u8]) -> Vec<u8> {
    let mut rest = be32(1).to_vec();
    rest.extend_from_slice(entry);
    boxed(b"stsd", &full(0, &rest))
}

#[allow(clippy::too_many_arguments)]
fn trak(
    handler: &[u8; 4],
    timescale: u32,
    mdhd: u32,
    edits: &[(u32, i32)],
    runs: &[(u32, u32)],
    ctts: bool,
    samples: u32,
    description: Vec<u8>,
) -> Vec<u8> {
    let mut hdlr = vec![0u8; 4];
    hdlr.extend_from_slice(handler);
    hdlr.extend_from_slice(&[0u8; 13]);
    let mut stbl = description;
    stbl.extend(stts(runs));
    if ctts {
        stbl.extend(boxed(b"ctts", &full(0, &[0, 0, 0, 0])));
    }
    let mut stsz = vec![0u8; 4];
    stsz.extend_from_slice(&be32(samples));
    stbl.extend(boxed(b"stsz", &full(0, &stsz)));
    // QuickTime's data handler inside minf, which is not the media's.
    let mut dhlr = b"dhlralis".to_vec();
    dhlr.extend_from_slice(&[0u8; 13]);
    let mut minf = boxed(b"hdlr", &full(0, &dhlr));
    minf.extend(boxed(b"stbl", &stbl));
    let minf = boxed(b"minf", &minf);
    let mut mdia = header_box(b"mdhd", timescale, mdhd);
    mdia.extend(boxed(b"hdlr", &full(0, &hdlr)));
    mdia.extend(minf);
    let mut t = boxed(b"tkhd", &full(0, &[0u8; 80]));
    if !edits.is_empty() {
        t.extend(elst(edits));
    }
    t.extend(boxed(b"mdia", &mdia));
    boxed(b"trak", &t)
}

/// A movie as FFmpeg writes a 2 s clip: H.264 with B-frames at 30000/1001, AAC with its
/// priming cut by the edit list, `moov` first.
fn ffmpeg_like() -> Vec<u8> {
    let mut moov = header_box(b"mvhd", 1000, 2016);
    moov.extend(trak(
        b"vide",
        30000,
        60060,
        &[(2002, 2002)],
        &[(60, 1001)],
        true,
        60,
        avc1(HIGH_SPS),
    ));
    moov.extend(trak(
        b"soun",
        48000,
        97792,
        &[(2016, 1024)],
        &[(95, 1024), (1, 512)],
        false,
        96,
        mp4a(0x40, &[0x11, 0x90]),
    ));
    [
        boxed(b"ftyp", b"isom\0\0\x02\0"),
        boxed(b"moov", &moov),
        boxed(b"free", &[]),
        boxed(b"mdat", &[0u8; 64]),
    ]
    .concat()
}

fn parse_bytes(bytes: &[u8]) -> Result<Mp4Facts, Mp4Error> {
    parse(std::io::Cursor::new(bytes), bytes.len() as u64)
}

#[test]
fn reads_a_movie_as_ffmpeg_writes_it() {
    let facts = parse_bytes(&ffmpeg_like()).unwrap();
    assert!(facts.moov_first);
    assert!(!facts.fragmented);
    assert_eq!(facts.tracks.len(), 2);
    let info = facts.media_info();
    assert_eq!(info.format_name, FORMAT_NAME);
    assert!((info.duration - 2.016).abs() < 1e-9);
    let video = info.video.unwrap();
    assert_eq!(
        (video.codec.as_str(), video.profile.as_str()),
        ("h264", "High")
    );
    assert_eq!((video.width, video.height), (640, 360));
    assert_eq!(video.field_order, "progressive");
    assert!(!video.is_interlaced());
    assert!((video.duration.unwrap() - 2.002).abs() < 1e-9, "{video:?}");
    assert_eq!(facts.tracks[0].samples, 60);
    assert_eq!(info.audio.len(), 1);
    assert_eq!(info.audio[0].codec, "aac");
    // ffprobe: 96768 of 48000 (the 1024 samples of priming cut by the edit).
    assert!(
        (info.audio[0].duration.unwrap() - 2.016).abs() < 1e-9,
        "{:?}",
        info.audio
    );
    assert_eq!(info.other_streams, 0);
}

#[test]
fn the_order_of_moov_and_mdat_is_reported() {
    let bytes = ffmpeg_like();
    let moov_at = 16;
    let moov_len = u32::from_be_bytes(bytes[moov_at..moov_at + 4].try_into().unwrap()) as usize;
    let moov = &bytes[moov_at..moov_at + moov_len];
    let late = [
        boxed(b"ftyp", b"isom\0\0\x02\0"),
        boxed(b"mdat", &[0u8; 64]),
        moov.to_vec(),
    ]
    .concat();
    let facts = parse_bytes(&late).unwrap();
    assert!(!facts.moov_first);
    assert_eq!(
        facts.tracks.len(),
        2,
        "the tracks are read wherever moov is"
    );
}

#[test]
fn an_mp4_cut_short_is_malformed_wherever_it_is_cut() {
    let bytes = ffmpeg_like();
    // Every cut inside moov fails with a message naming a box; none panics.
    for cut in 17..16 + 8 + 1000 {
        match parse_bytes(&bytes[..cut]) {
            Err(Mp4Error::Malformed(why)) => assert!(why.contains("offset"), "{why}"),
            Err(Mp4Error::Io(e)) => panic!("cut at {cut}: an I/O error, not malformed: {e}"),
            Ok(_) => panic!("cut at {cut} was read as whole"),
        }
    }
}

#[test]
fn no_byte_flipped_anywhere_in_moov_panics() {
    let bytes = ffmpeg_like();
    for at in 0..bytes.len() - 64 {
        for value in [0x00, 0x01, 0x7f, 0xff] {
            let mut hostile = bytes.clone();
            hostile[at] = value;
            let _ = parse_bytes(&hostile);
        }
    }
}

#[test]
fn sizes_that_lie_are_refused() {
    // Smaller than its header.
    let mut small = boxed(b"moov", &[]);
    small[3] = 4;
    assert!(matches!(parse_bytes(&small), Err(Mp4Error::Malformed(w)) if w.contains("smaller")));
    // Past the end of the file.
    let mut long = boxed(b"moov", &header_box(b"mvhd", 1000, 1));
    long[2] = 0x10;
    assert!(
        matches!(parse_bytes(&long), Err(Mp4Error::Malformed(w)) if w.contains("past the end"))
    );
    // A 64-bit size past the end.
    let mut large = vec![0, 0, 0, 1];
    large.extend_from_slice(b"moov");
    large.extend_from_slice(&u64::MAX.to_be_bytes());
    assert!(matches!(parse_bytes(&large), Err(Mp4Error::Malformed(_))));
    // A child past its parent's end.
    let inner = header_box(b"mvhd", 1000, 1);
    let mut moov = boxed(b"moov", &inner);
    moov[8 + 3] += 4;
    moov.extend_from_slice(&[0u8; 4]);
    assert!(matches!(parse_bytes(&moov), Err(Mp4Error::Malformed(w)) if w.contains("mvhd")));
    // No moov at all.
    assert!(
        matches!(parse_bytes(&boxed(b"mdat", &[0; 8])), Err(Mp4Error::Malformed(w)) if w.contains("no moov"))
    );
}

#[test]
fn nesting_and_counts_are_bounded() {
    // trak inside trak inside ...: the depth limit stops it.
    let mut deep = boxed(b"stbl", &[]);
    for _ in 0..MAX_DEPTH + 4 {
        deep = boxed(b"mdia", &deep);
    }
    let moov = boxed(b"moov", &boxed(b"trak", &deep));
    assert!(
        matches!(parse_bytes(&moov), Err(Mp4Error::Malformed(w)) if w.contains("deep")),
        "depth"
    );
    // More tracks than allowed.
    let many: Vec<u8> = (0..=MAX_TRACKS).flat_map(|_| boxed(b"trak", &[])).collect();
    assert!(
        matches!(parse_bytes(&boxed(b"moov", &many)), Err(Mp4Error::Malformed(w)) if w.contains("tracks"))
    );
    // A table that announces more entries than it holds.
    let mut lying = vec![0u8; 4];
    lying.extend_from_slice(&be32(u32::MAX));
    let moov = boxed(
        b"moov",
        &boxed(
            b"trak",
            &boxed(
                b"mdia",
                &boxed(b"minf", &boxed(b"stbl", &boxed(b"stts", &lying))),
            ),
        ),
    );
    assert!(matches!(parse_bytes(&moov), Err(Mp4Error::Malformed(w)) if w.contains("announced")));
    // A leaf larger than its bound is not read into memory.
    let mut huge = Vec::new();
    huge.extend_from_slice(&((MAX_LEAF + 9) as u32).to_be_bytes());
    huge.extend_from_slice(b"hdlr");
    huge.resize(MAX_LEAF as usize + 9, 0);
    let moov = boxed(b"moov", &boxed(b"trak", &boxed(b"mdia", &huge)));
    assert!(matches!(parse_bytes(&moov), Err(Mp4Error::Malformed(w)) if w.contains("more than")));
}

#[test]
fn interlaced_and_other_codecs_are_told() {
    // frame_mbs_only_flag cleared in the SPS: pictures may be fields.
    let mut rbsp = avc::Sps::parse(&crate::captions::read::unescape(&HIGH_SPS[1..])).unwrap();
    assert!(rbsp.frame_mbs_only);
    rbsp.frame_mbs_only = false;
    let e = SampleEntry {
        fourcc: *b"avc1",
        sps: Some(rbsp),
        ..SampleEntry::default()
    };
    assert_eq!(e.field_order(), "tt");
    let fiel = SampleEntry {
        fields: Some((2, 6)),
        ..e.clone()
    };
    assert_eq!(fiel.field_order(), "bb");
    // MP3 in MP4 is not AAC; HE-AAC is.
    let mp3 = SampleEntry {
        fourcc: *b"mp4a",
        audio: Some(AudioConfig {
            object_type_indication: 0x6B,
            audio_object_type: None,
        }),
        ..SampleEntry::default()
    };
    assert_eq!(mp3.codec_name(), "mp3");
    let he = SampleEntry {
        audio: Some(AudioConfig {
            object_type_indication: 0x40,
            audio_object_type: Some(5),
        }),
        ..mp3.clone()
    };
    assert_eq!(he.codec_name(), "aac");
    let c608 = SampleEntry {
        fourcc: *b"c608",
        ..SampleEntry::default()
    };
    assert_eq!(c608.codec_name(), "eia_608");
}

#[test]
fn durations_follow_the_edit_list() {
    let track = |edits: Vec<(u64, i64)>, ctts: bool| Track {
        handler: *b"soun",
        timescale: 48000,
        media_duration: 97792,
        stts_duration: 97792,
        has_ctts: ctts,
        edits,
        stts: vec![(95, 1024), (1, 512)],
        ..Track::default()
    };
    assert_eq!(track(vec![], false).duration(1000), Some(97792));
    // Priming cut: starts one sample in.
    assert_eq!(track(vec![(2016, 1024)], false).duration(1000), Some(96768));
    // An edit that starts inside a sample counts from that sample's start.
    assert_eq!(track(vec![(1000, 1500)], false).duration(1000), Some(48476));
    // Empty edits before it change nothing.
    assert_eq!(
        track(vec![(500, -1), (2016, 1024)], false).duration(1000),
        Some(96768)
    );
    // Two edits of media: the samples' duration.
    assert_eq!(
        track(vec![(500, 0), (500, 48000)], false).duration(1000),
        Some(97792)
    );
    // No durations at all.
    let none = Track {
        timescale: 48000,
        ..Track::default()
    };
    assert_eq!(none.duration(1000), None);
    assert_eq!(none.secs(1000), None);
}
