//! A CEA-608 decoder for verification: the caption bytes of every frame in, the cues of one
//! data channel out (CC1 on field 1, CC3 on field 2), so that the output's captions can be
//! compared with the source's, cue for cue.
//!
//! It is not a renderer. It keeps what decides the text a viewer reads: the caption mode
//! (pop-on, roll-up, paint-on, text), the displayed and non-displayed memories, the cursor, the
//! basic, special and extended characters, backspace and the erase codes. It ignores colours,
//! italics and underline, and the second data channel of the field (CC2, CC4) and XDS packets
//! are skipped. A cue is emitted when text leaves the screen's control: a pop-on caption when
//! End Of Caption displays it, a roll-up row at its Carriage Return, painted text when it is
//! erased or the mode changes, and whatever is still pending at the end of the stream.
//!
//! As in FFmpeg's decoder, a control code identical to the previous non-null pair is ignored
//! (broadcasters send each control code twice), null pairs (padding) are skipped without
//! resetting that memory, and a pair whose bytes fail the odd parity check is dropped.

/// One frame's caption data: its time in seconds from the recording's start and its `cc_data`
/// triples (`marker/valid/type`, byte 1, byte 2).
#[derive(Debug, Clone, PartialEq)]
pub struct CcFrame {
    /// Seconds from the start of the recording.
    pub time: f64,
    /// The frame's `cc_data` triples, in order.
    pub triples: Vec<[u8; 3]>,
}

/// A decoded caption: when it was complete and what it said (rows joined by `\n`).
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    /// Seconds from the start of the recording.
    pub time: f64,
    /// The text.
    pub text: String,
}

/// Which field of `cc_data` a channel travels in: field 1 carries CC1/CC2, field 2 CC3/CC4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `cc_type` 0: CC1 (and CC2).
    One,
    /// `cc_type` 1: CC3 (and CC4).
    Two,
}

impl Field {
    /// The name of the field's first data channel: `CC1` or `CC3`.
    pub fn channel(self) -> &'static str {
        match self {
            Field::One => "CC1",
            Field::Two => "CC3",
        }
    }

    fn cc_type(self) -> u8 {
        match self {
            Field::One => 0,
            Field::Two => 1,
        }
    }
}

const ROWS: usize = 15;
const COLS: usize = 32;

type Screen = [[char; COLS]; ROWS];

const BLANK: Screen = [[' '; COLS]; ROWS];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    PopOn,
    RollUp,
    PaintOn,
    Text,
}

/// Decodes the first data channel of one field.
#[derive(Debug)]
pub struct Decoder {
    field: Field,
    mode: Mode,
    displayed: Screen,
    hidden: Screen,
    row: usize,
    col: usize,
    /// The previous non-null pair, for dropping repeated control codes.
    previous: Option<[u8; 2]>,
    /// Whether characters now belong to this channel (the last control code was ours).
    ours: bool,
    /// Inside an XDS packet (field 2): characters belong to it.
    xds: bool,
    /// Text on screen (roll-up, paint-on) not yet emitted as a cue.
    pending: bool,
    cues: Vec<Cue>,
}

impl Decoder {
    /// A decoder for the first data channel of `field`.
    pub fn new(field: Field) -> Decoder {
        Decoder {
            field,
            mode: Mode::PopOn,
            displayed: BLANK,
            hidden: BLANK,
            row: ROWS - 1,
            col: 0,
            previous: None,
            ours: true,
            xds: false,
            pending: false,
            cues: Vec::new(),
        }
    }

    /// Feeds one frame's triples; only the valid 608 triples of this decoder's field count.
    pub fn frame(&mut self, frame: &CcFrame) {
        for t in &frame.triples {
            let valid = t[0] & 0x04 != 0;
            let cc_type = t[0] & 0x03;
            if valid && cc_type == self.field.cc_type() {
                self.pair(frame.time, t[1], t[2]);
            }
        }
    }

    /// The cues decoded so far, plus what is still on screen.
    pub fn finish(mut self, time: f64) -> Vec<Cue> {
        self.flush(time);
        self.cues
    }

    fn pair(&mut self, time: f64, b1: u8, b2: u8) {
        if !odd_parity(b1) || !odd_parity(b2) {
            return;
        }
        let (hi, lo) = (b1 & 0x7F, b2 & 0x7F);
        if hi == 0 && lo == 0 {
            return;
        }
        let control = (0x10..=0x1F).contains(&hi);
        if control && self.previous == Some([hi, lo]) {
            return;
        }
        self.previous = Some([hi, lo]);
        if self.field == Field::Two && (0x01..=0x0F).contains(&hi) {
            // XDS: a packet starts (0x01..0x0E) or ends (0x0F with its checksum).
            self.xds = hi != 0x0F;
            return;
        }
        if control {
            self.xds = false;
            // Bit 3 of the first byte selects the data channel (CC1/CC3 or CC2/CC4).
            self.ours = hi & 0x08 == 0;
            if self.ours {
                self.control(time, hi & 0x17, lo);
            }
            return;
        }
        if self.xds || !self.ours || self.mode == Mode::Text {
            return;
        }
        for byte in [hi, lo] {
            if byte >= 0x20 {
                self.put(basic_char(byte));
            }
        }
    }

    /// A control code of this channel; `hi` has the channel bit cleared.
    fn control(&mut self, time: f64, hi: u8, lo: u8) {
        match (hi, lo) {
            // Misc control codes: 0x14 (field 1) or 0x15 (field 2).
            (0x14 | 0x15, 0x20..=0x2F) => self.misc(time, lo),
            // Special characters: a mid-row code is shown as a space.
            (0x11, 0x20..=0x2F) => self.put(' '),
            (0x11, 0x30..=0x3F) => self.put(special_char(lo)),
            // Extended characters replace the standard character sent before them.
            (0x12 | 0x13, 0x20..=0x3F) => {
                self.backspace();
                self.put(extended_char(hi, lo));
            }
            // Tab offsets: 1 to 3 columns.
            (0x17, 0x21..=0x23) => self.col = (self.col + usize::from(lo - 0x20)).min(COLS - 1),
            (0x10..=0x17, 0x40..=0x7F) => self.preamble(time, hi, lo),
            _ => {}
        }
    }

    fn misc(&mut self, time: f64, code: u8) {
        match code {
            // RCL: resume caption loading (pop-on).
            0x20 => self.set_mode(time, Mode::PopOn),
            // BS: backspace.
            0x21 => self.backspace(),
            // DER: delete to end of row.
            0x24 => {
                let (row, col) = (self.row, self.col);
                self.target()[row][col..].fill(' ');
            }
            // RU2, RU3, RU4: roll-up captions.
            0x25..=0x27 => {
                if self.mode != Mode::RollUp {
                    self.set_mode(time, Mode::RollUp);
                    self.displayed = BLANK;
                    self.row = ROWS - 1;
                }
                self.col = 0;
            }
            // RDC: resume direct captioning (paint-on).
            0x29 => self.set_mode(time, Mode::PaintOn),
            // TR, RTD: text mode, not captions.
            0x2A | 0x2B => self.set_mode(time, Mode::Text),
            // EDM: erase displayed memory.
            0x2C => {
                self.flush(time);
                self.displayed = BLANK;
            }
            // CR: carriage return (roll-up: the row is complete and scrolls up).
            0x2D => {
                if self.mode == Mode::RollUp {
                    let text = row_text(&self.displayed[self.row]);
                    self.emit(time, text);
                    self.pending = false;
                    self.displayed[self.row] = [' '; COLS];
                }
                self.col = 0;
            }
            // ENM: erase non-displayed memory.
            0x2E => self.hidden = BLANK,
            // EOC: end of caption, the loaded caption is displayed.
            0x2F => {
                self.flush(time);
                std::mem::swap(&mut self.displayed, &mut self.hidden);
                let text = screen_text(&self.displayed);
                self.emit(time, text);
                self.mode = Mode::PopOn;
            }
            // AOF, AON, FON, alarm codes: nothing on screen changes.
            _ => {}
        }
    }

    /// A preamble address code: row and indentation (the colour and underline bits are ignored).
    fn preamble(&mut self, _time: f64, hi: u8, lo: u8) {
        let second_row = lo & 0x20 != 0;
        let row = match hi {
            0x11 => 1,
            0x12 => 3,
            0x15 => 5,
            0x16 => 7,
            0x17 => 9,
            0x10 => 11,
            0x13 => 12,
            _ => 14,
        } + usize::from(second_row && hi != 0x10);
        let row = row.clamp(1, ROWS) - 1;
        if self.mode == Mode::RollUp && row != self.row {
            // The roll-up window moves: its text moves with it.
            self.displayed[row] = self.displayed[self.row];
            self.displayed[self.row] = [' '; COLS];
        }
        self.row = row;
        self.col = if lo & 0x10 != 0 {
            usize::from((lo & 0x0E) >> 1) * 4
        } else {
            0
        };
    }

    fn set_mode(&mut self, time: f64, mode: Mode) {
        if self.mode != mode {
            self.flush(time);
        }
        self.mode = mode;
    }

    /// Emits text on screen that no cue holds yet (roll-up and paint-on).
    fn flush(&mut self, time: f64) {
        if !self.pending {
            return;
        }
        self.pending = false;
        let text = match self.mode {
            Mode::RollUp => row_text(&self.displayed[self.row]),
            _ => screen_text(&self.displayed),
        };
        self.emit(time, text);
    }

    fn emit(&mut self, time: f64, text: String) {
        if !text.is_empty() {
            self.cues.push(Cue { time, text });
        }
    }

    /// The memory characters go to: the hidden one in pop-on mode, else the displayed one.
    fn target(&mut self) -> &mut Screen {
        match self.mode {
            Mode::PopOn => &mut self.hidden,
            _ => &mut self.displayed,
        }
    }

    fn put(&mut self, c: char) {
        if self.mode == Mode::Text {
            return;
        }
        let (row, col) = (self.row, self.col);
        self.target()[row][col] = c;
        self.col = (col + 1).min(COLS - 1);
        if self.mode != Mode::PopOn {
            self.pending = true;
        }
    }

    fn backspace(&mut self) {
        if self.col > 0 {
            self.col -= 1;
            let (row, col) = (self.row, self.col);
            self.target()[row][col] = ' ';
        }
    }
}

/// Decodes the first data channel of `field` in `frames`.
pub fn decode(frames: &[CcFrame], field: Field) -> Vec<Cue> {
    let mut decoder = Decoder::new(field);
    for frame in frames {
        decoder.frame(frame);
    }
    let end = frames.last().map_or(0.0, |f| f.time);
    decoder.finish(end)
}

/// Whether a byte has an odd number of 1 bits, as every 608 byte must.
pub fn odd_parity(byte: u8) -> bool {
    byte.count_ones() % 2 == 1
}

fn row_text(row: &[char; COLS]) -> String {
    row.iter().collect::<String>().trim().to_string()
}

fn screen_text(screen: &Screen) -> String {
    screen
        .iter()
        .map(row_text)
        .filter(|r| !r.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The 608 basic character set: ASCII except for ten positions.
fn basic_char(byte: u8) -> char {
    match byte {
        0x27 => '\u{2019}',
        0x2A => 'á',
        0x5C => 'é',
        0x5E => 'í',
        0x5F => 'ó',
        0x60 => 'ú',
        0x7B => 'ç',
        0x7C => '÷',
        0x7D => 'Ñ',
        0x7E => 'ñ',
        0x7F => '█',
        b => char::from(b),
    }
}

fn special_char(lo: u8) -> char {
    const SPECIAL: [char; 16] = [
        '®', '°', '½', '¿', '™', '¢', '£', '♪', 'à', ' ', 'è', 'â', 'ê', 'î', 'ô', 'û',
    ];
    SPECIAL[usize::from(lo & 0x0F)]
}

fn extended_char(hi: u8, lo: u8) -> char {
    const SPANISH_FRENCH: [char; 32] = [
        'Á', 'É', 'Ó', 'Ú', 'Ü', 'ü', '\u{2018}', '¡', '*', '\'', '—', '©', '℠', '•', '“', '”',
        'À', 'Â', 'Ç', 'È', 'Ê', 'Ë', 'ë', 'Î', 'Ï', 'ï', 'Ô', 'Ù', 'ù', 'Û', '«', '»',
    ];
    const PORTUGUESE_GERMAN: [char; 32] = [
        'Ã', 'ã', 'Í', 'Ì', 'ì', 'Ò', 'ò', 'Õ', 'õ', '{', '}', '\\', '^', '_', '|', '~', 'Ä', 'ä',
        'Ö', 'ö', 'ß', '¥', '¤', '¦', 'Å', 'å', 'Ø', 'ø', '┌', '┐', '└', '┘',
    ];
    let table = if hi == 0x12 {
        &SPANISH_FRENCH
    } else {
        &PORTUGUESE_GERMAN
    };
    table[usize::from(lo - 0x20)]
}

/// Why an output's captions are not the source's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Mismatch(pub String);

/// Compares the cues of one channel: the same texts in the same order, each within
/// `tolerance` seconds of the source's time. The error names the channel and quotes both
/// texts.
pub fn compare(
    channel: &str,
    source: &[Cue],
    output: &[Cue],
    tolerance: f64,
) -> Result<(), Mismatch> {
    let quote = |cue: Option<&Cue>| match cue {
        Some(c) => format!("{:?} at {:.2}s", c.text, c.time),
        None => "nothing".to_string(),
    };
    for i in 0..source.len().max(output.len()) {
        let (s, o) = (source.get(i), output.get(i));
        let same_text = matches!((s, o), (Some(s), Some(o)) if s.text == o.text);
        if !same_text {
            return Err(Mismatch(format!(
                "{channel} captions differ from the source's at cue {} of {}: the source says \
                 {}, the output says {} ({} cue(s) in the source, {} in the output)",
                i + 1,
                source.len(),
                quote(s),
                quote(o),
                source.len(),
                output.len()
            )));
        }
        if let (Some(s), Some(o)) = (s, o) {
            if (s.time - o.time).abs() > tolerance {
                return Err(Mismatch(format!(
                    "{channel} caption {:?} is at {:.2}s in the source but at {:.2}s in the \
                     output (more than {tolerance:.2}s apart)",
                    s.text, s.time, o.time
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parity(b: u8) -> u8 {
        if odd_parity(b & 0x7F) {
            b & 0x7F
        } else {
            b | 0x80
        }
    }

    /// Frames at 30 fps carrying `pairs` on `field` (one pair per frame), with padding on the
    /// other field.
    fn frames(pairs: &[[u8; 2]], field: Field) -> Vec<CcFrame> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let ours = [0xFC | field.cc_type(), parity(p[0]), parity(p[1])];
                let other = [0xFD - field.cc_type(), 0x80, 0x80];
                CcFrame {
                    time: i as f64 / 30.0,
                    triples: vec![other, ours],
                }
            })
            .collect()
    }

    fn text_pairs(text: &str) -> Vec<[u8; 2]> {
        text.as_bytes()
            .chunks(2)
            .map(|c| [c[0], c.get(1).copied().unwrap_or(0)])
            .collect()
    }

    fn pop_on(text: &str, misc: u8) -> Vec<[u8; 2]> {
        let mut p = vec![[misc, 0x20], [misc, 0x20], [misc, 0x2E], [0x14, 0x60]];
        p.extend(text_pairs(text));
        p.extend([[misc, 0x2F], [misc, 0x2F], [0, 0], [misc, 0x2C]]);
        p
    }

    #[test]
    fn pop_on_on_both_fields() {
        let cc1 = decode(
            &frames(&pop_on("RT QUESTION PERIOD", 0x14), Field::One),
            Field::One,
        );
        assert_eq!(cc1.len(), 1);
        assert_eq!(cc1[0].text, "RT QUESTION PERIOD");
        assert!((cc1[0].time - 13.0 / 30.0).abs() < 1e-9, "{cc1:?}");
        let cc3 = decode(
            &frames(&pop_on("TERCERA PISTA", 0x15), Field::Two),
            Field::Two,
        );
        assert_eq!(cc3[0].text, "TERCERA PISTA");
        assert!(
            decode(&frames(&pop_on("X", 0x15), Field::Two), Field::One).is_empty(),
            "field 2 is not CC1"
        );
    }

    #[test]
    fn dropped_frames_garble_the_text() {
        let mut pairs = pop_on("WE ARE LOSING TIME", 0x14);
        pairs.remove(6);
        // "RE" was in the lost frame.
        let cues = decode(&frames(&pairs, Field::One), Field::One);
        assert_eq!(cues[0].text, "WE A LOSING TIME");
    }

    #[test]
    fn roll_up_rows_are_cues_at_their_carriage_return() {
        let mut pairs = vec![[0x14, 0x25], [0x14, 0x25], [0x14, 0x60]];
        pairs.extend(text_pairs("FIRST LINE"));
        pairs.extend([[0x14, 0x2D], [0x14, 0x2D]]);
        pairs.extend(text_pairs("SECOND"));
        pairs.push([0x14, 0x2C]);
        let cues = decode(&frames(&pairs, Field::One), Field::One);
        let texts: Vec<&str> = cues.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["FIRST LINE", "SECOND"]);
    }

    #[test]
    fn cc2_and_xds_are_not_cc1_or_cc3() {
        let mut pairs = pop_on("ONE", 0x14);
        // The same caption on CC2 (channel bit set): ignored by the CC1 decoder.
        pairs.extend(pop_on("TWO", 0x1C).into_iter().map(|[a, b]| {
            if a < 0x20 {
                [a | 0x08, b]
            } else {
                [a, b]
            }
        }));
        let cues = decode(&frames(&pairs, Field::One), Field::One);
        assert_eq!(cues.len(), 1, "{cues:?}");
        let mut xds = vec![[0x01, 0x03], [b'A', b'B'], [0x0F, 0x1D]];
        xds.extend(pop_on("CC3 TEXT", 0x15));
        let cues = decode(&frames(&xds, Field::Two), Field::Two);
        assert_eq!(cues[0].text, "CC3 TEXT");
    }

    #[test]
    fn special_and_extended_characters() {
        let mut pairs = vec![[0x14, 0x20], [0x14, 0x60], [b'E', b'S'], [0x12, 0x25]];
        pairs.extend([[0x11, 0x37], [0x14, 0x2F]]);
        let cues = decode(&frames(&pairs, Field::One), Field::One);
        assert_eq!(cues[0].text, "Eü♪");
    }

    #[test]
    fn bad_parity_is_dropped() {
        let mut f = frames(&pop_on("AB", 0x14), Field::One);
        // Flip the parity of the character pair.
        f[4].triples[1][1] ^= 0x80;
        assert!(decode(&f, Field::One).is_empty());
    }

    #[test]
    fn comparison_quotes_both_texts() {
        let cue = |t: f64, s: &str| Cue {
            time: t,
            text: s.into(),
        };
        let src = [cue(1.0, "RT QUESTION PERIOD, FOLKS.")];
        let out = [cue(1.0, "RTST PERIOD, KS")];
        let err = compare("CC1", &src, &out, 0.5).unwrap_err().0;
        assert!(
            err.contains("RT QUESTION PERIOD, FOLKS.") && err.contains("RTST PERIOD, KS"),
            "{err}"
        );
        assert!(compare("CC1", &src, &src, 0.5).is_ok());
        let late = [cue(2.0, "RT QUESTION PERIOD, FOLKS.")];
        assert!(compare("CC1", &src, &late, 0.5)
            .unwrap_err()
            .0
            .contains("2.00s"));
        assert!(compare("CC3", &src, &[], 0.5)
            .unwrap_err()
            .0
            .contains("nothing"));
    }
}
