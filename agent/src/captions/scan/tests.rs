//! The scan on transport streams built here packet by packet. The scan of real FFmpeg streams,
//! with and without injected captions, is in the agent's integration tests (`captions`).

use super::*;

const PID: u16 = 0x100;

/// Transport packets of PID [`PID`] carrying `es` as one PES per picture (`pictures`).
fn ts(pictures: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for es in pictures {
        let mut pes = vec![0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
        pes.extend_from_slice(es);
        for (i, chunk) in pes.chunks(184).enumerate() {
            let mut p = vec![0x47, (PID >> 8) as u8, PID as u8, 0x10];
            if i == 0 {
                p[1] |= 0x40;
            }
            if chunk.len() < 184 {
                // Stuffing in an adaptation field.
                let fill = 184 - chunk.len();
                p[3] |= 0x20;
                p.push((fill - 1) as u8);
                if fill > 1 {
                    p.push(0);
                    p.extend(std::iter::repeat_n(0xFF, fill - 2));
                }
            }
            p.extend_from_slice(chunk);
            assert_eq!(p.len(), 188);
            out.extend(p);
        }
    }
    out
}

fn scan(bytes: &[u8], codec: Codec) -> Scan {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.ts");
    std::fs::write(&path, bytes).unwrap();
    let layout = crate::ts::layout_of(&path).unwrap().unwrap();
    first_pictures(&path, layout, PID, codec).unwrap()
}

fn mpeg2_picture(user_data: Option<&[u8]>) -> Vec<u8> {
    let mut es = vec![0, 0, 1, 0x00, 0x0f, 0xff, 0xf8, 0];
    if let Some(data) = user_data {
        es.extend_from_slice(&[0, 0, 1, 0xB2]);
        es.extend_from_slice(data);
    }
    es.extend_from_slice(&[0, 0, 1, 0x01]);
    es.extend(vec![0x55; 300]);
    es
}

#[test]
fn mpeg2_without_user_data_has_no_captions() {
    let pictures: Vec<Vec<u8>> = (0..PICTURES + 5).map(|_| mpeg2_picture(None)).collect();
    assert_eq!(scan(&ts(&pictures), Codec::Mpeg2), Scan::NoCaptions);
    // A short recording, seen to its end.
    assert_eq!(scan(&ts(&pictures[..3]), Codec::Mpeg2), Scan::NoCaptions);
    // AFD and bar data are never captions.
    let afd: Vec<Vec<u8>> = (0..PICTURES)
        .map(|i| {
            mpeg2_picture(Some(if i % 2 == 0 {
                b"DTG1\x41\xf8"
            } else {
                b"GA94\x06\x00"
            }))
        })
        .collect();
    assert_eq!(scan(&ts(&afd), Codec::Mpeg2), Scan::NoCaptions);
}

#[test]
fn mpeg2_user_data_in_the_first_pictures_may_be_captions() {
    let a53 = b"GA94\x03\x41\xff\xfc\x94\x20\xff";
    for at in [0, PICTURES / 2, PICTURES - 1] {
        let mut pictures: Vec<Vec<u8>> = (0..PICTURES + 5).map(|_| mpeg2_picture(None)).collect();
        pictures[at as usize] = mpeg2_picture(Some(a53));
        assert!(
            matches!(scan(&ts(&pictures), Codec::Mpeg2), Scan::Maybe(_)),
            "captions in picture {at}"
        );
    }
    // Past the pictures scanned: not looked at (the probe would not see them either).
    let mut pictures: Vec<Vec<u8>> = (0..PICTURES + 5).map(|_| mpeg2_picture(None)).collect();
    pictures[PICTURES as usize + 2] = mpeg2_picture(Some(a53));
    assert_eq!(scan(&ts(&pictures), Codec::Mpeg2), Scan::NoCaptions);
}

fn h264_picture(sei: Option<&[u8]>) -> Vec<u8> {
    let mut es = vec![0, 0, 0, 1, 0x09, 0xf0];
    if let Some(payload) = sei {
        es.extend_from_slice(&[0, 0, 1, 0x06]);
        es.extend_from_slice(payload);
        es.push(0x80);
    }
    // An IDR slice with first_mb_in_slice = 0, then a second slice of the same picture.
    es.extend_from_slice(&[0, 0, 1, 0x65, 0x88, 0x84, 0x21]);
    es.extend(vec![0x55; 200]);
    es.extend_from_slice(&[0, 0, 1, 0x65, 0x41, 0x9a]);
    es.extend(vec![0x55; 100]);
    es
}

#[test]
fn h264_sei_of_type_4_may_be_captions_others_are_not() {
    // Type 5 (x264's version string, unregistered user data), 8 bytes.
    let unregistered: &[u8] = &[5, 8, 1, 2, 3, 4, 5, 6, 7, 8];
    let pictures: Vec<Vec<u8>> = (0..PICTURES + 1)
        .map(|i| h264_picture((i == 0).then_some(unregistered)))
        .collect();
    assert_eq!(scan(&ts(&pictures), Codec::H264), Scan::NoCaptions);
    // A53 in a type 4 message, after a type 5 one in the same NAL unit.
    let mut both = unregistered.to_vec();
    both.extend_from_slice(&[4, 6, 0xB5, 0x00, 0x31, b'G', b'A', b'9']);
    let mut pictures = pictures.clone();
    pictures[7] = h264_picture(Some(&both));
    assert!(matches!(scan(&ts(&pictures), Codec::H264), Scan::Maybe(_)));
    // An SEI that cannot be read to its end is not trusted.
    pictures[7] = h264_picture(Some(&[5, 200, 1, 2]));
    assert!(matches!(scan(&ts(&pictures), Codec::H264), Scan::Maybe(_)));
}

#[test]
fn what_cannot_be_read_is_left_to_the_probe() {
    let pictures: Vec<Vec<u8>> = (0..PICTURES + 5).map(|_| mpeg2_picture(None)).collect();
    let mut bytes = ts(&pictures);
    // A scrambled packet of the video.
    bytes[3] |= 0x80;
    assert!(matches!(scan(&bytes, Codec::Mpeg2), Scan::Maybe(w) if w.contains("scrambled")));
    // A PES start without its header.
    let mut bytes = ts(&pictures);
    bytes[4] = 0xAA;
    assert!(matches!(scan(&bytes, Codec::Mpeg2), Scan::Maybe(w) if w.contains("header")));
    // Lost sync in the middle.
    let mut bytes = ts(&pictures);
    bytes[188 * 20] = 0;
    assert!(matches!(scan(&bytes, Codec::Mpeg2), Scan::Maybe(w) if w.contains("sync")));
    // Every byte flipped in turn: no panic.
    let small = ts(&pictures[..4]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.ts");
    let layout = crate::ts::Layout {
        packet: 188,
        first: 0,
    };
    for at in 0..small.len() {
        let mut hostile = small.clone();
        hostile[at] ^= 0xFF;
        std::fs::write(&path, &hostile).unwrap();
        let _ = first_pictures(&path, layout, PID, Codec::H264);
        let _ = first_pictures(&path, layout, PID, Codec::Mpeg2);
    }
}
