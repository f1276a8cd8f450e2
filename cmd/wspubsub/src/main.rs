//! `wspubsub`: the command line of the wspubsub server, and a publisher and a subscriber for
//! the shell.
//!
//! `wspubsub serve` (also what runs with no subcommand) starts the server; every flag has an
//! environment fallback (`PUBSUB_*`), so that containers can be configured without a shell.
//! `wspubsub pub` and `wspubsub sub` are built on the client crates; their errors are one line
//! on stderr and exit code 2.

mod args;
mod connect;
mod logging;
mod publish;
mod serve;
#[cfg(unix)]
mod signals;
mod subscribe;

use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

/// jemalloc, with its background threads purging freed pages (after ~10 s, its default decay):
/// after a burst of connections has come and gone the server's resident memory goes back near
/// where it was, where glibc's malloc keeps what its per-thread arenas once held.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// An in-memory WebSocket publish/subscribe server: every URL path is a topic.
#[derive(Debug, Parser)]
#[command(
    name = "wspubsub",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// `serve`'s flags, for when no subcommand is given.
    #[command(flatten)]
    serve: args::ServeArgs,
    /// Log line format.
    #[arg(
        long,
        global = true,
        env = "PUBSUB_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    log_format: logging::LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(Box<args::ServeArgs>),
    /// Publish to a topic: each line of stdin, or each file given, is one message.
    Pub(publish::PubArgs),
    /// Subscribe to a topic and print its messages.
    Sub(subscribe::SubArgs),
}

/// Exit code of any failure: bad settings, a server that cannot start, `pub` and `sub`
/// failing (as clap's own usage errors).
const FAILURE: u8 = 2;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wspubsub: {error:#}");
            ExitCode::from(FAILURE)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let matches = args::file::matches(Cli::command)?;
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let command = cli
        .command
        .unwrap_or_else(|| Command::Serve(Box::new(cli.serve)));
    if matches!(&command, Command::Serve(args) if args.print_config) {
        print_config(&matches);
        return Ok(());
    }
    let logging = logging::init(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match command {
        Command::Serve(args) => runtime.block_on(serve::run(*args, &logging)),
        Command::Pub(args) => runtime.block_on(publish::run(args)),
        Command::Sub(args) => runtime.block_on(subscribe::run(args)),
    }
}

/// Prints `serve`'s effective settings (`--print-config`).
fn print_config(matches: &ArgMatches) {
    let mut command = Cli::command();
    command.build();
    let serve_matches = matches.subcommand_matches("serve").unwrap_or(matches);
    if let Some(serve) = command.find_subcommand("serve") {
        print!("{}", args::print::render(serve, serve_matches));
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use wspubsub_server::protocol::CloseCode;

    use super::Cli;

    /// The README's tables are the user's reference: they must name every flag of `serve`,
    /// `pub` and `sub`, its environment variable, and every close code.
    #[test]
    fn readme_documents_every_flag_and_close_code() {
        let readme = include_str!("../../../README.md");
        let command = Cli::command();
        let arguments = ["serve", "pub", "sub"].into_iter().flat_map(|name| {
            let subcommand = command.find_subcommand(name).expect("a subcommand");
            subcommand.get_arguments()
        });
        for arg in arguments {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" {
                continue;
            }
            assert!(
                readme.contains(&format!("`--{long}`")),
                "README lacks --{long}"
            );
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(readme.contains(&format!("`{env}`")), "README lacks {env}");
            }
        }
        for code in CloseCode::ALL {
            assert!(
                readme.contains(&format!("| `{}` |", code.code())),
                "README lacks close code {code}"
            );
        }
    }
}
