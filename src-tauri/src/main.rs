//! The `hearth` desktop binary; everything lives in the `hearth_desktop` library.

// Hide the console window of release builds on Windows.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    if let Err(e) = hearth_desktop::run() {
        eprintln!("hearth: {e:#}");
        std::process::exit(1);
    }
}
