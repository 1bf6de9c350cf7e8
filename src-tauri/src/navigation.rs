//! The navigation guard: the window only ever shows the app's own pages. Any navigation away
//! from the app's origin (a link that escaped the message pane's click handler, a redirect, a
//! `location =` from injected content) is refused; links open only in the system browser,
//! through the `open_external` command.

use tauri::Runtime;
use tauri::plugin::TauriPlugin;
use url::Url;

/// Whether `url` is one of the app's own pages: the embedded assets (`tauri://localhost` on
/// Linux and macOS, `http(s)://tauri.localhost` on Windows) or, in debug builds, the Vite dev
/// server the config names.
pub fn is_app_url(url: &Url) -> bool {
    match (url.scheme(), url.host_str()) {
        ("tauri", Some("localhost")) => true,
        ("http" | "https", Some("tauri.localhost")) => url.port().is_none(),
        ("http", Some("localhost")) => cfg!(debug_assertions) && url.port() == Some(DEV_PORT),
        // An empty page has no origin to leave to (webviews start on it).
        ("about", None) => url.as_str() == "about:blank",
        _ => false,
    }
}

/// The dev server's port (`devUrl` in tauri.conf.json).
const DEV_PORT: u16 = 1420;

pub fn guard<R: Runtime>() -> TauriPlugin<R> {
    tauri::plugin::Builder::new("navigation-guard")
        .on_navigation(|_webview, url| {
            let allowed = is_app_url(url);
            if !allowed {
                // The scheme only: a URL may carry a token or a message.
                tracing::warn!(scheme = url.scheme(), "refused a navigation away from the app");
            }
            allowed
        })
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(s: &str) -> bool {
        is_app_url(&Url::parse(s).unwrap())
    }

    #[test]
    fn only_the_apps_own_origin_is_allowed() {
        assert!(allowed("tauri://localhost/"));
        assert!(allowed("tauri://localhost/index.html#/channels"));
        assert!(allowed("http://tauri.localhost/"));
        assert!(allowed("https://tauri.localhost/assets/x.js"));
        assert!(allowed("about:blank"));
        for refused in [
            "https://evil.example/",
            "http://tauri.localhost.evil.example/",
            "http://tauri.localhost:8080/",
            "tauri://evil/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "http://localhost:8080/",
            "about:srcdoc",
        ] {
            assert!(!allowed(refused), "{refused}");
        }
        assert_eq!(allowed("http://localhost:1420/"), cfg!(debug_assertions));
    }
}
