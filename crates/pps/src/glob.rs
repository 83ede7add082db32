//! Pachyderm glob patterns, compiled to anchored regular expressions: `*` and
//! `?` stay within one path component, `**` crosses components (also inside a
//! component: `/data/**.csv` matches `/data/x/y.csv`), `[...]`/`[!...]`
//! classes, `{a,b}` alternatives, `\` escapes, and `( )` capture groups that
//! `join_on`/`group_by` refer to as `$1`, `$2`... Paths start with `/`; the
//! pattern `/` matches the root only.

use regex::Regex;

use crate::error::{PpsError, Result};

#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    regex: Regex,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob> {
        let bad = |why: &str| PpsError::InvalidSpec(format!("invalid glob '{pattern}': {why}"));
        let mut p = if pattern.starts_with('/') {
            pattern.to_string()
        } else {
            format!("/{pattern}")
        };
        while p.len() > 1 && p.ends_with('/') && !p.ends_with("\\/") {
            p.pop();
        }
        let chars: Vec<char> = p.chars().collect();
        let mut re = String::from("^");
        let mut braces = 0usize;
        let mut parens = 0usize;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '\\' => {
                    let next = chars
                        .get(i + 1)
                        .ok_or_else(|| bad("ends with a lone '\\'"))?;
                    re.push_str(&regex::escape(&next.to_string()));
                    i += 1;
                }
                '*' if chars.get(i + 1) == Some(&'*') => {
                    re.push_str(".*");
                    while chars.get(i + 1) == Some(&'*') {
                        i += 1;
                    }
                }
                '*' => re.push_str("[^/]*"),
                '?' => re.push_str("[^/]"),
                '[' => {
                    let mut j = i + 1;
                    let mut class = String::from("[");
                    if matches!(chars.get(j), Some('!') | Some('^')) {
                        class.push('^');
                        j += 1;
                    }
                    let start = j;
                    loop {
                        match chars.get(j) {
                            None => return Err(bad("unclosed '['")),
                            Some(']') if j > start => break,
                            Some('\\') => {
                                let n = chars.get(j + 1).ok_or_else(|| bad("unclosed '['"))?;
                                class.push('\\');
                                class.push(*n);
                                j += 2;
                                continue;
                            }
                            Some(ch) => {
                                if matches!(ch, '[' | '&' | '~' | '-') && !(*ch == '-' && j > start)
                                {
                                    class.push('\\');
                                }
                                class.push(*ch);
                            }
                        }
                        j += 1;
                    }
                    class.push(']');
                    re.push_str(&class);
                    i = j;
                }
                '{' => {
                    braces += 1;
                    re.push_str("(?:");
                }
                ',' if braces > 0 => re.push('|'),
                '}' if braces > 0 => {
                    braces -= 1;
                    re.push(')');
                }
                '(' => {
                    parens += 1;
                    re.push('(');
                }
                ')' => {
                    if parens == 0 {
                        return Err(bad("')' without '('"));
                    }
                    parens -= 1;
                    re.push(')');
                }
                other => re.push_str(&regex::escape(&other.to_string())),
            }
            i += 1;
        }
        if braces > 0 {
            return Err(bad("unclosed '{'"));
        }
        if parens > 0 {
            return Err(bad("unclosed '('"));
        }
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| bad(&e.to_string()))?;
        Ok(Glob {
            pattern: pattern.to_string(),
            regex,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn is_match(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }

    /// The capture groups of a matching path: index 0 holds `$1`.
    pub fn captures(&self, path: &str) -> Option<Vec<String>> {
        let c = self.regex.captures(path)?;
        Some(
            (1..c.len())
                .map(|i| c.get(i).map(|m| m.as_str().to_string()).unwrap_or_default())
                .collect(),
        )
    }
}

/// Replaces `$1`..`$9` and `${N}` in a `join_on`/`group_by` template with the
/// captures (a missing capture becomes empty).
pub fn expand(template: &str, captures: &[String]) -> String {
    let chars: Vec<char> = template.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '$' {
            if chars.get(i + 1) == Some(&'{')
                && let Some(end) = chars[i + 2..].iter().position(|c| *c == '}')
            {
                let num: String = chars[i + 2..i + 2 + end].iter().collect();
                if let Ok(n) = num.parse::<usize>() {
                    out.push_str(
                        captures
                            .get(n.wrapping_sub(1))
                            .map(String::as_str)
                            .unwrap_or(""),
                    );
                    i += end + 3;
                    continue;
                }
            }
            if let Some(d) = chars.get(i + 1).and_then(|c| c.to_digit(10))
                && d > 0
            {
                out.push_str(
                    captures
                        .get(d as usize - 1)
                        .map(String::as_str)
                        .unwrap_or(""),
                );
                i += 2;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semantics() {
        let cases: &[(&str, &str, bool)] = &[
            ("/", "/", true),
            ("/", "/a", false),
            ("/*", "/a", true),
            ("/*", "/a/b", false),
            ("*", "/a", true),
            ("/*/", "/a", true),
            ("/*/*", "/a/b", true),
            ("/**", "/a/b/c", true),
            ("/data/**.csv", "/data/x/y.csv", true),
            ("/data/**.csv", "/data/y.csv", true),
            ("/data/**.csv", "/data/y.txt", false),
            ("/?.txt", "/a.txt", true),
            ("/?.txt", "/ab.txt", false),
            ("/[ab].txt", "/b.txt", true),
            ("/[!ab].txt", "/b.txt", false),
            ("/[!ab].txt", "/c.txt", true),
            ("/[a-c]x", "/bx", true),
            ("/{foo,bar}/*", "/bar/1", true),
            ("/{foo,bar}/*", "/baz/1", false),
            ("/(*)-(*).txt", "/a-b.txt", true),
            ("/a\\*b", "/a*b", true),
            ("/a\\*b", "/axb", false),
            ("/a.b", "/axb", false),
        ];
        for (pattern, path, want) in cases {
            let g = Glob::new(pattern).unwrap();
            assert_eq!(g.is_match(path), *want, "{pattern} vs {path}");
        }
    }

    #[test]
    fn captures_and_expansion() {
        let g = Glob::new("/(*)-(*).txt").unwrap();
        let c = g.captures("/left-7.txt").unwrap();
        assert_eq!(c, ["left", "7"]);
        assert_eq!(expand("$2/$1", &c), "7/left");
        assert_eq!(expand("${1}x$3", &c), "leftx");
        assert!(g.captures("/nope").is_none());
    }

    #[test]
    fn invalid_patterns() {
        for p in ["/[a", "/{a,b", "/(a", "/a)", "/a\\"] {
            let e = Glob::new(p).unwrap_err().to_string();
            assert!(e.contains(p), "{e}");
        }
    }
}
