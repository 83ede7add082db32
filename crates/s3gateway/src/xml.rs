//! S3's XML: writing response documents, and reading the few request
//! documents the gateway accepts (CompleteMultipartUpload, Delete,
//! CreateBucketConfiguration). Request documents are read as a flat list of
//! element paths and texts, which is all those documents need; anything that
//! is not well-formed XML is `MalformedXML`.

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::error::S3Error;

pub(crate) const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// An XML document being written. Elements are closed in order by the
/// caller; text is escaped here.
pub(crate) struct Xml {
    out: String,
}

impl Xml {
    /// A document whose root element carries S3's namespace.
    pub(crate) fn new(root: &str) -> Xml {
        Xml::with_root(&format!(r#"{root} xmlns="{NAMESPACE}""#))
    }

    /// An error document: S3's carry no namespace (and clients look their
    /// elements up without one).
    pub(crate) fn error() -> Xml {
        Xml::with_root("Error")
    }

    fn with_root(open: &str) -> Xml {
        let mut out = String::with_capacity(512);
        out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        out.push('\n');
        out.push('<');
        out.push_str(open);
        out.push('>');
        Xml { out }
    }

    pub(crate) fn open(&mut self, tag: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    pub(crate) fn close(&mut self, tag: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
        self
    }

    /// `<tag>text</tag>`.
    pub(crate) fn elem(&mut self, tag: &str, text: &str) -> &mut Self {
        self.open(tag);
        escape_into(&mut self.out, text);
        self.close(tag)
    }

    /// Closes the root and returns the document.
    pub(crate) fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.out
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters even escaped as
            // text; S3 writes them as character references, which clients
            // parse back.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                out.push_str(&format!("&#x{:X};", c as u32));
            }
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// The elements of a request document, in document order: the path of each
/// element from the root (`Delete/Object/Key`) and its text. Elements
/// without text have an empty one, so that `<Object>` boundaries show.
pub(crate) fn read_elements(body: &[u8]) -> Result<Vec<(String, String)>, S3Error> {
    let malformed = |why: String| S3Error::MalformedXml { reason: why };
    let mut reader = Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                path.push(name);
                out.push((path.join("/"), String::new()));
                text.clear();
            }
            Ok(Event::Empty(e)) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let mut p = path.join("/");
                if !p.is_empty() {
                    p.push('/');
                }
                p.push_str(&name);
                out.push((p, String::new()));
            }
            Ok(Event::Text(t)) => {
                let decoded = t
                    .decode()
                    .map_err(|e| malformed(format!("bad text: {e}")))?;
                text.push_str(&decoded);
            }
            Ok(Event::CData(t)) => {
                text.push_str(&String::from_utf8_lossy(&t));
            }
            Ok(Event::GeneralRef(r)) => {
                let name = r
                    .decode()
                    .map_err(|e| malformed(format!("bad reference: {e}")))?
                    .into_owned();
                match resolve_reference(&name) {
                    Some(c) => text.push(c),
                    None => return Err(malformed(format!("unknown entity &{name};"))),
                }
            }
            Ok(Event::End(_)) => {
                let p = path.join("/");
                if let Some(last) = out.iter_mut().rev().find(|(k, _)| *k == p) {
                    last.1 = std::mem::take(&mut text);
                }
                text.clear();
                path.pop();
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(malformed(e.to_string())),
        }
    }
    if !path.is_empty() {
        return Err(malformed("the document ends inside an element".into()));
    }
    if out.is_empty() {
        return Err(malformed("the document is empty".into()));
    }
    Ok(out)
}

fn resolve_reference(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_escaped_documents() {
        let mut x = Xml::new("R");
        x.elem("Key", "a<b>&\"c'\u{1}");
        let doc = x.finish("R");
        assert!(doc.ends_with(
            r#"<R xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Key>a&lt;b&gt;&amp;&quot;c&apos;&#x1;</Key></R>"#
        ));
    }

    #[test]
    fn reads_elements_with_references() {
        let doc = br#"<?xml version="1.0"?><Delete xmlns="x"><Object><Key>a&amp;b&#x41;</Key></Object><Quiet>true</Quiet><Object><Key>c</Key><VersionId/></Object></Delete>"#;
        let els = read_elements(doc).unwrap();
        let keys: Vec<_> = els
            .iter()
            .filter(|(p, _)| p == "Delete/Object/Key")
            .map(|(_, t)| t.as_str())
            .collect();
        assert_eq!(keys, ["a&bA", "c"]);
        assert!(els.iter().any(|(p, t)| p == "Delete/Quiet" && t == "true"));
        assert!(els.iter().any(|(p, _)| p == "Delete/Object/VersionId"));
    }

    #[test]
    fn refuses_malformed_documents() {
        for bad in [&b"<a><b></a>"[..], b"", b"<a>", b"<a>&nope;</a>"] {
            assert!(
                read_elements(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
