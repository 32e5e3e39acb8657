//! Log lines that a file name cannot forge (security review L1): a writer wrapper for the text
//! log layers that escapes every control character of a formatted event (`\n` as `\\n`, others
//! as `\\xNN`) except the newline that ends it. A name holding a newline and a fake timestamp
//! stays inside its own line. The JSON format escapes by itself.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Wraps a [`MakeWriter`]; `keep_esc` keeps ESC for the formatter's own colours on a terminal.
#[derive(Debug, Clone)]
pub struct Escaping<M> {
    inner: M,
    keep_esc: bool,
}

impl<M> Escaping<M> {
    /// Escapes what `inner` writes.
    pub fn new(inner: M, keep_esc: bool) -> Self {
        Self { inner, keep_esc }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Escaping<M> {
    type Writer = EscapingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter {
            inner: self.inner.make_writer(),
            keep_esc: self.keep_esc,
        }
    }
}

/// The writer of [`Escaping`].
#[derive(Debug)]
pub struct EscapingWriter<W> {
    inner: W,
    keep_esc: bool,
}

/// `buf` with its control characters escaped, but a last `\n`.
pub fn escape(buf: &[u8], keep_esc: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len());
    for (i, &b) in buf.iter().enumerate() {
        match b {
            b'\n' if i + 1 == buf.len() => out.push(b),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.push(b),
            0x1b if keep_esc => out.push(b),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_all(&escape(buf, self.keep_esc))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_stays_one_line() {
        let forged = b"INFO job started source=evil\n2026-01-01T00:00:00Z ERROR forged\x1b[2J.ts\n";
        let line = escape(forged, false);
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        assert!(line.ends_with(b"forged\\x1b[2J.ts\n"));
    }
}
