//! `tokentray setup`: points Claude Code (or, with `--agent`, the Codex CLI or the Gemini CLI) at
//! this tokentray through its settings file (`tokentray_core::setup` does the merge, the backup
//! and the undo).

use std::process::ExitCode;

use clap::Args;
use tokentray_core::config::Config;
use tokentray_core::dashboard::Endpoints;
use tokentray_core::setup::{self, Agent, Protocol, Undone};

use super::Usage;

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Which agent to point at tokentray: claude (env in ~/.claude/settings.json), codex ([otel]
    /// in $CODEX_HOME/config.toml, else ~/.codex/config.toml) or gemini (telemetry in
    /// ~/.gemini/settings.json)
    #[arg(long, value_name = "AGENT", default_value = "claude")]
    pub agent: Agent,
    /// OTLP protocol Claude Code should use: grpc (port of --otlp-grpc), http/protobuf or
    /// http/json (port of --otlp-http) [default: the one the settings already name, else grpc]
    #[arg(long, value_name = "PROTOCOL")]
    pub protocol: Option<Protocol>,
    /// Show the change to the settings file as a diff, write nothing
    #[arg(long, conflicts_with = "undo")]
    pub dry_run: bool,
    /// Take out what `tokentray setup` added (the original file when it was not edited since;
    /// else only tokentray's keys, and the ones changed by hand are named and kept)
    #[arg(long)]
    pub undo: bool,
    /// Also make `tokentray statusline` Claude Code's status line (today's spend and plan usage);
    /// an existing statusLine command keeps running in front of it
    #[arg(long, conflicts_with = "undo")]
    pub statusline: bool,
}

pub fn run(config: &Config, args: SetupArgs) -> anyhow::Result<ExitCode> {
    if args.statusline && args.agent != Agent::Claude {
        return Err(Usage(format!(
            "--statusline is Claude Code's status line; {} has none. Run `tokentray setup --statusline` without --agent",
            args.agent.name()
        ))
        .into());
    }
    let path = setup::agent_settings_path(args.agent)?;

    if args.undo {
        match setup::undo_agent(args.agent, &path)? {
            Undone::Restored => {
                println!("Restored {} as it was before tokentray setup.", path.display())
            }
            Undone::Removed => {
                println!("Removed {} (tokentray setup had created it).", path.display())
            }
            Undone::Reverted { changed_by_hand } => {
                println!(
                    "Took tokentray's settings out of {}; everything else stays.",
                    path.display()
                );
                if !changed_by_hand.is_empty() {
                    eprintln!(
                        "tokentray: note: {} changed by hand since `tokentray setup`, so left as they are; remove them yourself if they should go",
                        changed_by_hand.join(", ")
                    );
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }

    let listen = &config.listen;
    let endpoints = Endpoints::from_listen(listen);
    if args.agent != Agent::Claude {
        return run_agent(args, &path, &endpoints);
    }
    // Running setup again keeps the protocol the user chose unless told otherwise.
    let protocol =
        args.protocol.or_else(|| setup::current_protocol(&path)).unwrap_or(Protocol::Grpc);
    let env = setup::telemetry_env(&endpoints, protocol);
    let mut plan = setup::plan(&path, &env, &setup::managed_settings_paths())?;
    if args.statusline {
        plan = setup::with_statusline(plan, &statusline_command(config)?)?;
    }
    if plan.is_noop() {
        println!("{}", setup::describe(&plan, &env));
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        print!("{}", plan.diff());
        println!("(dry run: nothing written; run without --dry-run to apply)");
        return Ok(ExitCode::SUCCESS);
    }
    setup::apply(&plan)?;
    println!("{}", setup::describe(&plan, &env));
    println!("Set: {}.", plan.changed_keys.join(", "));
    if plan.before.is_some() {
        println!(
            "The previous file is kept as {}; `tokentray setup --undo` puts it back.",
            setup::backup_path(&path).display()
        );
    } else {
        println!("`tokentray setup --undo` removes it again.");
    }
    Ok(ExitCode::SUCCESS)
}

/// `setup --agent codex|gemini`: the agent's own config file.
fn run_agent(
    args: SetupArgs,
    path: &std::path::Path,
    endpoints: &Endpoints,
) -> anyhow::Result<ExitCode> {
    let protocol = args
        .protocol
        .or_else(|| setup::current_agent_protocol(args.agent, path))
        .unwrap_or(Protocol::Grpc);
    let plan = setup::plan_agent(args.agent, path, endpoints, protocol)?;
    if plan.plan.is_noop() {
        println!("{}", setup::describe_agent(&plan));
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        print!("{}", plan.plan.diff());
        for r in &plan.replaced {
            println!("Would replace: {r}.");
        }
        println!("(dry run: nothing written; run without --dry-run to apply)");
        return Ok(ExitCode::SUCCESS);
    }
    setup::apply_agent(&plan)?;
    println!("{}", setup::describe_agent(&plan));
    println!("Set: {}.", plan.plan.changed_keys.join(", "));
    for r in &plan.replaced {
        println!("Replaced: {r}.");
    }
    let undo = format!("`tokentray setup --agent {} --undo`", agent_word(args.agent));
    if plan.plan.before.is_some() {
        println!(
            "The previous file is kept as {}; {undo} puts it back.",
            setup::backup_path(path).display()
        );
    } else {
        println!("{undo} removes it again.");
    }
    Ok(ExitCode::SUCCESS)
}

fn agent_word(agent: Agent) -> &'static str {
    match agent {
        Agent::Claude => "claude",
        Agent::Codex => "codex",
        Agent::Gemini => "gemini",
    }
}

/// This binary's `statusline`, with the data directory it should read.
fn statusline_command(config: &Config) -> anyhow::Result<String> {
    let exe = setup::shell_quote(&std::env::current_exe()?.to_string_lossy());
    Ok(match &config.data_dir {
        Some(dir) => {
            format!("{exe} --data-dir {} statusline", setup::shell_quote(&dir.to_string_lossy()))
        }
        None => format!("{exe} statusline"),
    })
}
