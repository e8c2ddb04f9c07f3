//! The systemd unit that keeps the agent running.
//!
//! Fixed lines plus one value, the agent's path, which
//! [`check_path`](crate::validate::check_path) has limited to
//! `[A-Za-z0-9._+/-]`: nothing systemd would split, expand (`%`, `$`) or
//! unquote, and no newline that could add a directive.

use crate::paths::AGENT_CONFIG_PATH;

/// The unit's text for an agent installed at `agent_path` (already checked).
pub(crate) fn unit(agent_path: &str) -> String {
    [
        "# Written by nest-cloud-init on first boot.",
        "[Unit]",
        "Description=Nest agent (runs this instance's Nest containers)",
        "Wants=network-online.target docker.service",
        "After=docker.service network-online.target",
        // A failed download leaves no binary: skip the start rather than
        // restart a missing program every two seconds forever.
        &format!("ConditionFileIsExecutable={agent_path}"),
        // The agent must always come back; systemd's default start limit
        // (5 starts in 10 s) would give up on it for good after a few quick
        // failures, e.g. while dockerd is still starting.
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        &format!("ExecStart={agent_path} --config {AGENT_CONFIG_PATH}"),
        "Restart=always",
        "RestartSec=2",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_runs_the_agent_with_its_config_and_restarts_it() {
        let text = unit("/opt/nest/bin/nest-agent");
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            "ExecStart=/opt/nest/bin/nest-agent --config /etc/nest/agent.toml",
            "ConditionFileIsExecutable=/opt/nest/bin/nest-agent",
            "Restart=always",
            "RestartSec=2",
            "After=docker.service network-online.target",
            "WantedBy=multi-user.target",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
        }
        assert!(text.ends_with('\n'));
    }
}
