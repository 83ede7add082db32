//! Pachyderm 1.8's command names (`put-file repo branch path`,
//! `list-job -i repo/commit`, ...), which Pachyderm 1.9 keeps as hidden
//! aliases so that old scripts run: the command line is rewritten into the
//! 1.9 form before it is parsed, with the warning 1.9 prints.
//!
//! Which words of the old command line are flags (and which flags take a
//! value) is read from the new command's own definition, so the rewrite
//! never mistakes a flag's value for a positional argument.

use clap::{ArgAction, Command};

/// How an old command's positional arguments become the new command's.
#[derive(Clone, Copy)]
enum Args {
    /// Unchanged.
    Same,
    /// `repo branch` pairs → `repo@branch`.
    RepoBranch,
    /// `repo branch path` triples → `repo@branch:path`.
    RepoBranchFile,
    /// `repo/commit` → `repo@commit`.
    RepoSlashCommit,
}

/// The old name, the new words, and how the arguments change.
const ALIASES: &[(&str, &[&str], Args)] = &[
    ("create-repo", &["create", "repo"], Args::Same),
    ("update-repo", &["update", "repo"], Args::Same),
    ("inspect-repo", &["inspect", "repo"], Args::Same),
    ("list-repo", &["list", "repo"], Args::Same),
    ("delete-repo", &["delete", "repo"], Args::Same),
    ("list-branch", &["list", "branch"], Args::Same),
    ("get-object", &["get", "object"], Args::Same),
    ("get-tag", &["get", "tag"], Args::Same),
    ("inspect-job", &["inspect", "job"], Args::Same),
    ("delete-job", &["delete", "job"], Args::Same),
    ("stop-job", &["stop", "job"], Args::Same),
    ("restart-datum", &["restart", "datum"], Args::Same),
    ("list-datum", &["list", "datum"], Args::Same),
    ("inspect-datum", &["inspect", "datum"], Args::Same),
    ("get-logs", &["logs"], Args::Same),
    ("create-pipeline", &["create", "pipeline"], Args::Same),
    ("update-pipeline", &["update", "pipeline"], Args::Same),
    ("inspect-pipeline", &["inspect", "pipeline"], Args::Same),
    ("extract-pipeline", &["extract", "pipeline"], Args::Same),
    ("edit-pipeline", &["edit", "pipeline"], Args::Same),
    ("list-pipeline", &["list", "pipeline"], Args::Same),
    ("delete-pipeline", &["delete", "pipeline"], Args::Same),
    ("start-pipeline", &["start", "pipeline"], Args::Same),
    ("stop-pipeline", &["stop", "pipeline"], Args::Same),
    ("inspect-cluster", &["inspect", "cluster"], Args::Same),
    ("debug-dump", &["debug", "dump"], Args::Same),
    ("debug-profile", &["debug", "profile"], Args::Same),
    ("debug-binary", &["debug", "binary"], Args::Same),
    ("debug-pprof", &["debug", "pprof"], Args::Same),
    ("delete-all", &["delete", "all"], Args::Same),
    ("start-commit", &["start", "commit"], Args::RepoBranch),
    ("finish-commit", &["finish", "commit"], Args::RepoBranch),
    (
        "subscribe-commit",
        &["subscribe", "commit"],
        Args::RepoBranch,
    ),
    ("list-commit", &["list", "commit"], Args::RepoBranch),
    ("delete-commit", &["delete", "commit"], Args::RepoBranch),
    ("delete-branch", &["delete", "branch"], Args::RepoBranch),
    ("create-branch", &["create", "branch"], Args::RepoBranch),
    ("inspect-commit", &["inspect", "commit"], Args::RepoBranch),
    ("flush-job", &["flush", "job"], Args::RepoSlashCommit),
    ("flush-commit", &["flush", "commit"], Args::RepoSlashCommit),
    ("put-file", &["put", "file"], Args::RepoBranchFile),
    ("get-file", &["get", "file"], Args::RepoBranchFile),
    ("inspect-file", &["inspect", "file"], Args::RepoBranchFile),
    ("list-file", &["list", "file"], Args::RepoBranchFile),
    ("glob-file", &["glob", "file"], Args::RepoBranchFile),
    ("delete-file", &["delete", "file"], Args::RepoBranchFile),
    ("copy-file", &["copy", "file"], Args::RepoBranchFile),
    ("diff-file", &["diff", "file"], Args::RepoBranchFile),
    ("list-job", &["list", "job"], Args::Same),
];

/// Flags whose values were `repo/commit` (or `repo/branch`) in 1.8.
const SLASH_VALUES: &[(&str, &[&str])] = &[
    ("list-job", &["input", "output"]),
    ("create-branch", &["provenance"]),
];

/// The 1.9 form of `args` (the whole command line, program name first),
/// and the warning to print, if `args` is a 1.8 command.
pub fn rewrite(args: Vec<String>, cli: &Command) -> (Vec<String>, Option<String>) {
    // Global flags (`-v`, `--no-color`, ...) may come before the command.
    let Some(at) = args
        .iter()
        .skip(1)
        .position(|a| !a.starts_with('-'))
        .map(|i| i + 1)
    else {
        return (args, None);
    };
    let Some(&(old, new, kind)) = ALIASES.iter().find(|(old, ..)| *old == args[at]) else {
        return (args, None);
    };
    let Some(command) = new.iter().try_fold(cli, |c, word| c.find_subcommand(word)) else {
        return (args, None);
    };
    let slash_flags = SLASH_VALUES
        .iter()
        .find(|(name, _)| *name == old)
        .map_or(&[][..], |(_, flags)| *flags);
    let (flags, positionals) = split_words(&args[at + 1..], command, cli, slash_flags);
    let positionals = match kind {
        Args::Same => positionals,
        Args::RepoBranch => join_groups(&positionals, 2),
        Args::RepoBranchFile => join_groups(&positionals, 3),
        Args::RepoSlashCommit => positionals.iter().map(|a| slash_to_at(a)).collect(),
    };
    let program = &args[0];
    let warning = format!(
        "WARNING: '{program} {old}' is deprecated and will be removed in a future release, use \
         '{program} {}' instead.",
        new.join(" ")
    );
    let mut out: Vec<String> = args[..at].to_vec();
    out.extend(new.iter().map(|w| w.to_string()));
    out.extend(positionals);
    out.extend(flags);
    (out, Some(warning))
}

/// `repo/commit` → `repo@commit` (the first slash only).
fn slash_to_at(arg: &str) -> String {
    arg.replacen('/', "@", 1)
}

/// 1.8's positional groups joined as 1.9 writes them: `repo@branch`, or
/// `repo@branch:path`; a short last group keeps what it has.
fn join_groups(args: &[String], size: usize) -> Vec<String> {
    args.chunks(size)
        .map(|g| match g {
            [repo] => repo.clone(),
            [repo, branch] => format!("{repo}@{branch}"),
            [repo, branch, path, ..] => format!("{repo}@{branch}:{path}"),
            [] => String::new(),
        })
        .collect()
}

/// Whether the flag named `name` (long) or `short` takes a value, for the
/// command or the global flags.
fn takes_value(command: &Command, cli: &Command, long: Option<&str>, short: Option<char>) -> bool {
    command
        .get_arguments()
        .chain(cli.get_arguments())
        .find(|a| {
            long.is_some_and(|l| a.get_long() == Some(l))
                || short.is_some_and(|s| a.get_short() == Some(s))
        })
        .is_some_and(|a| matches!(a.get_action(), ArgAction::Set | ArgAction::Append))
}

/// The long name of the flag `short` of `command`.
fn long_of(command: &Command, short: char) -> Option<String> {
    command
        .get_arguments()
        .find(|a| a.get_short() == Some(short))
        .and_then(|a| a.get_long().map(str::to_string))
}

/// Separates flags (with their values, in order) from positional arguments;
/// the values of `slash_flags` are rewritten from `repo/commit`.
fn split_words(
    words: &[String],
    command: &Command,
    cli: &Command,
    slash_flags: &[&str],
) -> (Vec<String>, Vec<String>) {
    let mut flags = Vec::new();
    let mut positionals = Vec::new();
    let mut i = 0;
    let slash = |long: Option<&str>, value: &str| {
        if long.is_some_and(|l| slash_flags.contains(&l)) {
            value
                .split(',')
                .map(slash_to_at)
                .collect::<Vec<_>>()
                .join(",")
        } else {
            value.to_string()
        }
    };
    while i < words.len() {
        let w = &words[i];
        i += 1;
        if w == "--" {
            positionals.extend(words[i..].iter().cloned());
            break;
        }
        if let Some(long) = w.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, value)) => flags.push(format!("--{name}={}", slash(Some(name), value))),
                None => {
                    flags.push(w.clone());
                    if takes_value(command, cli, Some(long), None) && i < words.len() {
                        flags.push(slash(Some(long), &words[i]));
                        i += 1;
                    }
                }
            }
            continue;
        }
        if w.len() > 1 && w.starts_with('-') {
            // A cluster of short flags: the first that takes a value takes
            // the rest of the word, or the next word.
            let chars: Vec<char> = w[1..].chars().collect();
            let mut cluster = String::from("-");
            let mut value = None;
            for (k, &c) in chars.iter().enumerate() {
                cluster.push(c);
                if takes_value(command, cli, None, Some(c)) {
                    let rest: String = chars[k + 1..].iter().collect();
                    let long = long_of(command, c);
                    value = Some(if !rest.is_empty() {
                        Some(slash(long.as_deref(), &rest))
                    } else if i < words.len() {
                        i += 1;
                        Some(slash(long.as_deref(), &words[i - 1]))
                    } else {
                        None
                    });
                    break;
                }
            }
            flags.push(cluster);
            flags.extend(value.flatten());
            continue;
        }
        positionals.push(w.clone());
    }
    (flags, positionals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn cli() -> Command {
        Command::new("pachctl")
            .arg(
                Arg::new("verbose")
                    .short('v')
                    .long("verbose")
                    .action(ArgAction::SetTrue)
                    .global(true),
            )
            .subcommand(
                Command::new("put").subcommand(
                    Command::new("file")
                        .arg(Arg::new("target"))
                        .arg(
                            Arg::new("file")
                                .short('f')
                                .long("file")
                                .action(ArgAction::Append),
                        )
                        .arg(
                            Arg::new("recursive")
                                .short('r')
                                .long("recursive")
                                .action(ArgAction::SetTrue),
                        ),
                ),
            )
            .subcommand(
                Command::new("list").subcommand(
                    Command::new("job")
                        .arg(
                            Arg::new("input")
                                .short('i')
                                .long("input")
                                .action(ArgAction::Append),
                        )
                        .arg(
                            Arg::new("output")
                                .short('o')
                                .long("output")
                                .action(ArgAction::Set),
                        ),
                ),
            )
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn old_forms_become_new_ones() {
        let (args, warning) = rewrite(words("pachctl -v put-file -rf dir repo master /in"), &cli());
        assert_eq!(args, words("pachctl -v put file repo@master:/in -rf dir"));
        assert!(warning.unwrap().contains("'pachctl put file'"));
        let (args, _) = rewrite(words("pachctl put-file repo master -f x"), &cli());
        assert_eq!(args, words("pachctl put file repo@master -f x"));
        let (args, _) = rewrite(words("pachctl list-job -i a/x,b/y --output=c/z"), &cli());
        assert_eq!(args, words("pachctl list job -i a@x,b@y --output=c@z"));
        let (args, warning) = rewrite(words("pachctl put file r@m"), &cli());
        assert_eq!(args, words("pachctl put file r@m"));
        assert!(warning.is_none());
    }
}
