//! Sans-IO framing of what an SMTP client sends: command lines and the DATA
//! stream. Only CRLF ends a line; a bare CR or LF is an error, so no sequence
//! such as `\n.\n`, `\n.\r\n` or `\r.\r\n` can end a message or start a
//! second one (SMTP smuggling). Dot-stuffing is undone here.

/// What is wrong with a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// A LF not preceded by CR, or a CR not followed by LF.
    BareNewline,
    /// No CRLF within the allowed length.
    TooLong,
}

/// Finds a complete command line at the start of `buf`.
///
/// `Ok(Some(n))`: the first `n` bytes are a line ending in CRLF. `Ok(None)`:
/// more input is needed. `Err((e, n))`: the first `n` bytes are a bad line to
/// be dropped (for [`LineError::TooLong`], `n` is all of `buf` and the rest of
/// the line still has to be skipped).
pub fn command_line(buf: &[u8], max: usize) -> Result<Option<usize>, (LineError, usize)> {
    let window = &buf[..buf.len().min(max)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let n = i + 1;
            if i == 0 || buf[i - 1] != b'\r' || buf[..i - 1].contains(&b'\r') {
                Err((LineError::BareNewline, n))
            } else {
                Ok(Some(n))
            }
        }
        None if buf.len() >= max => Err((LineError::TooLong, buf.len())),
        None => Ok(None),
    }
}

/// Where the DATA reader is within a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    LineStart,
    Middle,
    /// After a CR in the middle of a line.
    Cr,
    /// After a dot at the start of a line.
    Dot,
    /// After `.` CR at the start of a line.
    DotCr,
}

/// Why a message read with [`DataReader`] is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    /// A bare CR or LF appeared somewhere in the message.
    BareNewline,
    /// The message is larger than the limit.
    TooBig,
}

/// Reads the DATA stream up to the terminating `CRLF.CRLF`, undoing
/// dot-stuffing. Past the size limit, or after a bare CR/LF, it keeps reading
/// to the real end (so the client and sotto agree where the message ends)
/// but keeps nothing more.
#[derive(Debug)]
pub struct DataReader {
    at: At,
    max: usize,
    message: Vec<u8>,
    bare: bool,
    too_big: bool,
}

impl DataReader {
    pub fn new(max: usize) -> Self {
        DataReader {
            at: At::LineStart,
            max,
            message: Vec::new(),
            bare: false,
            too_big: false,
        }
    }

    /// Consumes input; returns how many bytes were used and whether the end
    /// of the message was reached (bytes after it are left alone).
    pub fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            if self.at == At::Middle {
                // Fast path: copy up to the next CR or LF in one go.
                let rest = &input[i..];
                let run = rest
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(rest.len());
                self.push(&rest[..run]);
                i += run;
                if i == input.len() {
                    break;
                }
            }
            let b = input[i];
            i += 1;
            match (self.at, b) {
                (At::LineStart, b'.') => self.at = At::Dot,
                (At::LineStart | At::Middle | At::Dot, b'\r') => {
                    self.at = if self.at == At::Dot {
                        At::DotCr
                    } else {
                        At::Cr
                    }
                }
                (At::Cr, b'\n') => {
                    self.push(b"\r\n");
                    self.at = At::LineStart;
                }
                (At::DotCr, b'\n') => return (i, true),
                (At::Cr | At::DotCr, _) => {
                    // CR not followed by LF: keep the CR, go on with this byte.
                    self.bare = true;
                    self.push(b"\r");
                    self.at = At::Middle;
                    i -= 1;
                }
                (_, b'\n') => {
                    // A bare LF never starts a new line: `\n.\r\n` is not an end.
                    self.bare = true;
                    self.push(b"\n");
                    self.at = At::Middle;
                }
                (_, _) => {
                    self.push(&[b]);
                    self.at = At::Middle;
                }
            }
        }
        (i, false)
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.too_big || self.bare {
            return;
        }
        if self.message.len() + bytes.len() > self.max {
            self.too_big = true;
            self.message = Vec::new();
            return;
        }
        self.message.extend_from_slice(bytes);
    }

    /// The message once the end was reached.
    pub fn finish(self) -> Result<Vec<u8>, DataError> {
        if self.bare {
            Err(DataError::BareNewline)
        } else if self.too_big {
            Err(DataError::TooBig)
        } else {
            Ok(self.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> (Result<Vec<u8>, DataError>, usize) {
        let mut r = DataReader::new(1 << 20);
        let (n, done) = r.feed(input);
        assert!(done, "no end found in {input:?}");
        (r.finish(), n)
    }

    #[test]
    fn command_lines_need_crlf() {
        assert_eq!(command_line(b"NOOP\r\nQUIT", 512), Ok(Some(6)));
        assert_eq!(command_line(b"NOOP\r", 512), Ok(None));
        assert_eq!(
            command_line(b"NOOP\nQUIT\r\n", 512),
            Err((LineError::BareNewline, 5))
        );
        assert_eq!(
            command_line(b"NO\rOP\r\n", 512),
            Err((LineError::BareNewline, 7))
        );
        assert_eq!(command_line(b"\n", 512), Err((LineError::BareNewline, 1)));
        assert_eq!(
            command_line(&[b'a'; 600], 512),
            Err((LineError::TooLong, 600))
        );
    }

    #[test]
    fn dot_stuffing_is_undone() {
        let (m, n) = read_all(b"a\r\n..b\r\n.c\r\n.\r\nMAIL");
        assert_eq!(m.unwrap(), b"a\r\n.b\r\nc\r\n");
        assert_eq!(n, 15);
    }

    #[test]
    fn empty_message() {
        assert_eq!(read_all(b".\r\n").0.unwrap(), b"");
    }

    #[test]
    fn smuggling_sequences_never_end_a_message() {
        for end in [
            &b"\n.\n"[..],
            b"\n.\r\n",
            b"\r.\r\n",
            b"\r\n.\n",
            b"\r\n.\r",
            b"\r\n.\rX",
        ] {
            let mut input = b"Subject: x\r\n\r\nbody".to_vec();
            input.extend_from_slice(end);
            input.extend_from_slice(b"MAIL FROM:<evil@x>\r\n");
            let mut r = DataReader::new(1 << 20);
            let (n, done) = r.feed(&input);
            assert!(!done, "{end:?} ended the message");
            assert_eq!(n, input.len());
            let (_, done) = r.feed(b"\r\n.\r\n");
            assert!(done);
            assert_eq!(r.finish(), Err(DataError::BareNewline), "{end:?}");
        }
    }

    #[test]
    fn split_anywhere_gives_the_same_result() {
        let input = b"x\r\n..y\r\n\r\nz\r\n.\r\n";
        for cut in 0..input.len() {
            let mut r = DataReader::new(1 << 20);
            let (a, d1) = r.feed(&input[..cut]);
            assert_eq!(a, cut);
            assert!(!d1);
            let (_, d2) = r.feed(&input[cut..]);
            assert!(d2);
            assert_eq!(r.finish().unwrap(), b"x\r\n.y\r\n\r\nz\r\n");
        }
    }

    #[test]
    fn size_limit_reads_to_the_end() {
        let mut r = DataReader::new(4);
        let (_, done) = r.feed(b"12345678\r\n.\r\n");
        assert!(done);
        assert_eq!(r.finish(), Err(DataError::TooBig));
    }
}
