//! `tokentray serve --install-service`: run the engine as a systemd *user* service, for headless
//! machines (SSH boxes, servers) where nobody starts the tray app.
//!
//! The unit runs this very binary with `serve` and the data directory, config file and listen
//! addresses this invocation was given. It only ever names paths and addresses: the config file's
//! contents (webhook URLs, commands) and the environment stay out of it, so the unit file (which
//! `systemctl cat` shows to anyone on the machine who can read it) holds no secret.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};
use tokentray_core::config::Config;

use crate::process::ListenArgs;

/// The unit's name, also what `systemctl --user status` is given.
const UNIT_NAME: &str = "tokentray.service";

/// Writes the unit, then reloads, enables and starts it when a user systemd answers; otherwise
/// prints the commands that do it.
pub fn install(
    config: &Config,
    listen: &ListenArgs,
    require_headers: &[String],
    config_file: &Path,
) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding this program's path for ExecStart")?;
    let argv = exec_start_args(&exe, config, listen, require_headers, config_file)?;
    let unit = unit_text(&argv);
    let path = unit_path()?;
    let dir = path.parent().context("the unit path has no parent directory")?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating {}: check that you can write there", dir.display()))?;
    let previous = std::fs::read_to_string(&path).ok();
    std::fs::write(&path, &unit)
        .with_context(|| format!("writing {}: check that you can write there", path.display()))?;
    let verb = match previous {
        None => "wrote",
        Some(p) if p == unit => "unchanged",
        Some(_) => "updated",
    };
    println!("{verb} {}", path.display());
    println!("  ExecStart={}", exec_start_line(&argv));

    match user_manager() {
        Ok(()) => {
            systemctl(&["daemon-reload"])?;
            systemctl(&["enable", "--now", UNIT_NAME])?;
            // `enable --now` does not restart a unit that was already running with the old text.
            if verb == "updated" {
                systemctl(&["restart", UNIT_NAME])?;
            }
            println!("enabled and started {UNIT_NAME}: `systemctl --user status {UNIT_NAME}`, logs with `journalctl --user -u {UNIT_NAME}`");
            println!("to keep it running while you are logged out: `loginctl enable-linger $USER`");
        }
        Err(why) => {
            println!("{why}, so nothing was started. In a login session of this user, run:");
            println!(
                "  systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}"
            );
            println!(
                "and, to keep it running while you are logged out: loginctl enable-linger $USER"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `<this binary> [--data-dir D] --config F serve [listen flags]`. The data directory and config
/// file are written as absolute paths, resolved now: systemd starts the service from `/` and
/// with none of this shell's `TOKENTRAY_*` variables, so relative paths or an environment
/// override would otherwise point the service somewhere else than this command.
fn exec_start_args(
    exe: &Path,
    config: &Config,
    listen: &ListenArgs,
    require_headers: &[String],
    config_file: &Path,
) -> anyhow::Result<Vec<String>> {
    let mut argv = vec![utf8(exe)?];
    if let Some(dir) = &config.data_dir {
        argv.push("--data-dir".into());
        argv.push(utf8(&absolute(dir)?)?);
    }
    argv.push("--config".into());
    argv.push(utf8(&absolute(config_file)?)?);
    argv.push("serve".into());
    // Only the listen flags given on this command line: addresses from the config file stay
    // there, so editing the file keeps working for the service.
    for (flag, value) in [
        ("--otlp-grpc", &listen.otlp_grpc),
        ("--otlp-http", &listen.otlp_http),
        ("--metrics", &listen.metrics),
    ] {
        if let Some(v) = value {
            argv.push(flag.into());
            argv.push(v.clone());
        }
    }
    // Where the receiver's secret comes from (a file or the keychain), never the secret.
    for spec in require_headers {
        argv.push("--require-header".into());
        argv.push(spec.clone());
    }
    Ok(argv)
}

fn unit_text(argv: &[String]) -> String {
    let exec_start = exec_start_line(argv);
    format!(
        "# Written by `tokentray serve --install-service`; running it again rewrites this file.
[Unit]
Description=tokentray: Claude Code telemetry receiver (OTLP, history, Prometheus /metrics)

[Service]
Type=exec
ExecStart={exec_start}
Restart=on-failure
RestartSec=5
# Exit status 2: a port is taken by another program. Restarting cannot fix that; the journal
# names the port and the flag to change.
RestartPreventExitStatus=2

[Install]
WantedBy=default.target
"
    )
}

fn exec_start_line(argv: &[String]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// One ExecStart word. `%` (specifiers) and `$` (variable expansion) are escaped everywhere;
/// words with whitespace, quotes or backslashes are double-quoted with C-style escapes, as
/// systemd.service(5) describes.
fn quote(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    let plain = !escaped.is_empty()
        && escaped.chars().all(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '\\' | ';'));
    if plain {
        return escaped;
    }
    let mut q = String::from("\"");
    for c in escaped.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// `$XDG_CONFIG_HOME/systemd/user/tokentray.service`, `~/.config/...` when it is unset or not
/// absolute (what the XDG spec and systemd's user manager both do).
fn unit_path() -> anyhow::Result<PathBuf> {
    let config_home = match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => bail!("neither XDG_CONFIG_HOME nor HOME is set: set HOME to your home directory and run this again"),
        },
    };
    Ok(config_home.join("systemd").join("user").join(UNIT_NAME))
}

/// Whether `systemctl --user` can reach a user manager, checked without running it: in a
/// container or an SSH session without a login session there is none, and systemctl would only
/// fail with a bus error. systemctl finds the manager through `$XDG_RUNTIME_DIR/systemd/private`.
fn user_manager() -> Result<(), String> {
    let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) else {
        return Err("no user systemd here (XDG_RUNTIME_DIR is not set: not a login session)".into());
    };
    let socket = Path::new(&runtime).join("systemd").join("private");
    if !socket.exists() {
        return Err(format!("no user systemd here ({} does not exist)", socket.display()));
    }
    Ok(())
}

fn systemctl(args: &[&str]) -> anyhow::Result<()> {
    let shown = format!("systemctl --user {}", args.join(" "));
    let out = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .output()
        .with_context(|| format!("running `{shown}`: is systemd installed?"))?;
    if !out.status.success() {
        bail!("`{shown}` failed ({}): {}; the unit file is written, run that command yourself once the problem is fixed", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("making {} absolute", p.display()))
}

/// systemd reads unit files as UTF-8; a path that is not cannot be written into one faithfully.
fn utf8(p: &Path) -> anyhow::Result<String> {
    match p.to_str() {
        Some(s) => Ok(s.to_owned()),
        None => bail!(
            "{} is not valid UTF-8 and cannot be written into a systemd unit: use a UTF-8 path",
            p.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_specifiers_variables_and_spaces() {
        assert_eq!(quote("/usr/bin/tokentray"), "/usr/bin/tokentray");
        assert_eq!(quote("/home/a b/data"), "\"/home/a b/data\"");
        assert_eq!(quote("100%"), "100%%");
        assert_eq!(quote("$HOME"), "$$HOME");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote(""), "\"\"");
    }
}
