//! Links that leave or enter the app: `link_open` hands only http(s) URLs to the system browser,
//! and `hearth://join?...` (an invite), `hearth://setup?...` (a new server's one-time setup
//! link, whose token is the owner's invite) and `hearth://message?...` (a message, made by the
//! message's "Copy link") deep links are passed to the UI, which parses them: it confirms a
//! join before joining and jumps to a message.

use url::Url;

/// The URL to hand to the system browser, or `None` for anything but `http:`/`https:` (no
/// `file:`, `javascript:`, custom schemes or local paths).
pub fn external_url(text: &str) -> Option<Url> {
    let url = Url::parse(text.trim()).ok()?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Some(url),
        _ => None,
    }
}

/// Whether a deep link is one the UI opens: `hearth://join...` or `hearth://setup...` (its
/// registration screen) or `hearth://message...` (a jump to the message). The UI checks the
/// parameters; anything else is not passed on.
pub fn is_app_link(url: &Url) -> bool {
    url.scheme() == "hearth" && matches!(url.host_str(), Some("join" | "setup" | "message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_open() {
        assert!(external_url("https://example.org/a?b=c").is_some());
        assert!(external_url(" http://example.org ").is_some());
    }

    #[test]
    fn other_schemes_are_refused() {
        for bad in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "hearth://join?x=1",
            "ftp://example.org",
            "/usr/bin/xterm",
            "data:text/html,hi",
            "https://",
            "",
        ] {
            assert!(external_url(bad).is_none(), "{bad} must be refused");
        }
    }

    #[test]
    fn join_and_message_links_are_recognized() {
        assert!(is_app_link(&Url::parse("hearth://join?server=https%3A%2F%2Fa.org&code=x").unwrap()));
        assert!(is_app_link(
            &Url::parse("hearth://setup?server=http%3A%2F%2F127.0.0.1%3A8080&token=x").unwrap()
        ));
        assert!(is_app_link(
            &Url::parse("hearth://message?server=https%3A%2F%2Fa.org&channel=12&message=34").unwrap()
        ));
        assert!(!is_app_link(&Url::parse("hearth://other").unwrap()));
        assert!(!is_app_link(&Url::parse("https://join").unwrap()));
        assert!(!is_app_link(&Url::parse("https://message").unwrap()));
    }
}
