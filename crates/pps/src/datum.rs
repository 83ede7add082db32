//! Datum planning: from the files of each input commit and the pipeline's
//! input tree to the list of datums a job runs. Pure (no I/O), deterministic,
//! and keyed by content: a datum's id hashes its inputs' names, matched paths
//! and file hashes, so unchanged inputs give the same id in every job (which
//! is what lets a job reuse earlier outputs) and any changed byte a new one.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{PpsError, Result};
use crate::glob::{Glob, expand};
use crate::spec::{Input, PfsInput};

/// A file of an input commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: String,
    /// Hex content hash.
    pub hash: String,
    pub size: u64,
}

/// One input's part of a datum: the path its glob matched and the files at or
/// below it, mounted under `/pfs/<name>/` at their repo paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatumInput {
    pub name: String,
    pub repo: String,
    pub branch: String,
    pub glob_path: String,
    pub files: Vec<InputFile>,
    #[serde(default)]
    pub lazy: bool,
    #[serde(default)]
    pub empty_files: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Datum {
    pub id: String,
    pub inputs: Vec<DatumInput>,
}

/// A matched element with the glob's captures (for join/group keys).
#[derive(Clone)]
struct Element {
    input: DatumInput,
    captures: Vec<String>,
}

/// The datums of an input tree. `files` maps each pfs/cron input's name to
/// every file of its commit, sorted by path; a missing name is an empty commit.
pub fn plan(input: &Input, files: &HashMap<String, Vec<InputFile>>) -> Result<Vec<Datum>> {
    let empty = Vec::new();
    let lists = plan_input(input, files, &empty)?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(lists.len());
    for elements in lists {
        let inputs: Vec<DatumInput> = elements.into_iter().map(|e| e.input).collect();
        let id = datum_id(&inputs);
        if seen.insert(id.clone()) {
            out.push(Datum { id, inputs });
        }
    }
    Ok(out)
}

fn plan_input(
    input: &Input,
    files: &HashMap<String, Vec<InputFile>>,
    empty: &Vec<InputFile>,
) -> Result<Vec<Vec<Element>>> {
    if let Some(p) = &input.pfs {
        let list = files.get(&p.name).unwrap_or(empty);
        return Ok(matches(p, &p.glob, list)?
            .into_iter()
            .map(|e| vec![e])
            .collect());
    }
    if let Some(c) = &input.cron {
        let as_pfs = PfsInput {
            name: c.name.clone(),
            repo: c.repo.clone(),
            branch: "master".into(),
            glob: "/".into(),
            ..Default::default()
        };
        let list = files.get(&c.name).unwrap_or(empty);
        return Ok(matches(&as_pfs, "/", list)?
            .into_iter()
            .map(|e| vec![e])
            .collect());
    }
    if let Some(g) = &input.git {
        // As Pachyderm 1.9: the whole checked-out tree is one datum.
        let as_pfs = PfsInput {
            name: g.name.clone(),
            repo: g.name.clone(),
            branch: g.branch.clone(),
            glob: "/".into(),
            ..Default::default()
        };
        let list = files.get(&g.name).unwrap_or(empty);
        return Ok(matches(&as_pfs, "/", list)?
            .into_iter()
            .map(|e| vec![e])
            .collect());
    }
    if !input.cross.is_empty() {
        let mut acc: Vec<Vec<Element>> = vec![vec![]];
        for child in &input.cross {
            let datums = plan_input(child, files, empty)?;
            acc = product(&acc, &datums);
            if acc.is_empty() {
                break;
            }
        }
        return Ok(acc);
    }
    if !input.union.is_empty() {
        let mut out = Vec::new();
        for child in &input.union {
            out.extend(plan_input(child, files, empty)?);
        }
        return Ok(out);
    }
    if !input.join.is_empty() {
        return join(&input.join, files, empty);
    }
    if !input.group.is_empty() {
        return group(&input.group, files, empty);
    }
    Ok(vec![])
}

fn product(acc: &[Vec<Element>], next: &[Vec<Element>]) -> Vec<Vec<Element>> {
    let mut out = Vec::with_capacity(acc.len() * next.len());
    for a in acc {
        for n in next {
            let mut d = a.clone();
            d.extend(n.iter().cloned());
            out.push(d);
        }
    }
    out
}

/// Every path the glob matches (files, their ancestor directories, the root),
/// in path order, each with the files at or below it.
fn matches(p: &PfsInput, pattern: &str, list: &[InputFile]) -> Result<Vec<Element>> {
    let glob = Glob::new(pattern)?;
    let mut candidates: Vec<&str> = Vec::new();
    let mut dirs: HashSet<&str> = HashSet::new();
    // Only the pattern "/" names the root ("/*" matches entries, not "/").
    if !list.is_empty() && pattern.trim_end_matches('/').is_empty() {
        candidates.push("/");
    }
    for f in list {
        let mut cut = 0;
        while let Some(i) = f.path[cut + 1..].find('/') {
            cut += 1 + i;
            let dir = &f.path[..cut];
            if dirs.insert(dir) {
                candidates.push(dir);
            }
        }
        candidates.push(&f.path);
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut out = Vec::new();
    for path in candidates {
        let captures = if path == "/" {
            Some(vec![])
        } else {
            glob.captures(path)
        };
        let Some(captures) = captures else {
            continue;
        };
        let below: Vec<InputFile> = if path == "/" {
            list.to_vec()
        } else {
            let prefix = format!("{path}/");
            let start = list.partition_point(|f| f.path.as_str() < path);
            list[start..]
                .iter()
                .take_while(|f| f.path == path || f.path.starts_with(&prefix))
                .filter(|f| f.path == path || f.path.starts_with(&prefix))
                .cloned()
                .collect()
        };
        if below.is_empty() {
            continue;
        }
        out.push(Element {
            input: DatumInput {
                name: p.name.clone(),
                repo: p.repo.clone(),
                branch: p.branch.clone(),
                glob_path: path.to_string(),
                files: below,
                lazy: p.lazy,
                empty_files: p.empty_files,
            },
            captures,
        });
    }
    Ok(out)
}

/// Per child of a join/group: whether it is an outer join, and its elements by key.
type Keyed = Vec<(bool, BTreeMap<String, Vec<Element>>)>;

fn keyed(
    children: &[Input],
    files: &HashMap<String, Vec<InputFile>>,
    empty: &Vec<InputFile>,
    key_of: impl Fn(&PfsInput) -> &str,
) -> Result<Keyed> {
    let mut out = Vec::new();
    for child in children {
        let p = child.pfs.as_ref().ok_or_else(|| {
            PpsError::InvalidSpec("every input of a join or group must be a pfs input".into())
        })?;
        let list = files.get(&p.name).unwrap_or(empty);
        let mut by_key: BTreeMap<String, Vec<Element>> = BTreeMap::new();
        for e in matches(p, &p.glob, list)? {
            by_key
                .entry(expand(key_of(p), &e.captures))
                .or_default()
                .push(e);
        }
        out.push((p.outer_join, by_key));
    }
    Ok(out)
}

/// Inner join on the `join_on` keys; an `outer_join` child also yields its
/// keys that other children lack.
fn join(
    children: &[Input],
    files: &HashMap<String, Vec<InputFile>>,
    empty: &Vec<InputFile>,
) -> Result<Vec<Vec<Element>>> {
    let keyed = keyed(children, files, empty, |p| &p.join_on)?;
    let keys: std::collections::BTreeSet<&String> =
        keyed.iter().flat_map(|(_, m)| m.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let present: Vec<&(bool, BTreeMap<String, Vec<Element>>)> =
            keyed.iter().filter(|(_, m)| m.contains_key(key)).collect();
        let complete = present.len() == keyed.len();
        if !complete && !present.iter().any(|(outer, _)| *outer) {
            continue;
        }
        let mut acc: Vec<Vec<Element>> = vec![vec![]];
        for (_, m) in present {
            let lists: Vec<Vec<Element>> = m[key].iter().map(|e| vec![e.clone()]).collect();
            acc = product(&acc, &lists);
        }
        out.extend(acc);
    }
    Ok(out)
}

/// One datum per `group_by` key holding every element with that key.
fn group(
    children: &[Input],
    files: &HashMap<String, Vec<InputFile>>,
    empty: &Vec<InputFile>,
) -> Result<Vec<Vec<Element>>> {
    let keyed = keyed(children, files, empty, |p| &p.group_by)?;
    let mut groups: BTreeMap<String, Vec<Element>> = BTreeMap::new();
    for (_, m) in keyed {
        for (k, elements) in m {
            groups.entry(k).or_default().extend(elements);
        }
    }
    Ok(groups.into_values().collect())
}

/// BLAKE3 over a length-prefixed encoding of each input's name, matched path
/// and files (path and content hash).
fn datum_id(inputs: &[DatumInput]) -> String {
    let mut h = blake3::Hasher::new();
    let mut put = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    for i in inputs {
        put(&i.name);
        put(&i.glob_path);
        for f in &i.files {
            put(&f.path);
            put(&f.hash);
        }
        put("");
    }
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_specs;

    fn f(path: &str, hash: &str) -> InputFile {
        InputFile {
            path: path.into(),
            hash: hash.into(),
            size: 1,
        }
    }

    fn input_of(yaml_input: &str) -> Input {
        let spec =
            format!("pipeline: {{name: p}}\ntransform: {{cmd: [\"true\"]}}\ninput:\n{yaml_input}");
        parse_specs(&spec).unwrap().remove(0).input.unwrap()
    }

    fn paths(d: &[Datum]) -> Vec<Vec<String>> {
        d.iter()
            .map(|d| {
                d.inputs
                    .iter()
                    .map(|i| format!("{}:{}", i.name, i.glob_path))
                    .collect()
            })
            .collect()
    }

    fn files(pairs: &[(&str, Vec<InputFile>)]) -> HashMap<String, Vec<InputFile>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn pfs_globs_match_files_directories_and_root() {
        let list = vec![f("/a.txt", "1"), f("/dir/b.txt", "2"), f("/dir/c.txt", "3")];
        let fs = files(&[("in", list.clone())]);
        let star = plan(&input_of("  pfs: {repo: in, glob: \"/*\"}"), &fs).unwrap();
        assert_eq!(paths(&star), [vec!["in:/a.txt"], vec!["in:/dir"]]);
        assert_eq!(star[1].inputs[0].files.len(), 2);
        let root = plan(&input_of("  pfs: {repo: in, glob: \"/\"}"), &fs).unwrap();
        assert_eq!(paths(&root), [vec!["in:/"]]);
        assert_eq!(root[0].inputs[0].files, list);
        let deep = plan(&input_of("  pfs: {repo: in, glob: \"/**.txt\"}"), &fs).unwrap();
        assert_eq!(deep.len(), 3);
        assert!(
            plan(
                &input_of("  pfs: {repo: in, glob: \"/*\"}"),
                &HashMap::new()
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn cross_union_join_group() {
        let fs = files(&[
            ("a", vec![f("/1.txt", "a1"), f("/2.txt", "a2")]),
            ("b", vec![f("/1.txt", "b1"), f("/3.txt", "b3")]),
        ]);
        let cross = plan(
            &input_of(
                "  cross:\n  - pfs: {repo: a, glob: \"/*\"}\n  - pfs: {repo: b, glob: \"/*\"}",
            ),
            &fs,
        )
        .unwrap();
        assert_eq!(cross.len(), 4);
        assert_eq!(paths(&cross)[1], ["a:/1.txt", "b:/3.txt"]);
        let union = plan(
            &input_of(
                "  union:\n  - pfs: {repo: a, glob: \"/*\"}\n  - pfs: {repo: b, glob: \"/*\"}",
            ),
            &fs,
        )
        .unwrap();
        assert_eq!(union.len(), 4);
        let nested = files(&[
            ("a", vec![f("/ID/1.txt", "a1"), f("/ID/2.txt", "a2")]),
            ("b", vec![f("/1.txt", "b1"), f("/3.txt", "b3")]),
        ]);
        let join = plan(&input_of("  join:\n  - pfs: {repo: a, branch: master, glob: \"/*/(*).txt\", join_on: \"$1\"}\n  - pfs: {repo: b, branch: master, glob: \"/(*).txt\", join_on: \"$1\"}"), &nested).unwrap();
        assert_eq!(paths(&join), [vec!["a:/ID/1.txt", "b:/1.txt"]]);
        let join = plan(&input_of("  join:\n  - pfs: {repo: a, glob: \"/(*).txt\", join_on: \"$1\"}\n  - pfs: {repo: b, glob: \"/(*).txt\", join_on: \"$1\"}"), &fs).unwrap();
        assert_eq!(paths(&join), [vec!["a:/1.txt", "b:/1.txt"]]);
        let outer = plan(&input_of("  join:\n  - pfs: {repo: a, glob: \"/(*).txt\", join_on: \"$1\", outer_join: true}\n  - pfs: {repo: b, glob: \"/(*).txt\", join_on: \"$1\"}"), &fs).unwrap();
        assert_eq!(
            paths(&outer),
            [vec!["a:/1.txt", "b:/1.txt"], vec!["a:/2.txt"]]
        );
        let grouped = plan(&input_of("  group:\n  - pfs: {repo: a, glob: \"/(*).txt\", group_by: \"$1\"}\n  - pfs: {repo: b, glob: \"/(*).txt\", group_by: \"$1\"}"), &fs).unwrap();
        assert_eq!(
            paths(&grouped),
            [
                vec!["a:/1.txt", "b:/1.txt"],
                vec!["a:/2.txt"],
                vec!["b:/3.txt"]
            ]
        );
    }

    #[test]
    fn ids_follow_content() {
        let input = input_of("  pfs: {repo: in, glob: \"/*\"}");
        let one = plan(&input, &files(&[("in", vec![f("/a", "1"), f("/b", "2")])])).unwrap();
        let again = plan(&input, &files(&[("in", vec![f("/a", "1"), f("/b", "2")])])).unwrap();
        assert_eq!(one, again);
        let changed = plan(&input, &files(&[("in", vec![f("/a", "1"), f("/b", "3")])])).unwrap();
        assert_eq!(one[0].id, changed[0].id);
        assert_ne!(one[1].id, changed[1].id);
    }

    proptest::proptest! {
        #[test]
        fn star_glob_gives_unique_ids(names in proptest::collection::btree_set("[a-c]{1,3}(/[a-c]{1,2})?", 0..40)) {
            let list: Vec<InputFile> = names.iter().map(|n| f(&format!("/{n}"), n)).collect();
            // A path cannot be both a file and a directory.
            let dirs: HashSet<String> = list.iter().filter_map(|x| x.path.rfind('/').filter(|i| *i > 0).map(|i| x.path[..i].to_string())).collect();
            let list: Vec<InputFile> = list.into_iter().filter(|x| !dirs.contains(&x.path)).collect();
            let input = input_of("  pfs: {repo: in, glob: \"/*\"}");
            let d = plan(&input, &files(&[("in", list.clone())])).unwrap();
            let ids: HashSet<&String> = d.iter().map(|x| &x.id).collect();
            proptest::prop_assert_eq!(ids.len(), d.len());
            let covered: usize = d.iter().map(|x| x.inputs[0].files.len()).sum();
            proptest::prop_assert_eq!(covered, list.len());
        }
    }
}
