//! A minimal Tauri 2 app: one window showing `dist/index.html`. The peer Hearth's desktop app
//! is measured against in `bench/run.sh desktop-footprint` (start time, idle memory).

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    if let Err(e) = tauri::Builder::default().run(tauri::generate_context!()) {
        eprintln!("tauri-hello: {e}");
        std::process::exit(1);
    }
}
