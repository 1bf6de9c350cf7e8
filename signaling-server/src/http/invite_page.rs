//! `GET /invite/{code}`: the page an invite link opens in a browser. It names the group, says
//! what Hearth is and how to install it, and offers to open the app with
//! `hearth://join?server=PUBLIC_URL&code=CODE`. An unknown, expired or used-up code gets a page
//! that says so (404).
//!
//! The page is self-contained (no scripts, no external resources, one inline style allowed by
//! its hash in a strict CSP), every value in it is escaped, and it speaks English, Traditional
//! Chinese or French after the browser's `Accept-Language`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::Digest;

use super::extract::Path;
use crate::state::AppState;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;\
color:#222;background:#faf7f2;line-height:1.5}h1{font-size:1.6rem}img{width:64px;height:64px;border-radius:12px}\
a.open{display:inline-block;padding:.7rem 1.4rem;background:#c2410c;color:#fff;border-radius:8px;\
text-decoration:none;font-weight:600}code{word-break:break-all;background:#eee;padding:.1rem .3rem}\
ol li{margin:.6rem 0}.muted{color:#666;font-size:.9rem}";

#[derive(Clone, Copy)]
enum Lang {
    En,
    ZhTw,
    Fr,
}

struct Text {
    lang: &'static str,
    title: &'static str,
    invited: &'static str,
    about: &'static str,
    install: &'static str,
    download: &'static str,
    ask: &'static str,
    open: &'static str,
    button: &'static str,
    manual: &'static str,
    gone_title: &'static str,
    gone: &'static str,
}

const EN: Text = Text {
    lang: "en",
    title: "Join {group} on Hearth",
    invited: "You are invited to join {group}.",
    about: "Hearth is a private place for a small group to chat, talk and share: text channels, \
            direct messages and voice calls, on a server the group runs itself.",
    install: "Install the Hearth app on your computer.",
    download: "Download Hearth",
    ask: "Ask the person who invited you where to get it.",
    open: "Open this invite in Hearth and choose a username and password.",
    button: "Open in Hearth",
    manual: "If the button does nothing, start Hearth, choose “Join a group” and paste this link:",
    gone_title: "Invite not found",
    gone: "This invite is unknown, has expired or has been used up. Ask for a new one.",
};

const ZH_TW: Text = Text {
    lang: "zh-TW",
    title: "在 Hearth 加入 {group}",
    invited: "你受邀加入 {group}。",
    about: "Hearth 是小團體專屬的聊天、通話與分享空間：文字頻道、私訊和語音通話，都在團體自己架設的伺服器上。",
    install: "在電腦上安裝 Hearth 應用程式。",
    download: "下載 Hearth",
    ask: "請向邀請你的人詢問下載方式。",
    open: "在 Hearth 開啟這個邀請，並設定使用者名稱與密碼。",
    button: "在 Hearth 開啟",
    manual: "如果按鈕沒有反應，請啟動 Hearth，選擇「加入群組」並貼上這個連結：",
    gone_title: "找不到邀請",
    gone: "這個邀請不存在、已過期或已用完。請索取新的邀請。",
};

const FR: Text = Text {
    lang: "fr",
    title: "Rejoindre {group} sur Hearth",
    invited: "Vous êtes invité·e à rejoindre {group}.",
    about: "Hearth est un espace privé où un petit groupe discute, s’appelle et partage : salons \
            de texte, messages privés et appels vocaux, sur un serveur que le groupe gère lui-même.",
    install: "Installez l’application Hearth sur votre ordinateur.",
    download: "Télécharger Hearth",
    ask: "Demandez à la personne qui vous a invité·e où la trouver.",
    open: "Ouvrez cette invitation dans Hearth et choisissez un nom d’utilisateur et un mot de passe.",
    button: "Ouvrir dans Hearth",
    manual: "Si le bouton ne fait rien, lancez Hearth, choisissez « Rejoindre un groupe » et collez ce lien :",
    gone_title: "Invitation introuvable",
    gone: "Cette invitation est inconnue, a expiré ou a été entièrement utilisée. Demandez-en une nouvelle.",
};

/// The first language of `Accept-Language` we speak (quality values are taken in order of
/// appearance, which is how browsers send them).
fn language(headers: &HeaderMap) -> Lang {
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    for tag in accept.split(',') {
        let tag = tag.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if tag.starts_with("zh") {
            return Lang::ZhTw;
        }
        if tag.starts_with("fr") {
            return Lang::Fr;
        }
        if tag.starts_with("en") {
            return Lang::En;
        }
    }
    Lang::En
}

/// Escapes text for HTML content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a URL query value (everything but RFC 3986's unreserved characters).
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The link the app opens: `hearth://join?server=…&code=…`.
pub fn join_link(public_url: &str, code: &str) -> String {
    format!("hearth://join?server={}&code={}", encode_query(public_url), encode_query(code))
}

fn page(status: StatusCode, lang: &'static str, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{title}</title>\
         <style>{STYLE}</style></head><body>{body}</body></html>"
    );
    let style_hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE.as_bytes()));
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{style_hash}'; img-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

pub async fn show(State(state): State<AppState>, headers: HeaderMap, Path(code): Path<String>) -> Response {
    let t = match language(&headers) {
        Lang::En => &EN,
        Lang::ZhTw => &ZH_TW,
        Lang::Fr => &FR,
    };
    let usable = code.len() <= 64 && matches!(state.db.usable_invite(&code).await, Ok(Some(_)));
    if !usable {
        let body = format!("<h1>{}</h1><p>{}</p>", escape(t.gone_title), escape(t.gone));
        return page(StatusCode::NOT_FOUND, t.lang, &escape(t.gone_title), &body);
    }
    let settings = state.server_settings();
    let group = escape(&settings.name);
    let title = escape(t.title).replace("{group}", &group);
    let link = escape(&join_link(&state.config.public_url, &code));
    let icon = settings
        .icon
        .map(|hash| format!("<img src=\"/api/v1/server/icon/{}.png\" alt=\"\">", escape(&hash)))
        .unwrap_or_default();
    let description = if settings.description.is_empty() {
        String::new()
    } else {
        format!("<p>{}</p>", escape(&settings.description))
    };
    let install = match &state.config.download_url {
        Some(url) => format!(
            "{} <a href=\"{}\" rel=\"noreferrer\">{}</a>",
            escape(t.install),
            escape(url),
            escape(t.download)
        ),
        None => format!("{} {}", escape(t.install), escape(t.ask)),
    };
    let body = format!(
        "{icon}<h1>{title}</h1><p>{invited}</p>{description}<p class=\"muted\">{about}</p>\
         <ol><li>{install}</li><li>{open}<br><br><a class=\"open\" href=\"{link}\">{button}</a></li></ol>\
         <p class=\"muted\">{manual}<br><code>{link}</code></p>",
        invited = escape(t.invited).replace("{group}", &group),
        about = escape(t.about),
        open = escape(t.open),
        button = escape(t.button),
        manual = escape(t.manual),
    );
    page(StatusCode::OK, t.lang, &title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_links_encoded() {
        assert_eq!(escape("<b a=\"x\">'&'</b>"), "&lt;b a=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;");
        assert_eq!(
            join_link("https://home.example:8443/x", "Ab-_9"),
            "hearth://join?server=https%3A%2F%2Fhome.example%3A8443%2Fx&code=Ab-_9"
        );
    }

    #[test]
    fn the_language_follows_the_browser() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_str(v).unwrap());
            language(&h)
        };
        assert!(matches!(with("zh-TW,zh;q=0.9,en;q=0.8"), Lang::ZhTw));
        assert!(matches!(with("fr-FR,fr;q=0.9"), Lang::Fr));
        assert!(matches!(with("de-DE,en;q=0.5"), Lang::En));
        assert!(matches!(with("de"), Lang::En));
        assert!(matches!(language(&HeaderMap::new()), Lang::En));
    }
}
