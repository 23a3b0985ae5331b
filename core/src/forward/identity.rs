//! Who and which machine forwarded data comes from: `developer`, `team` and `host.name`, added
//! to every resource on the way out (labels `developer`, `team`, `host_name` in remote write), so
//! the team's panels group by person and two machines of one developer are two series, not a
//! collision.
//!
//! The developer defaults to the OS user and the machine to the host name; `tokentray forward
//! setup --developer NAME --team NAME --machine NAME` writes them into `[forward]`. An identity
//! already on the data wins over ours: data a remote box forwarded to this tray keeps the remote's
//! name when the tray forwards it on.

use crate::config::ForwardConfig;

/// Resource attribute of the developer's name.
pub(crate) const DEVELOPER: &str = "developer";
/// Resource attribute of the team's name.
pub(crate) const TEAM: &str = "team";
/// Resource attribute of the machine (OpenTelemetry's semantic convention).
pub(crate) const MACHINE: &str = "host.name";
/// The identity attributes, which keep a value already on the data.
pub(crate) const KEYS: [&str; 3] = [DEVELOPER, TEAM, MACHINE];

/// The identity attributes to add to forwarded data: configured values, else the OS user and
/// the host name; no team unless configured. A key also set in `resource_attributes` is left to
/// that.
pub fn attributes(config: &ForwardConfig) -> Vec<(String, String)> {
    let developer = non_empty(config.developer.clone()).or_else(os_user);
    let machine = non_empty(config.machine.clone()).or_else(host_name);
    let team = non_empty(config.team.clone());
    [(DEVELOPER, developer), (TEAM, team), (MACHINE, machine)]
        .into_iter()
        .filter(|(k, _)| !config.resource_attributes.contains_key(*k))
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect()
}

/// Everything added on the way out: the configured resource attributes, then the identity.
pub(crate) fn outgoing(config: &ForwardConfig) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        config.resource_attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    out.extend(attributes(config));
    out
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The login name of the user running tokentray.
pub fn os_user() -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"].iter().find_map(|k| non_empty(std::env::var(k).ok()))
}

/// This machine's host name (without the domain).
pub fn host_name() -> Option<String> {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let from_env = || ["HOSTNAME", "COMPUTERNAME"].iter().find_map(|k| std::env::var(k).ok());
    let from_command = || {
        std::process::Command::new("hostname")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let name = non_empty(from_kernel)
        .or_else(|| non_empty(from_env()))
        .or_else(|| non_empty(from_command()))?;
    name.split('.').next().map(str::to_string).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_identity_goes_out_and_resource_attributes_win() {
        let mut config = ForwardConfig {
            developer: Some("ana".into()),
            team: Some("payments".into()),
            machine: Some("devbox".into()),
            ..ForwardConfig::default()
        };
        assert_eq!(
            attributes(&config),
            vec![
                ("developer".to_string(), "ana".to_string()),
                ("team".into(), "payments".into()),
                ("host.name".into(), "devbox".into())
            ]
        );
        config.resource_attributes.insert("host.name".into(), "explicit".into());
        let out = outgoing(&config);
        assert_eq!(out.iter().filter(|(k, _)| k == "host.name").count(), 1);
        assert!(out.contains(&("host.name".into(), "explicit".into())));
    }

    #[test]
    fn defaults_are_the_os_user_and_the_host_name_without_a_team() {
        let out = attributes(&ForwardConfig::default());
        assert!(out.iter().all(|(k, _)| k != TEAM), "{out:?}");
        assert_eq!(out.iter().find(|(k, _)| k == MACHINE).map(|(_, v)| v.clone()), host_name());
        assert_eq!(out.iter().find(|(k, _)| k == DEVELOPER).map(|(_, v)| v.clone()), os_user());
    }
}
