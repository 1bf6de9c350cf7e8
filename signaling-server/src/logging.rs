//! Where the server's log goes and how it looks: plain text (with colours only on a terminal,
//! never in journald, `docker logs` or a redirected file) or JSON lines when asked.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// How the text log is decorated, decided from where standard error goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextStyle {
    /// ANSI colours: only on a terminal, and never when `NO_COLOR` is set (no-color.org).
    pub ansi: bool,
    /// Timestamps: journald stamps every line itself, so they are left out under systemd.
    pub timestamps: bool,
}

impl TextStyle {
    /// `terminal`: whether stderr is a terminal; `no_color`: `NO_COLOR` is set and non-empty;
    /// `journald`: systemd connected stderr to the journal (`JOURNAL_STREAM` is set).
    pub fn decide(terminal: bool, no_color: bool, journald: bool) -> TextStyle {
        TextStyle { ansi: terminal && !no_color, timestamps: !journald }
    }

    fn from_environment() -> TextStyle {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let journald = std::env::var_os("JOURNAL_STREAM").is_some();
        TextStyle::decide(std::io::stderr().is_terminal(), no_color, journald)
    }
}

/// Installs the global subscriber: `HEARTH_LOG` filters (default `default_level`), output to
/// standard error.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_env("HEARTH_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (only possible in tests) keeps the first subscriber.
    let _already = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => {
            let style = TextStyle::from_environment();
            let builder = builder.with_ansi(style.ansi);
            if style.timestamps { builder.try_init() } else { builder.without_time().try_init() }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::TextStyle;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(TextStyle::decide(true, false, false).ansi);
        assert!(!TextStyle::decide(false, false, false).ansi, "a pipe or file gets no escape codes");
        assert!(!TextStyle::decide(true, true, false).ansi, "NO_COLOR wins over a terminal");
    }

    #[test]
    fn journald_gets_no_timestamps_of_ours() {
        assert!(!TextStyle::decide(false, false, true).timestamps);
        assert!(TextStyle::decide(false, false, false).timestamps);
    }
}
