//! Safe names for received files: a path the sender announced becomes a relative path that
//! can only land inside the folder the receiver chose, on every platform we ship to.
//!
//! Each component is cleaned on its own: real separators (`/`, `\`) split components, and
//! `.`, `..` and empty ones are dropped (never applied), so neither traversal nor an absolute
//! path (`/etc`, `C:\`, `\\server\share`) survives; Unicode look-alikes of the separators,
//! characters Windows refuses (`<>:"|?*`), control characters and bidirectional overrides
//! become `_` (or vanish, for the invisible ones); trailing dots and spaces go (Windows strips
//! them, which would make two names one); Windows device names (`CON`, `NUL`, `COM1`, `LPT¹`,
//! with any extension) get a leading `_`; a component is cut to 200 bytes, keeping its
//! extension. What stays is never empty.

use std::path::{Path, PathBuf};

/// Longest component we write, in UTF-8 bytes (most filesystems allow 255; a `.part` suffix
/// and a " (12)" must still fit).
const MAX_COMPONENT_BYTES: usize = 200;
/// Deepest folder nesting we recreate; deeper paths are flattened into their last levels.
pub const MAX_DEPTH: usize = 32;

/// Characters that look like a path separator without being one.
fn is_separator_lookalike(c: char) -> bool {
    matches!(
        c,
        '\u{2215}' // DIVISION SLASH
            | '\u{2044}' // FRACTION SLASH
            | '\u{29F8}' // BIG SOLIDUS
            | '\u{FF0F}' // FULLWIDTH SOLIDUS
            | '\u{2571}' // BOX DRAWINGS LIGHT DIAGONAL
            | '\u{29F5}' // REVERSE SOLIDUS OPERATOR
            | '\u{29F9}' // BIG REVERSE SOLIDUS
            | '\u{FF3C}' // FULLWIDTH REVERSE SOLIDUS
            | '\u{FE68}' // SMALL REVERSE SOLIDUS
            | '\u{2216}' // SET MINUS
            | '\u{2572}' // BOX DRAWINGS LIGHT DIAGONAL (the other way)
            | '\u{A778}' // LATIN SMALL LETTER UM (renders as a slash in some fonts)
    )
}

/// Invisible characters that reorder or hide text (so `gpj.exe` cannot pose as `exe.jpg`).
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn is_windows_forbidden(c: char) -> bool {
    matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*')
}

/// Windows device names, which open a device instead of a file whatever the extension.
fn is_reserved(component: &str) -> bool {
    let stem = component.split('.').next().unwrap_or("").trim_end_matches(' ').to_ascii_uppercase();
    match stem.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" | "CLOCK$" => true,
        s if s.len() == 4 || s.chars().count() == 4 => {
            let (head, tail) = s.split_at(s.char_indices().nth(3).map_or(s.len(), |(i, _)| i));
            (head == "COM" || head == "LPT")
                && matches!(tail, "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³")
        }
        _ => false,
    }
}

/// One component made safe; `None` when nothing is left of it (`.`, `..`, empty).
pub fn safe_component(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if is_invisible_format(c) {
            continue;
        }
        if c.is_control() || is_separator_lookalike(c) || is_windows_forbidden(c) {
            out.push('_');
        } else {
            out.push(c);
        }
    }
    let trimmed = out.trim_end_matches(['.', ' ']).trim_start_matches(' ');
    if trimmed.is_empty() {
        // "." and ".." and names of only dots or spaces: nothing to keep.
        return None;
    }
    let mut name = trimmed.to_string();
    if is_reserved(&name) {
        name.insert(0, '_');
    }
    Some(truncate(&name, MAX_COMPONENT_BYTES))
}

/// Cuts `name` to at most `max` bytes on a character boundary, keeping a short extension.
fn truncate(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let ext = name.rfind('.').map(|i| &name[i..]).filter(|e| e.len() <= 16 && e.len() < name.len());
    let ext = ext.unwrap_or("");
    let mut cut = max - ext.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let stem = name[..cut].trim_end_matches(['.', ' ']);
    format!("{stem}{ext}")
}

/// A relative path (the sender's, with `/` or `\` between components) made safe: every
/// component cleaned, nothing that climbs or roots. Falls back to `file` when nothing is left.
pub fn safe_relative(raw: &str) -> PathBuf {
    let parts: Vec<String> = raw.split(['/', '\\']).filter_map(safe_component).collect();
    let parts = if parts.len() > MAX_DEPTH { parts[parts.len() - MAX_DEPTH..].to_vec() } else { parts };
    if parts.is_empty() {
        return PathBuf::from("file");
    }
    parts.iter().collect()
}

/// `name (1).ext`, `name (2).ext`… for the `n`th alternative of a taken name.
pub fn numbered(name: &str, n: u32) -> String {
    match name.rfind('.').filter(|&i| i > 0) {
        Some(i) => format!("{} ({n}){}", &name[..i], &name[i..]),
        None => format!("{name} ({n})"),
    }
}

/// Whether `path` stays inside `root` when read component by component (no `..`, no root,
/// no prefix). Every path built from [`safe_relative`] does; this is the last check before
/// anything is created.
pub fn stays_inside(root: &Path, path: &Path) -> bool {
    use std::path::Component;
    path.strip_prefix(root).is_ok_and(|rest| rest.components().all(|c| matches!(c, Component::Normal(_))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(raw: &str) -> String {
        safe_relative(raw).to_string_lossy().replace('\\', "/")
    }

    #[test]
    fn traversal_never_climbs() {
        assert_eq!(rel("../../etc/passwd"), "etc/passwd");
        assert_eq!(rel("a/../../b"), "a/b");
        assert_eq!(rel("..\\..\\Windows\\System32\\x.dll"), "Windows/System32/x.dll");
        assert_eq!(rel(".."), "file");
        assert_eq!(rel("./././a"), "a");
    }

    #[test]
    fn absolute_paths_become_relative() {
        assert_eq!(rel("/etc/shadow"), "etc/shadow");
        assert_eq!(rel("C:\\Users\\me\\x.txt"), "C_/Users/me/x.txt");
        assert_eq!(rel("\\\\server\\share\\f"), "server/share/f");
        assert_eq!(rel("//x"), "x");
    }

    #[test]
    fn windows_device_names_are_renamed_with_any_extension_or_case() {
        for name in
            ["CON", "con", "Nul.txt", "COM1", "com9.log", "LPT1", "lpt¹.x", "AUX.tar.gz", "PRN ", "CONIN$"]
        {
            let safe = safe_component(name).expect("kept");
            assert!(safe.starts_with('_'), "{name} -> {safe}");
        }
        for name in ["CONSOLE", "COM10", "nullable.txt", "LPT", "com"] {
            assert_eq!(safe_component(name).as_deref(), Some(name), "{name} is not a device");
        }
    }

    #[test]
    fn trailing_dots_and_spaces_are_removed() {
        assert_eq!(safe_component("report.pdf. . ").as_deref(), Some("report.pdf"));
        assert_eq!(safe_component("folder...").as_deref(), Some("folder"));
        assert_eq!(safe_component(" ...").as_deref(), None);
        assert_eq!(safe_component("  lead").as_deref(), Some("lead"));
    }

    #[test]
    fn separator_lookalikes_do_not_split_and_do_not_survive() {
        assert_eq!(rel("..\u{2215}..\u{2215}etc\u{2215}passwd"), ".._.._etc_passwd");
        assert_eq!(rel("a\u{FF0F}b\u{FF3C}c\u{2044}d\u{29F8}e"), "a_b_c_d_e");
        assert_eq!(rel("x\u{2216}y"), "x_y");
    }

    #[test]
    fn control_characters_and_invisible_reordering_are_made_safe() {
        assert_eq!(safe_component("a\u{0}b\nc\u{7f}d\u{9b}").as_deref(), Some("a_b_c_d_"));
        assert_eq!(safe_component("invoice\u{202E}fdp.exe").as_deref(), Some("invoicefdp.exe"));
        assert_eq!(safe_component("\u{200B}").as_deref(), None);
    }

    #[test]
    fn characters_windows_refuses_are_replaced() {
        assert_eq!(safe_component("a<b>c:d\"e|f?g*h").as_deref(), Some("a_b_c_d_e_f_g_h"));
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary_keeping_the_extension() {
        let long = format!("{}.jpeg", "é".repeat(300));
        let safe = safe_component(&long).expect("kept");
        assert!(safe.len() <= MAX_COMPONENT_BYTES, "{}", safe.len());
        assert!(safe.ends_with(".jpeg"));
    }

    #[test]
    fn folders_keep_their_structure_and_depth_is_bounded() {
        assert_eq!(rel("Photos/2024/summer/IMG_1.jpg"), "Photos/2024/summer/IMG_1.jpg");
        let deep = vec!["d"; 100].join("/");
        assert_eq!(safe_relative(&deep).components().count(), MAX_DEPTH);
    }

    #[test]
    fn every_cleaned_path_stays_inside_the_root() {
        let root = Path::new("/home/me/Downloads");
        for raw in
            ["../../x", "/abs", "C:\\x", "a/../../..", "..\u{2215}x", "CON/NUL", "", "...", "a\\..\\..\\b"]
        {
            assert!(stays_inside(root, &root.join(safe_relative(raw))), "{raw:?}");
        }
        assert!(!stays_inside(root, &root.join("../x")));
        assert!(!stays_inside(root, Path::new("/etc/passwd")));
    }

    #[test]
    fn alternatives_are_numbered_before_the_extension() {
        assert_eq!(numbered("photo.jpg", 1), "photo (1).jpg");
        assert_eq!(numbered("README", 2), "README (2)");
        assert_eq!(numbered(".bashrc", 1), ".bashrc (1)");
    }
}
