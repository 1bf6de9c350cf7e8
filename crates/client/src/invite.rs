//! Understanding what a person pastes or a deep link hands over: an invite
//! (`hearth://join?server=…&code=…`, `https://host/invite/CODE`) or just a server address.

use url::Url;

/// What a pasted text or deep link asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Register on `server` with the invite `code`.
    Join { server: String, code: String },
    /// Log in on `server` (an address with no invite).
    Server { server: String },
}

impl Link {
    /// The server's base URL (`https://host[:port][/prefix]`, no trailing slash).
    pub fn server(&self) -> &str {
        match self {
            Link::Join { server, .. } | Link::Server { server } => server,
        }
    }

    /// The invite code, if this is an invite.
    pub fn code(&self) -> Option<&str> {
        match self {
            Link::Join { code, .. } => Some(code),
            Link::Server { .. } => None,
        }
    }
}

/// Why a text is not a link we understand. Each message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    #[error("paste an invite link or a server address")]
    Empty,
    #[error("this is not a link or server address: {0}")]
    NotALink(String),
    #[error("links starting with {0}:// are not Hearth links; use https://, http:// or hearth://")]
    UnsupportedScheme(String),
    #[error("this hearth:// link does not say what to do (expected hearth://join?...)")]
    UnknownAction,
    #[error("this invite link does not name a server")]
    MissingServer,
    #[error("the server address in this link is not valid: {0}")]
    BadServer(String),
    #[error("this invite link has no invite code")]
    MissingCode,
    #[error("the invite code may hold only letters, digits, '-' and '_'")]
    BadCode,
}

/// Parses what a person pasted or what a deep link delivered.
pub fn parse(input: &str) -> Result<Link, LinkError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(LinkError::Empty);
    }
    if text.chars().any(char::is_whitespace) {
        return Err(LinkError::NotALink(shorten(text)));
    }
    // A bare host ("chat.example.org", "10.0.0.2:8080") means its HTTPS address.
    let with_scheme = if text.contains("://") { text.to_string() } else { format!("https://{text}") };
    let url = Url::parse(&with_scheme).map_err(|_| LinkError::NotALink(shorten(text)))?;
    match url.scheme() {
        "hearth" => parse_deep_link(&url),
        "http" | "https" => parse_web(&url),
        other => Err(LinkError::UnsupportedScheme(other.to_string())),
    }
}

fn parse_deep_link(url: &Url) -> Result<Link, LinkError> {
    // `hearth://join?…`: the action is the host; `hearth:join?…` has it as the path.
    let action = url.host_str().filter(|h| !h.is_empty()).unwrap_or_else(|| url.path().trim_matches('/'));
    if !action.eq_ignore_ascii_case("join") {
        return Err(LinkError::UnknownAction);
    }
    let mut server = None;
    let mut code = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "server" => server = Some(value.into_owned()),
            "code" => code = Some(value.into_owned()),
            _ => {}
        }
    }
    let server = server.filter(|s| !s.trim().is_empty()).ok_or(LinkError::MissingServer)?;
    let server = normalize_server(server.trim())?;
    match code.map(|c| c.trim().to_string()).filter(|c| !c.is_empty()) {
        Some(code) => Ok(Link::Join { server, code: check_code(code)? }),
        None => Ok(Link::Server { server }),
    }
}

fn parse_web(url: &Url) -> Result<Link, LinkError> {
    let path = url.path().trim_end_matches('/');
    if let Some((prefix, code)) = path.rsplit_once("/invite/") {
        if code.is_empty() || code.contains('/') {
            return Err(LinkError::MissingCode);
        }
        let server = base_of(url, prefix)?;
        return Ok(Link::Join { server, code: check_code(code.to_string())? });
    }
    if path.ends_with("/invite") {
        return Err(LinkError::MissingCode);
    }
    Ok(Link::Server { server: base_of(url, path)? })
}

fn normalize_server(text: &str) -> Result<String, LinkError> {
    let with_scheme = if text.contains("://") { text.to_string() } else { format!("https://{text}") };
    let url = Url::parse(&with_scheme).map_err(|e| LinkError::BadServer(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(LinkError::BadServer(format!("{}:// is not http(s)", url.scheme())));
    }
    base_of(&url, url.path().trim_end_matches('/'))
}

/// `scheme://host[:port]` plus `path` (already without a trailing slash).
fn base_of(url: &Url, path: &str) -> Result<String, LinkError> {
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or(LinkError::MissingServer)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(LinkError::BadServer("addresses with a user name are not allowed".into()));
    }
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!("{}://{host}{port}{path}", url.scheme()))
}

fn check_code(code: String) -> Result<String, LinkError> {
    if code.len() > 128 || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(LinkError::BadCode);
    }
    Ok(code)
}

fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(60).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(server: &str, code: &str) -> Link {
        Link::Join { server: server.into(), code: code.into() }
    }

    #[test]
    fn deep_links_carry_an_encoded_server_and_a_code() {
        assert_eq!(
            parse("hearth://join?server=https%3A%2F%2Fchat.example.org&code=AbC-12_x").unwrap(),
            join("https://chat.example.org", "AbC-12_x")
        );
        assert_eq!(
            parse("  hearth://join?code=k&server=http%3A%2F%2F10.0.0.2%3A8080%2F \n").unwrap(),
            join("http://10.0.0.2:8080", "k")
        );
    }

    #[test]
    fn deep_link_without_a_code_means_log_in() {
        assert_eq!(
            parse("hearth://join?server=https%3A%2F%2Fh.example").unwrap(),
            Link::Server { server: "https://h.example".into() }
        );
    }

    #[test]
    fn web_invite_links_split_into_server_and_code() {
        assert_eq!(parse("https://h.example/invite/CODE1").unwrap(), join("https://h.example", "CODE1"));
        assert_eq!(
            parse("https://h.example:8443/hearth/invite/x9/").unwrap(),
            join("https://h.example:8443/hearth", "x9")
        );
    }

    #[test]
    fn a_bare_address_means_log_in_and_defaults_to_https() {
        assert_eq!(parse("https://h.example/").unwrap(), Link::Server { server: "https://h.example".into() });
        assert_eq!(parse("h.example").unwrap(), Link::Server { server: "https://h.example".into() });
        assert_eq!(
            parse("http://127.0.0.1:8080").unwrap(),
            Link::Server { server: "http://127.0.0.1:8080".into() }
        );
    }

    #[test]
    fn bad_input_gets_a_clear_error() {
        assert_eq!(parse("   "), Err(LinkError::Empty));
        assert_eq!(parse("ftp://h.example/invite/x"), Err(LinkError::UnsupportedScheme("ftp".into())));
        assert_eq!(parse("hearth://open?server=x"), Err(LinkError::UnknownAction));
        assert_eq!(parse("hearth://join?code=abc"), Err(LinkError::MissingServer));
        assert_eq!(parse("https://h.example/invite/"), Err(LinkError::MissingCode));
        assert_eq!(parse("https://h.example/invite/a%20b"), Err(LinkError::BadCode));
        assert!(matches!(parse("two words"), Err(LinkError::NotALink(_))));
        assert!(matches!(parse("hearth://join?server=ftp%3A%2F%2Fh&code=a"), Err(LinkError::BadServer(_))));
        assert!(matches!(parse("https://user:pw@h.example"), Err(LinkError::BadServer(_))));
    }
}
