//! The H.264 sequence parameter set of an `avcC` box (or of a transport stream), read as far as
//! `frame_mbs_only_flag` (whether every picture is a progressive frame): the profile, its chroma
//! format and bit depth; and the first fields of a picture parameter set and of a slice header,
//! as far as `field_pic_flag` (whether a picture is one field: PAFF). A parameter set or header
//! that ends early or holds values out of range gives `None`, never a panic.

/// What the first sequence parameter set says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sps {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High...).
    pub profile_idc: u8,
    /// `constraint_set1_flag` (Constrained Baseline with profile 66).
    pub constraint_set1: bool,
    /// `level_idc` (41 = level 4.1).
    pub level_idc: u8,
    /// `chroma_format_idc` (1: 4:2:0).
    pub chroma_format_idc: u32,
    /// `bit_depth_luma_minus8` + 8.
    pub bit_depth: u32,
    /// `frame_mbs_only_flag`: no field pictures and no MBAFF frames.
    pub frame_mbs_only: bool,
    /// `seq_parameter_set_id` (0 to 31).
    pub id: u32,
    /// `separate_colour_plane_flag` (4:4:4 coded as three planes).
    pub separate_colour_plane: bool,
    /// `log2_max_frame_num_minus4` + 4 (4 to 16): the width of a slice header's `frame_num`.
    pub log2_max_frame_num: u32,
}

impl Sps {
    /// The first SPS of an `avcC` body (`AVCDecoderConfigurationRecord`).
    pub fn from_avcc(avcc: &[u8]) -> Option<Sps> {
        let count = usize::from(*avcc.get(5)? & 0x1F);
        if count == 0 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([*avcc.get(6)?, *avcc.get(7)?]));
        let nal = avcc.get(8..8 + len)?;
        // A NAL unit of type 7 (SPS), its one-byte header skipped.
        if nal.first()? & 0x1F != 7 {
            return None;
        }
        Sps::parse(&crate::captions::read::unescape(nal.get(1..)?))
    }

    /// Parses an SPS's RBSP (emulation prevention removed).
    pub fn parse(rbsp: &[u8]) -> Option<Sps> {
        let mut r = Bits::new(rbsp);
        let profile_idc = r.bits(8)? as u8;
        let constraints = r.bits(8)?;
        let level_idc = r.bits(8)? as u8;
        let id = r.ue()?;
        if id > 31 {
            return None;
        }
        let (mut chroma_format_idc, mut bit_depth) = (1, 8);
        let mut separate_colour_plane = false;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc > 3 {
                return None;
            }
            if chroma_format_idc == 3 {
                separate_colour_plane = r.bits(1)? == 1;
            }
            bit_depth = r.ue()?.checked_add(8)?;
            r.ue()?; // bit_depth_chroma_minus8
            r.bits(1)?; // qpprime_y_zero_transform_bypass_flag
            if r.bits(1)? == 1 {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bits(1)? == 1 {
                        r.scaling_list(if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let log2_max_frame_num = r.ue()?;
        if log2_max_frame_num > 12 {
            return None;
        }
        match r.ue()? {
            0 => {
                r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
            }
            1 => {
                r.bits(1)?; // delta_pic_order_always_zero_flag
                r.se()?; // offset_for_non_ref_pic
                r.se()?; // offset_for_top_to_bottom_field
                let cycle = r.ue()?;
                if cycle > 255 {
                    return None;
                }
                for _ in 0..cycle {
                    r.se()?;
                }
            }
            2 => {}
            _ => return None,
        }
        r.ue()?; // max_num_ref_frames
        r.bits(1)?; // gaps_in_frame_num_value_allowed_flag
        r.ue()?; // pic_width_in_mbs_minus1
        r.ue()?; // pic_height_in_map_units_minus1
        let frame_mbs_only = r.bits(1)? == 1;
        Some(Sps {
            profile_idc,
            constraint_set1: constraints & 0x40 != 0,
            level_idc,
            chroma_format_idc,
            bit_depth,
            frame_mbs_only,
            id,
            separate_colour_plane,
            log2_max_frame_num: log2_max_frame_num + 4,
        })
    }

    /// Whether a slice of a picture under this SPS codes one field (`field_pic_flag`), from the
    /// slice's RBSP (emulation prevention removed, NAL header byte skipped).
    pub fn field_slice(&self, rbsp: &[u8]) -> Option<bool> {
        if self.frame_mbs_only {
            return Some(false);
        }
        let mut r = Bits::new(rbsp);
        r.ue()?; // first_mb_in_slice
        r.ue()?; // slice_type
        r.ue()?; // pic_parameter_set_id
        if self.separate_colour_plane {
            r.bits(2)?; // colour_plane_id
        }
        r.bits(self.log2_max_frame_num)?; // frame_num
        Some(r.bits(1)? == 1)
    }

    /// The profile's name as ffprobe gives it.
    pub fn profile_name(&self) -> &'static str {
        match self.profile_idc {
            66 if self.constraint_set1 => "Constrained Baseline",
            66 => "Baseline",
            77 => "Main",
            88 => "Extended",
            100 => "High",
            110 => "High 10",
            122 => "High 4:2:2",
            244 => "High 4:4:4 Predictive",
            44 => "CAVLC 4:4:4",
            _ => "",
        }
    }
}

/// A picture parameter set's own id (0 to 255) and the id of the SPS it refers to (0 to 31), from
/// its RBSP (NAL header byte skipped).
pub fn pps_ids(rbsp: &[u8]) -> Option<(u32, u32)> {
    let mut r = Bits::new(rbsp);
    let (pps, sps) = (r.ue()?, r.ue()?);
    (pps <= 255 && sps <= 31).then_some((pps, sps))
}

/// A slice header's `pic_parameter_set_id`, from the slice's RBSP (NAL header byte skipped).
pub fn slice_pps_id(rbsp: &[u8]) -> Option<u32> {
    let mut r = Bits::new(rbsp);
    r.ue()?; // first_mb_in_slice
    r.ue()?; // slice_type
    r.ue().filter(|&id| id <= 255)
}

/// A bit reader that returns `None` past the end.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    /// An unsigned Exp-Golomb code (at most 31 leading zeros).
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        let v = (1u64 << zeros) - 1 + u64::from(rest);
        u32::try_from(v).ok()
    }

    /// A signed Exp-Golomb code.
    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }

    /// A scaling list of `size` entries (only read past).
    fn scaling_list(&mut self, size: usize) -> Option<()> {
        let (mut last, mut next) = (8i64, 8i64);
        for _ in 0..size {
            if next != 0 {
                let delta = self.se()?;
                next = (last + delta + 256).rem_euclid(256);
            }
            if next != 0 {
                last = next;
            }
        }
        Some(())
    }
}
