//! Cutting one put into many files by records: Pachyderm 1.9's `put file
//! --split line|json|sql|csv` with `target_file_datums`, `target_file_bytes`
//! and `header_records`.
//!
//! Records are read as 1.9 reads them: lines (with their `\n`), JSON values
//! (as written, without the whitespace between them), CSV records
//! (re-encoded as Go's `encoding/csv` writes them: `\n` line ends, quotes
//! only where needed, blank lines skipped) and the rows of a `pg_dump` file
//! (between its `COPY ... FROM stdin;` line and its `\.` line). A file ends
//! when it holds `target_file_datums` records or at least
//! `target_file_bytes` bytes, whichever comes first; with neither, every
//! record is a file. The first `header_records` records are no file but the
//! header of every file; a SQL dump's preamble (up to its `COPY` line) is
//! part of the header and its end (from `\.`) the footer of every file, so
//! each file is a dump of its own.
//!
//! [`Splitter`] is pure: bytes in, file bodies out, in the order 1.9 makes
//! them; the caller names and stores them.

use crate::error::{PfsError, Result};

/// How records are told apart (`pfs.Delimiter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delimiter {
    Line,
    Json,
    Sql,
    Csv,
}

/// What `put file --split` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitOptions {
    pub delimiter: Delimiter,
    /// Records per file (0: no limit).
    pub target_file_datums: u64,
    /// Bytes per file, reached or passed by the record that ends it (0: no limit).
    pub target_file_bytes: u64,
    /// Records at the start that make the header of every file.
    pub header_records: u64,
}

/// Where a SQL dump's reader is.
#[derive(Debug)]
enum Sql {
    /// Before the `COPY` line.
    Preamble,
    /// Between the `COPY` line and `\.`.
    Rows,
    /// From the `\.` line on: everything is footer.
    Footer,
}

/// Cuts a stream of bytes into file bodies. See the module docs.
#[derive(Debug)]
pub struct Splitter {
    options: SplitOptions,
    /// Bytes received and not yet read as records.
    input: Vec<u8>,
    /// The records of the file being filled.
    buffer: Vec<u8>,
    datums: u64,
    bytes: u64,
    /// The header records, once read (or, after a SQL dump's end, the whole header).
    header: Option<Vec<u8>>,
    sql: Sql,
    /// A SQL dump's preamble, kept for the header.
    preamble: Vec<u8>,
    footer: Vec<u8>,
    /// Records read so far, for error messages.
    records: u64,
    ended: bool,
}

/// A record, or the end of the input.
#[derive(Debug)]
struct Read {
    value: Vec<u8>,
    eof: bool,
}

impl Splitter {
    pub fn new(options: SplitOptions) -> Self {
        Self {
            options,
            input: Vec::new(),
            buffer: Vec::new(),
            datums: 0,
            bytes: 0,
            header: None,
            sql: Sql::Preamble,
            preamble: Vec::new(),
            footer: Vec::new(),
            records: 0,
            ended: false,
        }
    }

    /// Takes more bytes; returns the bodies of the files they completed.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.input.extend_from_slice(data);
        self.drain(false)
    }

    /// Ends the input; returns the bodies of the last files.
    pub fn finish(&mut self) -> Result<Vec<Vec<u8>>> {
        self.drain(true)
    }

    /// What every file starts with (empty: nothing). Fixed before the first
    /// body is returned.
    pub fn header(&self) -> Vec<u8> {
        // A SQL dump's preamble is taken into `header` at the end.
        [
            self.preamble.as_slice(),
            self.header.as_deref().unwrap_or_default(),
        ]
        .concat()
    }

    /// What every file ends with: a SQL dump's end; known once [`Splitter::finish`] returned.
    pub fn footer(&self) -> &[u8] {
        &self.footer
    }

    fn drain(&mut self, input_ended: bool) -> Result<Vec<Vec<u8>>> {
        let mut bodies = Vec::new();
        let mut at = 0;
        while !self.ended {
            let record = self.records + 1;
            let input = &self.input[at..];
            let step = match self.options.delimiter {
                Delimiter::Line => read_line(input, input_ended),
                Delimiter::Json => read_json(input, input_ended, record)?,
                Delimiter::Csv => read_csv(input, input_ended, record)?,
                Delimiter::Sql => self.read_sql(at, input_ended)?,
            };
            match step {
                Step::More => break,
                Step::Used(used) => at += used,
                Step::Record(read, used) => {
                    at += used;
                    if !read.eof {
                        self.records += 1;
                    }
                    bodies.extend(self.take(read));
                }
            }
        }
        self.input.drain(..at);
        Ok(bodies)
    }

    /// 1.9's loop body: adds a record to the file being filled, and ends
    /// that file (or makes it the header) when a limit is reached.
    fn take(&mut self, read: Read) -> Option<Vec<u8>> {
        if read.eof {
            self.ended = true;
            if self.options.delimiter == Delimiter::Sql {
                let records = self.header.take().unwrap_or_default();
                self.header = Some([std::mem::take(&mut self.preamble), records].concat());
            }
        }
        self.bytes += read.value.len() as u64;
        self.buffer.extend_from_slice(&read.value);
        self.datums += 1;
        let o = &self.options;
        let header_done = o.header_records == 0 || self.header.is_some();
        let header_ready = !header_done && self.datums >= o.header_records;
        let full = header_done
            && ((o.target_file_bytes != 0 && self.bytes >= o.target_file_bytes)
                || (o.target_file_datums != 0 && self.datums >= o.target_file_datums)
                || (o.target_file_bytes == 0 && o.target_file_datums == 0));
        if self.buffer.is_empty() || !(header_ready || full || read.eof) {
            return None;
        }
        self.datums = 0;
        self.bytes = 0;
        let body = std::mem::take(&mut self.buffer);
        if header_done {
            Some(body)
        } else {
            self.header = Some(body);
            None
        }
    }

    /// A pg_dump: preamble lines up to `COPY`, rows (each line, `\r\n` read
    /// as `\n`) up to `\.`, then the footer to the end.
    fn read_sql(&mut self, at: usize, ended: bool) -> Result<Step> {
        let input = &self.input[at..];
        let line = input.iter().position(|&b| b == b'\n').map(|i| &input[..=i]);
        match self.sql {
            Sql::Preamble => match line {
                Some(line) => {
                    self.preamble.extend_from_slice(line);
                    if line.starts_with(b"COPY") {
                        self.sql = Sql::Rows;
                    }
                    Ok(Step::Used(line.len()))
                }
                None if ended => Err(PfsError::InvalidArgument(
                    "put file --split sql: the input has no `COPY ... FROM stdin;` line, so it \
                     is no pg_dump of rows; dump the table with pg_dump (without --inserts)"
                        .into(),
                )),
                None => Ok(Step::More),
            },
            Sql::Rows => match line {
                Some(line) => {
                    let used = line.len();
                    let mut row = line.to_vec();
                    if row.ends_with(b"\r\n") {
                        row.remove(row.len() - 2);
                    }
                    if row == b"\\.\n" {
                        self.footer.extend_from_slice(&row);
                        self.sql = Sql::Footer;
                        return Ok(Step::Used(used));
                    }
                    Ok(Step::Record(
                        Read {
                            value: row,
                            eof: false,
                        },
                        used,
                    ))
                }
                None if ended => Err(PfsError::InvalidArgument(
                    "put file --split sql: the rows of the pg_dump do not end with a `\\.` \
                     line; the dump is cut short, dump the table again"
                        .into(),
                )),
                None => Ok(Step::More),
            },
            Sql::Footer => {
                let used = input.len();
                self.footer.extend_from_slice(input);
                if ended {
                    Ok(Step::Record(
                        Read {
                            value: Vec::new(),
                            eof: true,
                        },
                        used,
                    ))
                } else if used > 0 {
                    Ok(Step::Used(used))
                } else {
                    Ok(Step::More)
                }
            }
        }
    }
}

/// What the next bytes of the input are.
enum Step {
    /// A record (or the end), and the bytes it took.
    Record(Read, usize),
    /// Bytes read without a record (a SQL dump's preamble and footer).
    Used(usize),
    /// More input is needed to tell.
    More,
}

fn end() -> Step {
    Step::Record(
        Read {
            value: Vec::new(),
            eof: true,
        },
        0,
    )
}

fn record(value: Vec<u8>, used: usize) -> Step {
    Step::Record(Read { value, eof: false }, used)
}

/// A line with its `\n`; the last one may lack it.
fn read_line(input: &[u8], ended: bool) -> Step {
    match input.iter().position(|&b| b == b'\n') {
        Some(i) => record(input[..=i].to_vec(), i + 1),
        None if ended => Step::Record(
            Read {
                value: input.to_vec(),
                eof: true,
            },
            input.len(),
        ),
        None => Step::More,
    }
}

fn json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// One JSON value as written (Go's `json.Decoder` into a `RawMessage`):
/// the whitespace around it is not part of it.
fn read_json(input: &[u8], ended: bool, n: u64) -> Result<Step> {
    let start = input
        .iter()
        .position(|&b| !json_space(b))
        .unwrap_or(input.len());
    if start == input.len() {
        return Ok(if ended { end() } else { Step::More });
    }
    let Some(stop) = json_end(&input[start..], ended, n)? else {
        return Ok(Step::More);
    };
    let value = &input[start..start + stop];
    serde_json::from_slice::<serde::de::IgnoredAny>(value).map_err(|e| {
        PfsError::InvalidArgument(format!(
            "put file --split json: value {n} is not valid JSON ({e}); the input must be JSON \
             values one after another"
        ))
    })?;
    Ok(record(value.to_vec(), start + stop))
}

/// Where the JSON value at the start of `input` ends; None if it goes on
/// past the input received so far.
fn json_end(input: &[u8], ended: bool, n: u64) -> Result<Option<usize>> {
    let cut_short = || {
        PfsError::InvalidArgument(format!(
            "put file --split json: value {n} is cut short by the end of the input"
        ))
    };
    match input[0] {
        b'{' | b'[' | b'"' => {
            let mut depth = 0usize;
            let mut in_string = false;
            let mut escaped = false;
            for (i, &b) in input.iter().enumerate() {
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = false;
                        if depth == 0 {
                            return Ok(Some(i + 1));
                        }
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Ok(Some(i + 1));
                        }
                    }
                    _ => {}
                }
            }
            if ended { Err(cut_short()) } else { Ok(None) }
        }
        _ => {
            // A number or a literal: it ends where its characters do.
            let token = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.');
            match input.iter().position(|&b| !token(b)) {
                Some(0) => Ok(Some(1)),
                Some(i) => Ok(Some(i)),
                None if ended => Ok(Some(input.len())),
                None => Ok(None),
            }
        }
    }
}

/// One CSV record as Go's `encoding/csv` reads it (blank lines skipped,
/// `\r\n` read as `\n`, quotes as RFC 4180 has them) and writes it back.
fn read_csv(input: &[u8], ended: bool, n: u64) -> Result<Step> {
    let mut at = 0;
    // Blank lines are no records.
    loop {
        match &input[at..] {
            [b'\n', ..] => at += 1,
            [b'\r', b'\n', ..] => at += 2,
            [b'\r'] if !ended => return Ok(Step::More),
            _ => break,
        }
    }
    if at == input.len() {
        return Ok(if ended {
            Step::Record(
                Read {
                    value: Vec::new(),
                    eof: true,
                },
                at,
            )
        } else {
            Step::More
        });
    }
    let bad = |what: &str| {
        PfsError::InvalidArgument(format!(
            "put file --split csv: record {n}: {what}; quote fields holding quotes, commas or \
             line breaks, doubling the quotes inside"
        ))
    };
    let mut fields: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut field = Vec::new();
        if input.get(at) == Some(&b'"') {
            at += 1;
            loop {
                let Some(q) = input[at..].iter().position(|&b| b == b'"') else {
                    return if ended {
                        Err(bad("a quoted field has no closing quote"))
                    } else {
                        Ok(Step::More)
                    };
                };
                field.extend_from_slice(&input[at..at + q]);
                at += q + 1;
                match input.get(at) {
                    Some(b'"') => {
                        field.push(b'"');
                        at += 1;
                    }
                    Some(b',') => {
                        at += 1;
                        fields.push(crlf_to_lf(field));
                        break;
                    }
                    Some(b'\n') => {
                        fields.push(crlf_to_lf(field));
                        return Ok(record(write_csv(&fields), at + 1));
                    }
                    Some(b'\r') => match input.get(at + 1) {
                        Some(b'\n') => {
                            fields.push(crlf_to_lf(field));
                            return Ok(record(write_csv(&fields), at + 2));
                        }
                        None if !ended => return Ok(Step::More),
                        None => {
                            fields.push(crlf_to_lf(field));
                            return Ok(record(write_csv(&fields), at + 1));
                        }
                        Some(_) => return Err(bad("a quote ends a field before its end")),
                    },
                    None if ended => {
                        fields.push(crlf_to_lf(field));
                        return Ok(record(write_csv(&fields), at));
                    }
                    None => return Ok(Step::More),
                    Some(_) => return Err(bad("a quote ends a field before its end")),
                }
            }
        } else {
            let rest = &input[at..];
            let stop = rest.iter().position(|&b| b == b',' || b == b'\n');
            let text = match stop {
                Some(i) => &rest[..i],
                None if ended => rest,
                None => return Ok(Step::More),
            };
            if text.contains(&b'"') {
                return Err(bad("a quote inside a field not in quotes"));
            }
            match stop.map(|i| rest[i]) {
                Some(b',') => {
                    fields.push(text.to_vec());
                    at += text.len() + 1;
                }
                Some(_) => {
                    field.extend_from_slice(text.strip_suffix(b"\r").unwrap_or(text));
                    fields.push(field);
                    return Ok(record(write_csv(&fields), at + text.len() + 1));
                }
                None => {
                    field.extend_from_slice(text.strip_suffix(b"\r").unwrap_or(text));
                    fields.push(field);
                    return Ok(record(write_csv(&fields), input.len()));
                }
            }
        }
    }
}

fn crlf_to_lf(field: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\r' && field.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

/// A record as Go's `csv.Writer` writes it: commas between fields, a field
/// quoted when it holds a quote, comma or line break, is `\.`, or starts
/// with white space; `\n` at the end.
fn write_csv(fields: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let starts_with_space = String::from_utf8_lossy(f)
            .chars()
            .next()
            .is_some_and(char::is_whitespace);
        let quote = !f.is_empty()
            && (f.as_slice() == b"\\."
                || f.iter().any(|&b| matches!(b, b'"' | b',' | b'\r' | b'\n'))
                || starts_with_space);
        if !quote {
            out.extend_from_slice(f);
            continue;
        }
        out.push(b'"');
        for &b in f {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(
        delimiter: Delimiter,
        datums: u64,
        bytes: u64,
        header: u64,
        input: &str,
    ) -> Vec<String> {
        let mut s = Splitter::new(SplitOptions {
            delimiter,
            target_file_datums: datums,
            target_file_bytes: bytes,
            header_records: header,
        });
        // Byte by byte: records cut anywhere by the stream read the same.
        let mut bodies = Vec::new();
        for b in input.as_bytes() {
            bodies.extend(s.push(&[*b]).unwrap());
        }
        bodies.extend(s.finish().unwrap());
        let (h, f) = (s.header(), s.footer().to_vec());
        bodies
            .into_iter()
            .map(|b| String::from_utf8([h.clone(), b, f.clone()].concat()).unwrap())
            .collect()
    }

    #[test]
    fn lines_by_count_bytes_and_header() {
        let l = Delimiter::Line;
        assert_eq!(split(l, 0, 0, 0, "a\nb\nc"), ["a\n", "b\n", "c"]);
        assert_eq!(split(l, 2, 0, 0, "a\nb\nc\n"), ["a\nb\n", "c\n"]);
        assert_eq!(split(l, 0, 3, 0, "a\nb\nc\n"), ["a\nb\n", "c\n"]);
        assert_eq!(split(l, 1, 0, 1, "h\na\nb\n"), ["h\na\n", "h\nb\n"]);
        assert!(split(l, 1, 0, 0, "").is_empty());
    }

    #[test]
    fn json_values_as_written() {
        let j = Delimiter::Json;
        assert_eq!(
            split(j, 2, 0, 0, " {\"a\": \"}\"}\n[1, 2] 3 \"x\\\"\" true"),
            ["{\"a\": \"}\"}[1, 2]", "3\"x\\\"\"", "true"]
        );
        let mut s = Splitter::new(SplitOptions {
            delimiter: j,
            target_file_datums: 0,
            target_file_bytes: 0,
            header_records: 0,
        });
        s.push(b"{\"a\": 1} {\"b\": ").unwrap();
        assert!(s.finish().is_err(), "a value cut short is refused");
        let mut s = Splitter::new(SplitOptions {
            delimiter: j,
            target_file_datums: 0,
            target_file_bytes: 0,
            header_records: 0,
        });
        assert!(s.push(b"{\"a\" 1} ").is_err(), "invalid JSON is refused");
    }

    #[test]
    fn csv_records_rewritten_as_go_writes_them() {
        let c = Delimiter::Csv;
        assert_eq!(
            split(
                c,
                0,
                0,
                1,
                "h1,h2\r\n\r\n\"a\",\"b\nc\"\n x,\"y\"\"z\"\nlast,,"
            ),
            [
                "h1,h2\na,\"b\nc\"\n",
                "h1,h2\n\" x\",\"y\"\"z\"\n",
                "h1,h2\nlast,,\n"
            ]
        );
        let mut s = Splitter::new(SplitOptions {
            delimiter: c,
            target_file_datums: 0,
            target_file_bytes: 0,
            header_records: 0,
        });
        assert!(s.push(b"a\"b,c\n").is_err(), "a bare quote is refused");
    }

    #[test]
    fn sql_dumps_each_file_a_dump() {
        let dump = "SET x = 1;\nCOPY t (a) FROM stdin;\n1\r\n2\n3\n\\.\n\n-- done\n";
        assert_eq!(
            split(Delimiter::Sql, 2, 0, 0, dump),
            [
                "SET x = 1;\nCOPY t (a) FROM stdin;\n1\n2\n\\.\n\n-- done\n",
                "SET x = 1;\nCOPY t (a) FROM stdin;\n3\n\\.\n\n-- done\n"
            ]
        );
        assert_eq!(
            split(Delimiter::Sql, 1, 0, 1, dump),
            [
                "SET x = 1;\nCOPY t (a) FROM stdin;\n1\n2\n\\.\n\n-- done\n",
                "SET x = 1;\nCOPY t (a) FROM stdin;\n1\n3\n\\.\n\n-- done\n"
            ]
        );
        let mut s = Splitter::new(SplitOptions {
            delimiter: Delimiter::Sql,
            target_file_datums: 0,
            target_file_bytes: 0,
            header_records: 0,
        });
        s.push(b"COPY t FROM stdin;\n1\n").unwrap();
        assert!(s.finish().is_err(), "a dump without its end is refused");
    }
}
