//! The `hearth` desktop binary; everything lives in the `hearth_desktop` library.

// Hide the console window of release builds on Windows.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    #[cfg(target_os = "linux")]
    software_rendering_without_a_gpu();
    if let Err(e) = hearth_desktop::run() {
        eprintln!("hearth: {e:#}");
        std::process::exit(1);
    }
}

/// Without a GPU render node (a VM, a remote desktop, a machine without graphics drivers),
/// WebKitGTK's DMA-BUF renderer composites through Mesa's software OpenGL: about 100 MB more
/// memory for the app's process tree than WebKit's shared-memory path (measured under Xvfb:
/// 325 MB PSS against 224 MB) and CPU for every frame. Choose the shared-memory path then,
/// unless the user set the variable. Must run before any thread starts (it sets the
/// environment).
#[cfg(target_os = "linux")]
fn software_rendering_without_a_gpu() {
    const VAR: &str = "WEBKIT_DISABLE_DMABUF_RENDERER";
    let has_render_node = std::fs::read_dir("/dev/dri")
        .map(|dir| dir.flatten().any(|e| e.file_name().to_string_lossy().starts_with("renderD")))
        .unwrap_or(false);
    if !has_render_node && std::env::var_os(VAR).is_none() {
        // SAFETY: the first statement of `main`, before any other thread exists.
        unsafe { std::env::set_var(VAR, "1") };
    }
}
