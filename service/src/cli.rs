//! Man pages and shell completions made from a program's own `clap` definition.
//!
//! [`parse`] replaces `Args::parse()` in `h264-agent` and `h264-controller`: it adds two hidden
//! options, used by `scripts/package.sh` to make what the Debian package installs:
//!
//! - `--generate-man DIR` writes the program's man page (`h264-agent.1`) into `DIR`;
//! - `--generate-completion SHELL` prints the completion script for `bash`, `zsh`, `fish`,
//!   `elvish` or `powershell` on stdout.
//!
//! Both exit at once (0, or 1 when the pages cannot be written) and are exclusive: no other
//! argument is read with them. `fleetctl` has the visible verb `fleetctl completion SHELL` and
//! the same hidden `--generate-man DIR`; [`write_man_pages`] writes a page per verb
//! (`fleetctl-rollout-start.1`).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{value_parser, Arg, ArgMatches, Command, CommandFactory, Parser};
pub use clap_complete::Shell;

const GENERATE_MAN: &str = "__generate_man";
const GENERATE_COMPLETION: &str = "__generate_completion";

/// `P`'s command with the hidden `--generate-man` and `--generate-completion` options.
pub fn command<P: CommandFactory>() -> Command {
    P::command()
        .arg(
            Arg::new(GENERATE_MAN)
                .long("generate-man")
                .value_name("DIR")
                .value_parser(value_parser!(PathBuf))
                .hide(true)
                .exclusive(true),
        )
        .arg(
            Arg::new(GENERATE_COMPLETION)
                .long("generate-completion")
                .value_name("SHELL")
                .value_parser(value_parser!(Shell))
                .hide(true)
                .exclusive(true),
        )
}

/// Parses the arguments into `P`; handles `--generate-man` and `--generate-completion`
/// (module docs) and exits after them. Everything else, errors and `--help` included, is
/// `P::parse()`'s.
pub fn parse<P: Parser>() -> P {
    // Sub-commands are not required next to the hidden options (fleetctl needs one otherwise).
    if let Ok(matches) = command::<P>().subcommand_required(false).try_get_matches() {
        if let Some(code) = generate::<P>(&matches) {
            std::process::exit(code);
        }
    }
    P::parse()
}

/// Does what the hidden options ask; `Some(exit code)` when one was given.
fn generate<P: CommandFactory>(matches: &ArgMatches) -> Option<i32> {
    if let Some(dir) = matches.get_one::<PathBuf>(GENERATE_MAN) {
        let name = P::command().get_name().to_owned();
        return Some(match write_man_pages(P::command(), dir) {
            Ok(pages) => {
                for page in pages {
                    println!("{}", page.display());
                }
                0
            }
            Err(e) => {
                eprintln!("{name}: cannot write man pages into {}: {e}", dir.display());
                1
            }
        });
    }
    let shell = matches.get_one::<Shell>(GENERATE_COMPLETION)?;
    write_completion(P::command(), *shell, &mut std::io::stdout());
    Some(0)
}

/// Writes the man page of `cmd`, and one per visible sub-command (`fleetctl-rollout.1`), into
/// `dir` (created when missing); returns the files written.
pub fn write_man_pages(cmd: Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    fn walk(cmd: Command, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, dir, out)?;
        }
        out.push(clap_mangen::Man::new(cmd).generate_to(dir)?);
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    // As clap_mangen::generate_to: built, so that sub-commands are named `parent-child`.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    walk(cmd, dir, &mut written)?;
    written.sort();
    Ok(written)
}

/// Writes the completion script of `cmd` for `shell` to `out`.
pub fn write_completion(mut cmd: Command, shell: Shell, out: &mut dyn Write) {
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches as _;

    /// A program like the agent: options only.
    #[derive(Parser, Debug)]
    #[command(name = "demo", version, about = "A demo program.")]
    struct Demo {
        /// A configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Required, to show that the hidden options do without it.
        #[arg(long)]
        listen: String,
    }

    #[test]
    fn the_hidden_options_work_alone_and_stay_hidden() {
        let m = command::<Demo>()
            .try_get_matches_from(["demo", "--generate-completion", "bash"])
            .unwrap();
        assert_eq!(m.get_one::<Shell>(GENERATE_COMPLETION), Some(&Shell::Bash));
        let m = command::<Demo>()
            .try_get_matches_from(["demo", "--listen", "x"])
            .unwrap();
        let demo = Demo::from_arg_matches(&m).unwrap();
        assert_eq!(demo.listen, "x");
        assert!(command::<Demo>()
            .try_get_matches_from(["demo", "--listen", "x", "--generate-man", "d"])
            .is_err());
        let help = command::<Demo>().render_long_help().to_string();
        assert!(!help.contains("generate"), "{help}");
    }

    /// A program like fleetctl: a sub-command is required.
    #[derive(Parser, Debug)]
    #[command(name = "verbs")]
    struct Verbs {
        #[command(subcommand)]
        verb: Verb,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Verb {
        /// Does one thing.
        One,
        /// Hidden from the pages.
        #[command(hide = true)]
        Secret,
    }

    #[test]
    fn a_required_sub_command_is_not_required_next_to_the_hidden_options() {
        let m = command::<Verbs>()
            .subcommand_required(false)
            .try_get_matches_from(["verbs", "--generate-man", "d"])
            .unwrap();
        assert_eq!(
            m.get_one::<PathBuf>(GENERATE_MAN),
            Some(&PathBuf::from("d"))
        );
        let dir = tempfile::tempdir().unwrap();
        let pages = write_man_pages(Verbs::command(), dir.path()).unwrap();
        let names: Vec<_> = pages.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(names, ["verbs-one.1", "verbs.1"]);
    }

    #[test]
    fn man_pages_and_completions_are_made() {
        let dir = tempfile::tempdir().unwrap();
        let pages = write_man_pages(Demo::command(), dir.path()).unwrap();
        assert_eq!(pages, vec![dir.path().join("demo.1")]);
        let page = std::fs::read_to_string(&pages[0]).unwrap();
        assert!(page.contains(".TH demo 1"), "{page}");
        assert!(page.contains("configuration file"), "{page}");
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            write_completion(Demo::command(), shell, &mut out);
            let script = String::from_utf8(out).unwrap();
            // bash and zsh spell the option out; fish names it with `-l config`.
            assert!(
                script.contains("--config") || script.contains("-l config"),
                "{shell}: {script}"
            );
        }
    }
}
